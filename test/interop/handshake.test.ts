// Opening handshake: subprotocols, verifyClient, headers, paths, HTTP status
// codes, URL validation and connection failures.

import { createHash } from 'node:crypto';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { WebSocket } from '@weft/core';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CLOSED,
  cleanup,
  connect,
  DIRECTIONS,
  openPair,
  type Peer,
  rawRequest,
  rawUpgrade,
  startServer,
  track,
  unusedPort,
  type VerifyClientAsync,
  type VerifyClientSync,
  type VerifyInfo,
  WEFT_CLIENT,
  WEFT_SERVER,
  waitClose,
  waitEvent,
  waitOpen,
} from './helpers.js';

afterEach(cleanup);

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Connect and expect the handshake to fail: resolves the error and close code. */
async function expectHandshakeFailure(client: Peer): Promise<{ error: Error; code: number }> {
  const events: string[] = [];
  client.on('open', () => events.push('open'));
  const errored = waitEvent<[Error]>(client, 'error');
  const closed = waitClose(client);
  const [error] = await errored;
  events.push('error');
  const { code } = await closed;
  events.push('close');
  expect(events).toEqual(['error', 'close']);
  expect(client.readyState).toBe(CLOSED);
  return { error, code };
}

interface Rejection {
  statusCode: number;
  body: string;
}

/** Connect with an 'unexpected-response' listener; resolves the response. */
async function expectUnexpectedResponse(client: Peer): Promise<Rejection> {
  client.on('error', () => {}); // terminate() while CONNECTING emits one
  const [req, res] = await waitEvent<[ClientRequest, IncomingMessage]>(
    client,
    'unexpected-response',
  );
  expect(typeof req.setHeader).toBe('function');
  const chunks: Buffer[] = [];
  res.on('data', (chunk: Buffer) => chunks.push(chunk));
  await waitEvent(res, 'end');
  const closed = waitClose(client);
  client.terminate();
  expect((await closed).code).toBe(1006);
  return { statusCode: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() };
}

