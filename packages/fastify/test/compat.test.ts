import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyPluginCallback } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { weft, fastifyWebsocket as weftAlias } from '../src/index.js';
import {
  cleanup,
  closed,
  connect,
  deferred,
  nextMessage,
  record,
  refused,
  within,
} from './helpers.js';

// The same application code, written to @fastify/websocket's documented API, runs on both
// plugins: what a user switching the import relies on must behave the same. The differences
// the README lists are checked at the end, so the list stays true.

/** Loaded by a computed specifier: its type declarations would clash with ours in one program. */
const FASTIFY_WEBSOCKET = '@fastify/websocket';
type AnyPlugin = FastifyPluginCallback<Record<string, unknown>>;
let theirs: AnyPlugin;
const PLUGINS = ['@weft/fastify', '@fastify/websocket'] as const;
type PluginName = (typeof PLUGINS)[number];

beforeAll(async () => {
  theirs = ((await import(FASTIFY_WEBSOCKET)) as { default: AnyPlugin }).default;
});

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await cleanup();
  await Promise.all(apps.splice(0).map((app) => app.close()));
});
afterAll(cleanup);

function pluginOf(name: PluginName): AnyPlugin {
  return name === '@weft/fastify' ? (weft as unknown as AnyPlugin) : theirs;
}

interface Recorded {
  errors: string[];
}

/** An app as a @fastify/websocket user writes it, with only the plugin swapped. */
async function buildApp(
  name: PluginName,
  options: Record<string, unknown> = {},
): Promise<{ app: FastifyInstance; seen: Recorded }> {
  const seen: Recorded = { errors: [] };
  const app = Fastify();
  apps.push(app);
  await app.register(pluginOf(name), {
    options: { maxPayload: 1 << 20 },
    errorHandler(error: Error, socket: WebSocket, request: { url: string }, reply: unknown) {
      seen.errors.push(
        `${error.message} at ${request.url}, reply ${typeof (reply as { send?: unknown }).send}`,
      );
      socket.terminate();
    },
    preClose(this: FastifyInstance, done: (error?: Error) => void) {
      for (const client of this.websocketServer.clients) client.close(1001, 'bye');
      this.websocketServer.close(() => done());
    },
    ...options,
  });
  app.decorate('greeting', 'hello');
  await app.register(async (scope) => {
    scope.addHook('preValidation', async (request, reply) => {
      if (request.headers['api-key'] !== 'key') return reply.code(401).send();
    });
    scope.get<{ Params: { name: string } }>(
      '/echo/:name',
      { websocket: true },
      function (socket, request) {
        const { greeting } = this as unknown as { greeting: string };
        socket.send(`${greeting} ${request.params.name} ${request.ws}`);
        socket.on('message', (message) => socket.send(message.toString()));
      },
    );
  });
  app.route({
    method: 'GET',
    url: '/both',
    handler: (_request, reply) => {
      reply.send({ hello: 'world' });
    },
    wsHandler: (socket) => {
      socket.send('hello client');
      socket.once('message', () => socket.close());
    },
  });
  app.route({
    method: 'GET',
    url: '/full',
    websocket: true,
    handler: (socket) => socket.send('full declaration'),
  });
  app.get('/throws', { websocket: true }, () => {
    throw new Error('boom');
  });
  app.get('/page', async () => 'a page');
  return { app, seen };
}

async function listenOn(app: FastifyInstance): Promise<{ ws: string; http: string }> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { ws: `ws://127.0.0.1:${port}`, http: `http://127.0.0.1:${port}` };
}

describe.each(PLUGINS)('the same app on %s', (name) => {
  it('serves websocket routes with params, decorators, request.ws and encapsulated hooks', async () => {
    const { app } = await buildApp(name);
    const url = await listenOn(app);
    const client = await connect(`${url.ws}/echo/ada`, { headers: { 'api-key': 'key' } });
    expect(await nextMessage(client)).toBe('hello ada true');
    client.send('round trip');
    expect(await nextMessage(client)).toBe('round trip');
    expect(app.websocketServer.clients.size).toBe(1);
    expect((await refused(`${url.ws}/echo/ada`)).status).toBe(401);
  });

  it('serves handler + wsHandler on one route, and app.route({ websocket: true })', async () => {
    const { app } = await buildApp(name);
    const url = await listenOn(app);
    expect(await (await fetch(`${url.http}/both`)).json()).toEqual({ hello: 'world' });
    const both = await connect(`${url.ws}/both`);
    expect(await nextMessage(both)).toBe('hello client');
    const bothClosed = closed(both);
    both.send('bye');
    expect((await bothClosed).code).toBe(1005);
    expect(await nextMessage(await connect(`${url.ws}/full`))).toBe('full declaration');
  });

  it('injects with injectWS(path, { headers }) and rejects refusals with the status', async () => {
    const { app } = await buildApp(name);
    await app.ready();
    const client = await app.injectWS(
      '/echo/grace',
      { headers: { 'api-key': 'key' } },
      { onInit: (ws) => void record(ws) },
    );
    expect(await nextMessage(client)).toBe('hello grace true');
    client.terminate();
    await expect(app.injectWS('/echo/grace')).rejects.toThrow('Unexpected server response: 401');
  });

  it('hands handler errors to errorHandler(error, socket, request, reply)', async () => {
    const { app, seen } = await buildApp(name);
    const url = await listenOn(app);
    expect((await closed(await connect(`${url.ws}/throws`))).code).toBe(1006);
    expect(seen.errors).toEqual(['boom at /throws, reply function']);
  });

  it('runs a callback-style preClose on app.close()', async () => {
    const { app } = await buildApp(name);
    const url = await listenOn(app);
    const closing = closed(await connect(`${url.ws}/echo/x`, { headers: { 'api-key': 'key' } }));
    await within(app.close(), 'app.close()');
    expect(await closing).toEqual({ code: 1001, reason: 'bye' });
  });
});

