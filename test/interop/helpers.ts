// Shared helpers for the interop tests: start servers on 127.0.0.1:0, connect
// clients of either engine, await events with a timeout (a broken engine fails
// a test instead of hanging it) and tear everything down after each test.
//
// The two engines are used through small structural interfaces (`Peer`,
// `ServerLike`) so that one test body can drive a weft socket and a ws socket
// alike; both engines expose the ws API, so both fit these interfaces.

import { createHash, randomBytes } from 'node:crypto';
import type { Server as HttpServer, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocket, WebSocketServer } from '@weft/core';
import { WebSocket as WsClient, WebSocketServer as WsServer } from 'ws';

export const HOST = '127.0.0.1';
export const DEFAULT_TIMEOUT = 5_000;

export const CONNECTING = 0;
export const OPEN = 1;
export const CLOSING = 2;
export const CLOSED = 3;

// ---------------------------------------------------------------------------
// Structural types shared by both engines
// ---------------------------------------------------------------------------

// `never[]` accepts a listener of any signature.
export type Listener = (...args: never[]) => void;

export interface Emitter {
  on(event: string, listener: Listener): unknown;
  once(event: string, listener: Listener): unknown;
  removeListener(event: string, listener: Listener): unknown;
}

export type RawData = Buffer | ArrayBuffer | Buffer[];
export type SendData = string | Buffer | ArrayBuffer | ArrayBufferView;
export type BinaryType = 'nodebuffer' | 'arraybuffer' | 'fragments' | 'blob';

export interface SendOptions {
  binary?: boolean;
  fin?: boolean;
  compress?: boolean;
}

export type WriteCallback = (err?: Error | null) => void;

/** A WebSocket of either engine, on either side of a connection. */
export interface Peer extends Emitter {
  readonly readyState: number;
  readonly protocol: string;
  readonly extensions: string;
  binaryType: BinaryType;
  send(data: SendData, cb?: WriteCallback): void;
  send(data: SendData, options: SendOptions, cb?: WriteCallback): void;
  ping(data?: SendData, mask?: boolean, cb?: WriteCallback): void;
  pong(data?: SendData, mask?: boolean, cb?: WriteCallback): void;
  close(code?: number, reason?: string | Buffer): void;
  terminate(): void;
}

/** A WebSocketServer of either engine. */
export interface ServerLike extends Emitter {
  readonly clients: Set<Peer>;
  address(): AddressInfo | string | null;
  close(cb?: (err?: Error) => void): void;
}

export type Engine = 'weft' | 'ws';

export interface VerifyInfo {
  origin: string | undefined;
  secure: boolean;
  req: IncomingMessage;
}
export type VerifyClientSync = (info: VerifyInfo) => boolean;
/**
 * permessage-deflate options (RFC 7692) as both engines name them; window bits
 * are numbers here (ws types them so).
 */
export interface DeflateOpts {
  serverNoContextTakeover?: boolean;
  clientNoContextTakeover?: boolean;
  serverMaxWindowBits?: number;
  clientMaxWindowBits?: number;
  zlibDeflateOptions?: { level?: number; memLevel?: number; strategy?: number };
  zlibInflateOptions?: { chunkSize?: number };
  threshold?: number;
  concurrencyLimit?: number;
}

export type VerifyClientAsync = (
  info: VerifyInfo,
  cb: (result: boolean, code?: number, message?: string) => void,
) => void;

/** The server options the tests use (a subset common to both engines). */
export interface ServerOpts {
  path?: string;
  autoPong?: boolean;
  clientTracking?: boolean;
  maxPayload?: number;
  perMessageDeflate?: boolean | DeflateOpts;
  handleProtocols?: (protocols: Set<string>, req: IncomingMessage) => string | false;
  verifyClient?: VerifyClientSync | VerifyClientAsync;
}

/** The client options the tests use (a subset common to both engines). */
export interface ClientOpts {
  autoPong?: boolean;
  headers?: Record<string, string>;
  origin?: string;
  ca?: string | Buffer;
  rejectUnauthorized?: boolean;
  maxPayload?: number;
  perMessageDeflate?: boolean | DeflateOpts;
}

export interface Direction {
  name: string;
  client: Engine;
  server: Engine;
}

export const DIRECTIONS: readonly Direction[] = [
  { name: 'weft client <-> ws server', client: 'weft', server: 'ws' },
  { name: 'ws client <-> weft server', client: 'ws', server: 'weft' },
];