describe.each(DIRECTIONS)('handshake: $name', (dir) => {
  describe('subprotocols', () => {
    it('handleProtocols picks one of the offered protocols; both sides agree', async () => {
      const offered: string[][] = [];
      const pair = await openPair(dir, {
        protocols: ['a', 'b'],
        server: {
          handleProtocols: (protocols: Set<string>, req: IncomingMessage) => {
            expect(protocols).toBeInstanceOf(Set);
            expect(req.headers['sec-websocket-protocol']).toBeDefined();
            offered.push([...protocols]);
            return protocols.has('b') ? 'b' : false;
          },
        },
      });
      expect(offered).toEqual([['a', 'b']]);
      expect(pair.client.protocol).toBe('b');
      expect(pair.serverSide.protocol).toBe('b');
    });

    it('without handleProtocols the first offered protocol is selected', async () => {
      const pair = await openPair(dir, { protocols: ['a', 'b'] });
      expect(pair.client.protocol).toBe('a');
      expect(pair.serverSide.protocol).toBe('a');
    });

    it('a single protocol given as a string is negotiated', async () => {
      const pair = await openPair(dir, { protocols: 'chat.v1' });
      expect(pair.client.protocol).toBe('chat.v1');
      expect(pair.serverSide.protocol).toBe('chat.v1');
    });

    it('no protocol offered means protocol is the empty string on both sides', async () => {
      const pair = await openPair(dir);
      expect(pair.client.protocol).toBe('');
      expect(pair.serverSide.protocol).toBe('');
    });

    it('a client rejects a server that picks no protocol when some were offered', async () => {
      const { url } = await startServer(dir.server, { handleProtocols: () => false });
      const client = connect(dir.client, url, ['a', 'b']);
      const { error, code } = await expectHandshakeFailure(client);
      expect(error).toBeInstanceOf(Error);
      expect(code).toBe(1006);
    });
  });

  describe('verifyClient', () => {
    it('receives origin, secure and req, and accepts', async () => {
      const infos: VerifyInfo[] = [];
      const verifyClient: VerifyClientSync = (info) => {
        infos.push(info);
        return true;
      };
      const pair = await openPair(dir, {
        path: '/room?id=7',
        server: { verifyClient },
        client: { origin: 'http://example.test' },
      });
      expect(infos).toHaveLength(1);
      const [info] = infos;
      expect(info!.origin).toBe('http://example.test');
      expect(info!.secure).toBe(false);
      expect(info!.req.url).toBe('/room?id=7');
      expect(pair.req.url).toBe('/room?id=7');
    });

    it('sync rejection: the client gets an error naming 401', async () => {
      const verifyClient: VerifyClientSync = () => false;
      const { server, url } = await startServer(dir.server, { verifyClient });
      const connections: Peer[] = [];
      server.on('connection', (ws: Peer) => connections.push(ws));
      const client = connect(dir.client, url);
      const { error, code } = await expectHandshakeFailure(client);
      expect(error.message).toMatch(/401/);
      expect(code).toBe(1006);
      expect(connections).toHaveLength(0);
    });

    it("sync rejection: 'unexpected-response' gets status 401", async () => {
      const verifyClient: VerifyClientSync = () => false;
      const { url } = await startServer(dir.server, { verifyClient });
      const client = connect(dir.client, url);
      const rejection = await expectUnexpectedResponse(client);
      expect(rejection.statusCode).toBe(401);
    });

    it("async rejection with cb(false, 403, 'Forbidden'): the client gets an error naming 403", async () => {
      const verifyClient: VerifyClientAsync = (_info, cb) => {
        setImmediate(() => cb(false, 403, 'Forbidden'));
      };
      const { url } = await startServer(dir.server, { verifyClient });
      const client = connect(dir.client, url);
      const { error, code } = await expectHandshakeFailure(client);
      expect(error.message).toMatch(/403/);
      expect(code).toBe(1006);
    });

    it("async rejection: 'unexpected-response' gets status 403 and the message as body", async () => {
      const verifyClient: VerifyClientAsync = (_info, cb) => {
        setImmediate(() => cb(false, 403, 'Forbidden'));
      };
      const { url } = await startServer(dir.server, { verifyClient });
      const client = connect(dir.client, url);
      const rejection = await expectUnexpectedResponse(client);
      expect(rejection).toEqual({ statusCode: 403, body: 'Forbidden' });
    });

    it('async acceptance opens the connection', async () => {
      const verifyClient: VerifyClientAsync = (info, cb) => {
        setImmediate(() => cb(info.req.headers['x-token'] === 'secret'));
      };
      const pair = await openPair(dir, {
        server: { verifyClient },
        client: { headers: { 'X-Token': 'secret' } },
      });
      expect(pair.client.readyState).toBe(1);
    });
  });

  describe('headers', () => {
    it('custom client request headers reach the server', async () => {
      const pair = await openPair(dir, {
        client: { headers: { 'X-Custom-Header': 'custom value' } },
      });
      expect(pair.req.headers['x-custom-header']).toBe('custom value');
      expect(pair.req.headers.upgrade?.toLowerCase()).toBe('websocket');
      expect(pair.req.headers['sec-websocket-version']).toBe('13');
    });

    it("headers added in the server 'headers' event reach the client 'upgrade' event", async () => {
      const { server, url } = await startServer(dir.server);
      server.on('headers', (headers: string[], req: IncomingMessage) => {
        expect(req.url).toBe('/');
        headers.push('X-Interop: yes');
      });
      const connection = waitEvent<[Peer]>(server, 'connection');
      const client = connect(dir.client, url);
      const upgrade = waitEvent<[IncomingMessage]>(client, 'upgrade');
      await waitOpen(client);
      await connection;
      const [res] = await upgrade;
      expect(res.statusCode).toBe(101);
      expect(res.headers['x-interop']).toBe('yes');
      expect(res.headers.upgrade?.toLowerCase()).toBe('websocket');
    });
  });

  describe('path', () => {
    it('a server with path accepts that path with a query string', async () => {
      const pair = await openPair(dir, { server: { path: '/chat' }, path: '/chat?room=1' });
      expect(pair.req.url).toBe('/chat?room=1');
    });
  });
});

