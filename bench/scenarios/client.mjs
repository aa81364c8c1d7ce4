import { echoClient, echoPhases, echoServer } from './echo-common.mjs';
import { windowTiming } from './windows.mjs';

/**
 * The peers are clients here: weft's and ws's (with and without bufferutil) load the same ws
 * server (with bufferutil) with the echo loop; the headline is the load generator's own CPU.
 */
export default {
  name: 'client',
  summary:
    'the echo loop (32-byte text, 50 connections) with each client against the same ws server',
  role: 'client',
  serverPeer: 'ws',
  clients: ['weft', 'ws', 'ws-nobu'],
  // Issue 8's targets, as ratios weft/peer.
  targets: [{ key: 'cpu', peer: 'ws', max: 0.95 }],
  params: ({ smoke }) => ({
    connections: smoke ? 10 : 50,
    size: 32,
    ...windowTiming({ smoke, warmupMs: 700 }),
  }),
  server: echoServer,
  client: echoClient,
  phases: echoPhases,
  metrics: ({ server, client }) => [
    {
      key: 'cpu',
      label: 'client CPU µs/echo',
      value: client.cpuUs / client.counts.ops,
      better: 'lower',
      headline: true,
    },
    {
      key: 'rate',
      label: 'echoes/s',
      value: client.counts.ops / (client.elapsedMs / 1000),
      better: 'higher',
    },
    { key: 'p50', label: 'p50 latency ms', value: client.latency.p50, better: 'lower' },
    { key: 'p99', label: 'p99 latency ms', value: client.latency.p99, better: 'lower' },
    {
      key: 'server-cpu',
      label: 'ws server CPU µs/echo',
      value: server.cpuUs / server.counts.ops,
      better: 'lower',
    },
  ],
};
