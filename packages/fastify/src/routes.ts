import type { BroadcastOptions, SendableData, WebSocket, WebSocketServer } from '@weft/core';
import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  FastifySchema,
  HookHandlerDoneFunction,
  RouteOptions,
} from 'fastify';
import { reportError } from './errors.js';
import { type MessageValidator, validateMessages } from './messages.js';
import type { WebSocketErrorHandler } from './options.js';
import type { WebSocketRoute } from './types.js';
import type { UpgradeDispatcher } from './upgrade.js';

/** Where a WebSocket route's record sits in its Fastify route config, for `request.wsRoute`. */
const ROUTE = Symbol('weft.route');

/** One WebSocket route's open sockets. */
class RouteClients implements WebSocketRoute {
  readonly url: string;
  readonly #clients = new Set<WebSocket>();
  readonly #server: WebSocketServer;
  /** Every client's 'close' listener: one function per route, not a closure per client. */
  readonly #forget: (this: WebSocket) => void;

  constructor(url: string, server: WebSocketServer) {
    this.url = url;
    this.#server = server;
    const clients = this.#clients;
    this.#forget = function forget(this: WebSocket) {
      clients.delete(this);
    };
  }

  get clients(): ReadonlySet<WebSocket> {
    return this.#clients;
  }

  add(socket: WebSocket): void {
    this.#clients.add(socket);
    // 'on' rather than 'once': a connection closes once, and once() wraps every listener.
    socket.on('close', this.#forget);
  }

  broadcast(data: SendableData, options: BroadcastOptions = {}): number {
    const clients = this.#clients;
    const filter = options.filter;
    // The core builds the frame once and applies its slow-consumer policy; we only narrow it.
    return this.#server.broadcast(data, {
      ...options,
      filter: (socket) => clients.has(socket) && (filter === undefined || filter(socket)),
    });
  }
}

/** The WebSocket routes of one plugin instance, by URL pattern. */
export class RouteRegistry {
  readonly #routes = new Map<string, RouteClients>();
  readonly #server: WebSocketServer;

  constructor(server: WebSocketServer) {
    this.#server = server;
  }

