import type { IncomingMessage } from 'node:http';
import { isWebSocketRequest } from './upgrade.js';

/**
 * Marks the function `app.ws()` registers as a route handler, so the layer patch below lets it
 * see upgrades. `Symbol.for`, so the ESM and CommonJS builds loaded in one process agree.
 */
const kWebSocketRoute: unique symbol = Symbol.for('weft.express.websocket-route') as never;
const kPatched: unique symbol = Symbol.for('weft.express.layer-patched') as never;

type Next = (error?: unknown) => void;
type RequestHandle = (req: IncomingMessage, res: unknown, next: Next) => unknown;
type ErrorHandle = (error: unknown, req: IncomingMessage, res: unknown, next: Next) => unknown;

/** What the patch reads on a router Layer (Express 4's `lib/router/layer.js`, router 2's). */
interface Layer {
  /** Set on a route's handlers (`'get'` for `app.get()`), unset on middleware and `route.all()`. */
  method?: unknown;
  handle?: unknown;
}

/** The names of a Layer's dispatch methods: Express 4, then `router` 2 (Express 5). */
const DISPATCH_NAMES = [
  ['handle_request', 'handle_error'],
  ['handleRequest', 'handleError'],
] as const;

/** Marks `fn` as the handler of a WebSocket route. */
export function markWebSocketRoute<T extends object>(fn: T): T {
  Object.defineProperty(fn, kWebSocketRoute, { value: true });
  return fn;
}

function isWebSocketRoute(handle: unknown): boolean {
  return typeof handle === 'function' && Object.hasOwn(handle, kWebSocketRoute);
}

/** The route being dispatched: Express sets `req.route` before running its handlers. */
interface RoutedRequest extends IncomingMessage {
  route?: { stack?: unknown };
}

/**
 * Whether `handle` is also one of the route's handlers for a method other than GET (or HEAD):
 * `app.all()` registers its handlers once per method, so they are guards for every request
 * rather than a page.
 */
function servesOtherMethods(req: RoutedRequest, handle: unknown): boolean {
  const stack = req.route?.stack;
  if (!Array.isArray(stack)) return false;
  return stack.some((layer: Layer) => {
    const method = layer.method;
    return layer.handle === handle && method !== 'get' && method !== 'head';
  });
}

/**
 * An upgrade request passes over the GET handlers of HTTP routes (`app.get()`, `router.get()`,
 * `app.route(path).get()`): a page or a catch-all on the same path must not answer it,
 * whatever the order of declaration. Middleware (`app.use()`, `router.use()`) and handlers for
 * every method (`app.all('*', requireLogin)`, `route.all()`) still see it, so guards written
 * for every request still apply to WebSockets.
 */
function skips(layer: Layer, req: IncomingMessage): boolean {
  // Cheapest test first: after Express set the request's prototype, reading the request is
  // slow, while the layer and its handler keep their shapes.
  return (
    typeof layer.method === 'string' &&
    !isWebSocketRoute(layer.handle) &&
    isWebSocketRequest(req) &&
    !servesOtherMethods(req, layer.handle)
  );
}

/**
 * Makes the router Layer class of one Express copy pass upgrade requests over HTTP route
 * handlers (see `skips`). Patching the class, rather than each route, covers the routes and
 * routers declared before `weft(app)` too. Idempotent. Throws for a router it does not know,
 * rather than routing upgrades differently without a word.
 */
export function patchLayerClass(prototype: object): void {
  if (Object.hasOwn(prototype, kPatched)) return;
  const methods = prototype as Record<string, unknown>;
  const names = DISPATCH_NAMES.find(
    ([request, error]) =>
      typeof methods[request] === 'function' && typeof methods[error] === 'function',
  );
  if (names === undefined) {
    throw new TypeError(
      '@weft/express: unsupported Express router (its Layer has no handle_request or handleRequest)',
    );
  }
  const [requestName, errorName] = names;
  const handleRequest = methods[requestName] as RequestHandle;
  const handleError = methods[errorName] as ErrorHandle;
  const wrapped = {
    [requestName](this: Layer, req: IncomingMessage, res: unknown, next: Next): unknown {
      if (skips(this, req)) return next();
      return handleRequest.call(this, req, res, next);
    },
    [errorName](this: Layer, error: unknown, req: IncomingMessage, res: unknown, next: Next) {
      if (skips(this, req)) return next(error);
      return handleError.call(this, error, req, res, next);
    },
  };
  for (const name of names) {
    const descriptor = Object.getOwnPropertyDescriptor(prototype, name);
    Object.defineProperty(prototype, name, {
      writable: true,
      configurable: true,
      ...descriptor,
      value: wrapped[name],
    });
  }
  Object.defineProperty(prototype, kPatched, { value: true });
}
