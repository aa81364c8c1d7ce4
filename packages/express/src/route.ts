import type { IncomingMessage, ServerResponse } from 'node:http';
import type { WebSocket } from '@weft/core';
import { markWebSocketRoute, patchLayerClass } from './layers.js';
import { flattenPaths, type RoutePath, routeName } from './route-name.js';
import { type PendingUpgrade, upgradeOf } from './upgrade.js';
import { isThenable } from './util.js';

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

/** An Express Route, as `ws()` uses it (Express 4 and 5). */
interface ExpressRoute {
  get(handler: RouteLayer): unknown;
  stack?: unknown;
}

/** Anything with Express's `route(path)`: an app or a Router, Express 4 or 5. */
interface RouteTarget {
  route(path: RoutePath): ExpressRoute;
}

/**
 * `app.ws(path, ...middleware, handler)` and `router.ws(...)`: one function for both, since
 * an app and a Router share `route()`. It declares a GET route on `path`, as `app.get()` would,
 * whose handler passes plain requests on (`next('route')`) and takes upgrades. The request is
 * never rewritten: every middleware sees the URL the client asked for.
 */
export function ws(this: RouteTarget, path: unknown, ...handlers: unknown[]): RouteTarget {
  const paths = routePaths(path);
  const functions = handlers.flat(Number.POSITIVE_INFINITY);
  if (functions.length === 0 || !functions.every((fn) => typeof fn === 'function')) {
    throw new TypeError(
      'ws(path, ...middleware, handler) takes functions after the path, the last one being the WebSocket handler',
    );
  }
  if (typeof this?.route !== 'function') {
    throw new TypeError('ws() must be called on an Express app or Router');
  }
  const handler = functions.pop() as ConnectionHandler;
  const route = this.route(path as RoutePath);
  route.get(webSocketRoute(paths, functions as Middleware[], handler));
  // A router of another copy of Express (given to applyTo()) has a Layer class of its own.
  const stack = route.stack;
  if (Array.isArray(stack) && stack.length > 0) {
    patchLayerClass(Object.getPrototypeOf(stack[stack.length - 1]) as object);
  }
  return this;
}

function isRoutePath(path: unknown): path is RoutePath {
  return (
    typeof path === 'string' ||
    path instanceof RegExp ||
    (Array.isArray(path) && path.length > 0 && path.every(isRoutePath))
  );
}

function routePaths(path: unknown): Array<string | RegExp> {
  if (!isRoutePath(path)) {
    throw new TypeError(
      'ws() takes a path first: a string, a regular expression, or an array of them',
    );
  }
  return flattenPaths(path);
}

function webSocketRoute(
  paths: ReadonlyArray<string | RegExp>,
  stack: readonly Middleware[],
  handler: ConnectionHandler,
): RouteLayer {
  // The names depend on the mount path as matched, which is the same upgrade after upgrade
  // unless the mount path has parameters: the last one is kept rather than rebuilt each time
  // (one entry, so a parameterized mount path cannot grow it).
  let namedBase: string | undefined;
  let names: readonly string[] = [];
  const open = (
    socket: WebSocket,
    req: RoutedRequest,
    upgrade: PendingUpgrade,
    routes: unknown,
  ): void => {
    const owner = upgrade.owner as unknown as ConnectionOwner;
    owner.opened(socket, req, routes as readonly string[], handler);
  };
  const handOff = (upgrade: PendingUpgrade, req: RoutedRequest): void => {
    const base = req.baseUrl ?? '';
    if (base !== namedBase) {
      names = paths.map((path) => routeName(base, path));
      namedBase = base;
    }
    upgrade.handOff(req, open, names);
  };
  return markWebSocketRoute(function webSocketRoute(req, res, next) {
    const upgrade = upgradeOf(req);
    if (upgrade === undefined) {
      // A plain GET or HEAD of the path: an HTTP route declared after this one may serve it.
      next('route');
      return;
    }
    // Answered already (a timeout while an earlier middleware held the request).
    if (!upgrade.pending) return;
    upgrade.checkOrigin(req, (refusal) => {
      if (refusal !== undefined) {
        next(refusal);
        return;
      }
      if (stack.length === 0) handOff(upgrade, req);
      else runStack(stack, req, res, upgrade, next, () => handOff(upgrade, req));
    });
  });
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
 * the same), and makes its HTTP routes pass over upgrades (see `patchLayerClass`): routers
 * created before and after `weft()` get both, and the method needs no reference to the
 * integration, since each upgrade request carries its own.
 */
export function installRouterWs(app: ExpressInternals): void {
  const router = appRouter(app);
  let proto: object | null = Object.getPrototypeOf(router);
  while (proto !== null && !Object.hasOwn(proto, 'route')) proto = Object.getPrototypeOf(proto);
  if (proto === null) {
    throw new TypeError('weft(app): app is not an Express application (no Router found)');
  }
  patchLayerClass(layerClassOf(proto));
  if (Object.hasOwn(proto, 'ws')) return;
  Object.defineProperty(proto, 'ws', { value: ws, writable: true, configurable: true });
}

/**
 * Adds `ws` to one router-like object (express-ws's `applyTo`): a router whose prototype
 * `weft()` did not reach, such as one from another copy of Express.
 */
export function applyWs(target: object): void {
  if (typeof (target as Partial<RouteTarget>).route !== 'function') {
    throw new TypeError('applyTo(router) takes an Express Router (an object with route(path))');
  }
  Object.defineProperty(target, 'ws', { value: ws, writable: true, configurable: true });
}

/**
 * The class of the router's layers, from a route declared on a detached object that inherits
 * the router's methods (`route()` only pushes a layer onto `this.stack`): the app's own router
 * is left as it was.
 */
function layerClassOf(routerPrototype: object): object {
  const scratch = Object.create(routerPrototype) as { stack: unknown[] };
  scratch.stack = [];
  Reflect.apply(Reflect.get(routerPrototype, 'route') as () => unknown, scratch, ['/']);
  const layer = scratch.stack[0];
  if (typeof layer !== 'object' || layer === null) {
    throw new TypeError('weft(app): unsupported Express router (route() added no layer)');
  }
  return Object.getPrototypeOf(layer) as object;
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
