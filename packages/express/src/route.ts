import type { IncomingMessage, ServerResponse } from 'node:http';
import type { WebSocket } from '@weft/core';
import { fromInternalUrl, internalRoutePath, normalizeRoutePath } from './internal-url.js';
import { type PendingUpgrade, upgradeOf } from './upgrade.js';

type Next = (error?: unknown) => void;
/** A request as Express routes it (both majors set these). */
export interface RoutedRequest extends IncomingMessage {
  baseUrl?: string;
}
type RequestMiddleware = (req: RoutedRequest, res: ServerResponse, next: Next) => unknown;
type ErrorMiddleware = (
  error: unknown,
  req: RoutedRequest,
  res: ServerResponse,
  next: Next,
) => unknown;
type Middleware = RequestMiddleware | ErrorMiddleware;
/** The last function of `app.ws()`: runs once the connection is open. */
export type ConnectionHandler = (socket: WebSocket, req: RoutedRequest) => unknown;
/** What Express's router calls for the route `app.ws()` registers. */
export type RouteLayer = (req: RoutedRequest, res: ServerResponse, next: Next) => void;

/** What an open connection is handed to: the integration that received the upgrade. */
export interface ConnectionOwner {
  opened(
    socket: WebSocket,
    req: RoutedRequest,
    routes: readonly string[],
    handler: ConnectionHandler,
  ): void;
}

/** Anything with Express's `get(path, ...handlers)`: an app or a Router, Express 4 or 5. */
interface RouteTarget {
  get(path: string | string[], ...handlers: RouteLayer[]): unknown;
}

/** A promise, or anything awaiting would treat as one. */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/**
 * `app.ws(path, ...middleware, handler)` and `router.ws(...)`: one function for both, since
 * an app and a Router share `get()`. It registers a GET route on the path plus the internal
 * marker, so only upgrade requests (whose URL carries the marker while they are routed) reach
 * it.
 */
export function ws(this: RouteTarget, path: unknown, ...handlers: unknown[]): RouteTarget {
  const paths = routePaths(path);
  const functions = handlers.flat(Number.POSITIVE_INFINITY);
  if (functions.length === 0 || !functions.every((fn) => typeof fn === 'function')) {
    throw new TypeError(
      'ws(path, ...middleware, handler) takes functions after the path, the last one being the WebSocket handler',
    );
  }
  const handler = functions.pop() as ConnectionHandler;
  const internal = paths.map(internalRoutePath);
  this.get(
    typeof path === 'string' ? (internal[0] as string) : internal,
    webSocketRoute(paths, functions as Middleware[], handler),
  );
  return this;
}

function routePaths(path: unknown): string[] {
  if (typeof path === 'string') return [path];
  if (Array.isArray(path) && path.length > 0 && path.every((item) => typeof item === 'string')) {
    return path;
  }
  throw new TypeError(
    'ws() takes a path string (or an array of them) first; regular expressions are not supported',
  );
}

function webSocketRoute(
  paths: readonly string[],
  stack: readonly Middleware[],
  handler: ConnectionHandler,
): RouteLayer {
  return function webSocketRoute(req, res, next) {
    const upgrade = upgradeOf(req);
    if (upgrade === undefined) {
      // A plain GET of the internal path: this route is not for it.
      next('route');
      return;
    }
    // The route's own middleware and handler see the URL the client asked for; the marker is
    // put back if the request leaves the route, so routing goes on as it started.
    const routedUrl = req.url;
    req.url = fromInternalUrl(routedUrl ?? '/', upgrade.slashes);
    const leave: Next = (error) => {
      req.url = routedUrl;
      next(error);
    };
    runStack(stack, req, res, upgrade, leave, () => {
      const base = req.baseUrl ?? '';
      const routes = paths.map((path) => normalizeRoutePath(`${base}${path}`));
      const owner = upgrade.owner as unknown as ConnectionOwner;
      upgrade.handOff(req, (socket) => owner.opened(socket, req, routes, handler));
    });
  };
}

