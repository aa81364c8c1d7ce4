import { Blob } from 'node:buffer';
import { EventEmitter } from 'node:events';
import type { ClientRequest, IncomingMessage } from 'node:http';
import type https from 'node:https';
import type { Duplex } from 'node:stream';
import { CloseEvent, ErrorEvent, MessageEvent, OpenEvent, type WebSocketEvent } from './events.js';
import {
  type PerMessageDeflate,
  type PerMessageDeflateOptions,
  validateDeflateOptions,
} from './extensions/permessage-deflate.js';
import { ClientHandshake } from './handshake/client-handshake.js';
import { parseClientUrl } from './handshake/client-url.js';
import { isToken } from './handshake/subprotocols.js';
import { checkHeartbeat, type HeartbeatOptions, LivenessMonitor } from './liveness.js';
import { iterateMessages, type WebSocketMessage } from './message-iterator.js';
import {
  concatFragments,
  isBlob,
  type SendableData,
  toArrayBuffer,
  toBuffer,
} from './protocol/buffers.js';
import { CloseCode, isValidWireCloseCode } from './protocol/close-codes.js';
import {
  DEFAULT_CLOSE_TIMEOUT,
  DEFAULT_MAX_FRAGMENTS,
  DEFAULT_MAX_PAYLOAD,
  EMPTY_BUFFER,
  MAX_CLOSE_REASON_BYTES,
  MAX_CONTROL_PAYLOAD,
  Opcode,
  READY_STATE_NAMES,
  ReadyState,
} from './protocol/constants.js';
import type { WebSocketProtocolError } from './protocol/errors.js';
import type { ReceiverOptions } from './protocol/receiver.js';
import { Receiver, type ReceiverSink } from './protocol/receiver.js';
import {
  dataFrameOptions,
  type PrebuiltFrame,
  Sender,
  type SenderOwner,
  type WriteCallback,
} from './protocol/sender.js';
import type { PublishOptions, ServerHub } from './pubsub/topics.js';
import type { WebSocketServer } from './server.js';
import type { createWebSocketStream } from './stream.js';

/** How binary messages are handed to 'message' listeners. Text is always a Buffer of UTF-8. */
export type BinaryType = 'nodebuffer' | 'arraybuffer' | 'fragments' | 'blob';

/** What a 'message' listener receives: the form `binaryType` selects. */
export type RawData = Buffer | ArrayBuffer | Buffer[] | Blob;

/** Per-message options of `send()`. */
export interface SendOptions {
  /** Send as a binary message; defaults to true for everything but strings. */
  binary?: boolean;
  /** Compress when permessage-deflate is negotiated (default true). */
  compress?: boolean;
  /** false sends a fragment: the next `send` continues the same message. Default true. */
  fin?: boolean;
  /** Mask the frame; defaults to true on clients and false on servers (RFC 6455 §5.1). */
  mask?: boolean;
}

/** Options both sides share. */
export interface ConnectionOptions {
  /** Largest message accepted, in bytes; bigger ones close the connection with 1009. Default 100 MiB; 0 for none. */
  maxPayload?: number;
  /**
   * Most frames one message may arrive in; more close the connection with 1009. Default
   * 1 048 576 (Autobahn's 4 MiB in 64-byte fragments is 65 536); 0 for none. Memory is bounded
   * by maxPayload either way: tiny fragments are packed, this caps the parsing work per message.
   */
  maxFragments?: number;
  /** Skip UTF-8 validation of text messages and close reasons (only for trusted peers). */
  skipUTF8Validation?: boolean;
  /** Answer pings automatically (default true). */
  autoPong?: boolean;
  /**
   * Whether several 'message', 'ping' and 'pong' events may be emitted in one tick (default
   * true). false emits each in its own macrotask, as browsers do.
   */
  allowSynchronousEvents?: boolean;
  /** Milliseconds the closing handshake may take before the socket is destroyed (default 30 000). */
  closeTimeout?: number;
}

/** Options of `new WebSocket(address, protocols, options)`; unknown keys go to `http(s).request`. */
export interface ClientOptions
  extends ConnectionOptions,
    Omit<
      https.RequestOptions,
      'timeout' | 'method' | 'path' | 'host' | 'hostname' | 'port' | 'socketPath' | 'protocol'
    > {
  /** Sec-WebSocket-Version to send: 13 (default) or 8. */
  protocolVersion?: 8 | 13;
  /** Milliseconds the whole opening handshake may take. No limit by default. */
  handshakeTimeout?: number;
  /** Follow 3xx redirects (default false). */
  followRedirects?: boolean;
  /** Redirects followed at most (default 10). */
  maxRedirects?: number;
  /** The Origin header (Sec-WebSocket-Origin for version 8). */
  origin?: string;
  /** Ends the upgrade request; a hook to write to it first. Default: `request.end()`. */
  finishRequest?: (request: ClientRequest, websocket: WebSocket) => void;
  /**
   * permessage-deflate (RFC 7692), offered by default: `false` turns it off, an object tunes
   * it. What the server accepted shows in `extensions`.
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
  /**
   * Ping the server every `interval` ms and terminate the connection when nothing came back
   * within `timeout` ms: 'error' (when listened) says why, then 'close' with 1006. Off by default.
   */
  heartbeat?: HeartbeatOptions;
}

/**
 * The limits and switches of a connection, normalized. A server makes one and its
 * connections share it (an idle connection carries one reference, not six fields).
 * @internal
 */
export interface ConnectionSettings extends ReceiverOptions {
  readonly autoPong: boolean;
  readonly closeTimeout: number;
  readonly maxFragments: number;
  readonly allowSynchronousEvents: boolean;
}

/** `send` without options reads this instead of making an empty object per call. */
const NO_SEND_OPTIONS: SendOptions = Object.freeze({});

/** Settings objects made by `connectionSettings`, which a constructor may take as they are. */
const madeSettings = new WeakSet<object>();

/**
 * Normalizes connection options (defaults filled in) into a settings object that many
 * connections can share.
 * @internal
 */
export function connectionSettings(
  options: Pick<
    ClientOptions,
    | 'autoPong'
    | 'closeTimeout'
    | 'maxPayload'
    | 'maxFragments'
    | 'skipUTF8Validation'
    | 'allowSynchronousEvents'
  >,
  isServer: boolean,
): ConnectionSettings {
  const settings: ConnectionSettings = {
    isServer,
    autoPong: options.autoPong ?? true,
    closeTimeout: options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT,
    maxPayload: options.maxPayload ?? DEFAULT_MAX_PAYLOAD,
    maxFragments: options.maxFragments ?? DEFAULT_MAX_FRAGMENTS,
    skipUTF8Validation: options.skipUTF8Validation ?? false,
    allowSynchronousEvents: options.allowSynchronousEvents ?? true,
  };
  madeSettings.add(settings);
  return settings;
}