export const WEFT_SERVER: Direction = DIRECTIONS[1]!;
export const WEFT_CLIENT: Direction = DIRECTIONS[0]!;

// ---------------------------------------------------------------------------
// Resource tracking and cleanup
// ---------------------------------------------------------------------------

const trackedSockets = new Set<Peer>();
const trackedServers = new Set<ServerLike>();
const trackedHttpServers = new Set<HttpServer | HttpsServer>();
const pendingWaits = new Set<() => void>();

export function track<T extends Peer>(ws: T): T {
  trackedSockets.add(ws);
  return ws;
}

export function trackServer<T extends ServerLike>(server: T): T {
  trackedServers.add(server);
  return server;
}

export function trackHttpServer<T extends HttpServer | HttpsServer>(server: T): T {
  trackedHttpServers.add(server);
  return server;
}

/**
 * Register `cancel` (e.g. clearing a test's own timer) to run at the start of
 * the next cleanup. Returns a function that unregisters it.
 */
export function onCleanup(cancel: () => void): () => void {
  pendingWaits.add(cancel);
  return () => {
    pendingWaits.delete(cancel);
  };
}

/**
 * A promise settled by calling `settle`, rejected after `timeout` ms; its
 * timer is cleared on settle or at cleanup.
 */
export function deferred<T>(
  what: string,
  timeout = DEFAULT_TIMEOUT,
): { promise: Promise<T>; settle: (value: T) => void } {
  let settle: (value: T) => void = () => {};
  const promise = new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      unregister();
      reject(new Error(`timed out after ${timeout} ms: ${what}`));
    }, timeout);
    const unregister = onCleanup(() => clearTimeout(timer));
    settle = (value: T) => {
      clearTimeout(timer);
      unregister();
      resolve(value);
    };
  });
  return { promise, settle };
}

const noop = (): void => {};

/** Terminate a socket and wait (bounded) for its 'close' event. */
async function shutdownSocket(ws: Peer): Promise<void> {
  if (ws.readyState === CLOSED) return;
  // A ws socket throws on an 'error' without listener; terminating a socket
  // that is still connecting emits one.
  ws.on('error', noop);
  const closed = waitEvent(ws, 'close', 2_000);
  ws.terminate();
  await closed;
}

function closeServer(server: ServerLike): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server.close() did not call back')), 2_000);
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function closeHttpServer(server: HttpServer | HttpsServer): Promise<void> {
  return new Promise<void>((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

/**
 * Close every socket and server opened by the current test, cancel pending
 * waits and their timers. Call from `afterEach`. Throws (after cleaning up
 * everything it can) when a socket or server did not close.
 */
export async function cleanup(): Promise<void> {
  for (const cancel of [...pendingWaits]) cancel();
  pendingWaits.clear();

  const problems: string[] = [];
  const record = (what: string) => (result: PromiseSettledResult<void>) => {
    if (result.status === 'rejected') problems.push(`${what}: ${String(result.reason)}`);
  };

  const sockets = new Set<Peer>(trackedSockets);
  trackedSockets.clear();
  for (const server of trackedServers) {
    // `clients` is undefined with clientTracking: false.
    for (const c of server.clients ?? []) sockets.add(c);
  }
  (await Promise.allSettled([...sockets].map(shutdownSocket))).forEach(record('socket'));

  const servers = [...trackedServers];
  trackedServers.clear();
  (await Promise.allSettled(servers.map(closeServer))).forEach(record('server'));

  const httpServers = [...trackedHttpServers];
  trackedHttpServers.clear();
  (await Promise.allSettled(httpServers.map(closeHttpServer))).forEach(record('http server'));

  if (problems.length > 0) throw new Error(`cleanup failed:\n${problems.join('\n')}`);
}

// ---------------------------------------------------------------------------
// Waiting for events
// ---------------------------------------------------------------------------

/**
 * Resolve with the arguments of the next `event` on `emitter`; reject after
 * `timeout` ms. The caller asserts the argument types with `T`.
 */
export function waitEvent<T extends unknown[] = unknown[]>(
  emitter: Emitter,
  event: string,
  timeout = DEFAULT_TIMEOUT,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const finish = (): void => {
      clearTimeout(timer);
      emitter.removeListener(event, onEvent);
      pendingWaits.delete(finish);
    };
    const onEvent = (...args: unknown[]): void => {
      finish();
      resolve(args as T);
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`timed out after ${timeout} ms waiting for '${event}'`));
    }, timeout);
    pendingWaits.add(finish);
    emitter.once(event, onEvent);
  });
}

