import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { Server as TlsServer } from 'node:tls';
import { type ServerOptions, WebSocketServer } from '@weft/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { defaultErrorHandler } from './errors.js';
import { createInjectWS } from './inject.js';
import {
  validatePluginOptions,
  type WebSocketPreClose,
  type WeftPluginOptions,
} from './options.js';
import { originHook } from './origin.js';
import { createOnRoute, isThenable, RouteRegistry, routeOf } from './routes.js';
import type { WeftHelpers } from './types.js';
import { UpgradeDispatcher } from './upgrade.js';

/** The same default as the core's: generous for an auth lookup, short for an attacker. */
const DEFAULT_HANDSHAKE_TIMEOUT = 10_000;

/** HTTP servers with a weft plugin on them: two would both answer each upgrade. */
const servedServers = new WeakSet<object>();

async function weftPlugin(app: FastifyInstance, options: WeftPluginOptions): Promise<void> {
  validatePluginOptions(options);
  const { server: otherServer, ...coreOptions } = options.options ?? {};
  // HTTPS and HTTP/2-over-TLS servers are TLS servers: only those can carry HTTP/1.1 with HTTP/2.
  const carriesHttp1 = !app.initialConfig.http2 || app.server instanceof TlsServer;
  if (otherServer === undefined && !carriesHttp1) {
    throw new Error(
      '@weft/fastify: this app serves HTTP/2 without TLS, which has no HTTP/1.1 connection to carry a WebSocket handshake (WebSocket over HTTP/2, RFC 8441, is not supported). Serve HTTPS with `https: { allowHTTP1: true }`, or pass an HTTP/1.1 server as `options.server`',
    );
  }
  const httpServer: HttpServer | HttpsServer = otherServer ?? (app.server as HttpServer);
  if (servedServers.has(httpServer)) {
    throw new Error(
      '@weft/fastify is already registered on this server: register it once, before the routes',
    );
  }

  const serverOptions: ServerOptions = {
    ...coreOptions,
    noServer: true,
    ...(options.heartbeat === undefined ? {} : { heartbeat: options.heartbeat }),
    ...(options.pubsub === undefined ? {} : { pubsub: options.pubsub }),
  };
  const wss = new WebSocketServer(serverOptions);
  // The core reports pub/sub adapter failures only to 'error' listeners: log them.
  wss.on('error', (error) => app.log.error({ err: error }, 'WebSocket server error'));

  const dispatcher = new UpgradeDispatcher(
    (request, response) => app.routing(request, response),
    options.options?.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT,
    app.log,
  );
  const registry = new RouteRegistry(wss);
  const helpers: WeftHelpers = {
    server: wss,
    clients: wss.clients,
    broadcast: (data, broadcastOptions) => wss.broadcast(data, broadcastOptions),
    publish: (topic, data, publishOptions) => wss.publish(topic, data, publishOptions),
    subscriberCount: (topic) => wss.subscriberCount(topic),
    route: (url) => registry.get(url),
  };

  app.decorate('websocketServer', wss);
  app.decorate('weft', helpers);
  app.decorate('injectWS', createInjectWS(app, httpServer));
  app.decorateRequest('ws', {
    getter(this: FastifyRequest) {
      return dispatcher.isUpgrade(this.raw);
    },
  });
  app.decorateRequest('wsRoute', {
    getter(this: FastifyRequest) {
      return routeOf(this);
    },
  });

  app.addHook(
    'onRoute',
    createOnRoute({
      dispatcher,
      server: wss,
      registry,
      errorHandler: options.errorHandler ?? defaultErrorHandler,
      originHook: originHook(options.origins ?? 'same-host', (request) =>
        dispatcher.isUpgrade(request),
      ),
    }),
  );

  servedServers.add(httpServer);
  httpServer.on('upgrade', dispatcher.handle);

  app.addHook('preClose', async function closeWebSockets(this: FastifyInstance) {
    if (options.preClose !== undefined) {
      try {
        await runPreClose(options.preClose, this);
      } catch (error) {
        app.log.error({ err: error }, 'The WebSocket preClose failed');
      }
    }
    // Whatever preClose did (or failed to do), no socket may outlive the app: the graceful
    // close sends 1001 to those still open, waits for their closing handshakes and
    // terminates the slow ones.
    await wss.close({
      code: options.shutdown?.code,
      reason: options.shutdown?.reason,
      timeout: options.shutdown?.timeout,
    });
    // Upgrades still in their hooks would keep the HTTP server from closing.
    dispatcher.abort();
  });
  app.addHook('onClose', (_instance, done) => {
    httpServer.removeListener('upgrade', dispatcher.handle);
    servedServers.delete(httpServer);
    done();
  });
}

/**
 * Runs a `preClose` option the way Fastify runs a `preClose` hook: one that declares `done`
 * is finished when it calls it (or when the promise it returns settles), any other when its
 * result settles.
 */
function runPreClose(preClose: WebSocketPreClose, app: FastifyInstance): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (error?: Error | null): void => {
      if (error) reject(error);
      else resolve();
    };
    const result = preClose.call(app, done);
    if (preClose.length === 0 || isThenable(result)) {
      Promise.resolve(result).then(() => resolve(), reject);
    }
  });
}

/**
 * The weft Fastify plugin: `await app.register(weft, options)`, then WebSocket routes with
 * `app.get(path, { websocket: true }, (socket, request) => {})`. Register it before the routes.
 */
export const weft = fp(weftPlugin, { fastify: '5.x', name: '@weft/fastify' });
