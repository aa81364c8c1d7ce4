// RedisAdapter against a real redis-server, with fake PubSubNodes standing in for servers.
// Two adapter instances are two "processes": each has its own connections and node id.

import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  HEADER_LENGTH,
  RedisAdapter,
  RedisAdapterError,
  type RedisAdapterOptions,
} from '../src/index.js';
import { FakeNode, nextEvent, waitUntil } from './helpers.js';
import { RedisServer, redisServerBinary } from './redis-server.js';

describe.skipIf(redisServerBinary === null)('RedisAdapter (real redis-server)', () => {
  let redis: RedisServer;
  /** A third connection that only looks: PUBSUB CHANNELS / NUMSUB, CLIENT LIST. */
  let admin: Redis;
  const adapters: RedisAdapter[] = [];
  const clients: Redis[] = [];
  const errors: RedisAdapterError[] = [];

  beforeAll(async () => {
    redis = await RedisServer.start();
    admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await admin.connect();
  });

  afterAll(async () => {
    admin?.disconnect();
    await redis?.destroy();
  });

  afterEach(async () => {
    await Promise.all(adapters.splice(0).map((adapter) => adapter.close()));
    for (const client of clients.splice(0)) client.disconnect();
    errors.length = 0;
    // Nothing a test subscribed may leak into the next one.
    await waitUntil(async () => (await channels()).length === 0, 'no weft channels left');
  });

  function makeAdapter(options: Partial<RedisAdapterOptions> = {}): RedisAdapter {
    const adapter = new RedisAdapter({
      url: redis.url,
      redisOptions: { retryStrategy: () => 50 },
      ...options,
    } as RedisAdapterOptions);
    adapter.on('error', (error) => errors.push(error));
    adapters.push(adapter);
    return adapter;
  }

  async function ready(...list: RedisAdapter[]): Promise<void> {
    await Promise.all(
      list.map((adapter) => (adapter.isReady ? undefined : nextEvent(adapter, 'ready'))),
    );
  }

  async function channels(pattern = '*'): Promise<string[]> {
    return ((await admin.pubsub('CHANNELS', pattern)) as string[]).sort();
  }

  async function numsub(channel: string): Promise<number> {
    const reply = (await admin.pubsub('NUMSUB', channel)) as [string, number];
    return Number(reply[1]);
  }

  /** Publishes a text message the way a server would: Buffer payload, isBinary false. */
  function publishText(adapter: RedisAdapter, node: FakeNode, topic: string, text: string) {
    return adapter.publish(node, topic, Buffer.from(text), false);
  }

  it('delivers a publish to every other node exactly once, and not back to the publisher', async () => {
    const a = makeAdapter();
    const b = makeAdapter();
    const c = makeAdapter();
    await ready(a, b, c);
    const a1 = new FakeNode('a1');
    const b1 = new FakeNode('b1');
    const c1 = new FakeNode('c1');
    a.attach(a1);
    b.attach(b1);
    c.attach(c1);
    await Promise.all([a.subscribe(a1, 'room'), b.subscribe(b1, 'room'), c.subscribe(c1, 'room')]);

    for (let i = 0; i < 20; i++) await publishText(a, a1, 'room', `m${i}`);
    await publishText(b, b1, 'room', 'from-b');
    // A fence: Redis keeps one connection's messages in order, so once the fence is in,
    // anything else (a duplicate included) would have arrived before it.
    await publishText(a, a1, 'room', 'fence');
    await Promise.all([b1.waitForText('fence'), c1.waitForText('fence')]);
    await a1.waitForText('from-b');

    const expected = Array.from({ length: 20 }, (_, i) => `m${i}`);
    expect(b1.texts()).toEqual([...expected, 'fence']);
    expect(c1.texts()).toEqual([...expected, 'from-b', 'fence']);
    // a1's own publishes never come back to it: its server already delivered them.
    expect(a1.texts()).toEqual(['from-b']);
    expect(b1.received.every((delivery) => delivery.topic === 'room' && !delivery.isBinary)).toBe(
      true,
    );
    expect(errors).toEqual([]);
  });

  it('two servers sharing one adapter: the other gets it in-process, once, and the Redis echo is ignored', async () => {
    const a = makeAdapter();
    const b = makeAdapter();
    await ready(a, b);
    const a1 = new FakeNode('a1');
    const a2 = new FakeNode('a2');
    const b1 = new FakeNode('b1');
    a.attach(a1);
    a.attach(a2);
    b.attach(b1);
    await Promise.all([a.subscribe(a1, 't'), a.subscribe(a2, 't'), b.subscribe(b1, 't')]);

    await publishText(a, a1, 't', 'hello');
    await publishText(a, a1, 't', 'fence');
    await publishText(b, b1, 't', 'from-b');
    await b1.waitForText('fence');
    await Promise.all([a1.waitForText('from-b'), a2.waitForText('from-b')]);
    // The echo of a's messages from Redis arrived before b's message (same subscriber
    // connection, in order) and was dropped: a2 has each exactly once.
    expect(a2.texts()).toEqual(['hello', 'fence', 'from-b']);
    expect(a1.texts()).toEqual(['from-b']);
    expect(b1.texts()).toEqual(['hello', 'fence']);
  });

  it('keeps binary payloads byte for byte, and the text/binary flag', async () => {
    const a = makeAdapter();
    const b = makeAdapter();
    await ready(a, b);
    const a1 = new FakeNode('a1');
    const b1 = new FakeNode('b1');
    a.attach(a1);
    b.attach(b1);
    await b.subscribe(b1, 'bin');

    const header = Buffer.alloc(HEADER_LENGTH, 0xf7);
    const payloads: Array<[Buffer, boolean]> = [
      [Buffer.alloc(0), true],
      [Buffer.alloc(0), false],
      [Buffer.from([0]), true],
      [Buffer.from([0xf7, 0x01, 0xff, 0x00, 0x0d, 0x0a]), true],
      [header, true],
      [Buffer.from('héllo wörld ✓ 🎉'), false],
      [Buffer.from('*3\r\n$7\r\nmessage\r\n'), false],
      [randomBytes(70_000), true],
      [randomBytes(2 * 1024 * 1024 + 3), true],
    ];
    for (const [data, isBinary] of payloads) await a.publish(a1, 'bin', data, isBinary);
    await publishText(a, a1, 'bin', 'fence');
    await b1.waitForText('fence');

    expect(b1.received).toHaveLength(payloads.length + 1);
    payloads.forEach(([data, isBinary], i) => {
      const got = b1.received[i]!;
      expect(got.isBinary).toBe(isBinary);
      expect(got.data.equals(data)).toBe(true);
    });
  });

  it('works the same over RESP2 (servers before Redis 6, or protocol: 2)', async () => {
    const resp2 = { redisOptions: { protocol: 2 as const, retryStrategy: () => 50 } };
    const a = makeAdapter(resp2);
    const b = makeAdapter(resp2);
    await ready(a, b);
    const [a1, a2, b1] = [new FakeNode('a1'), new FakeNode('a2'), new FakeNode('b1')];
    await Promise.all([a.subscribe(a1, 'r2'), a.subscribe(a2, 'r2'), b.subscribe(b1, 'r2')]);
    const bytes = randomBytes(5000);
    await a.publish(a1, 'r2', bytes, true);
    await publishText(b, b1, 'r2', 'from b');
    await publishText(a, a1, 'r2', 'fence');
    await b1.waitForText('fence');
    await a2.waitForText('from b');
    expect(b1.received).toHaveLength(2);
    expect(b1.received[0]!.data.equals(bytes)).toBe(true);
    expect(b1.received[0]!.isBinary).toBe(true);
    expect(a1.texts()).toEqual(['from b']);
    expect(a2.received).toHaveLength(3);
    await a.unsubscribe(a1, 'r2');
    await a.unsubscribe(a2, 'r2');
    expect(await channels()).toEqual(['weft:r2']);
  });

  it('SUBSCRIBEs in Redis only while some attached server holds the topic (reference counted)', async () => {
    const a = makeAdapter();
    await ready(a);
    const a1 = new FakeNode('a1');
    const a2 = new FakeNode('a2');
    a.attach(a1);
    a.attach(a2);

    expect(await channels()).toEqual([]);
    await a.subscribe(a1, 'room:1');
    expect(await channels()).toEqual(['weft:room:1']);
    await a.subscribe(a2, 'room:1');
    // One subscriber connection for the whole adapter, however many servers hold the topic.
    expect(await numsub('weft:room:1')).toBe(1);

    await a.unsubscribe(a1, 'room:1');
    expect(await channels()).toEqual(['weft:room:1']);
    await a.unsubscribe(a1, 'room:1'); // a second time: nothing changes
    expect(await channels()).toEqual(['weft:room:1']);
    await a.unsubscribe(a2, 'room:1');
    expect(await channels()).toEqual([]);

    // detach() releases everything the server held.
    await Promise.all([a.subscribe(a1, 'x'), a.subscribe(a1, 'y'), a.subscribe(a2, 'y')]);
    expect(await channels()).toEqual(['weft:x', 'weft:y']);
    await a.detach(a1);
    expect(await channels()).toEqual(['weft:y']);
    await a.detach(a2);
    expect(await channels()).toEqual([]);
  });

  it('a second adapter on the same topic is a second Redis subscriber; each gets the message once', async () => {
    const a = makeAdapter();
    const b = makeAdapter();
    const c = makeAdapter();
    await ready(a, b, c);
    const nodes = [new FakeNode('a1'), new FakeNode('b1'), new FakeNode('b2'), new FakeNode('c1')];
    const [a1, b1, b2, c1] = nodes as [FakeNode, FakeNode, FakeNode, FakeNode];
    await Promise.all([b.subscribe(b1, 'news'), b.subscribe(b2, 'news'), c.subscribe(c1, 'news')]);
    expect(await numsub('weft:news')).toBe(2);
    await publishText(a, a1, 'news', 'one');
    await publishText(a, a1, 'news', 'fence');
    await Promise.all([b1, b2, c1].map((node) => node.waitForText('fence')));
    for (const node of [b1, b2, c1]) expect(node.texts()).toEqual(['one', 'fence']);
  });

  it('prefixes channels so apps can share a Redis', async () => {
    const a = makeAdapter({ prefix: 'app1:' });
    const b = makeAdapter({ prefix: 'app2:' });
    const c = makeAdapter({ prefix: 'app1:' });
    const d = makeAdapter({ prefix: 'app2:' });
    await ready(a, b, c, d);
    const [b1, c1] = [new FakeNode('b1'), new FakeNode('c1')];
    await Promise.all([b.subscribe(b1, 'chat'), c.subscribe(c1, 'chat')]);
    expect(await channels()).toEqual(['app1:chat', 'app2:chat']);
    await publishText(a, new FakeNode('a1'), 'chat', 'for app1');
    await c1.waitForText('for app1');
    // Redis had handled the app1 message before this one: had b1 heard it, it would be first.
    await publishText(d, new FakeNode('d1'), 'chat', 'for app2');
    await b1.waitForText('for app2');
    expect(b1.texts()).toEqual(['for app2']);
    expect(c1.texts()).toEqual(['for app1']);
  });

  it('resolves a publish nobody subscribed to, and a subscribe before the connection is up', async () => {
    const a = makeAdapter();
    const b = makeAdapter();
    const a1 = new FakeNode('a1');
    const b1 = new FakeNode('b1');
    // Not ready yet: the subscription is remembered and made on 'ready'.
    await b.subscribe(b1, 'early');
    await ready(a, b);
    expect(await channels()).toEqual(['weft:early']);
    await publishText(a, a1, 'nobody', 'x');
    await publishText(a, a1, 'early', 'hi');
    await b1.waitForText('hi');
  });

  it('ignores a message on a weft channel that no adapter wrote, reporting it once', async () => {
    const b = makeAdapter();
    await ready(b);
    const b1 = new FakeNode('b1');
    await b.subscribe(b1, 'room');
    const reported = nextEvent<[RedisAdapterError]>(b, 'error');
    await admin.publish('weft:room', '{"json":"from another app"}');
    await admin.publish('weft:room', 'again');
    const [error] = await reported;
    expect(error).toBeInstanceOf(RedisAdapterError);
    expect(error.message).toMatch(/no weft adapter wrote/);
    const a = makeAdapter();
    await ready(a);
    await a.publish(new FakeNode('x'), 'room', Buffer.from('real'), false);
    await b1.waitForText('real');
    expect(b1.texts()).toEqual(['real']);
    expect(errors.filter((e) => /no weft adapter wrote/.test(e.message))).toHaveLength(1);
  });

  it('a server that throws while taking a message is reported; the others still get it', async () => {
    const a = makeAdapter();
    const b = makeAdapter();
    await ready(a, b);
    const thrower = {
      deliver: () => {
        throw new Error('boom');
      },
    };
    const b1 = new FakeNode('b1');
    await b.subscribe(thrower, 't');
    await b.subscribe(b1, 't');
    const reported = nextEvent<[RedisAdapterError]>(b, 'error');
    await publishText(a, new FakeNode('a1'), 't', 'm');
    await b1.waitForText('m');
    const [error] = await reported;
    expect(error.message).toMatch(/threw while taking a message on topic "t"/);
    expect((error.cause as Error).message).toBe('boom');
  });

  it('close() quits the connections it opened; afterwards subscribe and publish reject', async () => {
    const before = await clientCount();
    const a = makeAdapter();
    await ready(a);
    await waitUntil(async () => (await clientCount()) === before + 2, 'two adapter connections');
    await a.subscribe(new FakeNode('a1'), 'gone');
    await a.close();
    await a.close(); // idempotent
    await waitUntil(async () => (await clientCount()) === before, 'the connections to be gone');
    expect(await channels()).toEqual([]);
    await expect(a.publish(new FakeNode('a1'), 't', Buffer.from('x'), false)).rejects.toThrow(
      /the adapter is closed/,
    );
    await expect(a.subscribe(new FakeNode('a1'), 't')).rejects.toThrow(/the adapter is closed/);
    // Unsubscribe and detach from a server closing after the adapter: quiet no-ops.
    await a.unsubscribe(new FakeNode('a1'), 'gone');
    await a.detach(new FakeNode('a1'));
  });

  it('{ client }: publishes through it, subscribes on a duplicate, and leaves it open on close()', async () => {
    const client = new Redis(redis.url);
    clients.push(client);
    const a = makeAdapter({ url: undefined, client, redisOptions: undefined });
    const b = makeAdapter();
    await ready(a, b);
    const a1 = new FakeNode('a1');
    const b1 = new FakeNode('b1');
    await Promise.all([a.subscribe(a1, 'c'), b.subscribe(b1, 'c')]);
    await publishText(a, a1, 'c', 'via client');
    await b1.waitForText('via client');
    await publishText(b, b1, 'c', 'to client side');
    await a1.waitForText('to client side');
    expect(a1.texts()).toEqual(['to client side']);

    const before = await clientCount();
    await a.close();
    await waitUntil(async () => (await clientCount()) === before - 1, 'only the duplicate to go');
    expect(client.status).toBe('ready');
    expect(await client.ping()).toBe('PONG');
    expect(client.listenerCount('error')).toBe(0);
  });

  it('a SUBSCRIBE Redis refuses (ACL) rejects; the other topics keep working', async () => {
    const user = `weft-limited-${process.pid}`;
    await admin.call('ACL', 'SETUSER', user, 'reset', 'on', '>pw', '~*', '&weft:open*', '+@all');
    try {
      const url = `redis://${user}:pw@127.0.0.1:${redis.port}`;
      const a = makeAdapter({ url });
      const b = makeAdapter();
      await ready(a, b);
      const a1 = new FakeNode('a1');
      await expect(a.subscribe(a1, 'secret')).rejects.toThrow(
        /SUBSCRIBE "weft:secret" failed: NOPERM/,
      );
      await a.subscribe(a1, 'open');
      await publishText(b, new FakeNode('b1'), 'open', 'hi');
      await a1.waitForText('hi');

      // After a reconnection the refused topic is reported again, and does not hold up the rest.
      const reported = nextEvent<[RedisAdapterError]>(a, 'error');
      const back = nextEvent(a, 'ready');
      await admin.client('KILL', 'USER', user);
      await back;
      const [error] = await reported;
      expect(error.message).toMatch(/lost the (publisher|subscriber) connection/);
      await waitUntil(
        () => errors.some((e) => /could not subscribe "weft:secret" again: NOPERM/.test(e.message)),
        'the refusal to be reported',
      );
      await publishText(b, new FakeNode('b1'), 'open', 'again');
      await a1.waitForText('again');
      await a.unsubscribe(a1, 'secret');
      await a.unsubscribe(a1, 'open');
    } finally {
      await admin.call('ACL', 'DELUSER', user);
    }
  });

  it('rejects bad options', () => {
    expect(() => new RedisAdapter({} as RedisAdapterOptions)).toThrow(
      /exactly one of `url` and `client`/,
    );
    expect(
      () => new RedisAdapter({ url: redis.url, client: admin } as unknown as RedisAdapterOptions),
    ).toThrow(/exactly one/);
    expect(() => new RedisAdapter({ url: redis.url, publishTimeout: -1 })).toThrow(
      /publishTimeout/,
    );
    expect(() => new RedisAdapter({ client: {} as Redis })).toThrow(/ioredis Redis instance/);
  });

  async function clientCount(): Promise<number> {
    const list = (await admin.client('LIST')) as string;
    return list.split('\n').filter((line) => line.trim() !== '').length;
  }
});
