import { MemoryAdapter, WebSocketServer } from '@weft/core';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, connect, createApp, listen, nextMessage, refused, within } from './helpers.js';

afterEach(cleanup);

/** Waits until `read()` is `expected` (sockets register on the server side asynchronously). */
async function until<T>(read: () => T, expected: T): Promise<void> {
  await within(
    (async () => {
      while (read() !== expected) await new Promise((resolve) => setImmediate(resolve));
    })(),
    `the value to become ${String(expected)}`,
  );
}

describe('server helpers', () => {
  it('exposes the core server as app.websocketServer and app.weft.server', async () => {
    const app = await createApp({ options: { maxPayload: 1024 } });
    expect(app.websocketServer).toBeInstanceOf(WebSocketServer);
    expect(app.weft.server).toBe(app.websocketServer);
    expect(app.websocketServer.options.maxPayload).toBe(1024);
    expect(app.websocketServer.options.noServer).toBe(true);
  });

  it('app.weft.broadcast reaches every socket of every route', async () => {
    const app = await createApp();
    app.get('/a', { websocket: true }, () => {});
    app.get('/b', { websocket: true }, () => {});
    const url = await listen(app);
    const a = await connect(`${url}/a`);
    const b = await connect(`${url}/b`);
    await until(() => app.weft.clients.size, 2);
    expect(app.weft.broadcast('to all')).toBe(2);
    expect(await nextMessage(a)).toBe('to all');
    expect(await nextMessage(b)).toBe('to all');
  });

  it('socket.subscribe + app.weft.publish reach the subscribers of a topic only', async () => {
    const app = await createApp();
    app.get<{ Params: { room: string } }>(
      '/rooms/:room',
      { websocket: true },
      (socket, request) => {
        socket.subscribe(`room:${request.params.room}`);
        socket.send('joined');
      },
    );
    const url = await listen(app);
    const red1 = await connect(`${url}/rooms/red`);
    const red2 = await connect(`${url}/rooms/red`);
    const blue = await connect(`${url}/rooms/blue`);
    for (const client of [red1, red2, blue]) expect(await nextMessage(client)).toBe('joined');
    expect(app.weft.subscriberCount('room:red')).toBe(2);
    await app.weft.publish('room:red', 'red news');
    expect(await nextMessage(red1)).toBe('red news');
    expect(await nextMessage(red2)).toBe('red news');
    await app.weft.publish('room:blue', 'blue news');
    expect(await nextMessage(blue)).toBe('blue news');
  });

  it('publishes across two apps sharing a pubsub adapter', async () => {
    const pubsub = new MemoryAdapter();
    const apps = await Promise.all([createApp({ pubsub }), createApp({ pubsub })]);
    const urls: string[] = [];
    for (const app of apps) {
      app.get('/news', { websocket: true }, (socket) => {
        socket.subscribe('news');
        socket.send('subscribed');
      });
      urls.push(await listen(app));
    }
    const first = await connect(`${urls[0]}/news`);
    const second = await connect(`${urls[1]}/news`);
    expect(await nextMessage(first)).toBe('subscribed');
    expect(await nextMessage(second)).toBe('subscribed');
    await apps[0]!.weft.publish('news', 'extra');
    expect(await nextMessage(first)).toBe('extra');
    expect(await nextMessage(second)).toBe('extra');
  });
});

describe('route client sets', () => {
  it("knows each route's open sockets and broadcasts to that route only", async () => {
    const app = await createApp();
    app.get('/chat', { websocket: true }, (socket, request) => {
      socket.on('message', (data) => {
        // To the others on this route: the sender is left out.
        request.wsRoute?.broadcast(String(data), { except: socket });
      });
    });
    app.get('/other', { websocket: true }, () => {});
    const url = await listen(app);
    const alice = await connect(`${url}/chat`);
    const bob = await connect(`${url}/chat`);
    const outsider = await connect(`${url}/other`);
    const chat = app.weft.route('/chat');
    expect(chat?.url).toBe('/chat');
    await until(() => chat?.clients.size, 2);
    expect(app.weft.route('/other')?.clients.size).toBe(1);

    alice.send('hi bob');
    expect(await nextMessage(bob)).toBe('hi bob');
    expect(chat!.broadcast('to chat only')).toBe(2);
    expect(await nextMessage(alice)).toBe('to chat only');
    expect(await nextMessage(bob)).toBe('to chat only');
    // Messages keep their order: had the chat broadcast reached the outsider, it would come first.
    app.weft.route('/other')!.broadcast('marker');
    expect(await nextMessage(outsider)).toBe('marker');

    bob.close();
    await until(() => chat?.clients.size, 1);
  });

  it('gives request.wsRoute in hooks and null on HTTP routes', async () => {
    const app = await createApp();
    const seen: Array<string | null> = [];
    app.addHook('onRequest', async (request) => {
      seen.push(request.wsRoute?.url ?? null);
    });
    app.get(
      '/limited',
      {
        websocket: true,
        // A per-route connection cap, as a hook can write it.
        preHandler: async (request, reply) => {
          if ((request.wsRoute?.clients.size ?? 0) >= 1) return reply.code(503).send('full');
        },
      },
      (socket) => socket.send('in'),
    );
    app.get('/http', async () => 'plain');
    const url = await listen(app);
    expect(await nextMessage(await connect(`${url}/limited`))).toBe('in');
    await until(() => app.weft.route('/limited')?.clients.size, 1);
    expect((await refused(`${url}/limited`)).status).toBe(503);
    await app.inject('/http');
    expect(seen).toEqual(['/limited', '/limited', null]);
  });
});
