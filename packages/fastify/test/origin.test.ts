import type { FastifyRequest } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import type { OriginOption } from '../src/index.js';
import { cleanup, connect, createApp, listen, nextMessage, refused } from './helpers.js';

afterEach(cleanup);

/** An app whose /ws route says 'open' to whoever gets through. */
async function originApp(origins?: OriginOption): Promise<string> {
  const app = await createApp(origins === undefined ? {} : { origins });
  app.get('/ws', { websocket: true }, (socket) => socket.send('open'));
  return listen(app);
}

describe('origin policy', () => {
  it('refuses, by default, a browser origin that does not match the Host with 403', async () => {
    const url = await originApp();
    const refusal = await refused(`${url}/ws`, { origin: 'https://evil.example' });
    expect(refusal.status).toBe(403);
    expect(JSON.parse(refusal.body)).toMatchObject({
      statusCode: 403,
      code: 'WEFT_ERR_ORIGIN_NOT_ALLOWED',
    });
  });

  it('allows, by default, the same host and a client that sends no Origin', async () => {
    const url = await originApp();
    const sameHost = url.replace('ws:', 'http:');
    expect(await nextMessage(await connect(`${url}/ws`, { origin: sameHost }))).toBe('open');
    expect(await nextMessage(await connect(`${url}/ws`))).toBe('open');
    // Same host name on another port is another origin.
    const otherPort = `http://127.0.0.1:${Number(new URL(url).port) + 1}`;
    expect((await refused(`${url}/ws`, { origin: otherPort })).status).toBe(403);
  });

  it('allows only the listed origins, wildcard subdomains included', async () => {
    const url = await originApp(['https://app.example', 'https://*.partner.example']);
    expect(await nextMessage(await connect(`${url}/ws`, { origin: 'https://app.example' }))).toBe(
      'open',
    );
    expect(
      await nextMessage(await connect(`${url}/ws`, { origin: 'https://eu.partner.example' })),
    ).toBe('open');
    expect((await refused(`${url}/ws`, { origin: 'https://partner.example' })).status).toBe(403);
    expect((await refused(`${url}/ws`, { origin: 'http://app.example' })).status).toBe(403);
  });

  it("allows any origin with '*'", async () => {
    const url = await originApp('*');
    expect(
      await nextMessage(await connect(`${url}/ws`, { origin: 'https://anywhere.example' })),
    ).toBe('open');
  });

  it('asks a policy function, with the Fastify request, and awaits it', async () => {
    const seen: string[] = [];
    const url = await originApp(async (origin: string, request: FastifyRequest) => {
      seen.push(`${origin} ${request.url}`);
      return origin === 'https://ok.example';
    });
    expect(await nextMessage(await connect(`${url}/ws`, { origin: 'https://ok.example' }))).toBe(
      'open',
    );
    expect((await refused(`${url}/ws?x=1`, { origin: 'https://no.example' })).status).toBe(403);
    // Not asked without an Origin: a non-browser client has none to check.
    expect(await nextMessage(await connect(`${url}/ws`))).toBe('open');
    expect(seen).toEqual(['https://ok.example /ws', 'https://no.example /ws?x=1']);
  });

  it('answers 500 when the policy function throws or rejects', async () => {
    const url = await originApp((origin) => {
      if (origin === 'https://sync.example') throw new Error('policy bug');
      return Promise.reject(new Error('policy outage'));
    });
    expect((await refused(`${url}/ws`, { origin: 'https://sync.example' })).status).toBe(500);
    expect((await refused(`${url}/ws`, { origin: 'https://async.example' })).status).toBe(500);
  });

  it('does not apply to plain HTTP requests of a route with handler and wsHandler', async () => {
    const app = await createApp();
    app.route({
      method: 'GET',
      url: '/both',
      handler: async () => 'http',
      wsHandler: () => {},
    });
    await app.ready();
    const response = await app.inject({
      url: '/both',
      headers: { origin: 'https://elsewhere.example' },
    });
    expect(response.statusCode).toBe(200);
  });
});