/**
 * Runs a WebSocket route's middleware the way Express runs a route's stack: errors skip to
 * error-handling middleware (four parameters), `next('route')` and `next('router')` leave the
 * route, a thrown error or a rejected promise becomes `next(err)` (Express 5 semantics, in
 * Express 4 too). It stops as soon as the upgrade was answered or timed out.
 */
function runStack(
  stack: readonly Middleware[],
  req: RoutedRequest,
  res: ServerResponse,
  upgrade: PendingUpgrade,
  leave: Next,
  complete: () => void,
): void {
  let index = 0;
  const next: Next = (error) => {
    if (!upgrade.pending) return;
    if (error === 'route' || error === 'router') {
      leave(error);
      return;
    }
    const failed = error !== undefined && error !== null;
    const fn = stack[index++];
    if (fn === undefined) {
      if (failed) leave(error);
      else complete();
      return;
    }
    const handlesErrors = fn.length === 4;
    if (failed !== handlesErrors) {
      next(error);
      return;
    }
    try {
      const result = failed
        ? (fn as ErrorMiddleware)(error, req, res, next)
        : (fn as RequestMiddleware)(req, res, next);
      if (isThenable(result)) {
        result.then(undefined, (reason: unknown) => next(reason ?? new Error('Rejected promise')));
      }
    } catch (thrown) {
      next(thrown ?? new Error('Middleware threw a nullish value'));
    }
  };
  next();
}

/** A router instance of the app's Express copy, found without fixing its routing settings. */
interface ExpressInternals {
  lazyrouter?: () => void;
  _router?: unknown;
  router?: unknown;
  enabled(setting: string): boolean;
}

/**
 * Gives every Router of the app's Express copy a `ws` method, as `app.ws` (express-ws does
 * the same): routers created before and after `weft()` get it, and the method needs no
 * reference to the integration, since each upgrade request carries its own.
 */
export function installRouterWs(app: ExpressInternals): void {
  const router = appRouter(app);
  let proto: object | null = Object.getPrototypeOf(router);
  while (proto !== null && !Object.hasOwn(proto, 'route')) proto = Object.getPrototypeOf(proto);
  if (proto === null) {
    throw new TypeError('weft(app): app is not an Express application (no Router found)');
  }
  if (Object.hasOwn(proto, 'ws')) return;
  Object.defineProperty(proto, 'ws', { value: ws, writable: true, configurable: true });
}

function appRouter(app: ExpressInternals): object {
  if (typeof app.lazyrouter === 'function') {
    // Express 4 creates its router lazily and reads 'strict routing' and 'case sensitive
    // routing' when it does; a router made here only to find the prototype is dropped again.
    const existed = Object.hasOwn(app, '_router') && app._router !== undefined;
    app.lazyrouter();
    const router = app._router;
    if (!existed) delete app._router;
    if (typeof router !== 'function') throw new TypeError('weft(app): app has no Router');
    return router;
  }
  // Express 5 also creates it on first access and copies those two settings onto it; while it
  // has no routes yet, they are made to follow the app's settings, so calling weft(app) before
  // app.set('strict routing', true) changes nothing.
  const router = app.router;
  if (typeof router !== 'function') throw new TypeError('weft(app): app has no Router');
  const stack: unknown = Reflect.get(router, 'stack');
  if (Array.isArray(stack) && stack.length === 0) {
    for (const [property, setting] of [
      ['strict', 'strict routing'],
      ['caseSensitive', 'case sensitive routing'],
    ] as const) {
      Object.defineProperty(router, property, {
        configurable: true,
        enumerable: true,
        get: () => app.enabled(setting),
        set: (value: unknown) => {
          Object.defineProperty(router, property, {
            value,
            writable: true,
            configurable: true,
            enumerable: true,
          });
        },
      });
    }
  }
  return router;
}
