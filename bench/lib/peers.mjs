/**
 * The peers: the servers a scenario runs against, and the clients a load generator uses.
 *
 * A server peer's `listen({ host, perMessageDeflate, onConnection })` starts a server on
 * `host`, port 0, calls `onConnection(socket)` with a ws-like socket for every connection,
 * and resolves with a handle:
 *
 *   { port, path?, clients, broadcast(buffer, binary) -> deliveries, info }
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
 * The framework plugins (`weft-fastify`, `weft-express`) and their ws-based counterparts
 * (`fastify-websocket`, `express-ws`) are of kind 'plugin': only the scenarios that name them in
 * their `peers` run them (scenarios/plugins.mjs). They serve one WebSocket route, `ROUTE`, and
 * their handle says so in `path`, which the load generator connects to (the bare servers answer
 * on any path, `/` when `path` is left out). `optional` lists the packages a peer needs beyond
 * the workspace: the peer is skipped, with a note, when one is not installed. `workspace` is
 * the package of this repository whose built dist/ the peer loads (run.mjs checks the build).
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** The subject of the ratios (subject / other peer), unless a scenario names its own. */
export const SUBJECT = 'weft';

/** The one WebSocket route of the plugin peers. */
const ROUTE = '/ws';

/** "name version" of a package as resolved from the file `from` (default: this one). */
function versionOf(name, from = import.meta.url) {
  try {
    return `${name} ${createRequire(from)(`${name}/package.json`).version}`;
  } catch {
    return `${name} (version unknown)`;
  }
}

/** Whether `bufferutil` loads from where a package resolves it (ws 7 loads it whenever it can). */
function bufferutilFrom(from) {
  try {
    return typeof createRequire(from)('bufferutil').mask === 'function';
  } catch {
    return false;
  }
}

/** The server loops' 'error' listener: a reset connection must not crash the server. */
const ignore = () => {};

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
    path: overrides.path,
    clients: wss.clients,
    broadcast: overrides.broadcast,
    info: overrides.info ?? {},
    close: overrides.close ?? (() => new Promise((resolve) => wss.close(() => resolve()))),
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
      socket.on('error', ignore);
      onConnection(socket);
    });
    wss.on('listening', () => resolve(wss));
  });
}

/** The route handler of every plugin peer: the same as the bare servers' 'connection' listener. */
function routeHandler(onConnection) {
  return (socket) => {
    socket.on('error', ignore);
    onConnection(socket);
  };
}

