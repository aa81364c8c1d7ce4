import type { WebSocket } from '@weft/core';
import type {
  ErrorRequestHandler,
  ParamsDictionary,
  PathParams,
  Request,
  RequestHandler,
  RouteParameters,
} from 'express-serve-static-core';

/**
 * The last function of a WebSocket route: runs once the connection is open, with the request
 * the middleware saw (`req.params`, `req.query`, `req.session`...). It may be async. If it
 * throws or its promise rejects, the connection is closed with 1011 and the error goes to
 * `onError`.
 */
export type WebSocketHandler<P = ParamsDictionary> = (
  socket: WebSocket,
  req: Request<P>,
) => unknown;

/** A middleware of a WebSocket route: an ordinary Express middleware (or error middleware). */
export type WebSocketMiddleware<P = ParamsDictionary> = RequestHandler<P> | ErrorRequestHandler<P>;

/**
 * `app.ws(path, ...middleware, handler)` / `router.ws(...)`. `path` is what `app.get()` takes:
 * an Express path string, a regular expression, or an array of them. The parameters of a path
 * string are typed on `req.params`. Middleware may come in arrays. Returns the app or router,
 * for chaining.
 */
export interface WebSocketRouteMatcher<T> {
  // Plain middleware first: one signature type, so inline `(req, res, next) => ...` gets typed.
  <Route extends string, P = RouteParameters<Route>>(
    path: Route | readonly Route[],
    ...handlers: [
      ...middleware: Array<RequestHandler<P> | RequestHandler<P>[]>,
      handler: WebSocketHandler<P>,
    ]
  ): T;
  // With error-handling middleware (four parameters, typed by the caller) among them.
  <Route extends string, P = RouteParameters<Route>>(
    path: Route | readonly Route[],
    ...handlers: [
      ...middleware: Array<WebSocketMiddleware<P> | WebSocketMiddleware<P>[]>,
      handler: WebSocketHandler<P>,
    ]
  ): T;
  // Regular expressions and mixed arrays: parameters are not known from the type.
  <P = ParamsDictionary>(
    path: PathParams,
    ...handlers: [
      ...middleware: Array<RequestHandler<P> | RequestHandler<P>[]>,
      handler: WebSocketHandler<P>,
    ]
  ): T;
  <P = ParamsDictionary>(
    path: PathParams,
    ...handlers: [
      ...middleware: Array<WebSocketMiddleware<P> | WebSocketMiddleware<P>[]>,
      handler: WebSocketHandler<P>,
    ]
  ): T;
}

declare module 'express-serve-static-core' {
  interface IRouter {
    /**
     * Declares a WebSocket route (added by `weft(app)` from `@weft/express`). The upgrade
     * request runs through the app's middleware and then `middleware` (each may answer it over
     * HTTP instead: 401, a redirect); `handler` gets the open WebSocket and the request.
     */
    ws: WebSocketRouteMatcher<this>;
  }
}