  /**
   * The record of `url`, created on first use. Routes that share a URL pattern (a GET with
   * host or version constraints, say) share one client set: to a client it is one endpoint.
   */
  ensure(url: string): RouteClients {
    let route = this.#routes.get(url);
    if (route === undefined) {
      route = new RouteClients(url, this.#server);
      this.#routes.set(url, route);
    }
    return route;
  }

  get(url: string): WebSocketRoute | undefined {
    return this.#routes.get(url);
  }
}

/** The WebSocket route a request was routed to, from its route config. */
export function routeOf(request: FastifyRequest): WebSocketRoute | null {
  const config = request.routeOptions.config as unknown as Record<symbol, unknown> | undefined;
  return (config?.[ROUTE] as WebSocketRoute | undefined) ?? null;
}

type RouteHandler = RouteOptions['handler'];
type OnRequestHook = (
  request: FastifyRequest,
  reply: FastifyReply,
  done: HookHandlerDoneFunction,
) => void;
/** What the `onRoute` hook is given. */
type RouteDefinition = RouteOptions & { routePath: string; path: string; prefix: string };

/** What the `onRoute` hook needs from the plugin. */
export interface RouteHookContext {
  readonly dispatcher: UpgradeDispatcher;
  readonly server: WebSocketServer;
  readonly registry: RouteRegistry;
  readonly errorHandler: WebSocketErrorHandler;
  readonly originHook: OnRequestHook;
}

/**
 * The plugin's `onRoute` hook. Every route's handler is wrapped, because an upgrade request is
 * routed like any other: a WebSocket route takes the socket for the handshake, any other
 * route answers it with Fastify's 404 (an upgrade it cannot serve), and plain requests go to
 * the route's HTTP handler as before.
 */
export function createOnRoute(context: RouteHookContext): (route: RouteDefinition) => void {
  return function onRoute(route) {
    if (route.websocket === true || route.wsHandler !== undefined) {
      declareWebSocketRoute(route, context);
    } else {
      refuseUpgrades(route, context.dispatcher);
    }
  };
}

function refuseUpgrades(route: RouteDefinition, dispatcher: UpgradeDispatcher): void {
  const handler = route.handler;
  route.handler = function httpRoute(this: FastifyInstance, request, reply) {
    if (!dispatcher.isUpgrade(request.raw)) return handler.call(this, request, reply);
    reply.callNotFound();
  } as RouteHandler;
}

function declareWebSocketRoute(route: RouteDefinition, context: RouteHookContext): void {
  const { dispatcher, server, registry } = context;
  const methods = (Array.isArray(route.method) ? route.method : [route.method]).map((method) =>
    String(method).toUpperCase(),
  );
  if (methods.some((method) => method !== 'GET' && method !== 'HEAD')) {
    throw new Error(
      `@weft/fastify: the WebSocket route ${route.url} must be a GET route (a WebSocket handshake is a GET request), not ${methods.join(', ')}`,
    );
  }
  if (route.websocket === true && route.wsHandler !== undefined) {
    throw new Error(
      `@weft/fastify: the route ${route.url} has both \`websocket: true\` and \`wsHandler\`: use \`handler\` + \`wsHandler\` to serve HTTP and WebSocket on one route, or \`websocket: true\` alone`,
    );
  }
  // With `websocket: true` the route's `handler` is the WebSocket handler, typed as such by the
  // plugin's overloads but declared to Fastify as an HTTP handler.
  const upgradeHandler = (route.wsHandler ?? route.handler) as unknown as UpgradeHandler;
  if (typeof upgradeHandler !== 'function') {
    throw new TypeError(`@weft/fastify: the WebSocket handler of ${route.url} must be a function`);
  }
  const httpHandler = route.wsHandler === undefined ? undefined : route.handler;
  if (!methods.includes('GET')) {
    // A HEAD route (the twin Fastify adds to each GET route) can never be upgraded.
    if (httpHandler === undefined) route.handler = answerUpgradeRequired as RouteHandler;
    return;
  }

  if (httpHandler === undefined) {
    // As @fastify/websocket does, so API documentation generators (@fastify/swagger) leave
    // out a route that has no HTTP answer to document; an explicit `hide` wins.
    const schema: FastifySchema & { hide?: unknown } = route.schema ?? {};
    route.schema = { ...schema, hide: schema.hide ?? true } as FastifySchema;
  }
  const record = registry.ensure(route.url);
  route.config = { ...route.config, [ROUTE]: record } as RouteDefinition['config'];
  const ownHooks = route.onRequest === undefined ? [] : [route.onRequest].flat();
  route.onRequest = [context.originHook, ...ownHooks] as RouteDefinition['onRequest'];
  const onError = route.wsErrorHandler ?? context.errorHandler;
  const messageSchema = route.schema?.message;

  const open = (
    instance: FastifyInstance,
    socket: WebSocket,
    request: FastifyRequest,
    reply: FastifyReply,
    validate: MessageValidator | undefined,
  ): void => {
    const fail = (error: unknown): void =>
      reportError(onError, instance, error, socket, request, reply);
    record.add(socket);
    // Before anyone can listen: 'connection' listeners' message listeners are behind it too.
    if (validate !== undefined) validateMessages(socket, validate, fail);
    try {
      server.emit('connection', socket, request.raw);
    } catch (error) {
      fail(error);
      return;
    }
    let result: unknown;
    try {
      result = upgradeHandler.call(instance, socket, request);
    } catch (error) {
      fail(error);
      return;
    }
    if (isThenable(result)) result.then(undefined, fail);
  };

  route.handler = function webSocketRoute(this: FastifyInstance, request, reply) {
    if (!dispatcher.isUpgrade(request.raw)) {
      if (httpHandler !== undefined) return httpHandler.call(this, request, reply);
      return answerUpgradeRequired(request, reply);
    }
    // Compiled by Fastify's validator compiler for this route (and cached by it), before the
    // socket is taken: a schema that does not compile answers 500, not a broken WebSocket.
    const validate =
      messageSchema === undefined
        ? undefined
        : (request.compileValidationSchema(
            messageSchema as Record<string, unknown>,
            'body',
          ) as unknown as MessageValidator);
    const upgrade = dispatcher.take(request.raw);
    reply.hijack();
    // Null when the client left or the handshake timed out while the hooks ran.
    if (upgrade === null) return;
    server.handleUpgrade(request.raw, upgrade.socket, upgrade.head, (socket) =>
      open(this, socket, request, reply, validate),
    );
  } as RouteHandler;
}

/** A WebSocket handler as the plugin calls it (the route generics do not matter here). */
type UpgradeHandler = (
  this: FastifyInstance,
  socket: WebSocket,
  request: FastifyRequest,
) => unknown;

/**
 * A plain request to a WebSocket-only route. 426 names what the client must do (RFC 9110
 * §15.5.22), where a 404 would claim the resource does not exist.
 */
function answerUpgradeRequired(_request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return reply.code(426).header('upgrade', 'websocket').header('connection', 'upgrade').send({
    statusCode: 426,
    code: 'WEFT_ERR_UPGRADE_REQUIRED',
    error: 'Upgrade Required',
    message: 'This route only accepts WebSocket connections',
  });
}

/** Whether `value` is a promise (or any thenable) to wait for. */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as PromiseLike<unknown>).then === 'function'
  );
}
