/**
 * @weft/core: an RFC 6455 WebSocket client and server for Node.js with the API of `ws`.
 * @packageDocumentation
 */
import { WebSocketServer } from './server.js';
import { createWebSocketStream } from './stream.js';
import { WebSocket } from './websocket.js';

WebSocket.Server = WebSocketServer;
WebSocket.WebSocketServer = WebSocketServer;
WebSocket.WebSocket = WebSocket;
WebSocket.createWebSocketStream = createWebSocketStream;

export { CloseEvent, ErrorEvent, MessageEvent, OpenEvent, WebSocketEvent } from './events.js';
export {
  type DeflateParams,
  PerMessageDeflate,
  type PerMessageDeflateOptions,
} from './extensions/permessage-deflate.js';
export { checkOrigin, type OriginPolicy, requestOrigin } from './handshake/origin.js';
export {
  checkUpgradeRequest,
  type HandshakeRejection,
  type HandshakeRequest,
  rejectHandshake,
} from './handshake/upgrade-request.js';
export type { HeartbeatOptions, TimeoutReason } from './liveness.js';
export type { WebSocketMessage } from './message-iterator.js';
export type { SendableData } from './protocol/buffers.js';
export { CloseCode, isValidWireCloseCode } from './protocol/close-codes.js';
export { ReadyState } from './protocol/constants.js';
export { type WebSocketErrorCode, WebSocketProtocolError } from './protocol/errors.js';
export { buildFrame, type FrameOptions } from './protocol/frame.js';
export { usingNativeMasker } from './protocol/mask.js';
export { Receiver, type ReceiverOptions, type ReceiverSink } from './protocol/receiver.js';
export type { WriteCallback } from './protocol/sender.js';
export type { MaybePromise, PubSubAdapter, PubSubNode } from './pubsub/adapter.js';
export { MemoryAdapter } from './pubsub/memory-adapter.js';
export type { PublishOptions } from './pubsub/topics.js';
export type {
  BroadcastOptions,
  ServerOptions,
  ShutdownOptions,
  VerifyClientAsync,
  VerifyClientInfo,
  VerifyClientSync,
  WebSocketServerEventMap,
} from './server.js';
export type {
  BinaryType,
  ClientOptions,
  ConnectionOptions,
  RawData,
  SendOptions,
  SocketOptions,
  WebSocketDomEventMap,
  WebSocketEventMap,
} from './websocket.js';
/** `ws` names the server class `Server` too. */
export { createWebSocketStream, WebSocket, WebSocketServer, WebSocketServer as Server };

export default WebSocket;
