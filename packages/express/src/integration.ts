import http, { type IncomingMessage, ServerResponse } from 'node:http';
import type https from 'node:https';
import { Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  type BroadcastOptions,
  CloseCode,
  checkOrigin,
  type OriginPolicy,
  type PublishOptions,
  ReadyState,
  type SendableData,
  type WebSocket,
  WebSocketServer,
} from '@weft/core';
import type { Application, Request } from 'express';
import { type InjectOptions, injectClient } from './inject.js';
import {
  DEFAULT_UPGRADE_TIMEOUT,
  type OriginOption,
  validateOptions,
  type WeftCloseOptions,
  type WeftErrorContext,
  type WeftExpressOptions,
} from './options.js';
import { closeAfterWrite, writeRawResponse } from './respond.js';
import {
  applyWs,
  type ConnectionHandler,
  type ConnectionOwner,
  installRouterWs,
  type RoutedRequest,
  ws,
} from './route.js';
import { normalizeRoutePath } from './route-name.js';
import { type DispatchTarget, PendingUpgrade, type UpgradeOwner } from './upgrade.js';
import { isThenable } from './util.js';

/** An HTTP or HTTPS server whose upgrades an integration handles. */
export type HttpServer = http.Server | https.Server;

/** Options of `broadcast()`: the core's, plus the route to send to. */
export interface RouteBroadcastOptions extends BroadcastOptions {
  /**
   * Only the clients of this WebSocket route (see `clients(route)`); every client when left
   * out.
   */
  route?: string | RegExp;
}

/** What `weft(app, server?, options?)` returns. */
export interface WeftExpress {
  /** The Express app, now with `app.ws()` (and `router.ws()` on its Routers). */
  readonly app: Application;
  /** The core WebSocketServer (`noServer` mode) behind every route: `clients`, events, options. */
  getWss(): WebSocketServer;
  /**
   * Handles the upgrades of one more server (an HTTPS server next to the HTTP one, say).
   * `weft(app, server)` and `app.listen()` call it for you.
   */
  attach(server: HttpServer): this;
  /**
   * Adds `ws()` to one more router, as express-ws's `applyTo`. Only needed for a router whose
   * prototype `weft()` could not reach (one from another copy of Express): every Router of the
   * app's Express copy has `ws()` already.
   */
  applyTo(router: object): void;
  /**
   * The open connections of one WebSocket route, or all of them. A route is named by its full
   * path as registered: the path given to `app.ws()`, or for `router.ws()` the mount path as
   * matched (`req.baseUrl`) followed by the router's path, without a trailing slash
   * (`'/chat'`, `'/rooms/:room'`, `'/api/feed'`). A route declared with a regular expression
   * is named by it (`clients(/^\/chat$/)`, or its `String()` after a mount path); one declared
   * with several paths is listed under each. The set is a snapshot.
   */
  clients(route?: string | RegExp): ReadonlySet<WebSocket>;
  /**
   * Sends one message to every open client, or with `route` to that route's clients, building
   * the frame once (`except`, `filter`, `binary`, `compress` as in the core). Returns how many
   * clients it was sent to.
   */
  broadcast(data: SendableData, options?: RouteBroadcastOptions): number;
  /** Sends to every subscriber of `topic` (`ws.subscribe(topic)`), on every node with a `pubsub` adapter. */
  publish(topic: string, data: SendableData, options?: PublishOptions): Promise<void>;
  /**
   * A client connected to `path` with no network port, for tests: the request runs through the
   * app's middleware like any other. Resolves with the open weft `WebSocket`; rejects with
   * `InjectRefusedError` (its `statusCode`, `headers`, `body`) when the app answers over HTTP.
   */
  inject(path: string, options?: InjectOptions): Promise<WebSocket>;
  /**
   * Graceful shutdown: upgrades still in the middleware get 503, new ones too, every open
   * connection gets a close frame (1001 by default), and the promise resolves once they are
   * all closed (the rest terminated after `timeout`). The HTTP servers keep running; calling
   * `server.close()` on one of them runs this first.
   */
  close(options?: WeftCloseOptions): Promise<void>;
}