describe('the documented differences from @fastify/websocket', () => {
  /** What `probe` gives on each plugin, for a side-by-side expectation. */
  async function onBoth<T>(
    probe: (name: PluginName) => Promise<T>,
  ): Promise<Record<PluginName, T>> {
    return {
      '@weft/fastify': await probe('@weft/fastify'),
      '@fastify/websocket': await probe('@fastify/websocket'),
    };
  }

  it('a plain GET to a websocket-only route: 426 here, 404 there', async () => {
    expect(
      await onBoth(async (name) => {
        const { app } = await buildApp(name);
        return (await fetch(`${(await listenOn(app)).http}/full`)).status;
      }),
    ).toEqual({ '@weft/fastify': 426, '@fastify/websocket': 404 });
  });

  it('an upgrade to an HTTP-only route: 404 here; there it opens, then closes', async () => {
    expect(
      await onBoth(async (name) => {
        const { app } = await buildApp(name);
        const client = new WebSocket(`${(await listenOn(app)).ws}/page`);
        const outcome = deferred<string>();
        client.on('unexpected-response', (_request, response) =>
          outcome.resolve(`refused ${response.statusCode}`),
        );
        client.on('close', (code) => outcome.resolve(`opened, closed ${code}`));
        client.on('error', () => {});
        const result = await within(outcome.promise, 'the outcome');
        client.terminate();
        return result;
      }),
    ).toEqual({ '@weft/fastify': 'refused 404', '@fastify/websocket': 'opened, closed 1005' });
  });

  it('the default errorHandler: close 1011 here, terminate (1006) there', async () => {
    expect(
      await onBoth(async (name) => {
        const { app } = await buildApp(name, { errorHandler: undefined });
        return (await closed(await connect(`${(await listenOn(app)).ws}/throws`))).code;
      }),
    ).toEqual({ '@weft/fastify': 1011, '@fastify/websocket': 1006 });
  });

  it('the default close on app.close(): 1001 here, 1005 there', async () => {
    expect(
      await onBoth(async (name) => {
        const { app } = await buildApp(name, { preClose: undefined });
        const url = await listenOn(app);
        const closing = closed(await connect(`${url.ws}/full`));
        await within(app.close(), 'app.close()');
        return (await closing).code;
      }),
    ).toEqual({ '@weft/fastify': 1001, '@fastify/websocket': 1005 });
  });

  it('a cross-site Origin: 403 by default here, accepted there', async () => {
    expect(
      await onBoth(async (name) => {
        const { app } = await buildApp(name);
        const url = `${(await listenOn(app)).ws}/full`;
        const client = new WebSocket(url, { origin: 'https://evil.example' });
        const outcome = deferred<string>();
        client.on('unexpected-response', (_request, response) =>
          outcome.resolve(`refused ${response.statusCode}`),
        );
        client.on('open', () => outcome.resolve('opened'));
        client.on('error', () => {});
        const result = await within(outcome.promise, 'the outcome');
        client.terminate();
        return result;
      }),
    ).toEqual({ '@weft/fastify': 'refused 403', '@fastify/websocket': 'opened' });
  });

  it('messages sent before an async handler listens: delivered here, lost there', async () => {
    expect(
      await onBoth(async (name) => {
        const { app } = await buildApp(name);
        const ready = deferred();
        app.get('/late', { websocket: true }, async (socket) => {
          await ready.promise;
          socket.on('message', (data) => socket.send(`got ${data}`));
        });
        const client = await connect(`${(await listenOn(app)).ws}/late`);
        client.send('early');
        const pong = deferred();
        client.once('pong', () => pong.resolve());
        client.ping();
        await within(pong.promise, 'the pong');
        ready.resolve();
        client.send('later');
        return [await nextMessage(client)];
      }),
    ).toEqual({ '@weft/fastify': ['got early'], '@fastify/websocket': ['got later'] });
  });

  it('exports the plugin under the @fastify/websocket name too', () => {
    expect(weftAlias).toBe(weft);
  });
});
