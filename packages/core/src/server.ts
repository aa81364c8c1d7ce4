import { EventEmitter } from 'node:events';
import http, { type IncomingMessage, type OutgoingHttpHeaders, STATUS_CODES } from 'node:http';
import type https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { parseExtensions } from './extensions/header.js';
import {
  acceptOffers,
  PerMessageDeflate,
  type PerMessageDeflateOptions,
  validateDeflateOptions,
} from './extensions/permessage-deflate.js';
import { acceptKey } from './handshake/accept-key.js';
import { checkOrigin, type OriginPolicy, requestOrigin } from './handshake/origin.js';
import {
  checkUpgradeRequest,
  type HandshakeRequest,
  rejectHandshake,
} from './handshake/upgrade-request.js';
import { type HeartbeatOptions, LivenessMonitor, type TimeoutReason } from './liveness.js';
import { isBlob, type SendableData, toBuffer } from './protocol/buffers.js';
import { CloseCode } from './protocol/close-codes.js';
import { DEFAULT_MAX_PAYLOAD } from './protocol/constants.js';
import type { MaybePromise, PubSubAdapter, PubSubNode } from './pubsub/adapter.js';
import { type FanOutOptions, fanOut, type SlowConsumerPolicy } from './pubsub/fan-out.js';
import { MemoryAdapter } from './pubsub/memory-adapter.js';
import { type PublishOptions, type ServerHub, TopicRegistry } from './pubsub/topics.js';
import {
  type ConnectionOptions,
  type ConnectionSettings,
  connectionSettings,
  WebSocket,
} from './websocket.js';

/** What `verifyClient` is told about a handshake. */
export interface VerifyClientInfo {
  /** The Origin header (Sec-WebSocket-Origin for protocol version 8). */
  origin: string | undefined;
  /** Whether the connection is TLS. */
  secure: boolean;
  req: IncomingMessage;
}

/** Decides synchronously: true accepts, false answers 401. */
export type VerifyClientSync = (info: VerifyClientInfo) => boolean;
/** Decides later: `callback(false, 403, 'Forbidden', headers)` refuses with that answer. */
export type VerifyClientAsync = (
  info: VerifyClientInfo,
  callback: (
    result: boolean,
    code?: number,
    message?: string,
    headers?: OutgoingHttpHeaders,
  ) => void,
) => void;

/** Options of `new WebSocketServer()`: exactly one of `port`, `server` and `noServer`. */
export interface ServerOptions<W extends WebSocket = WebSocket> extends ConnectionOptions {
  /** Create an HTTP server listening on this port (0 picks a free one). */
  port?: number;
  /** Interface for `port` (default: all). */
  host?: string;
  backlog?: number;
  /** Attach to an existing HTTP(S) server. */
  server?: http.Server | https.Server;
  /** Attach to nothing: the application calls `handleUpgrade` itself. */
  noServer?: boolean;
  /** Only accept upgrades for this path (in `port` and `server` modes). */
  path?: string;
  /** Accept or refuse each handshake (after the origin check). A throw answers 500. */
  verifyClient?: VerifyClientSync | VerifyClientAsync;
  /**
   * Browser origins allowed to connect (see `OriginPolicy`); others get 403. Off by default
   * (as in `ws`); `'same-host'` is the safe choice for cookie-authenticated apps.
   */
  origins?: OriginPolicy;
  /**
   * Milliseconds an upgrade may take from its request to the 101 answer (origin check and
   * verifyClient included); past it the client gets 408. In `port` mode it also bounds how
   * long the request headers may take to arrive (slowloris). Default 10 000; 0 for none.
   */
  handshakeTimeout?: number;
  /** Picks the subprotocol from those the client offered; false selects none. Default: the first. */
  handleProtocols?: (protocols: Set<string>, request: IncomingMessage) => string | false;
  /** Keep open connections in `clients` (default true). */
  clientTracking?: boolean;
  /** permessage-deflate (RFC 7692): off by default, as in `ws`; `true` or options turn it on. */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
  /** Carries topics across servers (default: a `MemoryAdapter` of this server's own). */
  pubsub?: PubSubAdapter;
  /**
   * Ping every client every `interval` ms and terminate one that sent nothing back within
   * `timeout` ms, emitting 'timeout' (ws, 'heartbeat'). Off by default. One timer per server.
   */
  heartbeat?: HeartbeatOptions;
  /**
   * Close a connection with 1001 'Idle timeout' after this many ms without a frame either way
   * (measured in quarters: between 1 and 1.25 times the value), emitting 'timeout' (ws, 'idle').
   * Off by default.
   */
  idleTimeout?: number;
  /**
   * A client whose `bufferedAmount` is over this many bytes when a broadcast or publish
   * reaches it is a slow consumer (default 16 MiB; 0 for no limit).
   */
  maxBufferedAmount?: number;
  /**
   * What happens to a slow consumer: `'close'` (default) closes it with 1013 (Try Again
   * Later) so it can reconnect and resync; `'skip'` leaves it out of that message. Either way
   * 'slowConsumer' (ws) is emitted and server memory stays bounded.
   */
  slowConsumer?: 'close' | 'skip';
  /** The class connections are made of: a subclass of weft's WebSocket. */
  WebSocket?: new (
    address: null,
    protocols?: undefined,
    options?: ConnectionOptions,
  ) => W;
}