/** The parts of an Express app (4 or 5) the integration touches, typed as it uses them. */
interface ExpressApp {
  (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void): void;
  listen: (...args: unknown[]) => unknown;
  enabled(setting: string): boolean;
  settings?: { env?: unknown };
  lazyrouter?: () => void;
  _router?: unknown;
  router?: unknown;
}

/** Apps already integrated: a second `weft(app)` would answer every upgrade twice. */
const integrated = new WeakSet<object>();

function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade;
  // Clients send it in lower case; only the others pay for a lower-cased copy.
  return upgrade === 'websocket' || (upgrade ?? '').toLowerCase() === 'websocket';
}

function destroySocket(this: Duplex): void {
  this.destroy();
}

class ExpressIntegration implements WeftExpress, UpgradeOwner, ConnectionOwner {
  readonly app: Application;
  readonly wss: WebSocketServer;
  readonly #express: ExpressApp;
  readonly #origins: OriginOption;
  readonly #upgradeTimeout: number;
  readonly #onError: (error: unknown, context: WeftErrorContext) => void;
  readonly #shouldHandle: ((req: IncomingMessage) => boolean) | undefined;
  readonly #servers = new Set<HttpServer>();
  readonly #pending = new Set<PendingUpgrade>();
  /** Open connections by route name (see `clients`). */
  readonly #routes = new Map<string, Set<WebSocket>>();
  #closing: Promise<void> | null = null;
  /** A server that never listens: `inject()` hands it in-memory connections. */
  #injectServer: http.Server | null = null;

  constructor(app: Application, server: HttpServer | undefined, options: WeftExpressOptions) {
    validateOptions(options);
    const express = app as unknown as ExpressApp;
    if (typeof express !== 'function' || typeof express.listen !== 'function') {
      throw new TypeError('weft(app): app must be an Express application');
    }
    if (integrated.has(app)) throw new Error('weft(app) was already called for this app');
    this.app = app;
    this.#express = express;
    this.#origins = options.origins ?? 'same-host';
    this.#upgradeTimeout = options.upgradeTimeout ?? DEFAULT_UPGRADE_TIMEOUT;
    this.#shouldHandle = options.shouldHandle;
    this.#onError =
      options.onError ??
      ((error, context) => {
        if (express.settings?.env !== 'test') {
          console.error(`@weft/express: error in ${context.phase}:`, error);
        }
      });
    this.wss = new WebSocketServer({
      ...options.options,
      noServer: true,
      heartbeat: options.heartbeat,
      pubsub: options.pubsub,
    });
    this.wss.on('error', (error) => this.report(error, { phase: 'server', error }));

    installRouterWs(express);
    Object.defineProperty(app, 'ws', { value: ws, writable: true, configurable: true });
    // The server app.listen() creates is born after weft(app): catch it as it is.
    const listen = express.listen;
    const attach = (created: unknown): void => {
      if (created instanceof http.Server) this.attach(created);
    };
    express.listen = function listenWithWebSockets(this: unknown, ...args: unknown[]) {
      const created = listen.apply(this, args);
      attach(created);
      return created;
    };
    integrated.add(app);
    if (server !== undefined) this.attach(server);
  }

  getWss(): WebSocketServer {
    return this.wss;
  }

  attach(server: HttpServer): this {
    if (!(server instanceof NetServer)) {
      throw new TypeError('attach(server) takes an http.Server or https.Server');
    }
    if (this.#servers.has(server)) return this;
    this.#servers.add(server);
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.#onUpgrade(server, req, socket, head),
    );
    // server.close() waits for every connection, upgraded ones included; closing the
    // WebSockets first (1001) lets it finish, as the shared plugin rules promise.
    const close = server.close;
    const integration = this;
    server.close = function closeWithWebSockets(this: HttpServer, ...args: unknown[]) {
      integration
        .close()
        .catch((error: unknown) => integration.report(error, { phase: 'server', error }));
      return Reflect.apply(close, this, args) as HttpServer;
    } as HttpServer['close'];
    return this;
  }

