/**
 * The server role, forked by run.mjs: one peer's server for one scenario on 127.0.0.1.
 *
 *   node bench/lib/server-process.mjs '{"peer":"weft","scenario":"echo","params":{...}}'
 *
 * It announces `ready` with its port and the path of its WebSocket route, then answers the
 * orchestrator: `mark` starts a measured window (CPU time, clock, counters), `report` ends it
 * and returns the deltas measured here, in the server process itself; `memory` runs a full GC
 * and returns process.memoryUsage(); other requests go to the scenario's server side (e.g.
 * start broadcasting).
 */
import { readFileSync } from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';
import { loadScenario } from '../scenarios/index.mjs';
import { emitEvent, exitSoon, serveRequests } from './ipc.mjs';
import { SERVER_PEERS } from './peers.mjs';
import { HOST } from './util.mjs';

const config = JSON.parse(process.argv[2]);
const peer = SERVER_PEERS[config.peer];
if (peer === undefined) throw new Error(`unknown server peer ${config.peer}`);
const scenario = await loadScenario(config.scenario);

/** What the scenario's server side counts; `mark`/`report` return the change over a window. */
const counters = { ops: 0, bytesIn: 0, bytesOut: 0, connections: 0, open: 0 };
let handle = null;
const side = scenario.server({ params: config.params, counters, handle: () => handle });

handle = await peer.listen({
  host: HOST,
  perMessageDeflate: config.params.perMessageDeflate,
  onConnection(socket) {
    counters.connections++;
    counters.open++;
    socket.on('close', () => counters.open--);
    side.onConnection(socket);
  },
});

function gcFunction() {
  if (typeof globalThis.gc === 'function') return globalThis.gc;
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc');
}

/**
 * Resident memory split (Linux, /proc/self/status): anonymous pages (heap, stacks, malloc:
 * what connections allocate) and file-backed pages (the node binary and libraries, shared by
 * every process that maps them). Elsewhere only the total is known.
 */
function residentSplit() {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const kib = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
    const rssAnon = kib('RssAnon') * 1024;
    const rssFile = kib('RssFile') * 1024;
    return Number.isFinite(rssAnon) && Number.isFinite(rssFile) ? { rssAnon, rssFile } : {};
  } catch {
    return {};
  }
}

let mark = null;

serveRequests({
  ...side.commands,
  mark() {
    mark = { cpu: process.cpuUsage(), time: process.hrtime.bigint(), counters: { ...counters } };
  },
  report() {
    const cpu = process.cpuUsage(mark.cpu);
    const elapsedMs = Number(process.hrtime.bigint() - mark.time) / 1e6;
    const counts = {};
    for (const key of Object.keys(counters)) counts[key] = counters[key] - mark.counters[key];
    return {
      cpuUs: cpu.user + cpu.system,
      userUs: cpu.user,
      systemUs: cpu.system,
      elapsedMs,
      counts,
      open: counters.open,
    };
  },
  async memory() {
    const gc = gcFunction();
    for (let i = 0; i < 4; i++) {
      gc();
      await new Promise((resolve) => setImmediate(resolve));
    }
    return { ...process.memoryUsage(), ...residentSplit(), open: counters.open };
  },
  exit() {
    exitSoon(0);
  },
});

emitEvent('ready', {
  port: handle.port,
  path: handle.path ?? '/',
  info: { ...handle.info, pid: process.pid },
});
