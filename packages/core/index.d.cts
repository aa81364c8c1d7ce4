// Types of the CommonJS entry (index.cjs): the WebSocket class, merged with a namespace that
// carries the other exports, as `@types/ws` shapes `ws`.
import * as core from './dist/index.cjs';

declare class WebSocket extends core.WebSocket {}
declare namespace WebSocket {
  export import WebSocket = core.WebSocket;
  export import WebSocketServer = core.WebSocketServer;
  export import Server = core.WebSocketServer;
  export import createWebSocketStream = core.createWebSocketStream;
  export import CloseCode = core.CloseCode;
  export import CloseEvent = core.CloseEvent;
  export import ErrorEvent = core.ErrorEvent;
  export import MessageEvent = core.MessageEvent;
  export import OpenEvent = core.OpenEvent;
  export import WebSocketEvent = core.WebSocketEvent;
  export import ReadyState = core.ReadyState;
  export import WebSocketProtocolError = core.WebSocketProtocolError;
  export import isValidWireCloseCode = core.isValidWireCloseCode;
  export import Receiver = core.Receiver;
  export import buildFrame = core.buildFrame;
  export import usingNativeMasker = core.usingNativeMasker;
  export import PerMessageDeflate = core.PerMessageDeflate;
  export import checkOrigin = core.checkOrigin;
  export import checkUpgradeRequest = core.checkUpgradeRequest;
  export import rejectHandshake = core.rejectHandshake;
  export type HandshakeRejection = core.HandshakeRejection;
  export type HandshakeRequest = core.HandshakeRequest;
  export import MemoryAdapter = core.MemoryAdapter;
  export type PubSubAdapter = core.PubSubAdapter;
  export type PublishOptions = core.PublishOptions;
  export type BroadcastOptions = core.BroadcastOptions;
  export type ShutdownOptions = core.ShutdownOptions;
  export type HeartbeatOptions = core.HeartbeatOptions;
  export type TimeoutReason = core.TimeoutReason;
  export type WebSocketMessage = core.WebSocketMessage;
  export type PubSubNode = core.PubSubNode;
  export type MaybePromise<T> = core.MaybePromise<T>;
  export import requestOrigin = core.requestOrigin;
  export type OriginPolicy = core.OriginPolicy;
  export type PerMessageDeflateOptions = core.PerMessageDeflateOptions;
  export type DeflateParams = core.DeflateParams;
  export type BinaryType = core.BinaryType;
  export type ClientOptions = core.ClientOptions;
  export type ConnectionOptions = core.ConnectionOptions;
  export type RawData = core.RawData;
  export type SendOptions = core.SendOptions;
  export type SendableData = core.SendableData;
  export type ServerOptions = core.ServerOptions;
  export type SocketOptions = core.SocketOptions;
  export type VerifyClientAsync = core.VerifyClientAsync;
  export type VerifyClientInfo = core.VerifyClientInfo;
  export type VerifyClientSync = core.VerifyClientSync;
  export type WebSocketDomEventMap = core.WebSocketDomEventMap;
  export type WebSocketErrorCode = core.WebSocketErrorCode;
  export type WebSocketEventMap = core.WebSocketEventMap;
  export type WebSocketServerEventMap = core.WebSocketServerEventMap;
  export type WriteCallback = core.WriteCallback;
  export type FrameOptions = core.FrameOptions;
  export type ReceiverOptions = core.ReceiverOptions;
  export type ReceiverSink = core.ReceiverSink;
}
export = WebSocket;
