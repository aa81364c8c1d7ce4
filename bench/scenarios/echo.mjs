import { echoClient, echoPhases, echoServer, echoServerMetrics } from './echo-common.mjs';
import { windowTiming } from './windows.mjs';

export default {
  name: 'echo',
  summary: '32-byte text messages echoed over 50 connections, one in flight per connection',
  kinds: ['websocket', 'raw'],
  // Issue 8's targets, as ratios weft/peer.
  targets: [
    { key: 'cpu', peer: 'ws', max: 0.95 },
    { key: 'cpu', peer: 'raw', max: 1.05 },
  ],
  params: ({ smoke }) => ({
    connections: smoke ? 10 : 50,
    size: 32,
    ...windowTiming({ smoke, warmupMs: 700 }),
  }),
  server: echoServer,
  client: echoClient,
  phases: echoPhases,
  metrics: echoServerMetrics,
};
