/**
 * Connect + close cycles: each of `concurrency` workers opens a connection (the WebSocket
 * opening handshake, or a bare TCP connect for raw), closes it with the closing handshake,
 * waits for 'close' and starts over. The server does nothing but accept; its CPU per accepted
 * connection covers the upgrade, the closing handshake and the teardown.
 *
 * The connections come from 4 source addresses (127.0.0.1-4) so that a long run does not
 * depend on reusing ephemeral ports still in TIME_WAIT.
 */
import { closeAndWait, until } from '../lib/util.mjs';
import { steadyPhases, windowTiming } from './windows.mjs';

const SOURCES = 4;

export default {
  name: 'handshake',
  summary: 'connect + close cycles, 16 at a time',
  kinds: ['websocket', 'raw'],
  // Issue 8's targets, as ratios weft/peer.
  targets: [{ key: 'cpu', peer: 'ws', max: 0.75 }],
  params: ({ smoke }) => ({
    concurrency: smoke ? 4 : 16,
    // Long enough for the optimising compiler to reach the handshake path: measured after
    // 0.5 s, the first seconds still ran 1.3 to 2.4 times slower than steady state, most of
    // all through the frameworks, whose routing has more code to warm up.
    ...windowTiming({ smoke, warmupMs: 2500 }),
  }),

  server: () => ({ onConnection() {}, commands: {} }),

  client({ params, counters, latency, connect }) {
    let running = false;
    let active = 0;
    let errors = 0;
    let opsAtStart = 0;
    let cycle = 0;
    async function worker() {
      active++;
      while (running) {
        const localAddress = `127.0.0.${1 + (cycle++ % SOURCES)}`;
        const started = performance.now();
        try {
          const socket = await connect({ localAddress });
          await closeAndWait(socket);
          counters.ops++;
          latency.record(performance.now() - started);
        } catch {
          errors++;
        }
      }
      active--;
    }
    return {
      commands: {
        start() {
          running = true;
          opsAtStart = counters.ops;
          for (let i = 0; i < params.concurrency; i++) worker();
        },
        async stop() {
          running = false;
          await until(() => active === 0, 5000);
          const outcome = { errors, ops: counters.ops - opsAtStart };
          errors = 0;
          return outcome;
        },
      },
    };
  },

  phases: steadyPhases({
    start: (ctx) => ctx.client('start'),
    async stop(ctx) {
      const { errors, ops } = await ctx.client('stop');
      if (errors > ops / 100) throw new Error(`${errors} failed connections (${ops} succeeded)`);
      return { errors };
    },
  }),

  metrics({ server, client }) {
    return [
      {
        key: 'cpu',
        label: 'server CPU µs/connection',
        value: server.cpuUs / server.counts.connections,
        better: 'lower',
        headline: true,
      },
      {
        key: 'rate',
        label: 'handshakes/s',
        value: server.counts.connections / (server.elapsedMs / 1000),
        better: 'higher',
      },
      { key: 'p50', label: 'p50 connect+close ms', value: client.latency.p50, better: 'lower' },
    ];
  },
};
