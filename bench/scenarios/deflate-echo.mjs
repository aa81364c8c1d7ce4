import { echoClient, echoPhases, echoServer, echoServerMetrics } from './echo-common.mjs';
import { windowTiming } from './windows.mjs';

/**
 * The same options on both sides. Context takeover is on (the default of both ws and weft),
 * so the payloads are 32 distinct JSON documents in turn: a repeated message would deflate
 * to a few bytes against its previous copy in the window.
 */
export const DEFLATE_OPTIONS = {
  threshold: 1024,
  zlibDeflateOptions: { level: 6, memLevel: 8 },
};

export default {
  name: 'deflate-echo',
  summary:
    '16 KiB JSON text echoed over 20 connections, permessage-deflate on both sides (zlib level 6, context takeover)',
  // A raw ceiling would mean writing a permessage-deflate of our own: WebSocket peers only.
  kinds: ['websocket'],
  // Issue 8's targets, as ratios weft/peer.
  targets: [{ key: 'cpu', peer: 'ws', max: 0.9 }],
  params: ({ smoke }) => ({
    connections: smoke ? 4 : 20,
    size: 16 * 1024,
    json: true,
    documents: smoke ? 4 : 32,
    perMessageDeflate: DEFLATE_OPTIONS,
    ...windowTiming({ smoke, warmupMs: 700 }),
  }),
  server: echoServer,
  client: echoClient,
  phases: echoPhases,
  metrics: echoServerMetrics,
};
