// End-to-end test of the chat demo: runs examples/chat/server.js as a real process (as
// `npm start` does) and talks to it with `ws` clients, so it checks the demo and weft together.
// Every wait is bounded: a broken server fails a test instead of hanging the run.

import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SERVER = 'examples/chat/server.js';
const WAIT = 5_000;

interface ChatMessage {
  type: string;
  name?: string;
  text?: string;
  at?: number;
  count?: number;
}

interface Closed {
  code: number;
  reason: string;
}

interface ChatServer {
  child: ChildProcess;
  /** The page URL the server printed, with a trailing slash. */
  url: string;
  /** Resolves with the exit code once the process is gone. */
  exited: Promise<number | null>;
}

const servers: ChatServer[] = [];
const clients: ChatClient[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.socket.terminate();
  await Promise.all(servers.splice(0).map(stopServer));
});

/** Rejects with a message naming what never happened, instead of waiting forever. */
function within<T>(promise: Promise<T>, what: string, ms = WAIT): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function startServer(): Promise<ChatServer> {
  // PORT=0: the OS picks a free port and the server prints it, so parallel runs never collide.
  const child = spawn(process.execPath, [SERVER], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const server: ChatServer = { child, url: '', exited };
  servers.push(server);

  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk;
  });
  const url = new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk;
      const match = /^weft chat demo: (http:\/\/\S+\/)$/m.exec(stdout);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) =>
      reject(
        new Error(`${SERVER} exited with ${code} before printing its URL:\n${stdout}${stderr}`),
      ),
    );
  });
  server.url = await within(url, `${SERVER} to print its URL`);
  return server;
}

async function stopServer(server: ChatServer): Promise<void> {
  const { child } = server;
  if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
  await within(server.exited, 'the server process to exit');
}

/** A `ws` client that keeps every chat message it receives until a test asks for it. */
class ChatClient {
  readonly socket: WebSocket;
  readonly opened: Promise<void>;
  readonly closed: Promise<Closed>;
  #inbox: ChatMessage[] = [];
  #waiters = new Set<() => void>();

  constructor(url: string) {
    this.socket = new WebSocket(url);
    clients.push(this);
    // A server that drops the connection makes `ws` emit 'error'; 'close' tells the tests.
    this.socket.on('error', () => {});
    this.opened = new Promise((resolve, reject) => {
      this.socket.once('open', resolve);
      this.socket.once('close', () =>
        reject(new Error(`connection to ${url} closed before opening`)),
      );
    });
    this.closed = new Promise((resolve) => {
      this.socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    this.socket.on('message', (data) => {
      this.#inbox.push(JSON.parse(data.toString()) as ChatMessage);
      for (const wake of this.#waiters) wake();
    });
  }

  static async connect(server: ChatServer): Promise<ChatClient> {
    const client = new ChatClient(`${server.url.replace(/^http/, 'ws')}chat`);
    await within(client.opened, 'the WebSocket to open');
    return client;
  }

  sendJson(message: unknown): void {
    this.socket.send(JSON.stringify(message));
  }

  /** The first message not taken yet that matches; earlier, non-matching ones stay. */
  next(match: Partial<ChatMessage>): Promise<ChatMessage> {
    const take = (): ChatMessage | undefined => {
      const index = this.#inbox.findIndex((message) =>
        Object.entries(match).every(([key, value]) => message[key as keyof ChatMessage] === value),
      );
      return index === -1 ? undefined : this.#inbox.splice(index, 1)[0];
    };
    const found = new Promise<ChatMessage>((resolve) => {
      const check = (): void => {
        const message = take();
        if (message === undefined) return;
        this.#waiters.delete(check);
        resolve(message);
      };
      this.#waiters.add(check);
      check();
    });
    return within(found, `a message like ${JSON.stringify(match)}`);
  }
}

async function fetchPage(url: string): Promise<Response> {
  return fetch(url, { signal: AbortSignal.timeout(WAIT) });
}

describe('examples/chat', () => {
  it('serves its page at /', async () => {
    const server = await startServer();
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);

    const response = await fetchPage(server.url);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await response.text();
    expect(html).toMatch(/^<!doctype html>/i);
    expect(html).toContain('/chat');

    expect((await fetchPage(`${server.url}nope`)).status).toBe(404);
  });

  it('broadcasts joins, messages, departures and presence to everyone', async () => {
    const server = await startServer();
    const alice = await ChatClient.connect(server);
    alice.sendJson({ type: 'hello', name: 'alice' });
    const joined = await alice.next({ type: 'joined', name: 'alice' });
    expect(joined.at).toEqual(expect.any(Number));
    await alice.next({ type: 'presence', count: 1 });

    const bob = await ChatClient.connect(server);
    bob.sendJson({ type: 'hello', name: 'bob' });
    for (const client of [alice, bob]) {
      await client.next({ type: 'joined', name: 'bob' });
      await client.next({ type: 'presence', count: 2 });
    }

    alice.sendJson({ type: 'say', text: 'hello, bob' });
    for (const client of [alice, bob]) {
      const said = await client.next({ type: 'said' });
      expect(said).toEqual({
        type: 'said',
        name: 'alice',
        text: 'hello, bob',
        at: expect.any(Number),
      });
    }

    bob.socket.close(1000);
    await within(bob.closed, 'bob to disconnect');
    await alice.next({ type: 'left', name: 'bob' });
    await alice.next({ type: 'presence', count: 1 });
  });

  it('closes a connection that sends invalid JSON with 1008', async () => {
    const server = await startServer();
    const client = await ChatClient.connect(server);
    client.socket.send('this is not JSON');
    const closed = await within(client.closed, 'the server to close the connection');
    expect(closed.code).toBe(1008);
    expect(closed.reason).not.toBe('');
  });

  it.each([
    ['a name over 32 characters', [{ type: 'hello', name: 'n'.repeat(33) }]],
    [
      'a text over 2000 characters',
      [
        { type: 'hello', name: 'carol' },
        { type: 'say', text: 't'.repeat(2001) },
      ],
    ],
    ['a say before hello', [{ type: 'say', text: 'hi' }]],
  ])('closes a connection that sends %s with 1008 and keeps serving', async (_, messages) => {
    const server = await startServer();
    const client = await ChatClient.connect(server);
    for (const message of messages) client.sendJson(message);
    const closed = await within(client.closed, 'the server to close the connection');
    expect(closed.code).toBe(1008);

    // The server survived: it still serves the page and accepts chatters.
    expect((await fetchPage(server.url)).status).toBe(200);
    const other = await ChatClient.connect(server);
    other.sendJson({ type: 'hello', name: 'dave' });
    await other.next({ type: 'joined', name: 'dave' });
  });

  it('closes every client with 1001 and exits 0 on SIGTERM', async () => {
    const server = await startServer();
    const client = await ChatClient.connect(server);
    client.sendJson({ type: 'hello', name: 'erin' });
    await client.next({ type: 'joined', name: 'erin' });

    process.kill(server.child.pid!, 'SIGTERM');
    const [closed, exitCode] = await Promise.all([
      within(client.closed, 'the server to close the connection'),
      within(server.exited, 'the server to exit'),
    ]);
    expect(exitCode).toBe(0);
    expect(closed).toEqual({ code: 1001, reason: 'server shutting down' });
  });
});
