import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from '../src/index.js';
import { closeAll, RawClient, startServer, track, waitFor } from './net-helpers.js';

afterEach(closeAll);

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

async function rawHandshake(
  port: number,
  request: string,
): Promise<{ status: number; head: string; body: string }> {
  const client = new RawClient(port);
  await client.connected();
  client.socket.write(request);
  await client.closed; // every refusal closes the socket: nothing is left hanging
  const text = client.received.toString();
  const [head = '', body = ''] = text.split('\r\n\r\n');
  return { status: Number(head.split(' ')[1]), head, body };
}

function upgradeRequest(
  headers: Record<string, string | undefined>,
  method = 'GET',
  path = '/',
): string {
  const all: Record<string, string | undefined> = {
    Host: '127.0.0.1',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': KEY,
    'Sec-WebSocket-Version': '13',
    ...headers,
  };
  const lines = Object.entries(all)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `${name}: ${value}`);
  return `${method} ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`;
}

describe('WebSocketServer handshake over TCP', () => {
  it('answers a valid request with 101 and the accept key', async () => {
    const { port } = await startServer();
    const client = new RawClient(port);
    const head = await client.upgrade();
    expect(head).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/);
    expect(head).toContain('Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  });

  const refusals: Array<[string, Record<string, string | undefined>, number, string?]> = [
    ['a bad key', { 'Sec-WebSocket-Key': 'short' }, 400],
    ['no key', { 'Sec-WebSocket-Key': undefined }, 400],
    // Node's HTTP parser sees no upgrade without "Connection: upgrade": a plain request, 426.
    ['Connection without upgrade', { Connection: 'keep-alive' }, 426, 'Upgrade: websocket'],
    ['a bad subprotocol list', { 'Sec-WebSocket-Protocol': 'a,,b' }, 400],
    ['version 7', { 'Sec-WebSocket-Version': '7' }, 426, 'Sec-WebSocket-Version: 13, 8'],
  ];
  for (const [name, headers, status, header] of refusals) {
    it(`answers ${name} with HTTP ${status} and a reason, then closes`, async () => {
      const { port, wss } = await startServer();
      let connections = 0;
      wss.on('connection', () => connections++);
      const answer = await rawHandshake(port, upgradeRequest(headers));
      expect(answer.status).toBe(status);
      expect(answer.body.length).toBeGreaterThan(0);
      if (header) expect(answer.head).toContain(header);
      expect(connections).toBe(0);
    });
  }

  it('answers a POST upgrade with 405', async () => {
    const { port } = await startServer();
    expect((await rawHandshake(port, upgradeRequest({}, 'POST'))).status).toBe(405);
  });

  it('answers a plain HTTP request with 426', async () => {
    const { port } = await startServer();
    const response = await fetch(`http://127.0.0.1:${port}/`);
    expect(response.status).toBe(426);
    await response.text();
  });

  it('answers an unmatched path with 404, and serves the matching one', async () => {
    const { port } = await startServer({ path: '/chat' });
    expect((await rawHandshake(port, upgradeRequest({}, 'GET', '/other'))).status).toBe(404);
    const client = track(new WebSocket(`ws://127.0.0.1:${port}/chat?room=1`));
    await waitFor(client, 'open');
  });

  it('routes by path between two servers sharing one HTTP server', async () => {
    const server = http.createServer();
    track({ close: () => server.close() });
    const a = track(new WebSocketServer({ server, path: '/a' }));
    const b = track(new WebSocketServer({ server, path: '/b' }));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const seen: string[] = [];
    a.on('connection', () => seen.push('a'));
    b.on('connection', () => seen.push('b'));
    const clientB = track(new WebSocket(`ws://127.0.0.1:${port}/b`));
    await waitFor(clientB, 'open');
    const clientA = track(new WebSocket(`ws://127.0.0.1:${port}/a`));
    await waitFor(clientA, 'open');
    expect(seen).toEqual(['b', 'a']);
    expect((await rawHandshake(port, upgradeRequest({}, 'GET', '/c'))).status).toBe(404);
  });

  it('refuses with 401 when a sync verifyClient says no', async () => {
    const { port } = await startServer({ verifyClient: () => false });
    expect((await rawHandshake(port, upgradeRequest({}))).status).toBe(401);
  });

  it('refuses with the code, message and headers an async verifyClient gives', async () => {
    const { port } = await startServer({
      verifyClient: (info, callback) => {
        expect(info.origin).toBe('https://evil.example');
        setTimeout(() => callback(false, 403, 'Origin not allowed', { 'X-Why': 'origin' }), 10);
      },
    });
    const answer = await rawHandshake(port, upgradeRequest({ Origin: 'https://evil.example' }));
    expect(answer.status).toBe(403);
    expect(answer.body).toBe('Origin not allowed');
    expect(answer.head).toContain('X-Why: origin');
  });

  it('lets a wsClientError listener answer invalid handshakes itself', async () => {
    const { port, wss } = await startServer();
    wss.on('wsClientError', (error, socket) => {
      socket.end(
        `HTTP/1.1 418 I'm a teapot\r\nContent-Length: ${error.message.length}\r\n\r\n${error.message}`,
      );
    });
    const answer = await rawHandshake(port, upgradeRequest({ 'Sec-WebSocket-Key': 'bad' }));
    expect(answer.status).toBe(418);
  });

  it('selects the subprotocol with handleProtocols, or the first offered by default', async () => {
    const { url } = await startServer({
      handleProtocols: (protocols) => (protocols.has('b') ? 'b' : false),
    });
    const chosen = track(new WebSocket(url, ['a', 'b']));
    await waitFor(chosen, 'open');
    expect(chosen.protocol).toBe('b');
    const plain = await startServer();
    const first = track(new WebSocket(plain.url, ['x', 'y']));
    await waitFor(first, 'open');
    expect(first.protocol).toBe('x');
  });

  it('lets headers listeners add response headers', async () => {
    const { port, wss } = await startServer();
    wss.on('headers', (headers) => headers.push('X-Weft: yes'));
    const head = await new RawClient(port).upgrade();
    expect(head).toContain('X-Weft: yes');
  });

  it('requires exactly one of port, server and noServer', () => {
    expect(() => new WebSocketServer({})).toThrow(TypeError);
    expect(() => new WebSocketServer({ port: 0, noServer: true })).toThrow(TypeError);
    expect(() => new WebSocketServer({ noServer: true }).address()).toThrow(/noServer/);
  });

  it('tracks clients and emits close after they are gone', async () => {
    const { url, wss } = await startServer();
    const client = new WebSocket(url);
    await waitFor(client, 'open');
    await expect.poll(() => wss.clients.size).toBe(1);
    client.close();
    await waitFor(client, 'close');
    await expect.poll(() => wss.clients.size).toBe(0);
    const closed = new Promise<Error | undefined>((resolve) => wss.close(resolve));
    expect(await closed).toBeUndefined();
    const again = await new Promise<Error | undefined>((resolve) => wss.close(resolve));
    expect(again?.message).toMatch(/not running/);
  });

  it('supports noServer with handleUpgrade and refuses a second upgrade of one socket', async () => {
    const server = http.createServer();
    track({ close: () => server.close() });
    const wss = track(new WebSocketServer({ noServer: true }));
    const problems: unknown[] = [];
    server.on('upgrade', (request, socket, head) => {
      wss.handleUpgrade(request, socket, head, (ws) => {
        try {
          wss.handleUpgrade(request, socket, head, () => {});
        } catch (error) {
          problems.push(error);
        }
        ws.send('hi');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = track(new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`));
    const [data] = await waitFor<[Buffer]>(client, 'message');
    expect(data.toString()).toBe('hi');
    expect(problems).toHaveLength(1);
  });
});
