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
  WebSocketPreClose,
  WebSocketServerOptions,
  WeftPluginOptions,
} from './options.js';
export { OriginNotAllowedError } from './origin.js';
export type {
  InjectWSHooks,
  InjectWSOptions,
  InjectWSResponseError,
  MessageSocket,
  RouteSocket,
  ValidatedMessageListener,
  WebSocketHandler,
  WebSocketRoute,
  WebsocketHandler,
  WebsocketPluginOptions,
  WeftHelpers,
} from './types.js';
export { weft };
/**
 * The plugin under the name `@fastify/websocket` exports it as, so that a migration can be a
 * change of the import path only: `import { fastifyWebsocket } from '@weft/fastify'`.
 */
export const fastifyWebsocket = weft;
export default weft;
