/**
 * @weft/fastify: WebSocket routes for Fastify 5, declared next to the HTTP routes and run
 * through the same hooks, sessions and error handling before the handshake.
 * @packageDocumentation
 */
import './types.js';
import { weft } from './plugin.js';

export { closeReason, defaultErrorHandler } from './errors.js';
export {
  InvalidMessageError,
  type InvalidMessageReason,
  type MessageValidationIssue,
} from './messages.js';
export type {
  OriginOption,
  WebSocketErrorHandler,
  WebSocketServerOptions,
  WeftPluginOptions,
} from './options.js';
export { OriginNotAllowedError } from './origin.js';
export type {
  InjectWSOptions,
  InjectWSResponseError,
  MessageSocket,
  RouteSocket,
  ValidatedMessageListener,
  WebSocketHandler,
  WebSocketRoute,
  WeftHelpers,
} from './types.js';
export { weft };
export default weft;