/** The events of a WebSocketServer and their arguments. */
export interface WebSocketServerEventMap<W extends WebSocket = WebSocket> {
  connection: [socket: W, request: IncomingMessage];
  /** The response headers are about to be written; they may be changed. */
  headers: [headers: string[], request: IncomingMessage];
  listening: [];
  error: [error: Error];
  /** A handshake was invalid; with a listener, answering the socket is the listener's job. */
  wsClientError: [error: Error, socket: Duplex, request: IncomingMessage];
  /** A liveness check cut a connection: a heartbeat went unanswered, or it sat idle. */
  timeout: [socket: W, reason: TimeoutReason];
  /** A broadcast or publish found this client over `maxBufferedAmount`. */
  slowConsumer: [socket: W];
  close: [];
}

/** Options of `broadcast`. */
export interface BroadcastOptions<W extends WebSocket = WebSocket> extends PublishOptions {
  /** Only clients for which this returns true. */
  filter?: (socket: W) => boolean;
}

/** Options of the graceful form of `close`. */
export interface ShutdownOptions {
  /** Close code sent to every client (default 1001, Going Away). */
  code?: number;
  /** Close reason sent to every client (default 'Server shutting down'). */
  reason?: string;
  /** Milliseconds to wait for clients to finish their closing handshakes before terminating the rest (default 5 000). */
  timeout?: number;
}

/** How long an upgrade may take by default: generous for an auth lookup, short for an attacker. */
const DEFAULT_HANDSHAKE_TIMEOUT = 10_000;
/** How far behind a client may fall on broadcasts before it counts as a slow consumer. */
const DEFAULT_MAX_BUFFERED_AMOUNT = 16 * 1024 * 1024;
const DEFAULT_SHUTDOWN_TIMEOUT = 5_000;

const RUNNING = 0;
const CLOSING = 1;
const CLOSED = 2;

/** An upgrade request that passed the protocol checks, on its way to an answer. */
interface PendingHandshake<W> {
  readonly request: IncomingMessage;
  readonly socket: Duplex;
  readonly head: Buffer;
  readonly check: HandshakeRequest;
  readonly deflate: PerMessageDeflate | undefined;
  readonly callback: (socket: W, request: IncomingMessage) => void;
}

