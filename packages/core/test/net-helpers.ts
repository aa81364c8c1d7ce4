import net from 'node:net';
import { type ServerOptions, WebSocket, WebSocketServer } from '../src/index.js';

/** Everything a test opened, closed in afterEach so nothing outlives its test. */
export const opened: Array<{ close(): void }> = [];

export function track<T extends { close(): void }>(resource: T): T {
  opened.push(resource);
  return resource;
}

export async function closeAll(): Promise<void> {
  for (const resource of opened.splice(0).reverse()) {
    try {
      if (resource instanceof WebSocketServer) {
        for (const client of resource.clients) client.terminate();
        await new Promise<void>((resolve) => resource.close(() => resolve()));
      } else if (resource instanceof WebSocket) {
        resource.terminate();
      } else {
        resource.close();
      }
    } catch {
      // already closed
    }
  }
}

/** A weft server on 127.0.0.1 with an ephemeral port. */
export async function startServer(
  options: Omit<ServerOptions, 'port'> = {},
): Promise<{ wss: WebSocketServer; port: number; url: string }> {
  const wss = track(new WebSocketServer({ ...options, port: 0, host: '127.0.0.1' }));
  await waitFor(wss, 'listening');
  const address = wss.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { wss, port: address.port, url: `ws://127.0.0.1:${address.port}` };
}

/** Waits for an event (an 'error' meanwhile does not reject), failing after `ms` instead of hanging. */
export function waitFor<T extends unknown[]>(
  emitter: NodeJS.EventEmitter,
  event: string,
  ms = 5000,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const listener = (...args: unknown[]): void => {
      clearTimeout(timer);
      resolve(args as T);
    };
    const timer = setTimeout(() => {
      emitter.removeListener(event, listener);
      reject(new Error(`timed out waiting for '${event}'`));
    }, ms);
    emitter.once(event, listener);
  });
}

/** A raw TCP client speaking bytes we choose, for inputs no correct client sends. */
export class RawClient {
  readonly socket: net.Socket;
  #received: Buffer[] = [];
  #waiters: Array<() => void> = [];
  readonly closed: Promise<void>;

  /** `allowHalfOpen`: the client's side stays open after the server's FIN, until we end it. */
  constructor(port: number, { allowHalfOpen = false } = {}) {
    this.socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen });
    this.socket.on('data', (chunk) => {
      this.#received.push(chunk);
      for (const waiter of this.#waiters.splice(0)) waiter();
    });
    this.socket.on('error', () => {});
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()));
    track({ close: () => this.socket.destroy() });
  }

  get received(): Buffer {
    return Buffer.concat(this.#received);
  }

  async connected(): Promise<void> {
    await waitFor(this.socket, 'connect');
  }

  /** Sends a valid upgrade request and waits for the 101 response head. */
  async upgrade(path = '/', extraHeaders = ''): Promise<string> {
    await this.connected();
    this.socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extraHeaders}\r\n`,
    );
    const head = await this.readUntil((bytes) => bytes.includes('\r\n\r\n'));
    const end = head.indexOf('\r\n\r\n') + 4;
    this.#received = [head.subarray(end)];
    return head.subarray(0, end).toString();
  }

  /** Resolves with everything received once `done` says so (or the socket closes). */
  async readUntil(done: (bytes: Buffer) => boolean, ms = 5000): Promise<Buffer> {
    const deadline = Date.now() + ms;
    while (!done(this.received)) {
      if (this.socket.destroyed && this.socket.readableEnded) break;
      if (Date.now() > deadline)
        throw new Error(`timed out; received ${this.received.toString('hex')}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.received;
  }

  /** Waits for the server's close frame and returns its code (undefined when none came). */
  async closeCode(): Promise<number | undefined> {
    await Promise.race([
      this.closed,
      this.readUntil(
        (bytes) => bytes.length >= 2 && bytes[0] === 0x88 && bytes.length >= 2 + (bytes[1]! & 0x7f),
      ),
    ]);
    const bytes = this.received;
    const at = bytes.indexOf(0x88);
    if (at === -1 || bytes.length < at + 4) return undefined;
    return bytes.readUInt16BE(at + 2);
  }
}

/** A weft client connected to a weft server: both ends, open. */
export async function connectPair(options: Omit<ServerOptions, 'port'> = {}) {
  const { wss, url } = await startServer(options);
  const client = track(new WebSocket(url));
  const [[server]] = await Promise.all([
    waitFor<[WebSocket]>(wss, 'connection'),
    waitFor(client, 'open'),
  ]);
  return { wss, url, client, server };
}

/** A raw TCP client upgraded on a weft server, and the server's end of it. */
export async function connectRaw(options: Omit<ServerOptions, 'port'> = {}) {
  const { wss, port } = await startServer(options);
  const raw = new RawClient(port);
  const [[ws]] = await Promise.all([waitFor<[WebSocket]>(wss, 'connection'), raw.upgrade()]);
  return { wss, port, raw, ws };
}
