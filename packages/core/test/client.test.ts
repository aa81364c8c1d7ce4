import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http, { type IncomingMessage } from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from '../src/index.js';
import { closeAll, connectPair, startServer, track, waitFor } from './net-helpers.js';

afterEach(closeAll);

/** An HTTP server whose 'upgrade' handler the test writes: answers no correct server gives. */
async function fakeServer(
  onUpgrade: (request: IncomingMessage, socket: Socket) => void,
  onRequest?: http.RequestListener,
) {
  const server = http.createServer(onRequest ?? ((_req, res) => res.writeHead(404).end()));
  server.on('upgrade', (request, socket) => onUpgrade(request, socket as Socket));
  track({ close: () => server.closeAllConnections() });
  track({ close: () => server.close() });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function accept(request: IncomingMessage): string {
  return createHash('sha1')
    .update(`${request.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
    .digest('base64');
}

async function failureOf(client: WebSocket): Promise<{ error: Error | undefined; code: number }> {
  let error: Error | undefined;
  client.on('error', (e) => {
    error = e;
  });
  const [code] = await waitFor<[number]>(client, 'close');
  return { error, code };
}

describe('WebSocket client: addresses', () => {
  it('throws a SyntaxError at once for malformed addresses and subprotocols', () => {
    expect(() => new WebSocket('not a url')).toThrow(SyntaxError);
    expect(() => new WebSocket('ftp://127.0.0.1')).toThrow(SyntaxError);
    expect(() => new WebSocket('ws://127.0.0.1/#frag')).toThrow(SyntaxError);
    expect(() => new WebSocket('ws://127.0.0.1', ['a', 'a'])).toThrow(SyntaxError);
    expect(() => new WebSocket('ws://127.0.0.1', ['bad protocol'])).toThrow(SyntaxError);
  });

  it('maps http: to ws: and reports the url', async () => {
    const { port } = await startServer();
    const client = track(new WebSocket(`http://127.0.0.1:${port}/path?q=1`));
    expect(client.url).toBe(`ws://127.0.0.1:${port}/path?q=1`);
    await waitFor(client, 'open');
  });

  it('connects over a Unix domain socket with ws+unix:', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-'));
    const socketPath = join(dir, 'ws.sock');
    const server = http.createServer();
    const wss = track(new WebSocketServer({ server }));
    track({ close: () => server.close() });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    const paths: string[] = [];
    wss.on('connection', (_ws, request) => paths.push(request.url ?? ''));
    const client = track(new WebSocket(`ws+unix://${socketPath}:/inner/path?x=1`));
    await waitFor(client, 'open');
    expect(paths).toEqual(['/inner/path?x=1']);
    client.close();
    await waitFor(client, 'close');
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends the origin, custom headers, and version 8 when asked', async () => {
    const { url, wss } = await startServer();
    const seen: IncomingMessage[] = [];
    wss.on('connection', (_ws, request) => seen.push(request));
    const v13 = track(
      new WebSocket(url, { origin: 'https://app.example', headers: { 'X-Token': 't' } }),
    );
    await waitFor(v13, 'open');
    const v8 = track(new WebSocket(url, { origin: 'https://old.example', protocolVersion: 8 }));
    await waitFor(v8, 'open');
    expect(seen[0]?.headers.origin).toBe('https://app.example');
    expect(seen[0]?.headers['x-token']).toBe('t');
    expect(seen[1]?.headers['sec-websocket-version']).toBe('8');
    expect(seen[1]?.headers['sec-websocket-origin']).toBe('https://old.example');
  });

  it('lets finishRequest write to the request before it ends', async () => {
    const { url, wss } = await startServer();
    const seen: IncomingMessage[] = [];
    wss.on('connection', (_ws, request) => seen.push(request));
    const client = track(
      new WebSocket(url, {
        finishRequest: (request, websocket) => {
          expect(websocket).toBeInstanceOf(WebSocket);
          request.setHeader('X-Late', 'yes');
          request.end();
        },
      }),
    );
    await waitFor(client, 'open');
    expect(seen[0]?.headers['x-late']).toBe('yes');
  });
});

