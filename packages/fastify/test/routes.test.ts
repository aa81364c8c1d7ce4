import net from 'node:net';
import type { WebSocket as WeftSocket } from '@weft/core';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { weft } from '../src/index.js';
import {
  cleanup,
  closed,
  connect,
  createApp,
  deferred,
  listen,
  nextMessage,
  refused,
  watchUpgradeSockets,
  within,
} from './helpers.js';

afterEach(cleanup);

describe('WebSocket routes', () => {
  it('serves app.get(path, { websocket: true }) with params, query, decorators and log', async () => {
    const app = await createApp();
    app.decorateRequest('tenant', 'acme');
    app.get<{ Params: { room: string }; Querystring: { nick: string } }>(
      '/rooms/:room',
      { websocket: true },
      function (socket, request) {
        const tenant = (request as unknown as { tenant: string }).tenant;
        socket.send(
          JSON.stringify({
            room: request.params.room,
            nick: request.query.nick,
            tenant,
            hasLog: typeof request.log.info === 'function',
            isInstance: typeof this.weft.broadcast === 'function',
            ws: request.ws,
          }),
        );
        socket.on('message', (data) => socket.send(`echo ${data}`));
      },
    );
    const url = await listen(app);
    const client = await connect(`${url}/rooms/lobby?nick=ada`);
    expect(JSON.parse(await nextMessage(client))).toEqual({
      room: 'lobby',
      nick: 'ada',
      tenant: 'acme',
      hasLog: true,
      isInstance: true,
      ws: true,
    });
    client.send('hi');
    expect(await nextMessage(client)).toBe('echo hi');
  });

  it('serves app.route({ method: "GET", websocket: true, handler })', async () => {
    const app = await createApp();
    app.route({
      method: 'GET',
      url: '/feed',
      websocket: true,
      handler: (socket) => {
        socket.send('feed');
      },
    });
    const url = await listen(app);
    expect(await nextMessage(await connect(`${url}/feed`))).toBe('feed');
  });

  it('serves plain GETs with handler and the upgrade with wsHandler on one route', async () => {
    const app = await createApp();
    app.route({
      method: 'GET',
      url: '/both',
      handler: async () => ({ via: 'http' }),
      wsHandler: (socket) => {
        socket.send('via websocket');
      },
    });
    const url = await listen(app);
    const response = await fetch(`${url.replace('ws:', 'http:')}/both`);
    expect(await response.json()).toEqual({ via: 'http' });
    expect(await nextMessage(await connect(`${url}/both`))).toBe('via websocket');
  });

  it('answers a plain GET (and HEAD) to a WebSocket-only route with 426 Upgrade Required', async () => {
    const app = await createApp();
    app.get('/only-ws', { websocket: true }, () => {});
    await app.ready();
    const get = await app.inject({ method: 'GET', url: '/only-ws' });
    expect(get.statusCode).toBe(426);
    expect(get.headers.upgrade).toBe('websocket');
    expect(get.json()).toMatchObject({ statusCode: 426, error: 'Upgrade Required' });
    const head = await app.inject({ method: 'HEAD', url: '/only-ws' });
    expect(head.statusCode).toBe(426);
  });

  it('answers a plain GET and HEAD over the network to a WebSocket-only route with 426', async () => {
    const app = await createApp();
    let opened = false;
    app.get('/only-ws', { websocket: true }, () => {
      opened = true;
    });
    const base = (await listen(app)).replace('ws:', 'http:');
    const get = await fetch(`${base}/only-ws`);
    expect(get.status).toBe(426);
    expect(get.headers.get('upgrade')).toBe('websocket');
    expect(await get.json()).toMatchObject({ code: 'WEFT_ERR_UPGRADE_REQUIRED' });
    const head = await fetch(`${base}/only-ws`, { method: 'HEAD' });
    expect(head.status).toBe(426);
    expect(opened).toBe(false);
  });

  it('serves an upgrade offer to another protocol (h2c) as a plain request', async () => {
    const app = await createApp();
    app.get('/page', async () => 'the page');
    app.get('/ws', { websocket: true }, () => {});
    const sockets = watchUpgradeSockets(app);
    const url = await listen(app);
    const { hostname, port } = new URL(url);
    /** What the server answers a GET offering h2c, as `curl --http2 http://...` sends it. */
    const offerH2c = async (path: string): Promise<string> => {
      const socket = net.connect(Number(port), hostname);
      let answer = '';
      socket.on('data', (chunk: Buffer) => {
        answer += chunk.toString();
      });
      const socketClosed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.write(
        [
          `GET ${path} HTTP/1.1`,
          `Host: ${hostname}:${port}`,
          'Connection: Upgrade, HTTP2-Settings',
          'Upgrade: h2c',
          'HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA',
          '',
          '',
        ].join('\r\n'),
      );
      await within(socketClosed, 'the server to close the connection').finally(() =>
        socket.destroy(),
      );
      return answer;
    };
    const page = await offerH2c('/page');
    expect(page).toMatch(/^HTTP\/1\.1 200 /);
    expect(page).toMatch(/\r\n\r\nthe page$/);
    expect(await offerH2c('/ws')).toMatch(/^HTTP\/1\.1 426 /);
    expect(app.websocketServer.clients.size).toBe(0);
    await sockets.allClosed();
  });

  it('hides WebSocket-only routes from API documentation (schema.hide), as @fastify/websocket does', async () => {
    const app = await createApp();
    const hidden = new Map<string, unknown>();
    // An onRoute hook added after the plugin's sees the route as documentation plugins do.
    app.addHook('onRoute', (route) => {
      if (route.method === 'GET') {
        hidden.set(route.url, (route.schema as { hide?: unknown } | undefined)?.hide);
      }
    });
    const querystring = { type: 'object', properties: { q: { type: 'string' } } } as const;
    app.get('/ws', { websocket: true, schema: { querystring } }, () => {});
    app.get('/shown', { websocket: true, schema: { hide: false } as object }, () => {});
    app.route({ method: 'GET', url: '/both', handler: async () => 'http', wsHandler: () => {} });
    await app.ready();
    expect(Object.fromEntries(hidden)).toEqual({
      '/ws': true,
      '/shown': false,
      '/both': undefined,
    });
  });

  it("answers an upgrade to an unknown path with Fastify's 404 and closes the connection", async () => {
    const app = await createApp();
    app.get('/ws', { websocket: true }, () => {});
    const sockets = watchUpgradeSockets(app);
    const url = await listen(app);
    const refusal = await refused(`${url}/missing`);
    expect(refusal.status).toBe(404);
    expect(JSON.parse(refusal.body)).toMatchObject({ statusCode: 404, error: 'Not Found' });
    expect(refusal.headers.connection).toBe('close');
    await sockets.allClosed();
  });

  it('answers an upgrade to an HTTP route with 404, through a custom not-found handler', async () => {
    const app = await createApp();
    let httpHandlerRan = false;
    app.get('/page', async () => {
      httpHandlerRan = true;
      return 'page';
    });
    app.setNotFoundHandler((request, reply) => {
      reply.code(404).send({ custom: true, url: request.url });
    });
    const sockets = watchUpgradeSockets(app);
    const url = await listen(app);
    const refusal = await refused(`${url}/page`);
    expect(refusal.status).toBe(404);
    expect(JSON.parse(refusal.body)).toEqual({ custom: true, url: '/page' });
    expect(httpHandlerRan).toBe(false);
    await sockets.allClosed();
  });

  it('validates querystring and params before the upgrade (400)', async () => {
    const app = await createApp();
    let opened = false;
    app.get(
      '/items/:id',
      {
        websocket: true,
        schema: {
          params: { type: 'object', properties: { id: { type: 'integer' } } },
          querystring: {
            type: 'object',
            required: ['token'],
            properties: { token: { type: 'string', minLength: 3 } },
          },
        },
      },
      (socket, request) => {
        opened = true;
        socket.send(JSON.stringify({ id: request.params, query: request.query }));
      },
    );
    const sockets = watchUpgradeSockets(app);
    const url = await listen(app);
    const missing = await refused(`${url}/items/1`);
    expect(missing.status).toBe(400);
    expect(JSON.parse(missing.body).message).toMatch(/token/);
    const badParam = await refused(`${url}/items/abc?token=abcd`);
    expect(badParam.status).toBe(400);
    expect(opened).toBe(false);
    // Coerced by the schema, as for an HTTP route.
    const client = await connect(`${url}/items/42?token=abcd`);
    expect(JSON.parse(await nextMessage(client))).toEqual({
      id: { id: 42 },
      query: { token: 'abcd' },
    });
    client.terminate();
    await sockets.allClosed();
  });

  it('lets the core refuse a malformed handshake after the hooks, and closes the connection', async () => {
    const app = await createApp();
    let hookRan = false;
    app.get(
      '/strict',
      {
        websocket: true,
        onRequest: async () => {
          hookRan = true;
        },
      },
      () => {},
    );
    const sockets = watchUpgradeSockets(app);
    const url = await listen(app);
    const { hostname, port } = new URL(url);
    const socket = net.connect(Number(port), hostname);
    let answer = '';
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString();
    });
    const socketClosed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write(
      [
        'GET /strict HTTP/1.1',
        `Host: ${hostname}:${port}`,
        'Upgrade: websocket',
        'Connection: Upgrade',
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
        'Sec-WebSocket-Version: 99',
        '',
        '',
      ].join('\r\n'),
    );
    await within(socketClosed, 'the server to close the connection').finally(() =>
      socket.destroy(),
    );
    expect(answer).toMatch(/^HTTP\/1\.1 426 /);
    expect(answer).toMatch(/Sec-WebSocket-Version: 13, 8/i);
    expect(hookRan).toBe(true);
    await sockets.allClosed();
  });

  it('routes inside prefixed, encapsulated plugins', async () => {
    const app = await createApp();
    await app.register(
      async (child) => {
        child.get('/chat', { websocket: true }, (socket, request) => {
          socket.send(`in ${request.routeOptions.url}`);
        });
      },
      { prefix: '/v1' },
    );
    const url = await listen(app);
    expect(await nextMessage(await connect(`${url}/v1/chat`))).toBe('in /v1/chat');
    expect((await refused(`${url}/chat`)).status).toBe(404);
  });

  it('refuses a WebSocket route that is not GET, or that sets websocket and wsHandler', async () => {
    const app = Fastify();
    await app.register(weft);
    expect(() =>
      app.route({
        method: 'POST',
        url: '/post',
        websocket: true,
        handler: () => {},
      }),
    ).toThrow(/must be a GET route/);
    expect(() =>
      app.route({
        method: 'GET',
        url: '/twice',
        websocket: true,
        handler: () => {},
        wsHandler: () => {},
      } as never),
    ).toThrow(/both `websocket: true` and `wsHandler`/);
    await app.close();
  });
});