/** Poll `predicate` until it holds; reject after `timeout` ms. */
export function waitUntil(
  predicate: () => boolean,
  what: string,
  timeout = DEFAULT_TIMEOUT,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const finish = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      pendingWaits.delete(finish);
    };
    const check = (): void => {
      if (predicate()) {
        finish();
        resolve();
      } else if (Date.now() - started > timeout) {
        finish();
        reject(new Error(`timed out after ${timeout} ms waiting until ${what}`));
      } else {
        timer = setTimeout(check, 5);
      }
    };
    pendingWaits.add(finish);
    check();
  });
}

/** Wait for 'open'; reject early on 'error' or 'close'. */
export function waitOpen(ws: Peer, timeout = DEFAULT_TIMEOUT): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const finish = (): void => {
      clearTimeout(timer);
      ws.removeListener('open', onOpen);
      ws.removeListener('error', onError);
      ws.removeListener('close', onClose);
      pendingWaits.delete(finish);
    };
    const onOpen = (): void => {
      finish();
      resolve();
    };
    const onError = (err: Error): void => {
      finish();
      reject(new Error(`connection failed before 'open': ${err.message}`));
    };
    const onClose = (code: number): void => {
      finish();
      reject(new Error(`connection closed (${code}) before 'open'`));
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`timed out after ${timeout} ms waiting for 'open'`));
    }, timeout);
    pendingWaits.add(finish);
    ws.once('open', onOpen);
    ws.once('error', onError);
    ws.once('close', onClose);
  });
}

/** Collect the arguments of the next `count` `event`s. */
export function collectEvents<T extends unknown[] = unknown[]>(
  emitter: Emitter,
  event: string,
  count: number,
  timeout = DEFAULT_TIMEOUT,
): Promise<T[]> {
  return new Promise<T[]>((resolve, reject) => {
    const seen: T[] = [];
    const finish = (): void => {
      clearTimeout(timer);
      emitter.removeListener(event, onEvent);
      pendingWaits.delete(finish);
    };
    const onEvent = (...args: unknown[]): void => {
      seen.push(args as T);
      if (seen.length === count) {
        finish();
        resolve(seen);
      }
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`timed out after ${timeout} ms: got ${seen.length} of ${count} '${event}'`));
    }, timeout);
    pendingWaits.add(finish);
    emitter.on(event, onEvent);
  });
}

export interface Message {
  data: RawData;
  isBinary: boolean;
}

/** Collect the next `count` 'message' events. */
export async function collectMessages(
  ws: Peer,
  count: number,
  timeout = DEFAULT_TIMEOUT,
): Promise<Message[]> {
  const events = await collectEvents<[RawData, boolean]>(ws, 'message', count, timeout);
  return events.map(([data, isBinary]) => ({ data, isBinary }));
}

export async function nextMessage(ws: Peer, timeout = DEFAULT_TIMEOUT): Promise<Message> {
  const [message] = await collectMessages(ws, 1, timeout);
  return message!;
}

export interface CloseInfo {
  code: number;
  /** The reason as the engine passed it (ws: a Buffer). */
  rawReason: unknown;
  reason: string;
}

export async function waitClose(ws: Emitter, timeout = DEFAULT_TIMEOUT): Promise<CloseInfo> {
  const [code, rawReason] = await waitEvent<[number, unknown]>(ws, 'close', timeout);
  const reason = Buffer.isBuffer(rawReason) ? rawReason.toString('utf8') : String(rawReason);
  return { code, rawReason, reason };
}

// ---------------------------------------------------------------------------
// Servers and clients
// ---------------------------------------------------------------------------

export interface StartedServer {
  server: ServerLike;
  port: number;
  url: string;
}

function portOf(address: AddressInfo | string | null): number {
  if (address === null || typeof address === 'string') {
    throw new Error(`unexpected server address: ${String(address)}`);
  }
  return address.port;
}

/** Start a WebSocketServer of `engine` on 127.0.0.1 with an ephemeral port. */
export async function startServer(engine: Engine, opts: ServerOpts = {}): Promise<StartedServer> {
  const options = { host: HOST, port: 0, ...opts };
  const server: ServerLike = trackServer(
    engine === 'weft' ? new WebSocketServer(options) : new WsServer(options),
  );
  await waitEvent(server, 'listening');
  const port = portOf(server.address());
  return { server, port, url: `ws://${HOST}:${port}` };
}