  applyTo(router: object): void {
    applyWs(router);
  }

  clients(route?: string | RegExp): ReadonlySet<WebSocket> {
    if (route === undefined) return new Set(this.wss.clients);
    return new Set(this.#members(route));
  }

  /** A route's open connections, by its name (see `clients`). */
  #members(route: string | RegExp): Set<WebSocket> | undefined {
    if (typeof route !== 'string') return this.#routes.get(String(route));
    // The name of a regular-expression route after a mount path is taken as given.
    return this.#routes.get(route) ?? this.#routes.get(normalizeRoutePath(route));
  }

  broadcast(data: SendableData, options: RouteBroadcastOptions = {}): number {
    const { route, ...rest } = options;
    if (route === undefined) return this.wss.broadcast(data, rest);
    const members = this.#members(route);
    if (members === undefined) return 0;
    const filter = rest.filter;
    return this.wss.broadcast(data, {
      ...rest,
      filter: (socket) => members.has(socket) && (filter === undefined || filter(socket)),
    });
  }

  publish(topic: string, data: SendableData, options?: PublishOptions): Promise<void> {
    return this.wss.publish(topic, data, options);
  }

  inject(path: string, options: InjectOptions = {}): Promise<WebSocket> {
    if (this.#injectServer === null) {
      const server = http.createServer();
      server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
        this.#onUpgrade(server, req, socket, head),
      );
      this.#injectServer = server;
    }
    return injectClient(this.#injectServer, path, options);
  }

  close(options: WeftCloseOptions = {}): Promise<void> {
    if (this.#closing !== null) return this.#closing;
    for (const upgrade of [...this.#pending]) {
      upgrade.refuse(503, 'The WebSocket server is shutting down');
    }
    this.#closing = this.wss.close({
      code: options.code ?? CloseCode.GoingAway,
      reason: options.reason,
      timeout: options.timeout,
    });
    return this.#closing;
  }

  // ---- UpgradeOwner / ConnectionOwner --------------------------------------------------

  track(upgrade: PendingUpgrade): void {
    // close() ran during the dispatch (a middleware called it): it could not see this one.
    if (this.#closing !== null) {
      upgrade.refuse(503, 'The WebSocket server is shutting down');
      return;
    }
    this.#pending.add(upgrade);
  }

  settled(upgrade: PendingUpgrade): void {
    this.#pending.delete(upgrade);
  }