describe('handshake: weft server status codes', () => {
  it('a valid raw upgrade gets 101 with the right Sec-WebSocket-Accept', async () => {
    const { port } = await startServer(WEFT_SERVER.server);
    const key = 'dGhlIHNhbXBsZSBub25jZQ==';
    const res = await rawUpgrade(port, '/', { 'Sec-WebSocket-Key': key });
    expect(res.statusCode).toBe(101);
    expect(res.headers['sec-websocket-accept']).toBe(
      createHash('sha1')
        .update(key + GUID)
        .digest('base64'),
    );
    expect(res.headers['sec-websocket-accept']).toBe('s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  });

  it('a plain HTTP request (no upgrade) to a port server gets 426', async () => {
    const { port } = await startServer(WEFT_SERVER.server);
    const res = await rawRequest(port, '/', { Connection: 'close' });
    expect(res.statusCode).toBe(426);
  });

  it('a missing Sec-WebSocket-Key gets 400', async () => {
    const { port } = await startServer(WEFT_SERVER.server);
    const res = await rawUpgrade(port, '/', { 'Sec-WebSocket-Key': null });
    expect(res.statusCode).toBe(400);
  });

  // weft-specific: ws answers 400 here.
  it('[weft-specific] a bad Sec-WebSocket-Version gets 426 naming version 13', async () => {
    const { port } = await startServer(WEFT_SERVER.server);
    const res = await rawUpgrade(port, '/', { 'Sec-WebSocket-Version': '12' });
    expect(res.statusCode).toBe(426);
    expect(res.headers['sec-websocket-version']).toMatch(/\b13\b/);
  });

  // weft-specific: ws answers 400 here.
  it('[weft-specific] an unmatched path gets 404 (raw request)', async () => {
    const { port } = await startServer(WEFT_SERVER.server, { path: '/chat' });
    const res = await rawUpgrade(port, '/elsewhere');
    expect(res.statusCode).toBe(404);
  });

  // weft-specific: ws answers 400 here.
  it("[weft-specific] an unmatched path gets 404 (ws client 'unexpected-response')", async () => {
    const { server, url } = await startServer(WEFT_SERVER.server, { path: '/chat' });
    const connections: Peer[] = [];
    server.on('connection', (ws: Peer) => connections.push(ws));
    const client = connect(WEFT_SERVER.client, `${url}/elsewhere`);
    const rejection = await expectUnexpectedResponse(client);
    expect(rejection.statusCode).toBe(404);
    expect(connections).toHaveLength(0);
  });
});

describe('weft client: URLs and connection failures', () => {
  it("throws a SyntaxError synchronously for 'not a url'", () => {
    expect(() => new WebSocket('not a url')).toThrow(SyntaxError);
  });

  it('throws a SyntaxError synchronously for an ftp: URL', () => {
    expect(() => new WebSocket('ftp://x')).toThrow(SyntaxError);
  });

  it('throws a SyntaxError synchronously for a URL with a fragment', () => {
    expect(() => new WebSocket('ws://127.0.0.1:1/#frag')).toThrow(SyntaxError);
  });

  it('has the CONNECTING/OPEN/CLOSING/CLOSED constants', () => {
    expect([WebSocket.CONNECTING, WebSocket.OPEN, WebSocket.CLOSING, WebSocket.CLOSED]).toEqual([
      0, 1, 2, 3,
    ]);
  });

  it('exposes the URL it connects to', async () => {
    const { url } = await startServer(WEFT_CLIENT.server);
    const client = track(new WebSocket(`${url}/some/path?q=1`));
    expect(client.url).toBe(`${url}/some/path?q=1`);
    await waitOpen(client);
  });

  it('accepts an http: URL as ws:', async () => {
    const { port } = await startServer(WEFT_CLIENT.server);
    const client = track(new WebSocket(`http://127.0.0.1:${port}`));
    await waitOpen(client);
    expect(client.readyState).toBe(1);
  });

  it("connecting to a port with nothing listening emits 'error' then 'close' 1006", async () => {
    const port = await unusedPort();
    const client = track(new WebSocket(`ws://127.0.0.1:${port}`));
    const { error, code } = await expectHandshakeFailure(client);
    expect(error).toBeInstanceOf(Error);
    expect(code).toBe(1006);
  });

  // weft-specific: ws throws an unhandled 'error' here (crashing the process).
  it("[weft-specific] without an 'error' listener a refused connection still closes with 1006 and nothing is thrown", async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown): void => {
      uncaught.push(err);
    };
    process.on('uncaughtException', onUncaught);
    try {
      const port = await unusedPort();
      const client = track(new WebSocket(`ws://127.0.0.1:${port}`));
      const [code] = await waitEvent<[number]>(client, 'close');
      expect(code).toBe(1006);
      expect(uncaught).toEqual([]);
    } finally {
      process.removeListener('uncaughtException', onUncaught);
    }
  });
});
