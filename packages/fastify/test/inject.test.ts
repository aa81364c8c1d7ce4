import type { AddressInfo } from 'node:net';
import { WebSocket } from '@weft/core';
import Fastify from 'fastify';
import { onTestFinished as after, afterEach, describe, expect, it } from 'vitest';
import { type InjectWSResponseError, weft } from '../src/index.js';
import {
  cleanup,
  closed,
  connect,
  createApp,
  deferred,
  listen,
  nextMessage,
  record,
  selfSignedCertificate,
} from './helpers.js';

afterEach(cleanup);

describe('app.injectWS', () => {
  it('opens a WebSocket through the routes and hooks with no port', async () => {
    const app = await createApp();
    app.addHook('onRequest', async (request, reply) => {
      if (request.headers['x-api-key'] !== 'k') return reply.code(401).send('no key');
    });
    app.get<{ Querystring: { name: string } }>('/echo', { websocket: true }, (socket, request) => {
      socket.send(`hello ${request.query.name}`);
      socket.on('message', (data) => socket.send(`echo ${data}`));
    });
    const client = record(await app.injectWS('/echo?name=ada', { headers: { 'x-api-key': 'k' } }));
    expect(client).toBeInstanceOf(WebSocket);
    expect(app.server.listening).toBe(false);
    expect(await nextMessage(client)).toBe('hello ada');
    client.send('ping');
    expect(await nextMessage(client)).toBe('echo ping');
    client.close();
    expect((await closed(client)).code).toBe(1005);
  });

  it('rejects with the status, headers and body of an HTTP answer', async () => {
    const app = await createApp();
    app.get(
      '/private',
      {
        websocket: true,
        preHandler: async (_request, reply) => reply.code(403).header('x-why', 'nope').send('no'),
      },
      () => {},
    );
    const error = (await app
      .injectWS('/private')
      .catch((e: unknown) => e)) as InjectWSResponseError;
    expect(error.message).toBe('Unexpected server response: 403');
    expect(error.statusCode).toBe(403);
    expect(error.headers['x-why']).toBe('nope');
    expect(error.body).toBe('no');
    await expect(app.injectWS('/missing')).rejects.toMatchObject({ statusCode: 404 });
  });

  it('sends cookies and offers subprotocols', async () => {
    const app = await createApp({ options: { handleProtocols: () => 'v2' } });
    app.get('/c', { websocket: true }, (socket, request) => {
      socket.send(`${request.headers.cookie} / ${socket.protocol}`);
    });
    const client = record(
      await app.injectWS('/c', {
        headers: { cookie: 'a=1' },
        cookies: { b: 'two words', c: '3' },
        protocols: ['v1', 'v2'],
      }),
    );
    expect(await nextMessage(client)).toBe('a=1; b=two%20words; c=3 / v2');
    expect(client.protocol).toBe('v2');
    client.terminate();
  });

  it('applies the origin policy to an injected Origin header', async () => {
    const app = await createApp();
    app.get('/o', { websocket: true }, (socket) => socket.send('in'));
    await expect(
      app.injectWS('/o', { headers: { origin: 'https://evil.example' } }),
    ).rejects.toMatchObject({ statusCode: 403 });
    const client = record(await app.injectWS('/o', { headers: { origin: 'http://localhost' } }));
    expect(await nextMessage(client)).toBe('in');
    client.terminate();
  });

  it('is closed with 1001 by app.close(), and the server side goes with it', async () => {
    const app = await createApp();
    const serverClosed: number[] = [];
    app.get('/bye', { websocket: true }, (socket) => {
      socket.on('close', (code) => serverClosed.push(code));
    });
    const client = await app.injectWS('/bye');
    const closing = closed(client);
    await app.close();
    expect(await closing).toEqual({ code: 1001, reason: 'Server shutting down' });
    expect(serverClosed).toEqual([1001]);
  });

  it('closes the server side when the injected client terminates', async () => {
    const app = await createApp();
    const serverSide = new Promise<number>((resolve) => {
      app.get('/t', { websocket: true }, (socket) => {
        socket.on('close', (code) => resolve(code));
      });
    });
    const client = await app.injectWS('/t');
    client.terminate();
    expect(await serverSide).toBe(1006);
    expect(app.websocketServer.clients.size).toBe(0);
  });
});

describe('app.injectWS, other shapes', () => {
  it('takes headers with unset and numeric values, and merges cookies into any-case Cookie', async () => {
    const app = await createApp();
    app.get('/h', { websocket: true }, (socket, request) => {
      const { cookie, 'x-count': count, 'x-unset': unset } = request.headers;
      socket.send(JSON.stringify({ cookie, count, unset: unset ?? null }));
    });
    const client = record(
      await app.injectWS('/h', {
        headers: { Cookie: 'a=1', 'x-count': 3, 'x-unset': undefined },
        cookies: { b: '2' },
      }),
    );
    expect(JSON.parse(await nextMessage(client))).toEqual({
      cookie: 'a=1; b=2',
      count: '3',
      unset: null,
    });
    client.terminate();
  });

  it("calls @fastify/websocket's onInit and onOpen hooks with the client", async () => {
    const app = await createApp();
    app.get('/hello', { websocket: true }, (socket) => socket.send('hello'));
    const calls: string[] = [];
    const greeting = deferred<string>();
    const client = await app.injectWS(
      '/hello',
      {},
      {
        onInit(ws) {
          calls.push(`init ${ws.readyState}`);
          ws.on('message', (data) => greeting.resolve(String(data)));
        },
        onOpen(ws) {
          calls.push(`open ${ws.readyState}`);
        },
      },
    );
    expect(calls).toEqual(['init 0', 'open 1']);
    expect(await greeting.promise).toBe('hello');
    client.terminate();
  });

  it('works on an HTTPS app: injected (no TLS) and over wss:// on loopback', async () => {
    const { key, cert } = await selfSignedCertificate();
    const app = Fastify({ https: { key, cert } });
    await app.register(weft);
    after(() => app.close());
    app.get('/secure', { websocket: true }, (socket, request) => {
      socket.send(`${request.protocol} ${request.ws}`);
    });
    const injected = record(await app.injectWS('/secure'));
    expect(await nextMessage(injected)).toBe('https true');
    injected.terminate();
    const url = (await listen(app)).replace('ws:', 'wss:');
    const remote = await connect(`${url}/secure`, { ca: cert });
    expect(await nextMessage(remote)).toBe('https true');
  });

  it('works on an HTTP/2 app with allowHTTP1, for the HTTP/1.1 connections WebSockets use', async () => {
    const { key, cert } = await selfSignedCertificate();
    const app = Fastify({ http2: true, https: { allowHTTP1: true, key, cert } });
    await app.register(weft);
    after(() => app.close());
    app.get('/h2', { websocket: true }, (socket, request) => {
      socket.send(`${request.protocol} HTTP/${request.raw.httpVersion}`);
    });
    const injected = record(await app.injectWS('/h2'));
    expect(await nextMessage(injected)).toBe('https HTTP/1.1');
    injected.terminate();
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const remote = await connect(`wss://127.0.0.1:${port}/h2`, { ca: cert });
    expect(await nextMessage(remote)).toBe('https HTTP/1.1');
  });
});
