import type { IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { checkOrigin, type OriginPolicy, WebSocket } from '../src/index.js';
import { closeAll, RawClient, startServer, track, waitFor } from './net-helpers.js';

afterEach(closeAll);

function request(headers: Record<string, string>): IncomingMessage {
  return { headers } as unknown as IncomingMessage;
}

describe('checkOrigin', () => {
  const cases: Array<[string, OriginPolicy, Record<string, string>, boolean]> = [
    ['no Origin (a non-browser client)', 'same-host', { host: 'app.example' }, true],
    ['same host', 'same-host', { origin: 'https://app.example', host: 'app.example' }, true],
    [
      'same host, explicit default port',
      'same-host',
      { origin: 'https://app.example', host: 'app.example:443' },
      true,
    ],
    [
      'same host, upper case',
      'same-host',
      { origin: 'https://APP.example', host: 'app.EXAMPLE' },
      true,
    ],
    ['other host', 'same-host', { origin: 'https://evil.example', host: 'app.example' }, false],
    [
      'other port',
      'same-host',
      { origin: 'http://app.example:8080', host: 'app.example:9090' },
      false,
    ],
    ['no Host header', 'same-host', { origin: 'https://app.example' }, false],
    ['the opaque origin', 'same-host', { origin: 'null', host: 'app.example' }, false],
    ['a malformed origin', 'same-host', { origin: 'not a url', host: 'app.example' }, false],
    ['anything with *', '*', { origin: 'https://evil.example' }, true],
    ['a listed origin', ['https://app.example'], { origin: 'https://app.example' }, true],
    [
      'a listed origin, other scheme',
      ['https://app.example'],
      { origin: 'http://app.example' },
      false,
    ],
    [
      'a listed origin, other port',
      ['https://app.example'],
      { origin: 'https://app.example:8443' },
      false,
    ],
    [
      'a subdomain wildcard',
      ['https://*.example.com'],
      { origin: 'https://a.b.example.com' },
      true,
    ],
    ['the wildcard apex', ['https://*.example.com'], { origin: 'https://example.com' }, false],
    ['a suffix trick', ['https://*.example.com'], { origin: 'https://evilexample.com' }, false],
    ['null when listed', ['null'], { origin: 'null' }, true],
    [
      'version 8 origin header',
      ['https://old.example'],
      { 'sec-websocket-version': '8', 'sec-websocket-origin': 'https://old.example' },
      true,
    ],
  ];
  for (const [name, policy, headers, expected] of cases) {
    it(`${expected ? 'allows' : 'refuses'} ${name}`, () => {
      expect(checkOrigin(request(headers), policy)).toBe(expected);
    });
  }

  it('asks a function, which may be async', async () => {
    const policy = async (origin: string) => origin.endsWith('.trusted');
    expect(await checkOrigin(request({ origin: 'https://a.trusted' }), policy)).toBe(true);
    expect(await checkOrigin(request({ origin: 'https://a.other' }), policy)).toBe(false);
  });
});

describe('WebSocketServer origins and handshakeTimeout', () => {
  it('refuses a cross-origin browser handshake with 403 and accepts a same-host one', async () => {
    const { url, port } = await startServer({ origins: 'same-host' });
    const refused = new WebSocket(url, { origin: 'https://evil.example' });
    const errors: Error[] = [];
    refused.on('error', (error) => errors.push(error));
    await waitFor(refused, 'close');
    expect(errors[0]?.message).toBe('Unexpected server response: 403');
    const allowed = track(new WebSocket(url, { origin: `http://127.0.0.1:${port}` }));
    await waitFor(allowed, 'open');
    const noOrigin = track(new WebSocket(url));
    await waitFor(noOrigin, 'open');
  });

  it('answers 500 when the origin function throws or rejects, and reports it on error', async () => {
    for (const origins of [
      () => {
        throw new Error('policy bug');
      },
      () => Promise.reject(new Error('policy bug')),
    ]) {
      const { url, wss } = await startServer({ origins });
      const reported: Error[] = [];
      wss.on('error', (error) => reported.push(error));
      const client = new WebSocket(url, { origin: 'https://x.example' });
      const errors: Error[] = [];
      client.on('error', (error) => errors.push(error));
      await waitFor(client, 'close');
      expect(errors[0]?.message).toBe('Unexpected server response: 500');
      expect(reported[0]?.message).toBe('policy bug');
    }
  });

  it('answers 500 when verifyClient throws', async () => {
    const { url } = await startServer({
      verifyClient: () => {
        throw new Error('bug');
      },
    });
    const client = new WebSocket(url);
    const errors: Error[] = [];
    client.on('error', (error) => errors.push(error));
    await waitFor(client, 'close');
    expect(errors[0]?.message).toBe('Unexpected server response: 500');
  });

  it('answers 408 when verifyClient never decides within handshakeTimeout', async () => {
    const { url } = await startServer({
      handshakeTimeout: 150,
      verifyClient: (_info, _done) => {},
    });
    const client = new WebSocket(url);
    const errors: Error[] = [];
    client.on('error', (error) => errors.push(error));
    await waitFor(client, 'close');
    expect(errors[0]?.message).toBe('Unexpected server response: 408');
  });

  it('cuts off an upgrade whose headers never finish (slowloris)', async () => {
    const { port } = await startServer({ handshakeTimeout: 300 });
    const raw = new RawClient(port);
    await raw.connected();
    raw.socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n');
    const timer = setInterval(() => raw.socket.write('X-Slow: 1\r\n'), 50);
    await raw.closed;
    clearInterval(timer);
    expect(raw.received.toString()).toMatch(/^HTTP\/1\.1 408/);
  });

  it('survives 200 half-open upgrades at once: all cut off, real clients still served', async () => {
    const { port, url } = await startServer({ handshakeTimeout: 400 });
    const stalled = await Promise.all(
      Array.from({ length: 200 }, async () => {
        const raw = new RawClient(port);
        await raw.connected();
        raw.socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n');
        return raw;
      }),
    );
    const client = track(new WebSocket(url));
    await waitFor(client, 'open');
    await Promise.all(stalled.map((raw) => raw.closed));
    expect(stalled.every((raw) => raw.received.toString().startsWith('HTTP/1.1 408'))).toBe(true);
  });

  it('answers oversized upgrade headers with 431', async () => {
    const { port } = await startServer();
    const raw = new RawClient(port);
    await raw.connected();
    raw.socket.write(
      `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    await raw.closed;
    expect(raw.received.toString()).toMatch(/^HTTP\/1\.1 431/);
  });
});
