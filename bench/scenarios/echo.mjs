import { echoClient, echoDrive, echoServer, echoServerMetrics } from './echo-common.mjs';

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
    warmupMs: smoke ? 100 : 700,
    measureMs: smoke ? 200 : 2000,
  }),
  server: echoServer,
  client: echoClient,
  drive: echoDrive,
  metrics: echoServerMetrics,
};
