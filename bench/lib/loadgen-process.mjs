/**
 * The load generator role, forked by run.mjs: drives one scenario against one server.
 *
 *   node bench/lib/loadgen-process.mjs '{"client":"ws","scenario":"echo","params":{...}}'
 *
 * `init` gives it the server's port and the path of its WebSocket route. `mark`/`report`
 * bracket a measured window as in the server process, plus the latencies recorded in the
 * window (p50, p99) and this process's own CPU time (the headline of the `client` scenario).
 * Other requests go to the scenario's client side (`setup` opens the connections,
 * `start`/`stop` run the load).
 */

import { loadScenario } from '../scenarios/index.mjs';
import { emitEvent, exitSoon, serveRequests } from './ipc.mjs';
import { CLIENT_PEERS } from './peers.mjs';
import { HOST, quantile } from './util.mjs';

const config = JSON.parse(process.argv[2]);
const clientPeer = CLIENT_PEERS[config.client];
if (clientPeer === undefined) throw new Error(`unknown client ${config.client}`);
const scenario = await loadScenario(config.scenario);
const { connect, info } = await clientPeer.load();

const counters = { ops: 0, bytesIn: 0, bytesOut: 0 };
/** Latencies (ms) recorded since the last `mark`; capped so a long window cannot grow it forever. */
const MAX_SAMPLES = 1 << 21;
let samples = new Float64Array(1024);
let sampleCount = 0;
const latency = {
  record(ms) {
    if (sampleCount === samples.length) {
      if (samples.length >= MAX_SAMPLES) return;
      const bigger = new Float64Array(samples.length * 2);
      bigger.set(samples);
      samples = bigger;
    }
    samples[sampleCount++] = ms;
  },
};

let port = 0;
let path = '/';
const side = scenario.client({
  params: config.params,
  counters,
  latency,
  connect: (options = {}) => connect({ host: HOST, port, path, ...options }),
});

let mark = null;

serveRequests({
  ...side.commands,
  init(args) {
    port = args.port;
    path = args.path ?? '/';
    return { info: { ...info, pid: process.pid } };
  },
  mark() {
    sampleCount = 0;
    mark = { cpu: process.cpuUsage(), time: process.hrtime.bigint(), counters: { ...counters } };
  },
  report() {
    const cpu = process.cpuUsage(mark.cpu);
    const elapsedMs = Number(process.hrtime.bigint() - mark.time) / 1e6;
    const counts = {};
    for (const key of Object.keys(counters)) counts[key] = counters[key] - mark.counters[key];
    const sorted = samples.slice(0, sampleCount).sort();
    return {
      cpuUs: cpu.user + cpu.system,
      elapsedMs,
      counts,
      latency: {
        samples: sampleCount,
        p50: quantile(sorted, 0.5),
        p99: quantile(sorted, 0.99),
      },
    };
  },
  exit() {
    exitSoon(0);
  },
});

emitEvent('ready', { pid: process.pid });
