import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { promisify } from 'node:util';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import WebSocket, { type ClientOptions } from 'ws';
import { type WeftPluginOptions, weft } from '../src/index.js';

/** Upper bound of any wait in these tests: a bug fails the test instead of hanging it. */
export const WAIT_MS = 15_000; // generous: CI machines are shared and child processes start slowly under load

/** Apps and clients a test opened; `cleanup` (afterEach) closes them all. */
const apps: FastifyInstance[] = [];
const clients: WebSocket[] = [];

export async function cleanup(): Promise<void> {
  for (const client of clients.splice(0)) client.terminate();
  await Promise.all(apps.splice(0).map((app) => app.close()));
}

/** A Fastify app with the plugin registered, closed after the test. */
export async function createApp(
  options?: WeftPluginOptions,
  fastifyOptions: FastifyServerOptions = {},
): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, ...fastifyOptions });
  apps.push(app);
  await app.register(weft, options ?? {});
  return app;
}

/** Listens on 127.0.0.1 with a free port; returns the ws:// base URL. */
export async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return `ws://127.0.0.1:${port}`;
}

/** `promise`, or a rejection naming `what` after WAIT_MS. */
export function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out waiting for ${what}`)), WAIT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Messages a client received that no test read yet, and the reads waiting for one. */
interface Inbox {
  readonly queue: string[];
  readonly waiting: Array<(message: string) => void>;
}
const inboxes = new WeakMap<object, Inbox>();

/**
 * Keeps every message `client` receives from now on for `nextMessage`: a `ws` client drops
 * messages that arrive before a listener, and a server may send as soon as it opens.
 */
export function record<
  C extends { on(event: 'message', listener: (data: unknown) => void): unknown },
>(client: C): C {
  const inbox: Inbox = { queue: [], waiting: [] };
  inboxes.set(client, inbox);
  client.on('message', (data) => {
    const text = String(data);
    const reader = inbox.waiting.shift();
    if (reader) reader(text);
    else inbox.queue.push(text);
  });
  return client;
}

/** A `ws` client (the reference implementation), open and recorded; terminated after the test. */
export function connect(
  url: string,
  options: ClientOptions = {},
  protocols: string[] = [],
): Promise<WebSocket> {
  const client = record(new WebSocket(url, protocols, options));
  clients.push(client);
  return within(
    new Promise((resolve, reject) => {
      client.once('open', () => resolve(client));
      client.once('error', reject);
    }),
    `${url} to open`,
  );
}

/** What a refused handshake got back (`watchUpgradeSockets` proves the server closed it). */
export interface Refusal {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A handshake the server must answer with HTTP: resolves with that answer. */
export function refused(url: string, options: ClientOptions = {}): Promise<Refusal> {
  const client = new WebSocket(url, options);
  clients.push(client);
  // Once the answer is read the client is done with it; a late error is not this test's business.
  client.on('error', () => {});
  return within(
    new Promise((resolve, reject) => {
      client.once('open', () => reject(new Error(`${url} opened; a refusal was expected`)));
      client.once('unexpected-response', (_request, response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      });
    }),
    `${url} to be refused`,
  );
}

/** The close code and reason `client` ends with. */
export function closed(client: {
  once(event: 'close', listener: (code: number, reason: Buffer) => void): unknown;
}): Promise<{ code: number; reason: string }> {
  return within(
    new Promise((resolve) => {
      client.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    }),
    'the connection to close',
  );
}

/** The next message a `record`ed client received, as text. */
export function nextMessage(client: object): Promise<string> {
  const inbox = inboxes.get(client);
  if (inbox === undefined) throw new Error('nextMessage needs a client passed to record()');
  const queued = inbox.queue.shift();
  if (queued !== undefined) return Promise.resolve(queued);
  return within(
    new Promise((resolve) => {
      inbox.waiting.push(resolve);
    }),
    'a message',
  );
}

/**
 * Records the server side of every upgrade on `app`'s server; `allClosed()` settles once each
 * of them is closed, which is how a test proves the server left no socket hanging.
 */
export function watchUpgradeSockets(app: FastifyInstance): {
  allClosed(): Promise<void>;
  count(): number;
} {
  const sockets: Array<Promise<void>> = [];
  app.server.on('upgrade', (_request, socket: Duplex) => {
    sockets.push(
      new Promise((resolve) => {
        if (socket.destroyed) resolve();
        else socket.once('close', () => resolve());
      }),
    );
  });
  return {
    allClosed: () =>
      within(
        Promise.all(sockets).then(() => undefined),
        'the server sockets to close',
      ),
    count: () => sockets.length,
  };
}

/** A promise and the function that resolves it. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

/** A throwaway self-signed certificate for 127.0.0.1 and localhost, made by the openssl CLI. */
export async function selfSignedCertificate(): Promise<{ key: string; cert: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'weft-fastify-tls-'));
  try {
    const keyPath = join(dir, 'key.pem');
    const certPath = join(dir, 'cert.pem');
    // biome-ignore format: one flag and its value per line reads better
    await promisify(execFile)('openssl', [
      'req', '-x509', '-nodes', '-days', '1',
      '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
      '-keyout', keyPath, '-out', certPath,
      '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ], { timeout: WAIT_MS });
    return { key: await readFile(keyPath, 'utf8'), cert: await readFile(certPath, 'utf8') };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
