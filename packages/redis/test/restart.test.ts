// Redis going away under a running adapter: the redis-server process is killed (SIGKILL, by
// PID) and started again on the same port. Publishes meanwhile reject at once and 'error' is
// emitted; afterwards the adapter reconnects, subscribes its topics again, and messages flow.

import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { RedisAdapter, RedisAdapterError, type RedisAdapterOptions } from '../src/index.js';
import { FakeNode, nextEvent, WAIT, waitUntil, within } from './helpers.js';
import { freePort, RedisServer, redisServerBinary } from './redis-server.js';

describe.skipIf(redisServerBinary === null)('RedisAdapter across a Redis restart', () => {
  let redis: RedisServer;
  const adapters: RedisAdapter[] = [];
  const clients: Redis[] = [];

  beforeAll(async () => {
    redis = await RedisServer.start();
  });

  afterAll(async () => {
    await redis?.destroy();
  });

  afterEach(async () => {
    await Promise.all(adapters.splice(0).map((adapter) => adapter.close()));
    for (const client of clients.splice(0)) client.disconnect();
    if (!redis.running) await redis.restart();
  });

  /** An adapter with its reported errors; reconnects every 50 ms so the tests stay short. */
  function makeAdapter(options: Partial<RedisAdapterOptions> = {}) {
    const adapter = new RedisAdapter({
      url: redis.url,
      redisOptions: { retryStrategy: () => 50 },
      ...options,
    } as RedisAdapterOptions);
    const errors: RedisAdapterError[] = [];
    adapter.on('error', (error) => errors.push(error));
    adapters.push(adapter);
    return { adapter, errors };
  }

  async function ready(...list: RedisAdapter[]): Promise<void> {
    await Promise.all(
      list.map((adapter) => (adapter.isReady ? undefined : nextEvent(adapter, 'ready'))),
    );
  }

  async function channels(): Promise<string[]> {
    const admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await admin.connect();
      return ((await admin.pubsub('CHANNELS', '*')) as string[]).sort();
    } finally {
      admin.disconnect();
    }
  }

  const text = (s: string) => Buffer.from(s);

  it('rejects publishes while Redis is down, then reconnects, resubscribes and delivers again', async () => {
    const { adapter: a, errors: aErrors } = makeAdapter();
    const { adapter: b, errors: bErrors } = makeAdapter();
    await ready(a, b);
    const a1 = new FakeNode('a1');
    const b1 = new FakeNode('b1');
    a.attach(a1);
    b.attach(b1);
    await Promise.all([a.subscribe(a1, 'room'), b.subscribe(b1, 'room'), b.subscribe(b1, 'x')]);

    await a.publish(a1, 'room', text('before'), false);
    await b1.waitForText('before');

    const bReported = nextEvent<[RedisAdapterError]>(b, 'error');
    await redis.kill();
    await bReported;
    await waitUntil(() => !a.isReady, 'a to notice');

    // No offline queue: each publish fails now, with a clear message, while Redis is still down.
    for (let i = 0; i < 5; i++) {
      const attempt = a.publish(a1, 'room', text(`during ${i}`), false);
      const error = await within(
        attempt.then(
          () => new Error('publish resolved while Redis was down'),
          (reason: unknown) => reason,
        ),
        'the publish to reject while Redis is down',
      );
      expect(error).toBeInstanceOf(RedisAdapterError);
      expect((error as RedisAdapterError).message).toMatch(/Redis is not reachable/);
      expect((error as RedisAdapterError).connection).toBe('publisher');
    }
    expect(aErrors.some((error) => /lost the publisher connection/.test(error.message))).toBe(true);
    expect(bErrors.some((error) => /lost the subscriber connection/.test(error.message))).toBe(
      true,
    );
    // Reported once per outage, not once per refused reconnection attempt (every 50 ms).
    const refusals = aErrors.filter((error) => /ECONNREFUSED/.test(error.message));
    expect(refusals.length).toBeLessThanOrEqual(2);

    // Topics change while Redis is away: a new one is taken, one is let go.
    await b.subscribe(b1, 'late');
    await b.unsubscribe(b1, 'x');

    const bothReady = Promise.all([nextEvent(a, 'ready', WAIT), nextEvent(b, 'ready', WAIT)]);
    await redis.restart();
    await bothReady;
    expect(await channels()).toEqual(['weft:late', 'weft:room']);

    await a.publish(a1, 'room', text('after'), false);
    await a.publish(a1, 'late', text('late one'), false);
    await b.publish(b1, 'room', text('b after'), false);
    await a.publish(a1, 'room', text('fence'), false);
    await b1.waitForText('fence');
    await a1.waitForText('b after');
    expect(b1.texts()).toEqual(['before', 'after', 'late one', 'fence']);
    expect(a1.texts()).toEqual(['b after']);
  });

  it('with { client }: the caller’s offline queue is bypassed, publishes reject, then recover', async () => {
    // The caller's client keeps ioredis defaults: offline queue on, 20 retries per request.
    const client = new Redis(redis.url, { retryStrategy: () => 50 });
    clients.push(client);
    const { adapter: a } = makeAdapter({ url: undefined, redisOptions: undefined, client });
    const { adapter: b } = makeAdapter();
    await ready(a, b);
    const a1 = new FakeNode('a1');
    const b1 = new FakeNode('b1');
    await Promise.all([a.subscribe(a1, 'room'), b.subscribe(b1, 'room')]);

    const reported = nextEvent<[RedisAdapterError]>(a, 'error');
    await redis.kill();
    await reported;
    await waitUntil(() => client.status !== 'ready', 'the client to notice');
    await expect(
      within(b.publish(b1, 'room', text('lost'), false), 'b publish to reject'),
    ).rejects.toThrow(/Redis is not reachable/);
    await expect(
      within(a.publish(a1, 'room', text('lost'), false), 'a publish to reject'),
    ).rejects.toThrow(/Redis is not reachable/);
    expect((client as unknown as { offlineQueue: unknown[] }).offlineQueue.length).toBe(0);

    const bothReady = Promise.all([nextEvent(a, 'ready'), nextEvent(b, 'ready')]);
    await redis.restart();
    await bothReady;
    await b.publish(b1, 'room', text('back'), false);
    await a1.waitForText('back');
    expect(a1.texts()).toEqual(['back']);
  });

  it('Redis unreachable from the start: errors are events, publishes reject, close() stops it', async () => {
    const port = await freePort();
    const { adapter, errors } = makeAdapter({ url: `redis://127.0.0.1:${port}` });
    const [error] = await nextEvent<[RedisAdapterError]>(adapter, 'error');
    expect(error).toBeInstanceOf(RedisAdapterError);
    expect(error.message).toMatch(/ECONNREFUSED/);
    await adapter.subscribe(new FakeNode('n'), 'room'); // remembered for when Redis is there
    await expect(adapter.publish(new FakeNode('n'), 'room', text('x'), false)).rejects.toThrow(
      /Redis is not reachable \(publisher connection (connecting|reconnecting|connect)\)/,
    );
    await adapter.close();
    const count = errors.length;
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(errors.length).toBe(count);
  });

  it('without an error listener, trouble is a process warning, never a throw', async () => {
    const warnings: unknown[] = [];
    const spy = vi.spyOn(process, 'emitWarning').mockImplementation((warning) => {
      warnings.push(warning);
    });
    try {
      const port = await freePort();
      const adapter = new RedisAdapter({
        url: `redis://127.0.0.1:${port}`,
        redisOptions: { retryStrategy: () => 50 },
      });
      adapters.push(adapter);
      await waitUntil(() => warnings.length > 0, 'a process warning');
      expect(warnings[0]).toBeInstanceOf(RedisAdapterError);
      expect((warnings[0] as Error).message).toMatch(/ECONNREFUSED/);
      await adapter.close();
    } finally {
      spy.mockRestore();
    }
  });
});