describe('WebSocket client: the server answer is checked', () => {
  const answers: Array<[string, (request: IncomingMessage) => string, RegExp]> = [
    ['a wrong accept key', () => 'Sec-WebSocket-Accept: bm9wZQ==', /Sec-WebSocket-Accept/],
    [
      'an Upgrade header other than websocket',
      (request) => `Sec-WebSocket-Accept: ${accept(request)}`,
      /Upgrade/,
    ],
    [
      'a subprotocol it did not offer',
      (request) => `Sec-WebSocket-Accept: ${accept(request)}\r\nSec-WebSocket-Protocol: zzz`,
      /subprotocol/,
    ],
    [
      'an extension it did not offer',
      (request) =>
        `Sec-WebSocket-Accept: ${accept(request)}\r\nSec-WebSocket-Extensions: permessage-deflate`,
      /Extensions/,
    ],
  ];
  for (const [name, extra, message] of answers) {
    it(`fails on ${name}: 'error' then 'close' 1006`, async () => {
      const url = await fakeServer((request, socket) => {
        const upgrade = name.startsWith('an Upgrade') ? 'h2c' : 'websocket';
        socket.write(
          `HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${upgrade}\r\nConnection: Upgrade\r\n${extra(request)}\r\n\r\n`,
        );
      });
      // Without an offer, any accepted extension is a server error.
      const { error, code } = await failureOf(new WebSocket(url, { perMessageDeflate: false }));
      expect(error?.message).toMatch(message);
      expect(code).toBe(1006);
    });
  }

  it("fails when the server's permessage-deflate answer breaks the offer", async () => {
    const url = await fakeServer((request, socket) => {
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept(request)}\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=15\r\n\r\n`,
      );
    });
    const client = new WebSocket(url, { perMessageDeflate: { clientMaxWindowBits: 10 } });
    const { error, code } = await failureOf(client);
    expect(error?.message).toMatch(
      /Invalid Sec-WebSocket-Extensions header: .*client_max_window_bits/,
    );
    expect(code).toBe(1006);
  });

  it('fails when it offered subprotocols and the server chose none', async () => {
    const { url } = await startServer({ handleProtocols: () => false });
    const { error } = await failureOf(new WebSocket(url, ['chat']));
    expect(error?.message).toMatch(/no subprotocol/);
  });

  it('reports a non-101 answer as an error naming the status', async () => {
    const { url } = await startServer({ verifyClient: () => false });
    const { error, code } = await failureOf(new WebSocket(url));
    expect(error?.message).toBe('Unexpected server response: 401');
    expect(code).toBe(1006);
  });

  it("hands a non-101 answer to 'unexpected-response' listeners instead", async () => {
    const { url } = await startServer({ verifyClient: (_info, done) => done(false, 403, 'nope') });
    const client = new WebSocket(url);
    const errors: Error[] = [];
    client.on('error', (error) => errors.push(error));
    const [, response] = await waitFor<[unknown, IncomingMessage]>(client, 'unexpected-response');
    expect(response.statusCode).toBe(403);
    response.resume();
    response.destroy();
    await waitFor(client, 'close');
    expect(errors).toEqual([]);
  });

  it('times out a handshake the server never answers', async () => {
    const url = await fakeServer(() => {
      // swallow the request: never answer
    });
    const { error, code } = await failureOf(new WebSocket(url, { handshakeTimeout: 100 }));
    expect(error?.message).toMatch(/timed out/);
    expect(code).toBe(1006);
  });

  it('reports a refused connection as an error and 1006', async () => {
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const { error, code } = await failureOf(new WebSocket(`ws://127.0.0.1:${port}`));
    expect(error?.message).toMatch(/ECONNREFUSED/);
    expect(code).toBe(1006);
  });
});

describe('WebSocket client: frames that arrive with the 101 response', () => {
  it("emits 'open' before the message that came in the same packet", async () => {
    const url = await fakeServer((request, socket) => {
      const frame = Buffer.from([0x81, 0x05, ...Buffer.from('early')]);
      socket.write(
        Buffer.concat([
          Buffer.from(
            `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept(request)}\r\n\r\n`,
          ),
          frame,
        ]),
      );
    });
    const client = track(new WebSocket(url));
    const order: string[] = [];
    client.on('open', () => order.push(`open ${client.readyState}`));
    client.on('message', (data) => order.push(`message ${data} ${client.readyState}`));
    await expect.poll(() => order).toEqual(['open 1', 'message early 1']);
  });
});

describe('WebSocket client: reading its socket (plain TCP reads go through onread)', () => {
  it('a paused client lets TCP push back, then gets every message in order on resume', async () => {
    const { client, server } = await connectPair();
    const got: number[] = [];
    client.on('message', (data) => got.push(Number(String(data).slice(0, 8))));
    client.pause();
    const filler = 'x'.repeat(4096);
    const count = 8000;
    for (let i = 0; i < count; i++) server.send(`${String(i).padStart(8, '0')}${filler}`);
    // 32 MiB cannot all sit in the socket buffers: the server's queue stays non-empty.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(got).toEqual([]);
    expect(server.bufferedAmount).toBeGreaterThan(0);
    client.resume();
    await expect.poll(() => got.length, { timeout: 10_000 }).toBe(count);
    expect(got).toEqual(Array.from({ length: count }, (_, i) => i));
  });

  it("another 'data' listener on the socket still sees every byte", async () => {
    const { wss, url } = await startServer();
    // After the handshake: bytes that come with the 101 reach no 'data' listener, in Node either.
    wss.on('connection', (ws) =>
      ws.once('message', () => {
        for (let i = 0; i < 50; i++) ws.send(`message ${i}`);
      }),
    );
    const client = track(new WebSocket(url));
    let seen = 0;
    client.on('upgrade', (response) =>
      response.socket.on('data', (chunk) => (seen += chunk.length)),
    );
    const got: string[] = [];
    client.on('message', (data) => got.push(String(data)));
    await waitFor(client, 'open');
    client.send('go');
    await expect.poll(() => got.length).toBe(50);
    expect(got[49]).toBe('message 49');
    // Each frame is a 2-byte header and its payload.
    expect(seen).toBe(got.reduce((sum, text) => sum + 2 + text.length, 0));
  });

  it("uses the caller's createConnection as given", async () => {
    const { wss, url } = await startServer();
    wss.on('connection', (ws) => ws.on('message', (data) => ws.send(data)));
    let created = 0;
    const client = track(
      new WebSocket(url, {
        createConnection: (options: net.NetConnectOpts) => {
          created++;
          return net.createConnection(options);
        },
      } as ConstructorParameters<typeof WebSocket>[1]),
    );
    await waitFor(client, 'open');
    client.send('through my socket');
    const [data] = await waitFor<[Buffer]>(client, 'message');
    expect(String(data)).toBe('through my socket');
    expect(created).toBe(1);
  });

  it("reads the body of a non-101 answer for 'unexpected-response'", async () => {
    const url = await fakeServer((_request, socket) => {
      socket.end(
        'HTTP/1.1 418 I am a teapot\r\nContent-Length: 11\r\nConnection: close\r\n\r\nshort stout',
      );
    });
    const client = new WebSocket(url);
    const [, response] = await waitFor<[unknown, IncomingMessage]>(client, 'unexpected-response');
    let body = '';
    for await (const chunk of response) body += String(chunk);
    expect(response.statusCode).toBe(418);
    expect(body).toBe('short stout');
    await waitFor(client, 'close');
  });
});

describe('WebSocket client: heartbeat', () => {
  it('terminates a connection whose server stops answering pings', async () => {
    const url = await fakeServer((request, socket) => {
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept(request)}\r\n\r\n`,
      );
      socket.on('data', () => {}); // reads our pings, never answers
    });
    const client = new WebSocket(url, { perMessageDeflate: false, heartbeat: { interval: 100 } });
    const { error, code } = await failureOf(client);
    expect(error?.message).toMatch(/Heartbeat timeout/);
    expect(code).toBe(1006);
  });

  it('keeps a connection whose server answers, and checks its options up front', async () => {
    const { url } = await startServer();
    const client = track(new WebSocket(url, { heartbeat: { interval: 50 } }));
    await waitFor(client, 'open');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(client.readyState).toBe(WebSocket.OPEN);
    expect(() => new WebSocket(url, { heartbeat: { interval: 0 } })).toThrow(RangeError);
  });
});

describe('WebSocket client: redirects', () => {
  it('follows redirects when allowed, emitting redirect, and drops credentials across hosts', async () => {
    const { port, wss } = await startServer();
    const seen: IncomingMessage[] = [];
    wss.on('connection', (_ws, request) => seen.push(request));
    // The upgrade goes to the fake server's 'upgrade' listener; answer it with a redirect instead.
    const redirecting = await fakeServer((_request, socket) => {
      socket.end(
        `HTTP/1.1 302 Found\r\nLocation: ws://localhost:${port}/final\r\nContent-Length: 0\r\n\r\n`,
      );
    });
    const client = track(
      new WebSocket(redirecting, { followRedirects: true, headers: { Authorization: 'Bearer x' } }),
    );
    const redirects: string[] = [];
    client.on('redirect', (url) => redirects.push(url));
    await waitFor(client, 'open');
    expect(redirects).toEqual([`ws://localhost:${port}/final`]);
    expect(client.url).toBe(`ws://localhost:${port}/final`);
    expect(seen[0]?.headers.authorization).toBeUndefined();
  });

  it('does not follow redirects by default', async () => {
    const url = await fakeServer((_request, socket) => {
      socket.end('HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n');
    });
    const { error } = await failureOf(new WebSocket(url));
    expect(error?.message).toBe('Unexpected server response: 302');
  });

  it('stops after maxRedirects', async () => {
    const url = await fakeServer((request, socket) => {
      socket.end(
        `HTTP/1.1 302 Found\r\nLocation: ${request.url === '/' ? '/again' : '/'}\r\nContent-Length: 0\r\n\r\n`,
      );
    });
    const { error } = await failureOf(
      new WebSocket(url, { followRedirects: true, maxRedirects: 3 }),
    );
    expect(error?.message).toBe('Maximum redirects exceeded');
  });
});