/** Attach a WebSocketServer of `engine` to an existing HTTP(S) server. */
export function attachServer(
  engine: Engine,
  httpServer: HttpServer | HttpsServer,
  opts: ServerOpts = {},
): ServerLike {
  const options = { server: httpServer, ...opts };
  return trackServer(engine === 'weft' ? new WebSocketServer(options) : new WsServer(options));
}

/** Listen on 127.0.0.1:0 and return the port. */
export async function listen(httpServer: HttpServer | HttpsServer): Promise<number> {
  trackHttpServer(httpServer);
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(0, HOST, () => {
      httpServer.removeListener('error', reject);
      resolve();
    });
  });
  return portOf(httpServer.address());
}

/** Create a client of `engine` (tracked for cleanup). */
export function connect(
  engine: Engine,
  url: string,
  protocols?: string | string[],
  opts: ClientOpts = {},
): Peer {
  return track(
    engine === 'weft' ? new WebSocket(url, protocols, opts) : new WsClient(url, protocols, opts),
  );
}

export interface Pair {
  server: ServerLike;
  port: number;
  url: string;
  client: Peer;
  /** The server side of the connection. */
  serverSide: Peer;
  req: IncomingMessage;
  /** The client's TCP socket, from its 'upgrade' event (if it emitted one). */
  clientSocket: Socket | undefined;
  /** The server's 101 answer, from the client's 'upgrade' event (if it emitted one). */
  upgradeResponse: IncomingMessage | undefined;
}

export interface PairOptions {
  server?: ServerOpts;
  client?: ClientOpts;
  protocols?: string | string[];
  /** Appended to the server URL, e.g. '/chat?x=1'. */
  path?: string;
}

/** Start a server, connect a client, and resolve once both sides are open. */
export async function openPair(dir: Direction, options: PairOptions = {}): Promise<Pair> {
  const { server, port, url } = await startServer(dir.server, options.server);
  const connection = waitEvent<[Peer, IncomingMessage]>(server, 'connection');
  const client = connect(dir.client, url + (options.path ?? ''), options.protocols, options.client);
  let clientSocket: Socket | undefined;
  let upgradeResponse: IncomingMessage | undefined;
  client.once('upgrade', (res: IncomingMessage) => {
    clientSocket = res.socket;
    upgradeResponse = res;
  });
  const [[serverSide, req]] = await Promise.all([connection, waitOpen(client)]);
  track(serverSide);
  return { server, port, url, client, serverSide, req, clientSocket, upgradeResponse };
}

/** The [sender, receiver] of a pair for a given sending side. */
export function endpoints(pair: Pair, sender: 'client' | 'server'): [Peer, Peer] {
  return sender === 'client' ? [pair.client, pair.serverSide] : [pair.serverSide, pair.client];
}

/** A port on 127.0.0.1 with nothing listening on it (bound, then released). */
export async function unusedPort(): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  const port = portOf(server.address());
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

// ---------------------------------------------------------------------------
// Raw HTTP upgrade requests (for handshake status codes)
// ---------------------------------------------------------------------------

export interface RawResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * Send an HTTP GET with WebSocket upgrade headers (overridable; a header set
 * to `null` is omitted) and return the response. A 101 answer is reported
 * with an empty body and its socket destroyed.
 */
export function rawUpgrade(
  port: number,
  path: string,
  overrides: Record<string, string | null> = {},
  timeout = DEFAULT_TIMEOUT,
): Promise<RawResponse> {
  const headers: Record<string, string> = {};
  const defaults: Record<string, string> = {
    Connection: 'Upgrade',
    Upgrade: 'websocket',
    'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
    'Sec-WebSocket-Version': '13',
  };
  for (const [name, value] of Object.entries({ ...defaults, ...overrides })) {
    if (value !== null) headers[name] = value;
  }
  return rawRequest(port, path, headers, timeout);
}