/** Options `setSocket` takes: what a server hands to each accepted connection. */
export interface SocketOptions {
  /** The subprotocol the server selected. */
  protocol?: string;
  /** The negotiated permessage-deflate codec, if any. */
  perMessageDeflate?: PerMessageDeflate;
  /** The server's hub: makes `subscribe` and `publish` work, and hears of the close. */
  hub?: ServerHub;
  maxPayload?: number;
  maxFragments?: number;
  skipUTF8Validation?: boolean;
  allowSynchronousEvents?: boolean;
}

/** The events of a WebSocket and their arguments. */
export interface WebSocketEventMap {
  open: [];
  message: [data: RawData, isBinary: boolean];
  close: [code: number, reason: Buffer];
  error: [error: Error];
  ping: [data: Buffer];
  pong: [data: Buffer];
  /** Everything `send` queued has been handed to the operating system (after `send` returned false). */
  drain: [];
  /** Client: the server's 101 response, before the connection opens. */
  upgrade: [response: IncomingMessage];
  /** Client: the server answered with something other than 101. */
  'unexpected-response': [request: ClientRequest, response: IncomingMessage];
  /** Client: a redirect is being followed; `request` is the new request. */
  redirect: [url: string, request: ClientRequest];
}

/** The events of the browser-style API and their event objects. */
export interface WebSocketDomEventMap {
  open: OpenEvent<WebSocket>;
  message: MessageEvent<WebSocket>;
  close: CloseEvent<WebSocket>;
  error: ErrorEvent<WebSocket>;
}

type DomEventType = keyof WebSocketDomEventMap;
type DomListener<T extends DomEventType> =
  | ((this: WebSocket, event: WebSocketDomEventMap[T]) => void)
  | { handleEvent(event: WebSocketDomEventMap[T]): void };

const LISTENER = Symbol('weft.listener');
const ATTRIBUTE = Symbol('weft.onEventAttribute');
interface WrappedListener {
  (...args: never[]): void;
  [LISTENER]?: unknown;
  [ATTRIBUTE]?: boolean;
}

/**
 * Bytes of messages held for a 'message' listener that is not attached yet (an async
 * 'connection' handler). Past it, unheard messages are dropped as `ws` drops them: holding
 * more would let a peer park memory on a server that never listens.
 */
const HELD_MESSAGES_BYTE_BUDGET = 1024 * 1024;

/**
 * Automatic pongs written but not yet flushed. A peer that floods pings and never reads would
 * otherwise grow our send buffer without bound; past this, pings go unanswered until the
 * socket drains (RFC 6455 §5.5.3 lets a pong answer only the latest of several pings).
 */
const MAX_PENDING_PONGS = 64;

/** Bytes that may wait behind a frame being inflated before reading from the socket pauses. */
const INFLATE_BACKLOG = 1024 * 1024;

function noop(): void {}

/** The prototype of a connection's listener table: nothing, so no name resolves through it. */
const NO_INHERITED_EVENTS: object = Object.freeze(Object.create(null));

/** The bits of a connection's `#flags`. */
const Flag = {
  CloseFrameSent: 1,
  CloseFrameReceived: 1 << 1,
  Failed: 1 << 2,
  CloseEmitted: 1 << 3,
  /** Reading paused by `pause()`. */
  Paused: 1 << 4,
  /** Reading paused because bytes piled up behind an inflating frame. */
  BacklogPaused: 1 << 5,
  /** `send` returned false: a 'drain' is owed once everything queued is out. */
  DrainOwed: 1 << 6,
  /** Set once the held-messages budget overflowed: from then on unheard messages are dropped. */
  HoldingOverflowed: 1 << 7,
  DeferredEvents: 1 << 8,
} as const;
type Flag = (typeof Flag)[keyof typeof Flag];

const EMPTY_TOPICS: ReadonlySet<string> = new Set();

/** What a connection handles: its receiver's and sender's reports and its socket's events. */
interface ConnectionEvents extends ReceiverSink, SenderOwner {
  socketData(chunk: Buffer): void;
  /** Parses bytes that did not come through 'data' (those that came with the handshake). */
  write(bytes: Buffer): void;
  socketEnd(): void;
  socketClose(): void;
  socketDrain(): void;
  socketError(error: Error): void;
}

/** An `except` option that also leaves out `socket`. */
function withSocket(except: PublishOptions['except'], socket: WebSocket): ReadonlySet<WebSocket> {
  const set = new Set<WebSocket>([socket]);
  if (except instanceof Set) for (const other of except) set.add(other);
  else if (Array.isArray(except)) for (const other of except) set.add(other);
  else if (except !== undefined) set.add(except as WebSocket);
  return set;
}

/**
 * One WebSocket connection, client or server side, with the API of `ws`: an EventEmitter with
 * `message`, `close`, `error` ... events, plus the browser's `onmessage` / `addEventListener`.
 */
export class WebSocket extends EventEmitter<WebSocketEventMap> {
  static readonly CONNECTING = ReadyState.CONNECTING;
  static readonly OPEN = ReadyState.OPEN;
  static readonly CLOSING = ReadyState.CLOSING;
  static readonly CLOSED = ReadyState.CLOSED;
  // `ws` hangs its other exports on the class (`new WebSocket.Server(...)`); the package
  // entry sets them, so this module needs no runtime import of the server.
  /** The server class, as `ws` exposes it. */
  declare static Server: typeof WebSocketServer;
  declare static WebSocketServer: typeof WebSocketServer;
  declare static WebSocket: typeof WebSocket;
  declare static createWebSocketStream: typeof createWebSocketStream;
  declare readonly CONNECTING: 0;
  declare readonly OPEN: 1;
  declare readonly CLOSING: 2;
  declare readonly CLOSED: 3;

  #readyState: ReadyState = ReadyState.CONNECTING;
  #url: string | undefined;
  #protocol = '';
  #deflate: PerMessageDeflate | undefined;
  #binaryType: BinaryType = 'nodebuffer';
  #settings: ConnectionSettings;

  #socket: Duplex | null = null;
  /** Made on the first byte in: a connection that never received anything carries none. */
  #receiver: Receiver | null = null;
  /** Made on the first frame out: a connection that never sends carries none. */
  #sender: Sender | null = null;
  #handshake: ClientHandshake | null = null;
  /** Bytes given to `send` after the connection stopped being open (as `ws` reports them). */
  #bufferedAfterClose = 0;

