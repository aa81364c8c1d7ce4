// End to end across processes: two and three weft servers, each in its own child process
// (test/fixtures/node.mjs) with its own RedisAdapter, real `ws` and weft clients subscribed
// through each, one real redis-server. A publish on any node must reach every subscriber on
// every node exactly once, also after Redis was killed and started again.
//
// The fixture runs the built packages (dist/), as an application would: `npm test` builds
// first; after editing src/, run `npm run build -w @weft/redis`.

import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer, WebSocket as WeftWebSocket } from '@weft/core';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket as WsWebSocket } from 'ws';
import { waitUntil, within } from './helpers.js';
import { RedisServer, redisServerBinary } from './redis-server.js';

const PACKAGE = fileURLToPath(new URL('..', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./fixtures/node.mjs', import.meta.url));

/** The fixture imports dist/: make sure it exists and is not older than src/. */
function assertBuilt(): void {
  const dist = join(PACKAGE, 'dist', 'index.js');
  const hint = 'run `npm run build -w @weft/redis` (or `npm test`, which builds everything first)';
  if (!existsSync(dist)) throw new Error(`packages/redis/dist is missing: ${hint}`);
  const built = statSync(dist).mtimeMs;
  const src = join(PACKAGE, 'src');
  for (const file of readdirSync(src)) {
    if (statSync(join(src, file)).mtimeMs > built) {
      throw new Error(`packages/redis/dist is older than src/${file}: ${hint}`);
    }
  }
  if (typeof WebSocketServer.prototype.subscriberCount !== 'function') {
    throw new Error('packages/core/dist has no topics: run `npm run build -w @weft/core`');
  }
}

interface Reply {
  type: 'reply';
  id: number;
  ok: boolean;
  error?: string;
  count?: number;
}

/** A fixture process and what it told us. */
class WeftNode {
  readonly name: string;
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  port = 0;
  /** How many times its adapter reported 'ready' (1 at start, +1 after each Redis return). */
  readyCount = 0;
  readonly adapterErrors: string[] = [];
  readonly serverErrors: string[] = [];
  #nextId = 1;
  readonly #replies = new Map<number, (reply: Reply) => void>();
  #output = '';

  constructor(name: string, redisUrl: string, prefix: string) {
    this.name = name;
    this.child = fork(FIXTURE, [], {
      env: { ...process.env, REDIS_URL: redisUrl, WEFT_PREFIX: prefix },
      execArgv: [],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const keep = (chunk: Buffer): void => {
      this.#output = (this.#output + chunk.toString()).slice(-4000);
    };
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    this.child.on('message', (message: { type: string } & Record<string, unknown>) => {
      if (message.type === 'listening') this.port = message.port as number;
      else if (message.type === 'ready') this.readyCount++;
      else if (message.type === 'adapter-error') this.adapterErrors.push(message.message as string);
      else if (message.type === 'server-error') this.serverErrors.push(message.message as string);
      else if (message.type === 'reply')
        this.#replies.get(message.id as number)?.(message as unknown as Reply);
    });
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  get output(): string {
    return this.#output;
  }

  /** Listening, and its adapter connected with every topic subscribed. */
  async started(): Promise<void> {
    const exitedEarly = this.exited.then(() => {
      throw new Error(`${this.name} exited while starting:\n${this.#output}`);
    });
    exitedEarly.catch(() => {});
    await within(
      Promise.race([
        waitUntil(() => this.port !== 0 && this.readyCount > 0, `${this.name} to start`),
        exitedEarly,
      ]),
      `${this.name} to listen and connect to Redis`,
    );
  }

  request(command: Record<string, unknown>): Promise<Reply> {
    const id = this.#nextId++;
    const reply = new Promise<Reply>((resolve) => this.#replies.set(id, resolve));
    this.child.send({ ...command, id });
    return within(reply, `${this.name} to answer ${String(command.op)}`).finally(() =>
      this.#replies.delete(id),
    );
  }

  /** wss.publish() in the node; resolves with its outcome (an error message or null). */
  async publish(topic: string, data: Buffer | string, binary = typeof data !== 'string') {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    const reply = await this.request({
      op: 'publish',
      topic,
      data: bytes.toString('base64'),
      binary,
    });
    return reply.ok ? null : (reply.error ?? 'failed');
  }

  async count(topic: string): Promise<number> {
    return (await this.request({ op: 'count', topic })).count ?? -1;
  }

  /** Graceful stop over IPC; SIGKILL by PID if it does not go in time. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    try {
      this.child.send({ op: 'close', id: 0 });
      await within(this.exited, `${this.name} to exit`, 5_000);
    } catch {
      if (this.child.pid !== undefined) {
        try {
          process.kill(this.child.pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      await within(this.exited, `${this.name} to die`, 5_000);
    }
  }
}

interface Received {
  text: string;
  isBinary: boolean;
  data: Buffer;
}

/** A client of one node; records every message after the 'subscribed' greeting. */
class Subscriber {
  readonly name: string;
  readonly socket: WsWebSocket;
  readonly received: Received[] = [];

  private constructor(name: string, socket: WsWebSocket) {
    this.name = name;
    this.socket = socket;
  }

  static async connect(
    name: string,
    node: WeftNode,
    topics: string[],
    options: { pub?: string; weft?: boolean } = {},
  ): Promise<Subscriber> {
    const query = new URLSearchParams(topics.map((topic): [string, string] => ['topic', topic]));
    if (options.pub !== undefined) query.set('pub', options.pub);
    const url = `${node.url}/?${query}`;
    // Both clients have the `ws` API; the weft one is typed through it for this helper.
    const socket = options.weft
      ? (new WeftWebSocket(url) as unknown as WsWebSocket)
      : new WsWebSocket(url);
    const subscriber = new Subscriber(name, socket);
    const greeted = new Promise<void>((resolve, reject) => {
      let greeting = true;
      socket.on('error', reject);
      socket.on('message', (raw, isBinary) => {
        const data = Array.isArray(raw) ? Buffer.concat(raw) : Buffer.from(raw as Buffer);
        if (greeting) {
          greeting = false;
          resolve();
          return;
        }
        subscriber.received.push({ text: data.toString(), isBinary, data });
      });
    });
    await within(greeted, `${name} to connect to ${node.name}`);
    return subscriber;
  }

  texts(): string[] {
    return this.received.map((message) => message.text);
  }

  async waitFor(text: string): Promise<void> {
    await waitUntil(() => this.texts().includes(text), `${this.name} to receive "${text}"`);
  }
}

describe.skipIf(redisServerBinary === null)('weft servers in separate processes over Redis', () => {
  let redis: RedisServer;
  let admin: Redis;
  const nodes: WeftNode[] = [];
  const sockets: Subscriber[] = [];
  let prefix = '';

  beforeAll(async () => {
    assertBuilt();
    redis = await RedisServer.start();
  });

  afterAll(async () => {
    await redis?.destroy();
  });

  afterEach(async () => {
    for (const subscriber of sockets.splice(0)) subscriber.socket.terminate();
    await Promise.all(nodes.splice(0).map((node) => node.stop()));
    admin?.disconnect();
    if (!redis.running) await redis.restart();
  });

  async function startNodes(count: number): Promise<WeftNode[]> {
    // A fresh prefix per test: nothing one test left in Redis reaches the next.
    prefix = `weft-test-${randomBytes(4).toString('hex')}:`;
    const started = Array.from(
      { length: count },
      (_, i) => new WeftNode(String.fromCharCode(65 + i), redis.url, prefix),
    );
    nodes.push(...started);
    await Promise.all(started.map((node) => node.started()));
    admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    return started;
  }

  async function connect(
    name: string,
    node: WeftNode,
    topics: string[],
    options: { pub?: string; weft?: boolean } = {},
  ): Promise<Subscriber> {
    const subscriber = await Subscriber.connect(name, node, topics, options);
    sockets.push(subscriber);
    return subscriber;
  }

  /** Waits until `nodes` processes hold a Redis subscription to `topic`. */
  async function subscribedInRedis(topic: string, count: number): Promise<void> {
    await waitUntil(async () => {
      const reply = (await admin.pubsub('NUMSUB', prefix + topic)) as [string, number];
      return Number(reply[1]) === count;
    }, `${count} Redis subscribers of ${topic}`);
  }

  /**
   * Publishes `fence:<node>` on `topic` from every node in turn and waits until every client
   * has them all. Messages keep their order along one path (a node's local delivery, or one
   * publisher connection through Redis to one subscriber connection), and each client gets at
   * least one fence through Redis from another node, published after everything before it.
   * So once the fences are in, any duplicate of an earlier message would be in too.
   */
  async function fence(from: WeftNode[], topic: string, clients: Subscriber[]): Promise<void> {
    for (const node of from) expect(await node.publish(topic, `fence:${node.name}`)).toBeNull();
    for (const client of clients) {
      for (const node of from) await client.waitFor(`fence:${node.name}`);
    }
  }

  /** Every expected message exactly once (the order across nodes is not fixed), and no more. */
  function expectExactlyOnce(client: Subscriber, expected: string[], from: WeftNode[]): void {
    const fences = from.map((node) => `fence:${node.name}`);
    expect(client.texts().sort(), client.name).toEqual([...expected, ...fences].sort());
  }

  it('two nodes: a publish on either reaches every subscriber on both, exactly once', async () => {
    const [a, b] = (await startNodes(2)) as [WeftNode, WeftNode];
    const onA = await connect('a-ws', a, ['room']);
    const onB1 = await connect('b-ws', b, ['room']);
    const onB2 = await connect('b-weft', b, ['room'], { weft: true });
    const elsewhere = await connect('b-other', b, ['other']);
    expect(await a.count('room')).toBe(1);
    expect(await b.count('room')).toBe(2);
    await subscribedInRedis('room', 2);

    const binary = randomBytes(4096);
    expect(await a.publish('room', 'hello from A')).toBeNull();
    expect(await a.publish('room', binary)).toBeNull();
    expect(await b.publish('room', 'hello from B')).toBeNull();
    await fence([a, b], 'room', [onA, onB1, onB2]);
    await fence([a], 'other', [elsewhere]);

    for (const client of [onA, onB1, onB2]) {
      const binaries = client.received.filter((message) => message.isBinary);
      expect(binaries).toHaveLength(1);
      expect(binaries[0]!.data.equals(binary)).toBe(true);
      const texts = client.received.filter((message) => !message.isBinary);
      expect(texts.map((message) => message.text).sort()).toEqual(
        ['hello from A', 'hello from B', 'fence:A', 'fence:B'].sort(),
      );
    }
    // The other topic heard none of it.
    expect(elsewhere.texts()).toEqual(['fence:A']);
    expect([...a.adapterErrors, ...b.adapterErrors, ...a.serverErrors, ...b.serverErrors]).toEqual(
      [],
    );
  });

  it('three nodes: ws.publish from a client reaches everyone else on every node once', async () => {
    const [a, b, c] = (await startNodes(3)) as [WeftNode, WeftNode, WeftNode];
    const all: Subscriber[] = [];
    for (const node of [a, b, c]) {
      all.push(await connect(`${node.name}-ws`, node, ['chat'], { pub: 'chat' }));
      all.push(await connect(`${node.name}-weft`, node, ['chat'], { pub: 'chat', weft: true }));
    }
    await subscribedInRedis('chat', 3);

    // Each client speaks once, in turn; the sender must not hear itself.
    for (const speaker of all) {
      speaker.socket.send(`from ${speaker.name}`);
      await Promise.all(
        all
          .filter((other) => other !== speaker)
          .map((other) => other.waitFor(`from ${speaker.name}`)),
      );
    }
    await fence([a, b, c], 'chat', all);
    for (const client of all) {
      const expected = all.filter((other) => other !== client).map((other) => `from ${other.name}`);
      expectExactlyOnce(client, expected, [a, b, c]);
      // Each came after the previous speaker was heard everywhere, so in speaking order.
      expect(client.texts().slice(0, expected.length)).toEqual(expected);
    }
    for (const node of [a, b, c]) expect(node.serverErrors).toEqual([]);
  });

  it('three nodes across a Redis restart: publishes fail meanwhile, then flow exactly once again', async () => {
    const [a, b, c] = (await startNodes(3)) as [WeftNode, WeftNode, WeftNode];
    const clients = [
      await connect('a-ws', a, ['room']),
      await connect('b-ws', b, ['room']),
      await connect('b-weft', b, ['room'], { weft: true }),
      await connect('c-ws', c, ['room']),
    ];
    const [onA, onB1, onB2, onC] = clients as [Subscriber, Subscriber, Subscriber, Subscriber];
    await subscribedInRedis('room', 3);
    expect(await a.publish('room', 'before')).toBeNull();
    await Promise.all(clients.map((client) => client.waitFor('before')));

    const readyBefore = [a, b, c].map((node) => node.readyCount);
    await redis.kill();
    await waitUntil(
      () => [a, b, c].every((node) => node.adapterErrors.length > 0),
      'every node to report the lost connection',
    );

    // The publish promise rejects with the adapter's reason; the node's own subscribers still
    // get the message (the server delivers locally itself), no other node does.
    const failure = await a.publish('room', 'during');
    expect(failure).toMatch(/Redis is not reachable/);
    await onA.waitFor('during');
    expect(a.serverErrors.some((message) => /Redis is not reachable/.test(message))).toBe(true);
    const lateSubscriber = await connect('c-late', c, ['late']);

    await redis.restart();
    await waitUntil(
      () => [a, b, c].every((node, i) => node.readyCount > readyBefore[i]!),
      'every node to reconnect and resubscribe',
    );
    admin.disconnect();
    admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    await subscribedInRedis('room', 3);
    await subscribedInRedis('late', 1);

    expect(await b.publish('room', 'after from B')).toBeNull();
    expect(await c.publish('room', 'after from C')).toBeNull();
    expect(await a.publish('late', 'late news')).toBeNull();
    await fence([a, b, c], 'room', clients);
    await lateSubscriber.waitFor('late news');

    const after = ['before', 'after from B', 'after from C'];
    expectExactlyOnce(onA, [...after, 'during'], [a, b, c]);
    for (const client of [onB1, onB2, onC]) expectExactlyOnce(client, after, [a, b, c]);
    expect(lateSubscriber.texts()).toEqual(['late news']);
  });
});
