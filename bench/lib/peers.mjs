/**
 * The peers: the servers a scenario runs against, and the clients a load generator uses.
 *
 * A server peer's `listen({ host, perMessageDeflate, onConnection })` starts a server on
 * `host`, port 0, calls `onConnection(socket)` with a ws-like socket for every connection,
 * and resolves with a handle:
 *
 *   { port, clients, broadcast(buffer, binary) -> deliveries, info }
 *
 * `broadcast` is the peer's own way of sending one message to every open client (weft: its
 * `wss.broadcast`; ws: the loop over `wss.clients` from its README; raw: one prebuilt buffer
 * written to every socket). `info` says what ran (e.g. whether the native masker is loaded).
 *
 * The peer's `env` is set on the server process (the load generator's env for the client
 * scenario, where the peers are clients). `kind` decides which scenarios a peer takes part in:
 * 'websocket' peers run every scenario, the 'raw' ceiling only those that make sense without
 * WebSocket (not permessage-deflate). `client` names the load generator's client for it.
 *
 * EXTENSION POINT (framework plugins). When @weft/fastify and @weft/express exist, add one
 * peer per plugin here, plus its ws-based counterpart if wanted (e.g. @fastify/websocket),
 * with `kind: 'websocket'` and `client: 'ws'`. A sketch, to be adapted to the plugin's API:
 *
 *   'weft-fastify': {
 *     label: '@weft/fastify on Fastify',
 *     kind: 'websocket',
 *     client: 'ws',
 *     env: {},
 *     optional: '@weft/fastify',            // skipped (with a note) when not installed
 *     async listen({ host, perMessageDeflate, onConnection }) {
 *       const { default: Fastify } = await import('fastify');
 *       const { default: weft } = await import('@weft/fastify');
 *       const app = Fastify();
 *       await app.register(weft, { perMessageDeflate });
 *       app.get('/', { websocket: true }, (socket) => onConnection(socket));
 *       await app.listen({ host, port: 0 });
 *       const wss = app.websocketServer;     // whatever the plugin exposes
 *       return wsHandle(wss, app.server.address().port, {
 *         broadcast: (data, binary) => wss.broadcast(data, { binary }),
 *       });
 *     },
 *   },
 *
 * Every scenario of kind 'websocket' then runs it, the table gets a column for it and a
 * weft/<peer> ratio column. Express is the same with `http.createServer(app)` and the
 * plugin's upgrade handling.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** The peer every ratio is computed for (weft / other peer). */
export const SUBJECT = 'weft';

/** Whether ws loaded bufferutil in this process (it skips it when WS_NO_BUFFER_UTIL is set). */
function wsUsesBufferutil() {
  // biome-ignore lint/suspicious/noUndeclaredEnvVars: set by run.mjs on the bench's own processes; the bench task is not cached
  if (process.env.WS_NO_BUFFER_UTIL) return false;
  try {
    return typeof require('bufferutil').mask === 'function';
  } catch {
    return false;
  }
}

/** A handle over a WebSocketServer with the ws API (weft's or ws's). */
function wsHandle(wss, port, overrides) {
  return {
    port,
    clients: wss.clients,
    broadcast: overrides.broadcast,
    info: overrides.info ?? {},
    close: () => new Promise((resolve) => wss.close(() => resolve())),
  };
}

function startWsApiServer(WebSocketServer, { host, perMessageDeflate, onConnection }) {
  return new Promise((resolve, reject) => {
    const wss = new WebSocketServer({
      host,
      port: 0,
      perMessageDeflate: perMessageDeflate ?? false,
    });
    wss.on('error', reject);
    wss.on('connection', (socket) => {
      socket.on('error', () => {});
      onConnection(socket);
    });
    wss.on('listening', () => resolve(wss));
  });
}

/** The `ws` way to broadcast, as in its README: loop over the clients, skip the ones not open. */
function wsLoopBroadcast(wss, OPEN) {
  return (data, binary) => {
    let delivered = 0;
    for (const client of wss.clients) {
      if (client.readyState === OPEN) {
        client.send(data, { binary });
        delivered++;
      }
    }
    return delivered;
  };
}