/** An http.Server for an Express app, listening on `host`, port 0. */
async function listenHttp(app, host) {
  const { createServer } = await import('node:http');
  const server = createServer(app);
  return {
    server,
    listen: () =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, host, () => resolve(server.address().port));
      }),
  };
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
    workspace: '@weft/core',
    async listen(options) {
      const { WebSocketServer, usingNativeMasker } = await import('@weft/core');
      const wss = await startWsApiServer(WebSocketServer, options);
      return wsHandle(wss, wss.address().port, {
        broadcast: (data, binary) => wss.broadcast(data, { binary }),
        info: { package: versionOf('@weft/core'), bufferutil: usingNativeMasker },
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
  // The same ws server in processes of its own: run with --control, weft/ws beside
  // weft/ws-again shows how far one measurement moves between two peers that are the same.
  'ws-again': {
    label: 'ws with bufferutil once more, as a control (--control)',
    kind: 'websocket',
    client: 'ws',
    env: {},
    control: true,
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
  'weft-fastify': {
    label: `@weft/fastify (built dist) on Fastify, route ${ROUTE}`,
    kind: 'plugin',
    client: 'ws',
    env: {},
    workspace: '@weft/fastify',
    optional: ['fastify'],
    async listen({ host, perMessageDeflate, onConnection }) {
      const { default: Fastify } = await import('fastify');
      const { default: weft } = await import('@weft/fastify');
      const { usingNativeMasker } = await import('@weft/core');
      const app = Fastify();
      await app.register(weft, { options: { perMessageDeflate: perMessageDeflate ?? false } });
      app.get(ROUTE, { websocket: true }, routeHandler(onConnection));
      await app.listen({ host, port: 0 });
      const wss = app.websocketServer;
      return wsHandle(wss, app.server.address().port, {
        path: ROUTE,
        broadcast: (data, binary) => wss.broadcast(data, { binary }),
        close: () => app.close(),
        info: {
          package: `${versionOf('@weft/fastify')}, ${versionOf('fastify')}`,
          bufferutil: usingNativeMasker,
        },
      });
    },
  },
  'fastify-websocket': {
    label: `@fastify/websocket (ws with bufferutil) on Fastify, route ${ROUTE}`,
    kind: 'plugin',
    client: 'ws',
    env: {},
    optional: ['@fastify/websocket', 'fastify'],
    async listen({ host, perMessageDeflate, onConnection }) {
      const { default: Fastify } = await import('fastify');
      const { default: fastifyWebsocket } = await import('@fastify/websocket');
      const app = Fastify();
      await app.register(fastifyWebsocket, {
        options: { perMessageDeflate: perMessageDeflate ?? false },
      });
      app.get(ROUTE, { websocket: true }, routeHandler(onConnection));
      await app.listen({ host, port: 0 });
      const wss = app.websocketServer;
      const from = require.resolve('@fastify/websocket');
      const { WebSocket } = createRequire(from)('ws');
      return wsHandle(wss, app.server.address().port, {
        path: ROUTE,
        broadcast: wsLoopBroadcast(wss, WebSocket.OPEN),
        close: () => app.close(),
        info: {
          package: `${versionOf('@fastify/websocket')} (${versionOf('ws', from)}), ${versionOf('fastify')}`,
          bufferutil: wsUsesBufferutil(),
        },
      });
    },
  },
  'weft-express': {
    label: `@weft/express (built dist) on Express, route ${ROUTE}`,
    kind: 'plugin',
    client: 'ws',
    env: {},
    workspace: '@weft/express',
    optional: ['express'],
    async listen({ host, perMessageDeflate, onConnection }) {
      const { default: express } = await import('express');
      const { weft } = await import('@weft/express');
      const { usingNativeMasker } = await import('@weft/core');
      const app = express();
      const http = await listenHttp(app, host);
      const integration = weft(app, http.server, {
        options: { perMessageDeflate: perMessageDeflate ?? false },
      });
      app.ws(ROUTE, routeHandler(onConnection));
      const port = await http.listen();
      const wss = integration.getWss();
      return wsHandle(wss, port, {
        path: ROUTE,
        broadcast: (data, binary) => integration.broadcast(data, { binary }),
        close: () => integration.close(),
        info: {
          package: `${versionOf('@weft/express')}, ${versionOf('express')}`,
          bufferutil: usingNativeMasker,
        },
      });
    },
  },
  'express-ws': {
    label: `express-ws (its own ws 7, bufferutil) on Express, route ${ROUTE}`,
    kind: 'plugin',
    client: 'ws',
    env: {},
    optional: ['express-ws', 'express'],
    async listen({ host, perMessageDeflate, onConnection }) {
      const { default: express } = await import('express');
      const { default: expressWs } = await import('express-ws');
      const app = express();
      const http = await listenHttp(app, host);
      const integration = expressWs(app, http.server, {
        wsOptions: { perMessageDeflate: perMessageDeflate ?? false },
      });
      app.ws(ROUTE, routeHandler(onConnection));
      const port = await http.listen();
      const wss = integration.getWss();
      // express-ws brings its own ws (7.x, not the 8.x of the other peers): report that one.
      const from = createRequire(require.resolve('express-ws')).resolve('ws/package.json');
      return wsHandle(wss, port, {
        path: ROUTE,
        broadcast: wsLoopBroadcast(wss, createRequire(from)('ws').OPEN),
        info: {
          package: `${versionOf('express-ws')} (${versionOf('ws', require.resolve('express-ws'))}), ${versionOf('express')}`,
          bufferutil: bufferutilFrom(from),
        },
      });
    },
  },
};

/**
 * The clients a load generator can use. `connect({ host, port, path, localAddress,
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
  return ({ host, port, path = '/', localAddress, perMessageDeflate }) =>
    new Promise((resolve, reject) => {
      const socket = new WebSocket(`ws://${host}:${port}${path}`, {
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
