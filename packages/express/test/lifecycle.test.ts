// The integration's own API on Express 4 and 5: attaching to servers (given, or created by
// app.listen), route-scoped clients and broadcast, topics, handler errors, inject(), options,
// and graceful shutdown.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type WebSocket as CoreWebSocket,
  MemoryAdapter,
  type PubSubAdapter,
  WebSocketServer,
} from '@weft/core';
import { describe, expect, it, vi } from 'vitest';
import {
  InjectRefusedError,
  isWebSocketRequest,
  type WeftErrorContext,
  weft,
} from '../src/index.js';
import {
  closed,
  deferred,
  EXPRESS_VERSIONS,
  listen,
  nextMessage,
  onCleanup,
  open,
  refused,
  serverFor,
  within,
} from './helpers.js';

describe.each(EXPRESS_VERSIONS)('lifecycle (%s)', (_name, express) => {
  async function start(setup: (app: ReturnType<typeof express>) => void, options = {}) {
    const app = express();
    const errors: Array<{ error: unknown; context: WeftErrorContext }> = [];
    const server = serverFor(app);
    const w = weft(app, server, {
      onError: (error, context) => errors.push({ error, context }),
      ...options,
    });
    setup(app);
    const host = await listen(server, w);
    return { app, server, w, host, errors };
  }

  it('hooks the server app.listen() creates after weft(app)', async () => {
    const app = express();
    const w = weft(app);
    app.ws('/late', (socket) => socket.send('listened'));
    const server = await within(
      new Promise<http.Server>((resolve) => {
        const created = app.listen(0, '127.0.0.1', () => resolve(created));
      }),
      'app.listen',
    );
    onCleanup(async () => {
      await w.close({ timeout: 1_000 });
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const { port } = server.address() as AddressInfo;
    expect(await nextMessage(await open(`ws://127.0.0.1:${port}/late`))).toBe('listened');
  });

  it('serves every server given to attach()', async () => {
    const { w, app } = await start((a) => {
      a.ws('/both', (socket) => socket.send('both'));
    });
    const second = serverFor(app);
    w.attach(second);
    const host = await listen(second);
    expect(await nextMessage(await open(`ws://${host}/both`))).toBe('both');
  });

  it('exposes the core server and emits its connection event', async () => {
    const seen = vi.fn();
    const { w, host } = await start((app) => {
      app.ws('/x', (socket) => socket.send('x'));
    });
    expect(w.getWss()).toBeInstanceOf(WebSocketServer);
    w.getWss().on('connection', seen);
    await open(`ws://${host}/x`);
    expect(seen).toHaveBeenCalledTimes(1);
    expect(w.getWss().clients.size).toBe(1);
  });

  it('passes core options on (maxPayload closes an oversized message with 1009)', async () => {
    const { host } = await start(
      (app) => {
        app.ws('/small', (socket) => socket.on('message', () => socket.send('ok')));
      },
      { options: { maxPayload: 16 } },
    );
    const client = await open(`ws://${host}/small`);
    const end = closed(client);
    client.send('x'.repeat(64));
    expect((await end).code).toBe(1009);
  });

  it('keeps client sets per route and broadcasts to one route', async () => {
    const { w, host } = await start((app) => {
      app.ws('/a', (socket) => socket.send('joined a'));
      app.ws('/b', (socket) => socket.send('joined b'));
      const router = express.Router();
      router.ws('/feed', (socket) => socket.send('joined feed'));
      app.use('/api', router);
    });
    const a1 = await open(`ws://${host}/a`);
    const a2 = await open(`ws://${host}/a/`);
    const b = await open(`ws://${host}/b`);
    const feed = await open(`ws://${host}/api/feed`);
    for (const client of [a1, a2, b, feed]) await nextMessage(client);
    expect(w.clients('/a').size).toBe(2);
    expect(w.clients('/a/').size).toBe(2);
    expect(w.clients('/b').size).toBe(1);
    expect(w.clients('/api/feed').size).toBe(1);
    expect(w.clients('/nowhere').size).toBe(0);
    expect(w.clients().size).toBe(4);

    expect(w.broadcast('to a', { route: '/a' })).toBe(2);
    expect(await nextMessage(a1)).toBe('to a');
    expect(await nextMessage(a2)).toBe('to a');
    expect(w.broadcast('to all')).toBe(4);
    expect(await nextMessage(b)).toBe('to all');
    expect(await nextMessage(a1)).toBe('to all');
    expect(w.broadcast('nobody', { route: '/nowhere' })).toBe(0);

    const gone = closed(a1);
    a1.close();
    await gone;
    await within(
      (async () => {
        while (w.clients('/a').size !== 1) await new Promise((resolve) => setImmediate(resolve));
      })(),
      'the route set to drop the closed client',
    );
  });

  it('names a parameterised route by its pattern', async () => {
    const serverSide: CoreWebSocket[] = [];
    const { w, host } = await start((app) => {
      app.ws('/rooms/:room', (socket) => {
        serverSide.push(socket);
        socket.send('in');
      });
    });
    const one = await open(`ws://${host}/rooms/1`);
    await nextMessage(one);
    const two = await open(`ws://${host}/rooms/2`);
    await nextMessage(two);
    expect(w.clients('/rooms/:room').size).toBe(2);
    expect(w.broadcast('all rooms', { route: '/rooms/:room', except: serverSide[0] })).toBe(1);
    expect(await nextMessage(two)).toBe('all rooms');
  });

  it('publishes to topic subscribers', async () => {
    const { w, host } = await start((app) => {
      app.ws('/rooms/:room', (socket, req) => {
        socket.subscribe(`room:${req.params.room}`);
        socket.send('subscribed');
      });
    });
    const red = await open(`ws://${host}/rooms/red`);
    const blue = await open(`ws://${host}/rooms/blue`);
    await nextMessage(red);
    await nextMessage(blue);
    await w.publish('room:red', 'red news');
    expect(await nextMessage(red)).toBe('red news');
    await w.publish('room:blue', 'blue news');
    expect(await nextMessage(blue)).toBe('blue news');
  });

  it('carries publish() to another app through a shared pubsub adapter', async () => {
    const adapter = new MemoryAdapter();
    const subscribe = (app: ReturnType<typeof express>) => {
      app.ws('/topics/:topic', (socket, req) => {
        socket.subscribe(req.params.topic);
        socket.send('subscribed');
      });
    };
    const one = await start(subscribe, { pubsub: adapter });
    const two = await start(subscribe, { pubsub: adapter });
    const onOne = await open(`ws://${one.host}/topics/news`);
    const onTwo = await open(`ws://${two.host}/topics/news`);
    await nextMessage(onOne);
    await nextMessage(onTwo);
    await one.w.publish('news', 'from app one');
    expect(await nextMessage(onOne)).toBe('from app one');
    expect(await nextMessage(onTwo)).toBe('from app one');
  });

  it("reports a pubsub adapter's failure to onError as a server error", async () => {
    const failing: PubSubAdapter = {
      attach() {},
      detach() {},
      subscribe() {},
      unsubscribe() {},
      publish: () => Promise.reject(new Error('broker down')),
    };
    const { w, errors } = await start(() => {}, { pubsub: failing });
    await expect(w.publish('news', 'x')).rejects.toThrow('broker down');
    await within(
      (async () => {
        while (errors.length === 0) await new Promise((resolve) => setImmediate(resolve));
      })(),
      'the error report',
    );
    expect(errors.map(({ context }) => context.phase)).toEqual(['server']);
  });

  it('closes with 1011 and reports when a handler throws or rejects', async () => {
    const { host, errors } = await start((app) => {
      app.ws('/throws', () => {
        throw new Error('sync failure');
      });
      app.ws('/rejects', async (socket) => {
        await new Promise((resolve) => setImmediate(resolve));
        socket.send('before the failure');
        throw new Error('async failure');
      });
    });
    const one = await open(`ws://${host}/throws`);
    const oneClosed = closed(one);
    expect((await oneClosed).code).toBe(1011);
    const two = await open(`ws://${host}/rejects`);
    const twoClosed = closed(two);
    expect(await nextMessage(two)).toBe('before the failure');
    expect((await twoClosed).code).toBe(1011);
    expect(errors.map(({ error, context }) => [context.phase, (error as Error).message])).toEqual([
      ['handler', 'sync failure'],
      ['handler', 'async failure'],
    ]);
    const context = errors[0]?.context;
    expect(context?.phase === 'handler' && context.req.originalUrl).toBe('/throws');
  });

  it('holds messages an async handler has not listened for yet', async () => {
    const ready = deferred();
    const { host } = await start((app) => {
      app.ws('/slow-listener', async (socket) => {
        await ready.promise;
        socket.on('message', (data) => socket.send(`got ${data}`));
      });
    });
    const client = await open(`ws://${host}/slow-listener`);
    client.send('early');
    ready.resolve();
    expect(await nextMessage(client)).toBe('got early');
  });

  it('close() closes every socket with 1001 and waits for them', async () => {
    const { w, host } = await start((app) => {
      app.ws('/x', (socket) => socket.send('x'));
    });
    const clients = await Promise.all([open(`ws://${host}/x`), open(`ws://${host}/x`)]);
    const ends = clients.map(closed);
    await w.close();
    for (const end of await Promise.all(ends)) expect(end.code).toBe(1001);
    expect(w.getWss().clients.size).toBe(0);
    expect(w.close()).toBe(w.close());
  });

  it('server.close() closes the WebSockets first, so it can finish', async () => {
    const app = express();
    const server = serverFor(app);
    const w = weft(app, server);
    app.ws('/x', (socket) => socket.send('x'));
    const host = await listen(server, w);
    const client = await open(`ws://${host}/x`);
    const end = closed(client);
    await within(
      new Promise<void>((resolve) => server.close(() => resolve())),
      'server.close() to finish',
    );
    expect((await end).code).toBe(1001);
  });

  it('marks upgrade requests for app-level middleware', async () => {
    const seen: boolean[] = [];
    const { host } = await start((app) => {
      app.use((req, _res, next) => {
        seen.push(isWebSocketRequest(req));
        next();
      });
      app.get('/page', (_req, res) => {
        res.send('page');
      });
      app.ws('/x', (socket) => socket.send('x'));
    });
    await (await fetch(`http://${host}/page`)).text();
    await open(`ws://${host}/x`);
    expect(seen).toEqual([false, true]);
  });

  it('leaves upgrades shouldHandle() declines to other listeners', async () => {
    const app = express();
    const server = serverFor(app);
    const w = weft(app, server, { shouldHandle: (req) => !req.url?.startsWith('/raw') });
    app.ws('/x', (socket) => socket.send('weft'));
    const other = new WebSocketServer({ server, path: '/raw' });
    other.on('connection', (socket) => socket.send('core'));
    onCleanup(() => new Promise<void>((resolve) => other.close(() => resolve())));
    const host = await listen(server, w);
    expect(await nextMessage(await open(`ws://${host}/x`))).toBe('weft');
    expect(await nextMessage(await open(`ws://${host}/raw`))).toBe('core');
  });

  describe('inject()', () => {
    it('connects without a listening server', async () => {
      const app = express();
      const w = weft(app);
      onCleanup(() => w.close({ timeout: 1_000 }));
      app.ws('/echo/:name', (socket, req) => {
        socket.send(`hi ${req.params.name} ${req.headers['x-test']}`);
        socket.on('message', (data) => socket.send(data));
      });
      const client = await within(
        w.inject('/echo/zoe', { headers: { 'x-test': 'header' } }),
        'inject',
      );
      const messages: string[] = [];
      const twoMessages = within(
        new Promise<void>((resolve) =>
          client.on('message', (data) => {
            messages.push(String(data));
            if (messages.length === 2) resolve();
          }),
        ),
        'two messages',
      );
      client.send('ping');
      await twoMessages;
      expect(messages).toEqual(['hi zoe header', 'ping']);
      const end = within(
        new Promise<number>((resolve) => client.once('close', resolve)),
        'the close',
      );
      await w.close();
      expect(await end).toBe(1001);
    });

    it('rejects with the status, headers and body of a refusal', async () => {
      const app = express();
      const w = weft(app);
      onCleanup(() => w.close({ timeout: 1_000 }));
      app.ws(
        '/private',
        (_req, res) => res.status(401).set('X-Why', 'no').send('nope'),
        () => {},
      );
      const error = await within(
        w.inject('/private').then(
          () => null,
          (reason: unknown) => reason,
        ),
        'the refusal',
      );
      expect(error).toBeInstanceOf(InjectRefusedError);
      const refusal = error as InjectRefusedError;
      expect(refusal.statusCode).toBe(401);
      expect(refusal.headers['x-why']).toBe('no');
      expect(refusal.body).toBe('nope');
      const missing = await within(
        w.inject('/missing').catch((reason: InjectRefusedError) => reason.statusCode),
        'the 404',
      );
      expect(missing).toBe(404);
      expect(() => w.inject('no-slash')).toThrow(TypeError);
    });
  });

  describe('options', () => {
    it('refuses invalid options at weft() time', () => {
      expect(() => weft(express(), { options: { port: 1 } as never })).toThrow(
        /options.options.port/,
      );
      expect(() => weft(express(), { options: { path: '/x' } as never })).toThrow(TypeError);
      expect(() => weft(express(), { origins: 'nope' as never })).toThrow(TypeError);
      expect(() => weft(express(), { upgradeTimeout: -1 })).toThrow(RangeError);
      expect(() => weft(express(), { onError: 'log' as never })).toThrow(TypeError);
      expect(() => weft({} as never)).toThrow(TypeError);
    });

    it('refuses a second weft() on one app', () => {
      const app = express();
      weft(app);
      expect(() => weft(app)).toThrow(/already/);
    });

    it('runs the heartbeat of the core', async () => {
      const { w, host } = await start(
        (app) => {
          app.ws('/beat', (socket) => socket.send('x'));
        },
        { heartbeat: { interval: 50 } },
      );
      const client = await open(`ws://${host}/beat`);
      await within(new Promise((resolve) => client.once('ping', resolve)), 'a heartbeat ping');
      expect(w.getWss().options.heartbeat).toEqual({ interval: 50 });
    });
  });

  it('refuses nothing for a plain HTTP request and keeps it alive', async () => {
    const { host } = await start((app) => {
      app.get('/', (_req, res) => {
        res.send('home');
      });
      app.ws('/', (socket) => socket.send('socket'));
    });
    const agent = new http.Agent({ keepAlive: true });
    onCleanup(() => agent.destroy());
    const get = () =>
      within(
        new Promise<{ body: string; connection: string | undefined }>((resolve, reject) => {
          http
            .get(`http://${host}/`, { agent }, (response) => {
              let body = '';
              response.on('data', (chunk: Buffer) => {
                body += chunk;
              });
              response.on('end', () => resolve({ body, connection: response.headers.connection }));
            })
            .on('error', reject);
        }),
        'GET /',
      );
    expect(await get()).toEqual({ body: 'home', connection: 'keep-alive' });
    expect(await get()).toEqual({ body: 'home', connection: 'keep-alive' });
    expect(await nextMessage(await open(`ws://${host}/`))).toBe('socket');
    expect((await refused(`ws://${host}/other`)).status).toBe(404);
  });
});
