/**
 * @weft/express: WebSocket routes for Express 4 and 5 on the weft engine. `app.ws()` and
 * `router.ws()` run the upgrade request through Express middleware (sessions, auth, params)
 * before the handshake.
 * @packageDocumentation
 */
export type {
  WebSocketHandler,
  WebSocketMiddleware,
  WebSocketRouteMatcher,
} from './express-types.js';
export { type InjectOptions, InjectRefusedError } from './inject.js';
export {
  type HttpServer,
  type RouteBroadcastOptions,
  type WeftExpress,
  weft,
} from './integration.js';
export type {
  OriginOption,
  WebSocketServerOptions,
  WeftCloseOptions,
  WeftErrorContext,
  WeftExpressOptions,
} from './options.js';
export { OriginNotAllowedError } from './origin.js';
export { isWebSocketRequest } from './upgrade.js';

import { weft } from './integration.js';

export default weft;