/** Upgraded sockets, so a second `handleUpgrade` on one socket is caught. */
const upgradedSockets = new WeakSet<Duplex>();
/** weft servers attached to each HTTP server, so an upgrade none of them wants gets one answer. */
const serversByHttpServer = new WeakMap<http.Server | https.Server, WebSocketServer<WebSocket>[]>();

/** A WebSocket server with the API of `ws`'s WebSocketServer. */
export class WebSocketServer<W extends WebSocket = WebSocket> extends EventEmitter<
  WebSocketServerEventMap<W>
> {
  /** The open connections (when `clientTracking` is on). */
  readonly clients: Set<W>;
  readonly options: Readonly<ServerOptions<W>>;
  #server: http.Server | https.Server | null = null;
  #ownsServer = false;
  #state = RUNNING;
  #detach: (() => void) | null = null;
  readonly #pubsub: PubSubAdapter;
  /** This server as its adapter sees it. */
  readonly #node: PubSubNode = {
    deliver: (topic, data, isBinary) => {
      const subscribers = this.#topics.subscribers(topic);
      if (subscribers !== undefined) fanOut(subscribers, data, isBinary, {}, this.#slowPolicy);
    },
  };
  readonly #topics = new TopicRegistry(
    (topic) => this.#adapterCall(() => this.#pubsub.subscribe(this.#node, topic)),
    (topic) => this.#adapterCall(() => this.#pubsub.unsubscribe(this.#node, topic)),
  );
  /** This server as its connections see it: topics, and forgetting a closed client. */
  readonly #hub: ServerHub = {
    subscribe: (socket, topic) => this.#topics.add(socket, topic),
    unsubscribe: (socket, topic) => this.#topics.remove(socket, topic),
    publish: (topic, data, options) => this.publish(topic, data, options),
    closed: (socket) => {
      if (this.options.clientTracking) this.#forgetClient(socket as W);
    },
  };
  readonly #slowPolicy: SlowConsumerPolicy;
  readonly #liveness: LivenessMonitor;
  /** What every connection of this server is set up with, made at the first connection. */
  #settings: ConnectionSettings | undefined;

  constructor(options: ServerOptions<W>, callback?: () => void) {
    super();
    const hasPort = options.port !== undefined && options.port !== null;
    const modes =
      Number(hasPort) +
      Number(options.server !== undefined && options.server !== null) +
      Number(options.noServer === true);
    if (modes !== 1) {
      throw new TypeError(
        'One and only one of the "port", "server", or "noServer" options must be specified',
      );
    }
    this.options = { maxPayload: DEFAULT_MAX_PAYLOAD, clientTracking: true, ...options };
    if (typeof options.perMessageDeflate === 'object')
      validateDeflateOptions(options.perMessageDeflate);
    this.clients = new Set();

    const slowConsumer = options.slowConsumer ?? 'close';
    this.#slowPolicy = {
      maxBufferedAmount: options.maxBufferedAmount ?? DEFAULT_MAX_BUFFERED_AMOUNT,
      onSlow: (socket) => {
        this.emit('slowConsumer', socket as W);
        if (slowConsumer === 'close')
          socket.close(CloseCode.TryAgainLater, 'Slow consumer: too far behind');
      },
    };
    this.#liveness = new LivenessMonitor(
      () => this.clients,
      (socket, reason) => {
        this.emit('timeout', socket as W, reason);
        if (reason === 'heartbeat') socket.terminate();
        else socket.close(CloseCode.GoingAway, 'Idle timeout');
      },
    );
    if (options.heartbeat !== undefined) this.#liveness.startHeartbeat(options.heartbeat);
    if (options.idleTimeout !== undefined && options.idleTimeout > 0) {
      this.#liveness.startIdleTimeout(options.idleTimeout);
    }
    this.#pubsub = options.pubsub ?? new MemoryAdapter();
    this.#adapterCall(() => this.#pubsub.attach(this.#node));

    if (hasPort) {
      const timeout = options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT;
      const limits: http.ServerOptions =
        timeout > 0
          ? {
              headersTimeout: timeout,
              requestTimeout: timeout,
              connectionsCheckingInterval: Math.min(timeout, 1000),
            }
          : {};
      const server = http.createServer(limits, (_request, response) => {
        const body = STATUS_CODES[426] ?? 'Upgrade Required';
        // 426 must name the protocol to upgrade to (RFC 9110 §15.5.22); a WebSocket-only
        // server has no use for an idle keep-alive connection.
        response.writeHead(426, {
          'Content-Length': Buffer.byteLength(body),
          'Content-Type': 'text/plain',
          Upgrade: 'websocket',
          Connection: 'close',
        });
        response.end(body);
      });
      this.#ownsServer = true;
      this.#attach(server);
      server.listen(options.port, options.host, options.backlog, callback);
    } else if (options.server) {
      this.#attach(options.server);
    }
  }

  /** The listening address of the underlying server. Throws in `noServer` mode. */
  address(): AddressInfo | string | null {
    if (this.options.noServer) throw new Error('The server is operating in "noServer" mode');
    return this.#server?.address() ?? null;
  }

  /** Whether an upgrade request is for this server (its `path`). */
  shouldHandle(request: IncomingMessage): boolean {
    const path = this.options.path;
    if (path === undefined) return true;
    const url = request.url ?? '/';
    const query = url.indexOf('?');
    return (query === -1 ? url : url.slice(0, query)) === path;
  }

  /**
   * Completes the opening handshake on `socket`, or answers it with an HTTP error. On
   * success `callback` gets the open WebSocket.
   */
  handleUpgrade(
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    callback: (socket: W, request: IncomingMessage) => void,
  ): void {
    const check = checkUpgradeRequest(request);
    if (!check.ok) {
      this.#refuseAtOnce(request, socket, check.status, check.message, check.headers);
      return;
    }
    let deflate: PerMessageDeflate | undefined;
    try {
      deflate = this.#negotiateDeflate(request.headers['sec-websocket-extensions']);
    } catch (error) {
      this.#refuseAtOnce(
        request,
        socket,
        400,
        `Invalid or unacceptable Sec-WebSocket-Extensions header: ${(error as Error).message}`,
      );
      return;
    }
    const handshake: PendingHandshake<W> = { request, socket, head, check, deflate, callback };
    if (this.options.origins === undefined && this.options.verifyClient === undefined) {
      // Nothing to decide: no timer, no listeners, no closures for the common handshake.
      this.#completeUpgrade(handshake);
      return;
    }
    this.#decide(handshake);
  }

  /** A client error found before any decision: the answer goes out at once. */
  #refuseAtOnce(
    request: IncomingMessage,
    socket: Duplex,
    status: number,
    message: string,
    headers?: OutgoingHttpHeaders,
  ): void {
    socket.on('error', destroySocket);
    this.#refuse(request, socket, status, message, headers, true);
  }

  /** Runs the origin policy and `verifyClient`, which may answer later, under the timer. */
  #decide(handshake: PendingHandshake<W>): void {
    const { request, socket } = handshake;
    socket.on('error', destroySocket);
    // Every path below ends in exactly one of refuse() and accept(); the timer bounds how
    // long a handshake may wait on origin and verifyClient decisions.
    let settled = false;
    const timeout = this.options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT;
    const timer =
      timeout > 0 ? setTimeout(() => refuse(408, 'WebSocket handshake timed out'), timeout) : null;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      if (timer !== null) clearTimeout(timer);
      socket.removeListener('close', abandon);
      return true;
    };
    // A client that leaves while a decision is pending ends the handshake (and its timer).
    const abandon = (): void => {
      settle();
    };
    socket.once('close', abandon);
    const refuse = (status: number, message?: string, headers?: OutgoingHttpHeaders): void => {
      if (settle()) this.#refuse(request, socket, status, message, headers, false);
    };
    const failed = (what: string, error: unknown): void => {
      if (this.listenerCount('error') > 0) {
        this.emit('error', error instanceof Error ? error : new Error(`${what}: ${String(error)}`));
      }
      refuse(500, `${what} failed`);
    };
    const accept = (): void => {
      if (!settle()) return;
      socket.removeListener('error', destroySocket);
      this.#completeUpgrade(handshake);
    };
    const verify = (): void => {
      const verifyClient = this.options.verifyClient;
      if (verifyClient === undefined) {
        accept();
        return;
      }
      const info: VerifyClientInfo = {
        origin: requestOrigin(request),
        secure: Boolean(
          (request.socket as TLSSocket).authorized || (request.socket as TLSSocket).encrypted,
        ),
        req: request,
      };
      try {
        if (verifyClient.length === 2) {
          (verifyClient as VerifyClientAsync)(info, (verified, code = 401, message, headers) => {
            if (verified) accept();
            else refuse(code, message, headers);
          });
        } else if ((verifyClient as VerifyClientSync)(info)) {
          accept();
        } else {
          refuse(401);
        }
      } catch (error) {
        failed('verifyClient', error);
      }
    };

    const origins = this.options.origins;
    if (origins === undefined) {
      verify();
      return;
    }
    let allowed: boolean | Promise<boolean>;
    try {
      allowed = checkOrigin(request, origins);
    } catch (error) {
      failed('The origin check', error);
      return;
    }
    const decide = (ok: boolean): void => (ok ? verify() : refuse(403, 'Origin not allowed'));
    if (typeof allowed === 'boolean') decide(allowed);
    else allowed.then(decide, (error: unknown) => failed('The origin check', error));
  }

  #forgetClient(ws: W): void {
    this.clients.delete(ws);
    if (
      this.#state === CLOSING &&
      this.clients.size === 0 &&
      (!this.#ownsServer || this.#server === null)
    )
      this.#emitClose();
  }

  #completeUpgrade(handshake: PendingHandshake<W>): void {
    const { request, socket, head, deflate, callback } = handshake;
    const protocols = handshake.check.protocols;
    if (!socket.readable || !socket.writable) {
      socket.destroy();
      return;
    }
    if (upgradedSockets.has(socket)) {
      throw new Error(
        'server.handleUpgrade() was called more than once with the same socket, possibly due to a misconfiguration',
      );
    }
    if (this.#state !== RUNNING) {
      rejectHandshake(socket, 503, 'The WebSocket server is shutting down');
      return;
    }
    upgradedSockets.add(socket);

    const headers = [
      'HTTP/1.1 101 Switching Protocols',
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Accept: ${acceptKey(handshake.check.key)}`,
    ];
    let protocol = '';
    if (protocols.size > 0) {
      const chosen = this.options.handleProtocols
        ? this.options.handleProtocols(protocols as Set<string>, request)
        : protocols.values().next().value;
      if (typeof chosen === 'string' && chosen !== '') {
        protocol = chosen;
        headers.push(`Sec-WebSocket-Protocol: ${protocol}`);
      }
    }
    if (deflate !== undefined) headers.push(`Sec-WebSocket-Extensions: ${deflate.header}`);
    this.emit('headers', headers, request);
    socket.write(`${headers.join('\r\n')}\r\n\r\n`);

    const options = this.options;
    const WebSocketClass =
      options.WebSocket ?? (WebSocket as unknown as NonNullable<ServerOptions<W>['WebSocket']>);
    // Every connection shares the server's settings object (a subclass gets it as its options).
    this.#settings ??= connectionSettings(options, true);
    const ws = new WebSocketClass(null, undefined, this.#settings);
    ws.setSocket(socket, head, { protocol, hub: this.#hub, perMessageDeflate: deflate });
    // The connection tells the hub when it closes (before its 'close' listeners run): no
    // listener of ours on each connection.
    // (A socket that died during setSocket has closed already: nothing to track.)
    if (options.clientTracking && ws.readyState !== WebSocket.CLOSED) this.clients.add(ws);
    callback(ws, request);
  }

  /**
   * Sends one message to every open client (`except` and `filter` narrow it down), building
   * the frame once. Clients over `maxBufferedAmount` are handled as slow consumers.
   * Returns how many clients it was sent to. Needs `clientTracking`.
   */
  broadcast(data: SendableData, options: BroadcastOptions<W> = {}): number {
    if (!this.options.clientTracking) {
      throw new Error('broadcast() needs clientTracking: it sends to wss.clients');
    }
    const payload = payloadOf(data, 'broadcast');
    const binary = options.binary ?? isBinaryData(data);
    return fanOut(this.clients, payload, binary, options as FanOutOptions, this.#slowPolicy);
  }

  /**
   * Sends one message to every subscriber of `topic`: on this server at once (frame built
   * once), and on every other server through the `pubsub` adapter. The promise settles when
   * the adapter took it; it rejects if the adapter fails (and 'error' is emitted), so a
   * publish during an outage is never lost silently.
   */
  publish(topic: string, data: SendableData, options: PublishOptions = {}): Promise<void> {
    const payload = payloadOf(data, 'publish');
    const binary = options.binary ?? isBinaryData(data);
    const local = this.#topics.subscribers(topic);
    if (local !== undefined) fanOut(local, payload, binary, options, this.#slowPolicy);
    return this.#adapterCall(() => this.#pubsub.publish(this.#node, topic, payload, binary));
  }

  /** How many connections of this server are subscribed to `topic`. */
  subscriberCount(topic: string): number {
    return this.#topics.count(topic);
  }

  /**
   * Runs an adapter step: its failure rejects the returned promise and is emitted as 'error'
   * (when listened); a caller that ignores the promise gets no unhandled rejection.
   */
  #adapterCall(step: () => MaybePromise<void>): Promise<void> {
    const result = (async () => step())();
    result.catch((error: unknown) => {
      if (this.listenerCount('error') > 0) {
        this.emit('error', error instanceof Error ? error : new Error(String(error)));
      }
    });
    return result;
  }

  /** The codec for an accepted permessage-deflate offer; throws on a malformed header. */
  #negotiateDeflate(header: string | undefined): PerMessageDeflate | undefined {
    const setting = this.options.perMessageDeflate;
    if (header === undefined || setting === undefined || setting === false) return undefined;
    const options = setting === true ? {} : setting;
    const accepted = acceptOffers(parseExtensions(header), options);
    return accepted === null
      ? undefined
      : new PerMessageDeflate(accepted.params, true, options, accepted.response);
  }

  #refuse(
    request: IncomingMessage,
    socket: Duplex,
    status: number,
    message: string | undefined,
    headers: OutgoingHttpHeaders | undefined,
    clientError: boolean,
  ): void {
    if (clientError && this.listenerCount('wsClientError') > 0) {
      this.emit(
        'wsClientError',
        new Error(message ?? STATUS_CODES[status] ?? 'Invalid handshake'),
        socket,
        request,
      );
      return;
    }
    rejectHandshake(socket, status, message, headers);
  }

  /**
   * Stops accepting connections. Open connections are not closed (as in `ws`); 'close' is
   * emitted once they are all gone (and the server this instance created is closed).
   */
  close(callback?: (error?: Error) => void): void;
  /**
   * Graceful shutdown: stops accepting, sends every client a close frame (1001 by default),
   * waits up to `timeout` ms for their closing handshakes, terminates the rest, and resolves
   * once the server is closed.
   */
  close(options: ShutdownOptions): Promise<void>;
  close(arg?: ((error?: Error) => void) | ShutdownOptions): void | Promise<void> {
    if (typeof arg === 'object') return this.#shutdown(arg);
    const callback = arg;
    if (this.#state === CLOSED) {
      if (callback) process.nextTick(callback, new Error('The server is not running'));
      return;
    }
    if (callback) this.once('close', callback);
    if (this.#state === CLOSING) return;
    this.#state = CLOSING;
    this.#liveness.stop();
    this.#detach?.();
    this.#detach = null;
    const server = this.#server;
    if (this.#ownsServer && server !== null) {
      server.close(() => {
        this.#server = null;
        if (this.clients.size === 0 || !this.options.clientTracking) this.#emitClose();
      });
      return;
    }
    if (this.options.noServer || !this.options.clientTracking || this.clients.size === 0) {
      process.nextTick(() => this.#emitClose());
    }
  }

  async #shutdown(options: ShutdownOptions): Promise<void> {
    const closed = new Promise<void>((resolve) => {
      if (this.#state === CLOSED) resolve();
      else this.once('close', () => resolve());
    });
    const clients = [...this.clients];
    this.close();
    const code = options.code ?? CloseCode.GoingAway;
    const reason = options.reason ?? 'Server shutting down';
    const gone = clients.map(
      (client) =>
        new Promise<void>((resolve) => {
          if (client.readyState === WebSocket.CLOSED) resolve();
          else client.once('close', () => resolve());
        }),
    );
    for (const client of clients) client.close(code, reason);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), options.timeout ?? DEFAULT_SHUTDOWN_TIMEOUT);
    });
    const outcome = await Promise.race([Promise.all(gone), deadline]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      for (const client of clients) client.terminate();
      await Promise.all(gone);
    }
    await closed;
  }

  #emitClose(): void {
    if (this.#state === CLOSED) return;
    this.#state = CLOSED;
    this.#adapterCall(() => this.#pubsub.detach(this.#node));
    this.emit('close');
  }

  #attach(server: http.Server | https.Server): void {
    this.#server = server;
    const siblings = serversByHttpServer.get(server) ?? [];
    siblings.push(this as unknown as WebSocketServer<WebSocket>);
    serversByHttpServer.set(server, siblings);

    const onListening = (): void => {
      this.emit('listening');
    };
    const onError = (error: Error): void => {
      this.emit('error', error);
    };
    const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
      if (this.shouldHandle(request)) {
        this.handleUpgrade(request, socket, head, (ws) => this.emit('connection', ws, request));
        return;
      }
      // Another weft server on this HTTP server, or a foreign 'upgrade' listener, may own
      // the path; the first weft server answers an upgrade nobody wants with 404.
      const all = serversByHttpServer.get(server) ?? [];
      if (all[0] !== (this as unknown as WebSocketServer<WebSocket>)) return;
      if (all.some((other) => other.shouldHandle(request))) return;
      if (server.listenerCount('upgrade') > all.length) return;
      socket.on('error', destroySocket);
      rejectHandshake(socket, 404, 'No WebSocket endpoint at this path');
    };
    server.on('listening', onListening);
    server.on('error', onError);
    server.on('upgrade', onUpgrade);
    this.#detach = () => {
      server.removeListener('listening', onListening);
      server.removeListener('error', onError);
      server.removeListener('upgrade', onUpgrade);
      const remaining = (serversByHttpServer.get(server) ?? []).filter(
        (other) => other !== (this as unknown as WebSocketServer<WebSocket>),
      );
      serversByHttpServer.set(server, remaining);
    };
  }
}

/** As in `send`: strings and numbers go as text, everything else as binary. */
function isBinaryData(data: SendableData): boolean {
  return typeof data !== 'string' && typeof data !== 'number';
}

function payloadOf(data: SendableData, method: string): Buffer {
  if (isBlob(data)) {
    throw new TypeError(
      `${method}() takes a string, Buffer, ArrayBuffer or view; read a Blob first`,
    );
  }
  return toBuffer(typeof data === 'number' ? String(data) : data);
}

function destroySocket(this: Duplex): void {
  this.destroy();
}
