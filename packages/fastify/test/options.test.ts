import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { type WeftPluginOptions, weft } from '../src/index.js';
import { cleanup, closed, connect, nextMessage, record, refused, within } from './helpers.js';

const apps: Array<ReturnType<typeof Fastify>> = [];
const servers: Server[] = [];
afterEach(async () => {
  await cleanup();
  await Promise.all(apps.splice(0).map((app) => app.close()));
  for (const server of servers.splice(0)) server.close();
});

/** Registers the plugin with `options` and resolves with the boot error, if any. */
async function bootError(options: unknown): Promise<Error | undefined> {
  const app = Fastify();
  apps.push(app);
  return app
    .register(weft, options as WeftPluginOptions)
    .ready()
    .then(
      () => undefined,
      (error: Error) => error,
    );
}

describe('plugin options', () => {
  it.each([
    [{ options: { port: 8080 } }, /options\.port.*not supported/],
    [{ options: { server: {} } }, /options\.server` must be an HTTP or HTTPS server/],
    [{ options: { noServer: true } }, /options\.noServer.*not supported/],
    [{ options: { path: '/ws' } }, /options\.path.*declare a route/],
    [{ options: { origins: '*' } }, /options\.origins.*plugin option `origins`/],
    [{ options: { clientTracking: false } }, /clientTracking: false/],
    [{ options: 'big' }, /`options` must be an object/],
    [{ errorHandler: 'log it' }, /`errorHandler` must be a function/],
    [{ preClose: 1 }, /`preClose` must be a function/],
    [{ origins: 'https://app.example' }, /`origins` must be/],
    [{ origins: [1] }, /`origins` must be/],
  ])('refuses %j at register time', async (options, message) => {
    expect((await bootError(options))?.message).toMatch(message);
  });

  it('accepts every documented option', async () => {
    expect(
      await bootError({
        options: { maxPayload: 1024, perMessageDeflate: true, handshakeTimeout: 1000 },
        errorHandler() {},
        preClose() {},
        origins: ['https://app.example'],
        heartbeat: { interval: 60_000 },
        shutdown: { code: 1012, timeout: 100 },
      }),
    ).toBeUndefined();
  });

  it('refuses an HTTP/2 app without TLS, which can carry no WebSocket handshake', async () => {
    const app = Fastify({ http2: true });
    apps.push(app as unknown as ReturnType<typeof Fastify>);
    await expect(Promise.resolve(app.register(weft))).rejects.toThrow(
      /HTTP\/2 without TLS.*allowHTTP1/,
    );
  });

  it('refuses a second registration on the same server', async () => {
    const app = Fastify();
    apps.push(app);
    await app.register(weft);
    const again = app.register(async (child) => {
      await child.register(weft);
    });
    await expect(Promise.resolve(again)).rejects.toThrow(/already registered on this server/);
  });
});

describe('options.server', () => {
  it("answers the upgrades of another server through the app's routes and hooks", async () => {
    // Plain HTTP requests to it are the owner's business; only its upgrades are the plugin's.
    const other = createServer((_request, response) => response.end('not fastify'));
    servers.push(other);
    await within(
      new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve)),
      'the other server to listen',
    );
    const url = `ws://127.0.0.1:${(other.address() as AddressInfo).port}`;
    const app = Fastify();
    apps.push(app);
    await app.register(weft, { options: { server: other } });
    app.addHook('onRequest', async (request, reply) => {
      if (request.headers.authorization !== 'yes') return reply.code(401).send('no');
    });
    app.get('/ws', { websocket: true }, (socket) => socket.send('via the other server'));
    await app.ready();
    expect(app.server.listening).toBe(false);

    expect((await refused(`${url}/ws`)).status).toBe(401);
    expect((await refused(`${url}/nowhere`, { headers: { authorization: 'yes' } })).status).toBe(
      404,
    );
    const client = await connect(`${url}/ws`, { headers: { authorization: 'yes' } });
    expect(await nextMessage(client)).toBe('via the other server');
    // injectWS goes through that server too.
    const injected = record(await app.injectWS('/ws', { headers: { authorization: 'yes' } }));
    expect(await nextMessage(injected)).toBe('via the other server');

    const closing = closed(client);
    await within(app.close(), 'app.close()');
    expect((await closing).code).toBe(1001);
    // The plugin let go of the other server, which the app does not own: it still serves.
    expect(other.listening).toBe(true);
    expect(other.listenerCount('upgrade')).toBe(0);
  });
});
