import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { type WeftPluginOptions, weft } from '../src/index.js';

const apps: Array<ReturnType<typeof Fastify>> = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
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
    [{ options: { server: {} } }, /options\.server.*not supported/],
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