/** Plain HTTP GET without keep-alive. */
export function rawRequest(
  port: number,
  path: string,
  headers: Record<string, string>,
  timeout = DEFAULT_TIMEOUT,
): Promise<RawResponse> {
  return new Promise<RawResponse>((resolve, reject) => {
    const req = httpRequest({ host: HOST, port, path, method: 'GET', headers, agent: false });
    const finish = (): void => {
      clearTimeout(timer);
      pendingWaits.delete(finish);
    };
    const timer = setTimeout(() => {
      finish();
      req.destroy();
      reject(new Error(`timed out after ${timeout} ms waiting for an HTTP response`));
    }, timeout);
    pendingWaits.add(finish);
    req.on('upgrade', (res, socket) => {
      finish();
      socket.destroy();
      resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: '' });
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        finish();
        resolve({
          statusCode: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        });
      });
      res.on('error', (err) => {
        finish();
        reject(err);
      });
    });
    req.on('error', (err) => {
      finish();
      reject(err);
    });
    req.end();
  });
}

// ---------------------------------------------------------------------------
// Data helpers
// ---------------------------------------------------------------------------

/** Any received payload as one Buffer. */
export function toBuffer(data: RawData | string): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** Any payload we send, as the bytes that should go on the wire. */
export function bytesOf(data: SendData): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Encode one WebSocket frame by hand (payload < 126 bytes), to inject frames an
 * engine would never send itself.
 */
export function rawFrame(opcode: number, payload: Buffer, mask: boolean, fin = true): Buffer {
  if (payload.length >= 126) throw new RangeError('rawFrame supports payloads < 126 bytes');
  const head = Buffer.from([(fin ? 0x80 : 0) | opcode, (mask ? 0x80 : 0) | payload.length]);
  if (!mask) return Buffer.concat([head, payload]);
  const key = randomBytes(4);
  const masked = Buffer.from(payload.map((byte, i) => byte ^ key[i % 4]!));
  return Buffer.concat([head, key, masked]);
}

/**
 * Encode one WebSocket frame of any length by hand, RSV1 included, to inject
 * frames an engine would not send that way (e.g. hand-made compressed data).
 */