describe('WebSocket handlers', () => {
  it('delivers messages sent before an async handler attaches its listener', async () => {
    const app = await createApp();
    const handlerWaits = deferred();
    app.get('/slow', { websocket: true }, async (socket) => {
      await handlerWaits.promise;
      socket.on('message', (data) => socket.send(`got ${data}`));
    });
    const url = await listen(app);
    const client = await connect(`${url}/slow`);
    client.send('first');
    client.send('second');
    // The server answers a ping after the frames before it: once the pong is back, both
    // messages have reached the server while the handler is still waiting.
    const pong = deferred();
    client.once('pong', () => pong.resolve());
    client.ping();
    await within(pong.promise, 'the pong');
    handlerWaits.resolve();
    expect(await nextMessage(client)).toBe('got first');
    expect(await nextMessage(client)).toBe('got second');
  });

  it('closes with 1011 when a handler throws, and logs the error', async () => {
    const logged: unknown[] = [];
    const app = await createApp();
    app.get('/throws', { websocket: true }, (_socket, request) => {
      request.log.error = ((object: unknown) => {
        logged.push(object);
      }) as typeof request.log.error;
      throw new Error('handler bug');
    });
    const url = await listen(app);
    const client = await connect(`${url}/throws`);
    expect(await closed(client)).toEqual({ code: 1011, reason: 'Internal server error' });
    expect(logged).toHaveLength(1);
    expect((logged[0] as { err: Error }).err.message).toBe('handler bug');
  });

  it('closes with 1011 when an async handler rejects, and logs the error', async () => {
    const logged: unknown[] = [];
    const app = await createApp();
    app.get('/rejects', { websocket: true }, async (_socket, request) => {
      request.log.error = ((object: unknown) => {
        logged.push(object);
      }) as typeof request.log.error;
      await Promise.resolve();
      throw new Error('async bug');
    });
    const url = await listen(app);
    expect(await closed(await connect(`${url}/rejects`))).toEqual({
      code: 1011,
      reason: 'Internal server error',
    });
    expect((logged[0] as { err: Error }).err.message).toBe('async bug');
  });

  it('gives the error handler the hijacked reply as fourth argument, as @fastify/websocket does', async () => {
    const seen = deferred<boolean>();
    const app = await createApp({
      errorHandler(_error, socket, request, reply) {
        seen.resolve(reply.request === request && reply.sent);
        socket.close(4000);
      },
    });
    app.get('/x', { websocket: true }, () => {
      throw new Error('handler bug');
    });
    const url = await listen(app);
    expect((await closed(await connect(`${url}/x`))).code).toBe(4000);
    expect(await seen.promise).toBe(true);
  });

  it("hands handler errors to the plugin's errorHandler, and to a route's wsErrorHandler first", async () => {
    const seen: string[] = [];
    const app = await createApp({
      errorHandler(error, socket, request) {
        seen.push(`plugin: ${error.message} at ${request.url}`);
        socket.close(4000, 'plugin handler');
      },
    });
    app.get('/a', { websocket: true }, () => {
      throw new Error('a failed');
    });
    app.get(
      '/b',
      {
        websocket: true,
        wsErrorHandler(error, socket) {
          seen.push(`route: ${error.message}`);
          socket.close(4001, 'route handler');
        },
      },
      async () => {
        throw new Error('b failed');
      },
    );
    const url = await listen(app);
    expect(await closed(await connect(`${url}/a`))).toEqual({
      code: 4000,
      reason: 'plugin handler',
    });
    expect(await closed(await connect(`${url}/b`))).toEqual({
      code: 4001,
      reason: 'route handler',
    });
    expect(seen).toEqual(['plugin: a failed at /a', 'route: b failed']);
  });

  it('terminates the socket when the error handler itself fails', async () => {
    const app = await createApp({
      errorHandler() {
        throw new Error('error handler bug');
      },
    });
    app.get('/x', { websocket: true }, () => {
      throw new Error('handler bug');
    });
    const url = await listen(app);
    expect((await closed(await connect(`${url}/x`))).code).toBe(1006);
  });

  it("emits 'connection' on app.websocketServer with the socket and the raw request", async () => {
    const app = await createApp();
    app.get('/c', { websocket: true }, () => {});
    const connection = deferred<[WeftSocket, string | undefined]>();
    app.websocketServer.on('connection', (socket, request) =>
      connection.resolve([socket, request.url]),
    );
    const url = await listen(app);
    await connect(`${url}/c?x=1`);
    const [socket, requestUrl] = await connection.promise;
    expect(requestUrl).toBe('/c?x=1');
    expect(app.websocketServer.clients.has(socket)).toBe(true);
  });

  it('negotiates subprotocols and permessage-deflate with the core server options', async () => {
    const app = await createApp({
      options: {
        perMessageDeflate: true,
        handleProtocols: (protocols) => (protocols.has('chat.v2') ? 'chat.v2' : false),
      },
    });
    app.get('/p', { websocket: true }, (socket) => {
      socket.send(`${socket.protocol} ${socket.extensions.startsWith('permessage-deflate')}`);
    });
    const url = await listen(app);
    const plain = await connect(`${url}/p`);
    expect(await nextMessage(plain)).toBe(' true');
    const chat = await connect(`${url}/p`, {}, ['chat.v1', 'chat.v2']);
    expect(chat.protocol).toBe('chat.v2');
    expect(await nextMessage(chat)).toBe('chat.v2 true');
  });
});