  #pendingPongs = 0;
  #closeCode: number = CloseCode.Abnormal;
  #closeReason: Buffer = EMPTY_BUFFER;
  #closeTimer: NodeJS.Timeout | null = null;
  /**
   * The connection's yes/no state, one bit each (see `Flag`): an idle server holds tens of
   * thousands of connections, and nine booleans are nine heap slots on each.
   */
  #flags = 0;
  /** Frames received and sent so far (see `framesReceived`, `activity`). */
  #received = 0;
  #activity = 0;
  /** The server's hub (server-side connections only) and this connection's topics. */
  #hub: ServerHub | undefined;
  #topics: Set<string> | undefined;
  /** Messages that arrived while nobody listened for them (delivered to the first listener). */
  #heldMessages: Array<[data: RawData, isBinary: boolean, length: number]> | null = null;
  #heldBytes = 0;

  #flag(flag: Flag): boolean {
    return (this.#flags & flag) !== 0;
  }

  #setFlag(flag: Flag, on: boolean): void {
    this.#flags = on ? this.#flags | flag : this.#flags & ~flag;
  }

  /**
   * Opens a client connection to `address` (`ws:`, `wss:`, `ws+unix:`, `http:` or `https:`).
   * Throws a SyntaxError at once for a malformed address or subprotocol list.
   * Servers create their connections with `address` null.
   */
  constructor(
    address: string | URL | null,
    protocols?: string | readonly string[] | ClientOptions,
    options?: ClientOptions,
  ) {
    super();
    // EventEmitter keeps listeners in a null-prototype object, which V8 makes a hash table
    // (~180 bytes). One inheriting from a frozen empty null-prototype object reads the same
    // (no inherited names) and stays a small fast object: an idle connection is mostly this.
    (this as unknown as { _events: object })._events = Object.create(NO_INHERITED_EVENTS);
    let protocolList: readonly string[] = [];
    let clientOptions: ClientOptions = {};
    if (protocols !== undefined && (typeof protocols === 'string' || Array.isArray(protocols))) {
      protocolList = typeof protocols === 'string' ? [protocols] : (protocols as readonly string[]);
      clientOptions = options ?? {};
    } else if (protocols !== undefined) {
      clientOptions = protocols as ClientOptions;
    } else if (options !== undefined) {
      clientOptions = options;
    }
    const isServer = address === null;
    this.#settings =
      madeSettings.has(clientOptions) && (clientOptions as ConnectionSettings).isServer === isServer
        ? (clientOptions as ConnectionSettings)
        : connectionSettings(clientOptions, isServer);

    if (address === null) {
      return;
    }
    this.#connect(address, protocolList, clientOptions);
  }

  // ---- state ----------------------------------------------------------------------------

  /** CONNECTING (0), OPEN (1), CLOSING (2) or CLOSED (3). */
  get readyState(): ReadyState {
    return this.#readyState;
  }

  /** The subprotocol the server selected, or ''. */
  get protocol(): string {
    return this.#protocol;
  }

  /**
   * The negotiated extensions as the server's Sec-WebSocket-Extensions answer put them (the
   * browser's form), e.g. `permessage-deflate` or `permessage-deflate; server_max_window_bits=10`;
   * '' for none.
   */
  get extensions(): string {
    return this.#deflate?.header ?? '';
  }

  /** The address a client connected to (after redirects); undefined on the server side. */
  get url(): string | undefined {
    return this.#url;
  }

  get binaryType(): BinaryType {
    return this.#binaryType;
  }

  set binaryType(type: BinaryType) {
    if (
      type === 'nodebuffer' ||
      type === 'arraybuffer' ||
      type === 'fragments' ||
      type === 'blob'
    ) {
      this.#binaryType = type;
    }
  }

  /** Bytes accepted by `send` and not yet handed to the operating system. */
  get bufferedAmount(): number {
    const socket = this.#socket;
    if (socket === null) return this.#bufferedAfterClose;
    return socket.writableLength + (this.#sender?.queuedBytes ?? 0) + this.#bufferedAfterClose;
  }

  /** Whether reading is paused by `pause()`. */
  get isPaused(): boolean {
    return this.#flag(Flag.Paused);
  }

  // ---- sending ---------------------------------------------------------------------------

  /**
   * Sends a message. Strings go as text, everything else as binary unless `options.binary`
   * says otherwise. Throws while CONNECTING; after the connection closed, `callback` gets
   * an error instead.
   */
  send(data: SendableData, callback?: WriteCallback): boolean;
  send(data: SendableData, options: SendOptions, callback?: WriteCallback): boolean;
  send(
    data: SendableData,
    optionsOrCallback?: SendOptions | WriteCallback,
    maybeCallback?: WriteCallback,
  ): boolean {
    const options = typeof optionsOrCallback === 'object' ? optionsOrCallback : NO_SEND_OPTIONS;
    const callback = typeof optionsOrCallback === 'function' ? optionsOrCallback : maybeCallback;
    if (this.#readyState === ReadyState.CONNECTING) throw this.#notOpenError();
    if (typeof data === 'number') data = String(data);
    if (this.#readyState !== ReadyState.OPEN) {
      this.#refuseAfterClose(data, callback);
      return false;
    }
    const mask = options.mask ?? !this.#settings.isServer;
    const binary = options.binary ?? typeof data !== 'string';
    const fin = options.fin ?? true;
    const compress = options.compress ?? true;
    // Strings go to the sender as they are: a short one is encoded straight into its frame.
    const payload = isBlob(data) || typeof data === 'string' ? data : toBuffer(data);
    this.#activity++;
    const flowing = this.#openSender().sendData(
      payload,
      dataFrameOptions(binary, fin, mask, compress),
      callback,
    );
    if (!flowing) this.#setFlag(Flag.DrainOwed, true);
    return flowing;
  }

  /** Emits the owed 'drain' once neither our queue nor the socket's buffer holds anything back. */
  #maybeDrained(): void {
    const socket = this.#socket;
    if (!this.#flag(Flag.DrainOwed) || socket === null) return;
    if ((this.#sender?.queuedBytes ?? 0) > 0 || socket.writableNeedDrain) return;
    this.#setFlag(Flag.DrainOwed, false);
    this.emit('drain');
  }

  /**
   * Sends a whole message on behalf of a broadcast: like `send`, but it never joins a
   * fragmented message of this connection's own (it waits for that message's end).
   * @internal
   */
  sendWhole(payload: Buffer, binary: boolean): boolean {
    if (this.#readyState !== ReadyState.OPEN) return false;
    this.#activity++;
    this.#openSender().sendData(
      payload,
      dataFrameOptions(binary, true, !this.#settings.isServer, true),
      undefined,
      true,
    );
    return true;
  }

  /**
   * Writes a frame built once for many sockets (broadcast and publish), in order with this
   * connection's own sends. False when the connection is not open.
   * @internal
   */
  sendFrame(frame: PrebuiltFrame, callback?: WriteCallback): boolean {
    if (this.#readyState !== ReadyState.OPEN) return false;
    this.#activity++;
    this.#openSender().sendFrame(frame, callback);
    return true;
  }

  /**
   * Counts data messages sent and received (not pings and pongs: a heartbeat must not keep an
   * idle connection alive); idle checks compare it between rounds, which costs one increment
   * per message instead of a clock read.
   * @internal
   */
  get activity(): number {
    return this.#activity;
  }

  /** Frames received: the heartbeat's proof of life. @internal */
  get framesReceived(): number {
    return this.#received;
  }

  /** The negotiated permessage-deflate codec (broadcast groups clients by it). @internal */
  get perMessageDeflate(): PerMessageDeflate | undefined {
    return this.#deflate;
  }

  /**
   * `for await (const { data, isBinary } of ws)`: the messages, with backpressure (reading
   * pauses while the loop falls behind). Ends when the connection closes.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<WebSocketMessage> {
    return iterateMessages(this);
  }

  // ---- topics ----------------------------------------------------------------------------

  /** The topics this connection is subscribed to. */
  get topics(): ReadonlySet<string> {
    return this.#topics ?? EMPTY_TOPICS;
  }

  /** Subscribes this (server-side) connection to `topic`; `wss.publish(topic, ...)` reaches it. */
  subscribe(topic: string): void {
    const hub = this.#requireHub();
    if (this.#readyState !== ReadyState.OPEN) return;
    this.#topics ??= new Set();
    if (this.#topics.has(topic)) return;
    this.#topics.add(topic);
    hub.subscribe(this, topic);
  }

  /** Leaves `topic`. */
  unsubscribe(topic: string): void {
    const hub = this.#requireHub();
    if (this.#topics?.delete(topic)) hub.unsubscribe(this, topic);
  }

  /**
   * Publishes to every subscriber of `topic` but this connection, on every node. The promise
   * settles once other nodes were handed the message (it rejects if the adapter fails).
   */
  publish(topic: string, data: SendableData, options: PublishOptions = {}): Promise<void> {
    return this.#requireHub().publish(topic, data, {
      ...options,
      except: withSocket(options.except, this),
    });
  }

  #requireHub(): ServerHub {
    if (this.#hub === undefined) {
      throw new Error('Topics belong to server-side connections (from a WebSocketServer)');
    }
    return this.#hub;
  }

  /**
   * Sends a ping (at most 125 bytes of data). As in `ws`, the callback may come in any
   * position: `ping(cb)`, `ping(data, cb)`, `ping(data, mask, cb)`.
   */
  ping(
    data?: SendableData | WriteCallback,
    mask?: boolean | WriteCallback,
    callback?: WriteCallback,
  ): void {
    this.#sendControl(Opcode.Ping, data, mask, callback);
  }

  /** Sends an unsolicited pong (at most 125 bytes of data); arguments as for `ping`. */
  pong(
    data?: SendableData | WriteCallback,
    mask?: boolean | WriteCallback,
    callback?: WriteCallback,
  ): void {
    this.#sendControl(Opcode.Pong, data, mask, callback);
  }

  #sendControl(
    opcode: number,
    dataOrCallback: SendableData | WriteCallback | undefined,
    maskOrCallback: boolean | WriteCallback | undefined,
    callback: WriteCallback | undefined,
  ): void {
    let data: SendableData | undefined;
    let mask: boolean | undefined;
    if (typeof dataOrCallback === 'function') {
      callback = dataOrCallback;
    } else {
      data = dataOrCallback;
      if (typeof maskOrCallback === 'function') callback = maskOrCallback;
      else mask = maskOrCallback;
    }
    if (this.#readyState === ReadyState.CONNECTING) throw this.#notOpenError();
    if (typeof data === 'number') data = String(data);
    if (isBlob(data)) throw new TypeError('A ping or pong payload cannot be a Blob');
    const payload = data === undefined ? EMPTY_BUFFER : toBuffer(data);
    if (payload.length > MAX_CONTROL_PAYLOAD)
      throw new RangeError('The data size must not be greater than 125 bytes');
    if (this.#readyState !== ReadyState.OPEN) {
      this.#refuseAfterClose(payload, callback);
      return;
    }
    this.#openSender().sendControl(opcode, payload, mask ?? !this.#settings.isServer, callback);
  }

  #refuseAfterClose(data: SendableData, callback: WriteCallback | undefined): void {
    if (data !== undefined) {
      this.#bufferedAfterClose += isBlob(data)
        ? data.size
        : typeof data === 'number'
          ? String(data).length
          : toBuffer(data).length;
    }
    if (callback !== undefined) process.nextTick(callback, this.#notOpenError());
  }

  #notOpenError(): Error {
    const state = this.#readyState;
    return new Error(`WebSocket is not open: readyState ${state} (${READY_STATE_NAMES[state]})`);
  }

  // ---- closing ---------------------------------------------------------------------------

  /**
   * Starts the closing handshake (RFC 6455 §7.1.2). `code` is any code valid on the wire
   * (1000-1003, 1007-1014, 3000-4999, as `ws` allows) and `reason` at most 123 bytes of
   * UTF-8; anything else throws while the connection is open. The 'close' event follows once
   * the peer answered and the TCP connection ended, or after `closeTimeout`.
   */
  close(code?: number, reason?: string | Buffer): void {
    if (this.#readyState === ReadyState.CLOSED) return;
    if (this.#readyState === ReadyState.CONNECTING) {
      this.#abortHandshake('WebSocket was closed before the connection was established');
      return;
    }
    if (this.#readyState === ReadyState.CLOSING) {
      this.#endSocketIfClosed();
      return;
    }
    if (code !== undefined && (typeof code !== 'number' || !isValidWireCloseCode(code))) {
      throw new TypeError('First argument must be a valid error code number');
    }
    const reasonBytes =
      reason === undefined
        ? EMPTY_BUFFER
        : typeof reason === 'string'
          ? Buffer.from(reason)
          : reason;
    if (reasonBytes.length > MAX_CLOSE_REASON_BYTES) {
      throw new RangeError('The message must not be greater than 123 bytes');
    }
    if (code === undefined && reasonBytes.length > 0) {
      throw new TypeError('A close reason needs a close code');
    }
    this.#readyState = ReadyState.CLOSING;
    this.#sendCloseFrame(code, reasonBytes);
  }

  #sendCloseFrame(code: number | undefined, reason: Buffer): void {
    if (this.#flag(Flag.CloseFrameSent)) return;
    this.#setFlag(Flag.CloseFrameSent, true);
    let payload = EMPTY_BUFFER;
    if (code !== undefined) {
      payload = Buffer.allocUnsafe(2 + reason.length);
      payload.writeUInt16BE(code, 0);
      reason.copy(payload, 2);
    }
    if (this.#socket === null || this.#socket.destroyed) return;
    this.#openSender().sendControl(Opcode.Close, payload, !this.#settings.isServer, noop);
    this.#endSocketIfClosed();
    this.#startCloseTimer();
  }

  /** Bounds the end of the connection: past `closeTimeout` the socket is destroyed. */
  #startCloseTimer(): void {
    if (this.#closeTimer !== null || this.#socket === null || this.#socket.destroyed) return;
    this.#closeTimer = setTimeout(() => this.#socket?.destroy(), this.#settings.closeTimeout);
  }

  #clearCloseTimer(): void {
    if (this.#closeTimer === null) return;
    clearTimeout(this.#closeTimer);
    this.#closeTimer = null;
  }

  /**
   * Both close frames are exchanged (or the connection failed): close the TCP side (§7.1.1)
   * once our close frame, and whatever was sent before it, has been written.
   */
  #endSocketIfClosed(): void {
    const socket = this.#socket;
    if (socket === null || socket.writableEnded) return;
    if (
      this.#flag(Flag.CloseFrameSent) &&
      (this.#flag(Flag.CloseFrameReceived) || this.#flag(Flag.Failed))
    ) {
      if (this.#sender !== null) this.#sender.endAfterQueued();
      else socket.end();
    }
  }

  /** Destroys the connection at once, without a closing handshake. */
  terminate(): void {
    if (this.#readyState === ReadyState.CLOSED) return;
    if (this.#readyState === ReadyState.CONNECTING) {
      this.#abortHandshake('WebSocket was closed before the connection was established');
      return;
    }
    this.#readyState = ReadyState.CLOSING;
    this.#socket?.destroy();
  }

  /** Stops reading from the socket (TCP backpressure reaches the peer). */
  pause(): void {
    if (this.#readyState === ReadyState.CONNECTING || this.#readyState === ReadyState.CLOSED)
      return;
    this.#setFlag(Flag.Paused, true);
    this.#receiver?.pause();
    this.#socket?.pause();
  }

  /** Resumes reading after `pause()`. */
  resume(): void {
    if (this.#readyState === ReadyState.CONNECTING || this.#readyState === ReadyState.CLOSED)
      return;
    this.#setFlag(Flag.Paused, false);
    const receiver = this.#receiver;
    receiver?.resume();
    if (receiver === null || !receiver.paused) this.#socket?.resume();
  }

  // ---- the connection --------------------------------------------------------------------

  #connect(address: string | URL, protocols: readonly string[], options: ClientOptions): void {
    const target = parseClientUrl(address);
    const seen = new Set<string>();
    for (const protocol of protocols) {
      if (typeof protocol !== 'string' || !isToken(protocol) || seen.has(protocol)) {
        throw new SyntaxError('An invalid or duplicated subprotocol was specified');
      }
      seen.add(protocol);
    }
    const protocolVersion = options.protocolVersion ?? 13;
    if (protocolVersion !== 8 && protocolVersion !== 13) {
      throw new RangeError(
        `Unsupported protocol version: ${String(protocolVersion)} (supported versions are 8, 13)`,
      );
    }
    this.#url = target.url.href;
    const {
      maxPayload: _p,
      maxFragments: _f,
      skipUTF8Validation: _s,
      autoPong: _a,
      allowSynchronousEvents: _e,
      closeTimeout: _c,
      finishRequest,
      perMessageDeflate,
      heartbeat,
      ...requestOptions
    } = options;
    if (heartbeat !== undefined) {
      checkHeartbeat(heartbeat);
      const monitor = new LivenessMonitor(
        () => [this],
        () => {
          const within = heartbeat.timeout ?? heartbeat.interval;
          this.#emitError(new Error(`Heartbeat timeout: no answer to a ping within ${within} ms`));
          this.terminate();
        },
      );
      this.once('open', () => monitor.startHeartbeat(heartbeat));
      this.once('close', () => monitor.stop());
    }
    const deflateOptions =
      perMessageDeflate === false
        ? undefined
        : perMessageDeflate === true || perMessageDeflate === undefined
          ? {}
          : perMessageDeflate;
    if (deflateOptions !== undefined) validateDeflateOptions(deflateOptions);
    this.#handshake = new ClientHandshake(
      target,
      protocols,
      {
        ...requestOptions,
        protocolVersion,
        handshakeTimeout: options.handshakeTimeout,
        followRedirects: options.followRedirects ?? false,
        maxRedirects: options.maxRedirects ?? 10,
        origin: options.origin,
        perMessageDeflate: deflateOptions,
        socketRead: clientSocketRead,
      },
      {
        isConnecting: () => this.#readyState === ReadyState.CONNECTING,
        finishRequest: (request) => (finishRequest ? finishRequest(request, this) : request.end()),
        upgrade: (response) => this.emit('upgrade', response),
        redirect: (url, request) => {
          this.#url = url;
          this.emit('redirect', url, request);
        },
        unexpectedResponse: (request, response) => {
          if (this.listenerCount('unexpected-response') === 0) return false;
          this.#handshake = null;
          this.#readyState = ReadyState.CLOSING;
          this.emit('unexpected-response', request, response);
          // The user owns the response now; the WebSocket is over once its socket closes.
          const socket = response.socket;
          if (socket.destroyed) this.#emitClose();
          else socket.once('close', () => this.#emitClose());
          return true;
        },
        open: (socket, head, protocol, deflate) => {
          this.#handshake = null;
          this.setSocket(socket, head, {
            protocol,
            perMessageDeflate: deflate,
          });
        },
        fail: (error) => {
          this.#handshake = null;
          this.#readyState = ReadyState.CLOSING;
          this.#emitError(error);
          this.#emitClose();
        },
      },
    );
  }

  #abortHandshake(message: string): void {
    const handshake = this.#handshake;
    this.#handshake = null;
    handshake?.abort();
    this.#readyState = ReadyState.CLOSING;
    this.#emitError(new Error(message));
    process.nextTick(() => this.#emitClose());
  }

  /**
   * Takes over an upgraded socket and opens the connection. Called by `WebSocketServer` and
   * by the client handshake; not for application code.
   * @internal
   */
  setSocket(socket: Duplex, head: Buffer, options: SocketOptions = {}): void {
    if (options.protocol !== undefined) this.#protocol = options.protocol;
    this.#deflate = options.perMessageDeflate;
    this.#hub = options.hub;
    if (
      options.maxPayload !== undefined ||
      options.maxFragments !== undefined ||
      options.skipUTF8Validation !== undefined ||
      options.allowSynchronousEvents !== undefined
    ) {
      const current = this.#settings;
      this.#settings = connectionSettings(
        {
          autoPong: current.autoPong,
          closeTimeout: current.closeTimeout,
          maxPayload: options.maxPayload ?? current.maxPayload,
          maxFragments: options.maxFragments ?? current.maxFragments,
          skipUTF8Validation: options.skipUTF8Validation ?? current.skipUTF8Validation,
          allowSynchronousEvents: options.allowSynchronousEvents ?? current.allowSynchronousEvents,
        },
        current.isServer,
      );
    }

    this.#socket = socket;
    // One object with prototype methods serves the receiver, the sender and the socket: an
    // idle connection carries no closures of its own.
    (socket as OwnedSocket)[OWNER] = new WebSocket.#ConnectionEvents(this);

    const netSocket = socket as Duplex & {
      setNoDelay?: (noDelay: boolean) => void;
      setTimeout?: (ms: number) => void;
    };
    netSocket.setTimeout?.(0);
    netSocket.setNoDelay?.(true);
    socket.on('end', socketOnEnd);
    socket.on('close', socketOnClose);
    socket.on('drain', socketOnDrain);
    socket.on('error', socketOnError);

    this.#readyState = ReadyState.OPEN;
    this.emit('open');
    if (socket.destroyed) {
      this.#onSocketClose();
      return;
    }
    // Reading starts with the bytes that came in with the handshake; until a 'data' listener
    // exists the socket buffers what follows. A server starts once its 'connection' handlers
    // ran (next tick), so what those bytes cause (pings, errors) reaches the listeners they
    // attach; a client's listeners are in place already.
    if (this.#settings.isServer) process.nextTick(startReading, socket, head);
    else startReading(socket, head);
  }

  #onMessage(fragments: Buffer | Buffer[], length: number, isBinary: boolean): void {
    let data: RawData;
    if (!isBinary || this.#binaryType === 'nodebuffer') data = concatFragments(fragments, length);
    else if (this.#binaryType === 'arraybuffer')
      data = toArrayBuffer(concatFragments(fragments, length));
    else if (this.#binaryType === 'blob')
      data = new Blob(Buffer.isBuffer(fragments) ? [fragments] : fragments);
    else data = Buffer.isBuffer(fragments) ? [fragments] : fragments;

    if (this.#heldMessages !== null && this.listenerCount('message') > 0) {
      // A listener just arrived and the held messages go out in a microtask: queue behind them.
      this.#heldMessages.push([data, isBinary, length]);
      this.#heldBytes += length;
      return;
    }
    if (this.listenerCount('message') === 0 && this.#readyState === ReadyState.OPEN) {
      this.#holdMessage(data, isBinary, length);
      return;
    }
    this.#emitReceived('message', data, isBinary);
  }

  /** Emits a received event, spacing events out across ticks when asked to. */
  #emitReceived<K extends 'message' | 'ping' | 'pong'>(
    event: K,
    ...args: WebSocketEventMap[K]
  ): void {
    (this.emit as (event: K, ...args: WebSocketEventMap[K]) => boolean)(event, ...args);
    if (
      !this.#settings.allowSynchronousEvents &&
      !this.#flag(Flag.DeferredEvents) &&
      this.#receiver !== null &&
      !this.#receiver.stopped
    ) {
      this.#setFlag(Flag.DeferredEvents, true);
      this.#receiver.pause();
      setImmediate(() => {
        this.#setFlag(Flag.DeferredEvents, false);
        if (!this.#flag(Flag.Paused)) this.#receiver?.resume();
      });
    }
  }

  #holdMessage(data: RawData, isBinary: boolean, length: number): void {
    if (this.#flag(Flag.HoldingOverflowed)) return;
    if (this.#heldBytes + length > HELD_MESSAGES_BYTE_BUDGET) {
      this.#setFlag(Flag.HoldingOverflowed, true);
      this.#stopHolding();
      return;
    }
    if (this.#heldMessages === null) {
      this.#heldMessages = [];
      // Only a connection holding messages watches for its first listener.
      (this as unknown as EventEmitter).on('newListener', WebSocket.#onNewListener);
    }
    this.#heldMessages.push([data, isBinary, length]);
    this.#heldBytes += length;
  }

  /** The frame parser, made when the first bytes arrive (in the state the connection is in). */
  #openReceiver(): Receiver {
    const receiver = new Receiver(
      this.#deflate === undefined
        ? this.#settings
        : { ...this.#settings, decompressor: this.#deflate },
      (this.#socket as OwnedSocket)[OWNER] as ConnectionEvents,
    );
    this.#receiver = receiver;
    // A failed connection parses nothing more; a paused one buffers until resumed.
    if (this.#flag(Flag.Failed) || this.#readyState === ReadyState.CLOSED) receiver.stop();
    else if (this.#flag(Flag.Paused)) receiver.pause();
    return receiver;
  }

  #openSender(): Sender {
    this.#sender ??= new Sender(
      this.#socket!,
      this.#deflate,
      (this.#socket as OwnedSocket)[OWNER] as ConnectionEvents,
    );
    return this.#sender;
  }

  /** Counts an automatic pong out; made on the first ping, so idle connections carry none. */
  #pongFlushed: (() => void) | undefined;

  /** A 'newListener' listener shared by every connection (EventEmitter calls it with `this`). */
  static readonly #onNewListener = function (this: WebSocket, event: string | symbol): void {
    if (event !== 'message' || this.#heldMessages === null) return;
    // The listener is added right after this event: deliver once it is in place.
    queueMicrotask(() => this.#releaseHeldMessages());
  };

  /** Receiver, sender and socket events of one connection, on one object per connection. */
  static readonly #ConnectionEvents = class implements ConnectionEvents {
    readonly #ws: WebSocket;

    constructor(ws: WebSocket) {
      this.#ws = ws;
    }

    onMessage(fragments: Buffer | Buffer[], length: number, isBinary: boolean): void {
      const ws = this.#ws;
      ws.#received++;
      ws.#activity++;
      ws.#onMessage(fragments, length, isBinary);
    }

    onPing(payload: Buffer): void {
      const ws = this.#ws;
      ws.#received++;
      if (
        ws.#settings.autoPong &&
        ws.#readyState === ReadyState.OPEN &&
        ws.#pendingPongs < MAX_PENDING_PONGS
      ) {
        ws.#pendingPongs++;
        ws.#pongFlushed ??= () => {
          ws.#pendingPongs--;
        };
        ws.#openSender().sendControl(Opcode.Pong, payload, !ws.#settings.isServer, ws.#pongFlushed);
      }
      ws.#emitReceived('ping', payload);
    }

    onPong(payload: Buffer): void {
      this.#ws.#received++;
      this.#ws.#emitReceived('pong', payload);
    }

    onClose(code: number, reason: Buffer): void {
      const ws = this.#ws;
      ws.#setFlag(Flag.CloseFrameReceived, true);
      ws.#closeCode = code;
      ws.#closeReason = reason;
      if (ws.#readyState === ReadyState.OPEN) ws.#readyState = ReadyState.CLOSING;
      // Echo the peer's code and reason (RFC 6455 §5.5.1), then both sides may close TCP.
      ws.#sendCloseFrame(code === CloseCode.NoStatus ? undefined : code, reason);
      ws.#endSocketIfClosed();
    }

    onError(error: WebSocketProtocolError): void {
      this.#ws.#failConnection(error.closeCode, error);
    }

    onCaughtUp(): void {
      const ws = this.#ws;
      if (!ws.#flag(Flag.BacklogPaused)) return;
      ws.#setFlag(Flag.BacklogPaused, false);
      if (!ws.#flag(Flag.Paused)) ws.#socket?.resume();
    }

    onPayloadError(error: Error): void {
      const ws = this.#ws;
      // A send that failed because the connection is already gone needs no second report.
      if (ws.#socket !== null && !ws.#socket.destroyed && ws.#readyState !== ReadyState.CLOSED) {
        ws.#failConnection(CloseCode.InternalError, error);
      }
    }

    onSenderIdle(): void {
      this.#ws.#maybeDrained();
    }

    socketData(chunk: Buffer): void {
      const ws = this.#ws;
      const receiver = ws.#receiver ?? ws.#openReceiver();
      receiver.write(chunk);
      // While a frame inflates, later bytes wait in the receiver: past a backlog, stop
      // reading so TCP pushes back on the peer instead of our memory growing.
      if (
        receiver.inflating &&
        receiver.bufferedBytes >= INFLATE_BACKLOG &&
        !ws.#flag(Flag.BacklogPaused)
      ) {
        ws.#setFlag(Flag.BacklogPaused, true);
        ws.#socket?.pause();
      }
    }

    write(bytes: Buffer): void {
      const ws = this.#ws;
      (ws.#receiver ?? ws.#openReceiver()).write(bytes);
    }

    socketEnd(): void {
      this.#ws.#onSocketEnd();
    }

    socketClose(): void {
      this.#ws.#onSocketClose();
    }

    socketDrain(): void {
      this.#ws.#maybeDrained();
    }

    socketError(error: Error): void {
      this.#ws.#onSocketError(error);
    }
  };

  /**
   * Delivers the held messages in order while someone listens: a `once` listener that takes
   * one and attaches the next listener later leaves the rest held for it, and messages that
   * arrive meanwhile queue behind them.
   */
  #releaseHeldMessages(): void {
    const held = this.#heldMessages;
    if (held === null) return;
    while (held.length > 0 && this.listenerCount('message') > 0) {
      const [data, isBinary, length] = held.shift()!;
      this.#heldBytes -= length;
      this.emit('message', data, isBinary);
    }
    if (held.length === 0 && this.#heldMessages === held) this.#stopHolding();
  }

  #stopHolding(): void {
    if (this.#heldMessages === null) return;
    this.#heldMessages = null;
    this.#heldBytes = 0;
    (this as unknown as EventEmitter).removeListener('newListener', WebSocket.#onNewListener);
  }

  /** "Fail the WebSocket Connection" (RFC 6455 §7.1.7): close frame with `code`, then close TCP. */
  #failConnection(code: number, error: Error | WebSocketProtocolError): void {
    this.#setFlag(Flag.Failed, true);
    this.#receiver?.stop();
    if (this.#readyState === ReadyState.OPEN) this.#readyState = ReadyState.CLOSING;
    if (
      this.#readyState === ReadyState.CLOSING &&
      this.#socket !== null &&
      !this.#socket.destroyed
    ) {
      this.#sendCloseFrame(code, EMPTY_BUFFER);
      this.#endSocketIfClosed();
      this.#socket.resume();
    }
    this.#emitError(error);
  }

  #onSocketEnd(): void {
    // The peer closed its side of TCP: nothing more will arrive.
    if (this.#readyState === ReadyState.OPEN) this.#readyState = ReadyState.CLOSING;
    const socket = this.#socket;
    if (socket === null) return;
    // Ending twice builds (and drops) an error object: most connections ended already. One
    // whose closing handshake is done may still be writing its close frame behind a
    // compression: its end follows that frame.
    if (!socket.writableEnded && this.#sender?.ending !== true) socket.end();
    // Our end() waits for unsent data; a peer that stopped reading would keep it forever.
    if (!socket.writableFinished) this.#startCloseTimer();
  }

  #onSocketError(error: Error): void {
    if (this.#readyState === ReadyState.OPEN) this.#readyState = ReadyState.CLOSING;
    if (!this.#flag(Flag.CloseFrameReceived) && !this.#flag(Flag.Failed)) this.#emitError(error);
    this.#socket?.destroy();
  }

  #onSocketClose(): void {
    this.#clearCloseTimer();
    this.#readyState = ReadyState.CLOSING;
    const receiver = this.#receiver;
    const finish = (): void => {
      receiver?.stop();
      this.#deflate?.close();
      this.#clearCloseTimer();
      this.#emitClose();
    };
    // Frames already received are delivered before 'close', even when paused or inflating.
    if (receiver !== null && !receiver.stopped) receiver.drain(finish);
    else finish();
  }

  #emitError(error: Error): void {
    // An 'error' with no listener would crash the process; the 'close' that follows still tells.
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }

  #emitClose(): void {
    if (this.#flag(Flag.CloseEmitted)) return;
    this.#setFlag(Flag.CloseEmitted, true);
    this.#readyState = ReadyState.CLOSED;
    // A closed connection leaves all its topics.
    if (this.#topics !== undefined && this.#hub !== undefined) {
      for (const topic of this.#topics) this.#hub.unsubscribe(this, topic);
      this.#topics.clear();
    }
    if (this.#heldMessages !== null && this.listenerCount('message') > 0)
      this.#releaseHeldMessages();
    this.#hub?.closed(this);
    this.emit('close', this.#closeCode, this.#closeReason);
  }

  // ---- the browser-style API -------------------------------------------------------------

  /** Adds a browser-style listener; `once` removes it after its first call. */
  addEventListener<T extends DomEventType>(
    type: T,
    listener: DomListener<T>,
    options: { once?: boolean } = {},
  ): void {
    this.#addDomListener(type, listener, options.once ?? false, false);
  }

  /** Removes a listener added with `addEventListener`. */
  removeEventListener<T extends DomEventType>(type: T, listener: DomListener<T>): void {
    for (const wrapped of this.listeners(type) as WrappedListener[]) {
      if (wrapped[LISTENER] === listener && !wrapped[ATTRIBUTE]) {
        this.removeListener(type, wrapped as never);
        return;
      }
    }
  }

  #addDomListener<T extends DomEventType>(
    type: T,
    listener: DomListener<T>,
    once: boolean,
    attribute: boolean,
  ): void {
    for (const wrapped of this.listeners(type) as WrappedListener[]) {
      if (!attribute && wrapped[LISTENER] === listener && !wrapped[ATTRIBUTE]) return;
    }
    const call = (event: WebSocketEvent<WebSocket>): void => {
      event.target = this;
      if (typeof listener === 'function') listener.call(this, event as WebSocketDomEventMap[T]);
      else listener.handleEvent(event as WebSocketDomEventMap[T]);
    };
    let wrapped: WrappedListener;
    switch (type) {
      case 'message':
        wrapped = (data: RawData, isBinary: boolean) =>
          call(
            new MessageEvent('message', { data: isBinary ? data : (data as Buffer).toString() }),
          );
        break;
      case 'close':
        wrapped = (code: number, reason: Buffer) =>
          call(
            new CloseEvent('close', {
              code,
              reason: reason.toString(),
              wasClean: this.#flag(Flag.CloseFrameReceived) && this.#flag(Flag.CloseFrameSent),
            }),
          );
        break;
      case 'error':
        wrapped = (error: Error) =>
          call(new ErrorEvent('error', { error, message: error.message }));
        break;
      default:
        wrapped = () => call(new OpenEvent(type));
    }
    wrapped[LISTENER] = listener;
    wrapped[ATTRIBUTE] = attribute;
    if (once) this.once(type, wrapped as never);
    else this.on(type, wrapped as never);
  }

  #getAttribute(type: DomEventType): DomListener<DomEventType> | null {
    for (const wrapped of this.listeners(type) as WrappedListener[]) {
      if (wrapped[ATTRIBUTE]) return wrapped[LISTENER] as DomListener<DomEventType>;
    }
    return null;
  }

  #setAttribute<T extends DomEventType>(type: T, handler: DomListener<T> | null): void {
    for (const wrapped of this.listeners(type) as WrappedListener[]) {
      if (wrapped[ATTRIBUTE]) {
        this.removeListener(type, wrapped as never);
        break;
      }
    }
    if (typeof handler === 'function') this.#addDomListener(type, handler, false, true);
  }

  get onopen(): ((this: WebSocket, event: OpenEvent<WebSocket>) => void) | null {
    return this.#getAttribute('open') as
      | ((this: WebSocket, event: OpenEvent<WebSocket>) => void)
      | null;
  }
  set onopen(handler: ((this: WebSocket, event: OpenEvent<WebSocket>) => void) | null) {
    this.#setAttribute('open', handler);
  }
  get onmessage(): ((this: WebSocket, event: MessageEvent<WebSocket>) => void) | null {
    return this.#getAttribute('message') as
      | ((this: WebSocket, event: MessageEvent<WebSocket>) => void)
      | null;
  }
  set onmessage(handler: ((this: WebSocket, event: MessageEvent<WebSocket>) => void) | null) {
    this.#setAttribute('message', handler);
  }
  get onclose(): ((this: WebSocket, event: CloseEvent<WebSocket>) => void) | null {
    return this.#getAttribute('close') as
      | ((this: WebSocket, event: CloseEvent<WebSocket>) => void)
      | null;
  }
  set onclose(handler: ((this: WebSocket, event: CloseEvent<WebSocket>) => void) | null) {
    this.#setAttribute('close', handler);
  }
  get onerror(): ((this: WebSocket, event: ErrorEvent<WebSocket>) => void) | null {
    return this.#getAttribute('error') as
      | ((this: WebSocket, event: ErrorEvent<WebSocket>) => void)
      | null;
  }
  set onerror(handler: ((this: WebSocket, event: ErrorEvent<WebSocket>) => void) | null) {
    this.#setAttribute('error', handler);
  }
}

/** Where a socket finds the connection it belongs to (shared handlers, no per-socket closures). */
const OWNER = Symbol('weft.connection');
type OwnedSocket = Duplex & { [OWNER]?: ConnectionEvents };

function ownerOf(socket: Duplex): ConnectionEvents {
  return (socket as OwnedSocket)[OWNER]!;
}

function socketOnData(this: Duplex, chunk: Buffer): void {
  ownerOf(this).socketData(chunk);
}

/**
 * The `onread` callback of the sockets the client opens (see `connectReadingDirectly`): what Node
 * read into the shared buffer is copied out and, once the connection is open and its socket
 * flowing with nothing buffered, handed straight to the connection. Anything else (the HTTP
 * response before the upgrade, a paused socket, other 'data' listeners) takes the socket's
 * usual way, `push`, so the stream behaves as if Node had read the bytes itself.
 */
function clientSocketRead(this: Duplex, length: number, buffer: Buffer): boolean {
  const chunk = Buffer.allocUnsafe(length);
  buffer.copy(chunk, 0, 0, length);
  const owner = (this as OwnedSocket)[OWNER];
  if (
    owner !== undefined &&
    this.readableFlowing === true &&
    this.readableLength === 0 &&
    this.listenerCount('data') === 1
  ) {
    owner.socketData(chunk);
    return true;
  }
  return this.push(chunk);
}

function socketOnEnd(this: Duplex): void {
  ownerOf(this).socketEnd();
}

function socketOnClose(this: Duplex): void {
  ownerOf(this).socketClose();
}

function socketOnDrain(this: Duplex): void {
  ownerOf(this).socketDrain();
}

function socketOnError(this: Duplex, error: Error): void {
  ownerOf(this).socketError(error);
}

/**
 * Starts reading: the bytes that came in with the handshake first, then the socket. Until a
 * 'data' listener exists the socket buffers what follows.
 */
function startReading(socket: Duplex, head: Buffer): void {
  if (head.length > 0) ownerOf(socket).write(head);
  socket.on('data', socketOnData);
}

for (const [name, value] of Object.entries(ReadyState)) {
  Object.defineProperty(WebSocket.prototype, name, { enumerable: true, value });
}
