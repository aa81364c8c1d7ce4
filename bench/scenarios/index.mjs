/**
 * The scenarios, in the order they run and print. Each module's default export is:
 *
 *   name, summary
 *   kinds          which server peers take part ('websocket', 'raw'), for role 'server'
 *   peers          optional: exactly these server peers instead (the plugin scenarios)
 *   subject        optional: the peer the ratios are computed for (default 'weft')
 *   targets        optional: [{ key, peer, max } or { key, peer, min }], the goal for ratio
 *                  subject/peer of metric key (at most max, at least min)
 *   role           'server' (default: the peers are servers, the load generator is the ws
 *                  client) or 'client' (the peers are clients in `clients`, against the
 *                  server peer `serverPeer`)
 *   params({ smoke, fdLimit, portRange })   the sizes and durations (smoke: tiny)
 *   server({ params, counters, handle })    in the server process: { onConnection, commands }
 *   client({ params, counters, latency, connect })   in the load generator: { commands }
 *   phases         { prepare?(ctx), warm(ctx, ms), measure(ctx, timing) }: a load measured
 *                  in alternating windows (run.mjs runInterleaved): every peer's processes stay
 *                  up, prepare runs once (its result is `setup`), warm once, then measure once a
 *                  round: a re-warm and ctx.window(s), returning what metrics() needs (it may
 *                  throw). params must include windowTiming()'s; steadyPhases() makes the
 *                  phases of a load that is simply on or off (windows.mjs).
 *   drive(ctx)     otherwise: in run.mjs, runs the phases of one case through ctx.server(type),
 *                  ctx.client(type), ctx.sleep(ms), ctx.window(ms) and returns what metrics()
 *                  needs
 *   metrics(raw, params)   [{ key, label, value, better: 'lower'|'higher', headline }]
 *   notes(params)  optional lines printed under the table
 *   maxRepeat      optional cap on the repetitions of this scenario
 *
 * To add a scenario: write the module and list it here.
 */
import { broadcastScenarios } from './broadcast.mjs';
import { bulkScenario } from './bulk.mjs';
import client from './client.mjs';
import deflateEcho from './deflate-echo.mjs';
import echo from './echo.mjs';
import handshake from './handshake.mjs';
import idleMemory from './idle-memory.mjs';
import { pluginScenarios } from './plugins.mjs';

export const SCENARIOS = [
  echo,
  bulkScenario('bulk-64k', 64 * 1024, '64 KiB'),
  // Issue 8's targets for 1 MiB messages: raw TCP's throughput both ways, ws's upload CPU.
  bulkScenario('bulk-1m', 1024 * 1024, '1 MiB', [
    { key: 'up-rate', peer: 'raw', min: 0.9 },
    { key: 'down-rate', peer: 'raw', min: 0.9 },
    { key: 'up-cpu', peer: 'ws', max: 1 },
  ]),
  ...broadcastScenarios,
  handshake,
  idleMemory,
  deflateEcho,
  client,
  ...pluginScenarios,
];

export async function loadScenario(name) {
  const scenario = SCENARIOS.find((s) => s.name === name);
  if (scenario === undefined) throw new Error(`unknown scenario ${name}`);
  return scenario;
}