export function encodeFrame(
  opcode: number,
  payload: Buffer,
  options: { mask: boolean; fin?: boolean; rsv1?: boolean },
): Buffer {
  const { mask, fin = true, rsv1 = false } = options;
  let head: Buffer;
  if (payload.length < 126) {
    head = Buffer.from([0, payload.length]);
  } else if (payload.length < 0x10000) {
    head = Buffer.alloc(4);
    head[1] = 126;
    head.writeUInt16BE(payload.length, 2);
  } else {
    head = Buffer.alloc(10);
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  head[0] = (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode;
  if (!mask) return Buffer.concat([head, payload]);
  head[1]! |= 0x80;
  const key = randomBytes(4);
  const masked = Buffer.from(payload.map((byte, i) => byte ^ key[i & 3]!));
  return Buffer.concat([head, key, masked]);
}

// ---------------------------------------------------------------------------
// Watching frames on the wire
// ---------------------------------------------------------------------------

/** One frame as it crossed the wire; `payload` is unmasked and still compressed. */
export interface WireFrame {
  fin: boolean;
  rsv1: boolean;
  rsv2: boolean;
  rsv3: boolean;
  opcode: number;
  masked: boolean;
  payload: Buffer;
}

/** Parse one frame at the start of `bytes`; null while it is incomplete. */
export function parseWireFrame(bytes: Buffer): { frame: WireFrame; size: number } | null {
  if (bytes.length < 2) return null;
  const b0 = bytes[0]!;
  const b1 = bytes[1]!;
  let offset = 2;
  let length = b1 & 0x7f;
  if (length === 126) {
    if (bytes.length < 4) return null;
    length = bytes.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (bytes.length < 10) return null;
    length = Number(bytes.readBigUInt64BE(2));
    offset = 10;
  }
  const masked = (b1 & 0x80) !== 0;
  const keyAt = offset;
  if (masked) offset += 4;
  if (bytes.length < offset + length) return null;
  const payload = Buffer.from(bytes.subarray(offset, offset + length));
  if (masked) {
    for (let i = 0; i < payload.length; i++) payload[i]! ^= bytes[keyAt + (i & 3)]!;
  }
  return {
    frame: {
      fin: (b0 & 0x80) !== 0,
      rsv1: (b0 & 0x40) !== 0,
      rsv2: (b0 & 0x20) !== 0,
      rsv3: (b0 & 0x10) !== 0,
      opcode: b0 & 0x0f,
      masked,
      payload,
    },
    size: offset + length,
  };
}

export interface FrameTap {
  /** Every complete frame seen so far, in order. */
  readonly frames: WireFrame[];
  /** The data frames (text, binary, continuation) seen so far. */
  dataFrames(): WireFrame[];
  stop(): void;
}

/**
 * Record the frames arriving on `socket` (from the moment of the call; `head`
 * is bytes already read from it). The listener runs before the engine's and
 * copies each chunk, since engines unmask payloads in place.
 */
export function tapFrames(socket: Socket, head?: Buffer): FrameTap {
  const frames: WireFrame[] = [];
  let pending = head !== undefined && head.length > 0 ? Buffer.from(head) : Buffer.alloc(0);
  const parse = (): void => {
    for (;;) {
      const parsed = parseWireFrame(pending);
      if (parsed === null) return;
      frames.push(parsed.frame);
      pending = pending.subarray(parsed.size);
    }
  };
  const onData = (chunk: Buffer): void => {
    pending = Buffer.concat([pending, chunk]);
    parse();
  };
  parse();
  socket.prependListener('data', onData);
  const stop = (): void => {
    socket.removeListener('data', onData);
  };
  onCleanup(stop);
  return {
    frames,
    dataFrames: () => frames.filter((frame) => frame.opcode <= 0x2),
    stop,
  };
}

export interface RawUpgrade {
  response: IncomingMessage;
  socket: Socket;
  /** The frames the server sends on the upgraded socket. */
  tap: FrameTap;
}

/**
 * Perform the opening handshake by hand (an HTTP GET with upgrade headers,
 * `extraHeaders` added) and hand back the raw upgraded socket with a frame tap
 * on it. Rejects unless the server answers 101. The socket is destroyed at cleanup.
 */
export function rawWebSocket(
  port: number,
  path: string,
  extraHeaders: Record<string, string> = {},
  timeout = DEFAULT_TIMEOUT,
): Promise<RawUpgrade> {
  return new Promise<RawUpgrade>((resolve, reject) => {
    const headers: Record<string, string> = {
      Connection: 'Upgrade',
      Upgrade: 'websocket',
      'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
      'Sec-WebSocket-Version': '13',
      ...extraHeaders,
    };
    const req = httpRequest({ host: HOST, port, path, method: 'GET', headers, agent: false });
    const finish = (): void => {
      clearTimeout(timer);
      pendingWaits.delete(finish);
    };
    const timer = setTimeout(() => {
      finish();
      req.destroy();
      reject(new Error(`timed out after ${timeout} ms waiting for a 101 answer`));
    }, timeout);
    pendingWaits.add(finish);
    req.on('upgrade', (response: IncomingMessage, socket: Socket, head: Buffer) => {
      finish();
      onCleanup(() => socket.destroy());
      socket.on('error', noop);
      const tap = tapFrames(socket, head);
      // prependListener does not start the flow as on('data') would.
      socket.resume();
      resolve({ response, socket, tap });
    });
    req.on('response', (res) => {
      finish();
      res.resume();
      reject(new Error(`expected a 101 answer, got ${res.statusCode}`));
    });
    req.on('error', (err) => {
      finish();
      reject(err);
    });
    req.end();
  });
}

export interface FakeServer {
  port: number;
  url: string;
  /** The upgrade requests received so far, in order. */
  requests: IncomingMessage[];
}

/**
 * An HTTP server that accepts every WebSocket upgrade with a 101 answer it
 * completes with `extraHeaders(request)` (header lines, e.g.
 * 'Sec-WebSocket-Extensions: x'), then sends nothing: for testing how a client
 * judges the answer. Its sockets are destroyed at cleanup.
 */
export async function startFakeServer(
  extraHeaders: (request: IncomingMessage) => string[],
): Promise<FakeServer> {
  const requests: IncomingMessage[] = [];
  const server = createHttpServer((_req, res) => {
    res.writeHead(400).end();
  });
  server.on('upgrade', (request: IncomingMessage, socket: Socket) => {
    requests.push(request);
    onCleanup(() => socket.destroy());
    socket.on('error', noop);
    const key = String(request.headers['sec-websocket-key']);
    const accept = createHash('sha1')
      .update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
      .digest('base64');
    const lines = [
      'HTTP/1.1 101 Switching Protocols',
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Accept: ${accept}`,
      ...extraHeaders(request),
    ];
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  });
  const port = await listen(server);
  return { port, url: `ws://${HOST}:${port}`, requests };
}
