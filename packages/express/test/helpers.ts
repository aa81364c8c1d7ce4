// Shared test plumbing: real loopback servers on 127.0.0.1, real `ws` clients, and bounded
// waits (a broken server fails a test with a message instead of hanging the run).

import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import express5 from 'express';
import express4 from 'express4';
import { afterEach } from 'vitest';
import { WebSocket } from 'ws';
import type { WeftExpress } from '../src/index.js';

export const WAIT = 15_000; // generous: CI machines are shared and busy

/** Both majors the package supports, for `describe.each`. */
export const EXPRESS_VERSIONS = [
  ['express 5', express5],
  ['express 4', express4],
] as const;

export type ExpressFactory = typeof express5;

/** Rejects with a message naming what never happened, instead of waiting forever. */
export function within<T>(promise: Promise<T>, what: string, ms = WAIT): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A promise with its resolve function outside, to let a test decide when a step ends. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const cleanups: Array<() => Promise<void> | void> = [];

/** Runs `cleanup` after the current test, last registered first. */
export function onCleanup(cleanup: () => Promise<void> | void): void {
  cleanups.push(cleanup);
}

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Starts `server` on 127.0.0.1 and closes it (and `weftApp`, if given) after the test. */
export async function listen(server: http.Server, weftApp?: WeftExpress): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  onCleanup(async () => {
    await weftApp?.close({ timeout: 1_000 });
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  return `127.0.0.1:${port}`;
}

export interface Refusal {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export type Outcome = { opened: WebSocket } | { refused: Refusal };

/**
 * Messages each client received and nobody took yet: a server may send in the same packet as
 * its 101, and `ws` then emits 'message' right after 'open', before a test could listen.
 */
interface Inbox {
  messages: string[];
  waiting: Array<(message: string) => void>;
}
const inboxes = new WeakMap<WebSocket, Inbox>();

function collect(socket: WebSocket): void {
  const inbox: Inbox = { messages: [], waiting: [] };
  inboxes.set(socket, inbox);
  socket.on('message', (data) => {
    const taker = inbox.waiting.shift();
    if (taker) taker(String(data));
    else inbox.messages.push(String(data));
  });
}

/** Connects a `ws` client and reports whether it opened or got an HTTP answer instead. */
export function connect(url: string, options: WebSocket.ClientOptions = {}): Promise<Outcome> {
  const socket = new WebSocket(url, options);
  collect(socket);
  onCleanup(() => socket.terminate());
  const outcome = new Promise<Outcome>((resolve, reject) => {
    socket.once('open', () => resolve({ opened: socket }));
    socket.once('unexpected-response', (_request, response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
      });
      response.once('end', () =>
        resolve({
          refused: { status: response.statusCode ?? 0, headers: response.headers, body },
        }),
      );
    });
    socket.once('error', reject);
  });
  return within(outcome, `the handshake with ${url}`);
}

/** Connects and expects the WebSocket to open. */
export async function open(url: string, options?: WebSocket.ClientOptions): Promise<WebSocket> {
  const outcome = await connect(url, options);
  if ('refused' in outcome) {
    throw new Error(
      `expected ${url} to open, got ${outcome.refused.status} ${outcome.refused.body}`,
    );
  }
  return outcome.opened;
}

/** Connects and expects an HTTP answer instead of a WebSocket. */
export async function refused(url: string, options?: WebSocket.ClientOptions): Promise<Refusal> {
  const outcome = await connect(url, options);
  if ('opened' in outcome) throw new Error(`expected ${url} to be refused, but it opened`);
  return outcome.refused;
}

/** The next message `socket` received (or receives), as text. */
export function nextMessage(socket: WebSocket, what = 'a message'): Promise<string> {
  const inbox = inboxes.get(socket);
  if (inbox === undefined) throw new Error('nextMessage() needs a client made by connect()');
  const ready = inbox.messages.shift();
  if (ready !== undefined) return Promise.resolve(ready);
  return within(
    new Promise<string>((resolve) => {
      inbox.waiting.push(resolve);
    }),
    what,
  );
}

/** Resolves with the close code and reason once `socket` is closed. */
export function closed(socket: WebSocket): Promise<{ code: number; reason: string }> {
  if (socket.readyState === WebSocket.CLOSED) {
    return Promise.reject(new Error('already closed: attach closed() before closing'));
  }
  return within(
    new Promise((resolve) =>
      socket.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
    ),
    'the WebSocket to close',
  );
}

/**
 * Sends `request` (raw HTTP) over a plain TCP connection and resolves with everything the
 * server wrote before closing it: for handshakes a `ws` client would never send.
 */
export function rawExchange(host: string, request: string): Promise<string> {
  const [hostname, port] = host.split(':') as [string, string];
  const socket = net.connect(Number(port), hostname);
  onCleanup(() => {
    socket.destroy();
  });
  const answer = new Promise<string>((resolve, reject) => {
    let received = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      received += chunk;
    });
    socket.once('error', reject);
    socket.once('close', () => resolve(received));
    socket.write(request);
  });
  return within(answer, 'the server to answer and close the raw connection');
}

/** The headers of a valid WebSocket upgrade request, for raw requests. */
export function upgradeHeaders(host: string): string {
  return [
    `Host: ${host}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
  ].join('\r\n');
}

/** Logs in over plain HTTP (POST /login) and returns the session cookie it set. */
export async function login(host: string, user: string): Promise<string> {
  const response = await within(
    fetch(`http://${host}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ user }).toString(),
      redirect: 'manual',
    }),
    'the login request',
  );
  await response.arrayBuffer();
  const cookie = response.headers.getSetCookie()[0];
  if (cookie === undefined) throw new Error(`login answered ${response.status} with no cookie`);
  return cookie.split(';')[0] as string;
}

/** A new HTTP server for `app` (not listening yet). */
export function serverFor(app: http.RequestListener): http.Server {
  return http.createServer(app);
}