  checkOrigin(req: IncomingMessage): boolean | PromiseLike<boolean> {
    // The core's check, so every entry point decides alike; a function policy is handed the
    // Express request, which `req` is by now.
    return checkOrigin(req, this.#origins as OriginPolicy);
  }

  report(error: unknown, context: WeftErrorContext): void {
    try {
      this.#onError(error, context);
    } catch {
      // An error hook that throws has nowhere left to report to; the connection it was
      // about has been dealt with already.
    }
  }

  opened(
    socket: WebSocket,
    req: RoutedRequest,
    routes: readonly string[],
    handler: ConnectionHandler,
  ): void {
    for (const route of routes) {
      let members = this.#routes.get(route);
      if (members === undefined) {
        members = new Set();
        this.#routes.set(route, members);
      }
      members.add(socket);
    }
    // 'on' rather than 'once': a socket closes once, and once() wraps every listener.
    socket.on('close', () => {
      for (const route of routes) {
        const members = this.#routes.get(route);
        if (members === undefined) continue;
        members.delete(socket);
        if (members.size === 0) this.#routes.delete(route);
      }
    });
    try {
      this.wss.emit('connection', socket, req);
      const result: unknown = handler(socket, req);
      if (isThenable(result)) {
        result.then(undefined, (error: unknown) => this.#handlerFailed(error, socket, req));
      }
    } catch (error) {
      this.#handlerFailed(error, socket, req);
    }
  }

  #handlerFailed(error: unknown, socket: WebSocket, req: RoutedRequest): void {
    this.report(error, { phase: 'handler', req: req as unknown as Request, socket });
    if (socket.readyState === ReadyState.OPEN || socket.readyState === ReadyState.CONNECTING) {
      socket.close(CloseCode.InternalError, 'Internal Server Error');
    }
  }

  // ---- the 'upgrade' event ---------------------------------------------------------------

  #onUpgrade(server: HttpServer, req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.#shouldHandle !== undefined && !this.#shouldHandle(req)) return;
    if (!isWebSocketUpgrade(req)) {
      this.#otherUpgrade(server, req, socket);
      return;
    }
    const upgrade = new PendingUpgrade(this, req, socket, head, this.#upgradeTimeout);
    if (this.#closing !== null) {
      upgrade.refuse(503, 'The WebSocket server is shutting down');
      return;
    }
    if (req.method !== 'GET') {
      upgrade.refuse(405, undefined, { Allow: 'GET' });
      return;
    }
    // The origin policy is applied by the WebSocket route (see PendingUpgrade.checkOrigin).
    upgrade.dispatch(this.#express as DispatchTarget);
  }

  /**
   * An upgrade to another protocol (`h2c`, say). Another 'upgrade' listener may speak it;
   * with none, Node would have handed it to the app as a plain request, so it still is
   * (when it has no body, which the upgraded socket no longer delivers).
   */
  #otherUpgrade(server: HttpServer, req: IncomingMessage, socket: Duplex): void {
    if (server.listenerCount('upgrade') > 1) return;
    socket.on('error', destroySocket);
    const hasBody =
      req.headers['transfer-encoding'] !== undefined ||
      Number(req.headers['content-length'] ?? '0') > 0;
    if (hasBody) {
      writeRawResponse(socket, 501, `Upgrade to ${req.headers.upgrade} is not supported`);
      return;
    }
    const res = new ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket as Socket);
    res.once('finish', () => {
      res.detachSocket(socket as Socket);
      closeAfterWrite(socket);
      socket.end();
    });
    this.#express(req, res);
  }
}

/**
 * Adds WebSocket routes to an Express 4 or 5 app: `app.ws(path, ...middleware, handler)` and
 * `router.ws(...)`. Each upgrade request runs through the app's middleware and the route's
 * own before the handshake, so a middleware can refuse it over HTTP (401, redirect) and
 * `req.session`, `req.params` and `req.query` are there for the handler.
 *
 * @param app - The Express app.
 * @param server - The HTTP(S) server the app is served by. Leave it out when the app starts
 *   with `app.listen()`, which is then caught; `attach()` adds more.
 * @param options - See `WeftExpressOptions`.
 */
export function weft(
  app: Application,
  server?: HttpServer,
  options?: WeftExpressOptions,
): WeftExpress;
export function weft(app: Application, options?: WeftExpressOptions): WeftExpress;
export function weft(
  app: Application,
  serverOrOptions?: HttpServer | WeftExpressOptions,
  options?: WeftExpressOptions,
): WeftExpress {
  // https.Server is a tls.Server, not an http.Server: both are net.Servers.
  if (serverOrOptions instanceof NetServer) {
    return new ExpressIntegration(app, serverOrOptions as HttpServer, options ?? {});
  }
  if (serverOrOptions !== undefined && options !== undefined) {
    throw new TypeError(
      'weft(app, server, options): server must be an http.Server or https.Server',
    );
  }
  return new ExpressIntegration(app, undefined, serverOrOptions ?? options ?? {});
}