async function listenWs(options) {
  const { WebSocketServer, WebSocket } = await import('ws');
  const wss = await startWsApiServer(WebSocketServer, options);
  return wsHandle(wss, wss.address().port, {
    broadcast: wsLoopBroadcast(wss, WebSocket.OPEN),
    info: {
      package: `ws ${require('ws/package.json').version}`,
      bufferutil: wsUsesBufferutil(),
    },
  });
}

export const SERVER_PEERS = {
  weft: {
    label: '@weft/core (built dist), bufferutil',
    kind: 'websocket',
    client: 'ws',
    env: {},
    async listen(options) {
      const { WebSocketServer, usingNativeMasker } = await import('@weft/core');
      const wss = await startWsApiServer(WebSocketServer, options);
      return wsHandle(wss, wss.address().port, {
        broadcast: (data, binary) => wss.broadcast(data, { binary }),
        info: { package: '@weft/core', bufferutil: usingNativeMasker },
      });
    },
  },
  ws: {
    label: 'ws with bufferutil',
    kind: 'websocket',
    client: 'ws',
    env: {},
    listen: listenWs,
  },
  'ws-nobu': {
    label: 'ws with WS_NO_BUFFER_UTIL=1',
    kind: 'websocket',
    client: 'ws',
    env: { WS_NO_BUFFER_UTIL: '1' },
    listen: listenWs,
  },
  raw: {
    label: 'raw net TCP, length-prefixed frames (ceiling)',
    kind: 'raw',
    client: 'raw',
    env: {},
    async listen(options) {
      const { listenRaw, rawFrame } = await import('./raw.mjs');
      const { clients, port } = await listenRaw(options);
      return {
        port,
        clients,
        broadcast(data, binary) {
          const frame = rawFrame(data, binary);
          let delivered = 0;
          for (const client of clients) if (client.sendFrame(frame)) delivered++;
          return delivered;
        },
        info: { package: 'node:net' },
      };
    },
  },
};

/**
 * The clients a load generator can use. `connect({ host, port, localAddress,
 * perMessageDeflate })` resolves with an open ws-like socket. In every scenario but `client`
 * the load generator uses `ws` (with bufferutil) for all WebSocket peers, so the client side
 * is identical whatever the server.
 */
export const CLIENT_PEERS = {
  weft: {
    label: '@weft/core client, bufferutil',
    env: {},
    async load() {
      const { WebSocket, usingNativeMasker } = await import('@weft/core');
      return { connect: wsApiConnect(WebSocket), info: { bufferutil: usingNativeMasker } };
    },
  },
  ws: {
    label: 'ws client with bufferutil',
    env: {},
    async load() {
      const { default: WebSocket } = await import('ws');
      return {
        connect: wsApiConnect(WebSocket),
        info: { bufferutil: wsUsesBufferutil() },
      };
    },
  },
  'ws-nobu': {
    label: 'ws client with WS_NO_BUFFER_UTIL=1',
    env: { WS_NO_BUFFER_UTIL: '1' },
    load: (...args) => CLIENT_PEERS.ws.load(...args),
  },
  raw: {
    label: 'raw net TCP client',
    env: {},
    async load() {
      const { connectRaw } = await import('./raw.mjs');
      return { connect: connectRaw, info: {} };
    },
  },
};

function wsApiConnect(WebSocket) {
  return ({ host, port, localAddress, perMessageDeflate }) =>
    new Promise((resolve, reject) => {
      const socket = new WebSocket(`ws://${host}:${port}/`, {
        perMessageDeflate: perMessageDeflate ?? false,
        localAddress,
      });
      const fail = (error) => reject(error ?? new Error('connection failed'));
      socket.once('error', fail);
      socket.once('open', () => {
        socket.removeListener('error', fail);
        socket.on('error', () => {});
        resolve(socket);
      });
    });
}
