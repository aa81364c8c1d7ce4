/**
 * What an idle connection carries, and that carrying less changed no behaviour: the frame
 * parser is made on the first byte in, the server forgets a closed client without a 'close'
 * listener on it, and the listener table is a plain fast object with nothing inherited.
 */
import type { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from '../src/index.js';
import {
  closeAll,
  connectPair,
  connectRaw,
  RawClient,
  startServer,
  waitFor,
} from './net-helpers.js';

afterEach(closeAll);

/** A masked client frame (FIN set) with `payload`. */
function maskedFrame(opcode: number, payload: Buffer): Buffer {
  const key = Buffer.from([1, 2, 3, 4]);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i]! ^= key[i % 4]!;
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | body.length]), key, body]);
}

describe('server bookkeeping without per-connection listeners', () => {
  it('adds no listener of its own to a connection, and forgets it when it closes', async () => {
    const { wss, client, server } = await connectPair();
    expect(server.listenerCount('close')).toBe(0);
    expect(server.eventNames()).toEqual([]);
    expect(wss.clients.has(server)).toBe(true);
    const seen = waitFor<[number]>(server, 'close');
    client.close(1000);
    await seen;
    expect(wss.clients.size).toBe(0);
  });

  it("has forgotten the client by the time the application's 'close' listeners run", async () => {
    const { wss, client, server } = await connectPair();
    let trackedAtClose: boolean | undefined;
    server.on('close', () => {
      trackedAtClose = wss.clients.has(server);
    });
    const closed = waitFor(server, 'close');
    client.close();
    await closed;
    expect(trackedAtClose).toBe(false);
  });

  it('still forgets a client whose close listeners were all removed', async () => {
    const { wss, client, server } = await connectPair();
    server.on('close', () => {});
    server.removeAllListeners();
    const gone = waitFor(client, 'close');
    client.close();
    await gone;
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(wss.clients.size).toBe(0);
  });

  it('keeps no clients with clientTracking off, and closes once the server is asked to', async () => {
    const { wss, client, server } = await connectPair({ clientTracking: false });
    expect(wss.clients.size).toBe(0);
    const closed = waitFor(server, 'close');
    client.close();
    await closed;
    expect(wss.clients.size).toBe(0);
  });

  it("graceful close waits for clients tracked this way and emits the server's 'close'", async () => {
    const { wss, client } = await connectPair();
    client.on('close', () => {});
    await wss.close({ timeout: 2000 });
    expect(wss.clients.size).toBe(0);
    expect(client.readyState).toBe(WebSocket.CLOSED);
  });
});

describe('the frame parser is made on the first byte in', () => {
  it('parses a message that arrives long after the handshake', async () => {
    const { raw, ws } = await connectRaw();
    await new Promise((resolve) => setTimeout(resolve, 30));
    const message = waitFor<[Buffer, boolean]>(ws, 'message');
    raw.socket.write(maskedFrame(0x1, Buffer.from('late hello')));
    const [data, isBinary] = await message;
    expect(data.toString()).toBe('late hello');
    expect(isBinary).toBe(false);
  });

  it('parses frames sent in the same packet as the upgrade request', async () => {
    const { wss, port } = await startServer();
    const raw = new RawClient(port);
    await raw.connected();
    const got = new Promise<string>((resolve) => {
      wss.on('connection', (ws) => ws.on('message', (data) => resolve(String(data))));
    });
    raw.socket.write(
      Buffer.concat([
        Buffer.from(
          'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
        ),
        maskedFrame(0x1, Buffer.from('with the handshake')),
      ]),
    );
    expect(await got).toBe('with the handshake');
  });

  it('holds messages of a connection paused before anything arrived until resume', async () => {
    const { raw, ws } = await connectRaw();
    ws.pause();
    const received: string[] = [];
    ws.on('message', (data) => received.push(String(data)));
    raw.socket.write(maskedFrame(0x1, Buffer.from('one')));
    raw.socket.write(maskedFrame(0x1, Buffer.from('two')));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(received).toEqual([]);
    ws.resume();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(received).toEqual(['one', 'two']);
  });

  it('resumes reading after pause() and resume() with nothing received yet', async () => {
    const { client, server } = await connectPair();
    server.pause();
    server.resume();
    expect(server.isPaused).toBe(false);
    const message = waitFor<[Buffer]>(server, 'message');
    client.send('after resume');
    expect(String((await message)[0])).toBe('after resume');
  });

  it('closes cleanly when the peer leaves without ever sending a frame', async () => {
    const { raw, ws } = await connectRaw();
    const closed = waitFor<[number, Buffer]>(ws, 'close');
    raw.socket.end();
    const [code] = await closed;
    expect(code).toBe(1006);
    expect(ws.readyState).toBe(WebSocket.CLOSED);
  });

  it('answers a protocol error in the first frame with 1002', async () => {
    const { raw, ws } = await connectRaw();
    ws.on('error', () => {});
    // An unmasked frame from a client is a protocol error.
    raw.socket.write(Buffer.from([0x81, 0x02, 0x68, 0x69]));
    expect(await raw.closeCode()).toBe(1002);
  });
});

describe('the listener table', () => {
  it('resolves no inherited names as listeners', async () => {
    const { server: connection } = await connectPair();
    // Any event name, as on a plain EventEmitter (the typed map knows only weft's own).
    const server = connection as unknown as EventEmitter;
    expect(server.listenerCount('toString')).toBe(0);
    expect(server.listeners('constructor')).toEqual([]);
    expect(server.emit('hasOwnProperty')).toBe(false);
    const calls: unknown[] = [];
    server.on('toString', (value: unknown) => calls.push(value));
    expect(server.emit('toString', 1)).toBe(true);
    expect(calls).toEqual([1]);
  });

  it('behaves as an EventEmitter: eventNames, once, removeListener events', async () => {
    const connection = new WebSocket('ws://127.0.0.1:1', { handshakeTimeout: 1 });
    const client = connection as unknown as EventEmitter;
    client.on('error', () => {});
    const removed: Array<string | symbol> = [];
    client.on('removeListener', (name: string | symbol) => removed.push(name));
    const listener = (): void => {};
    client.on('message', listener);
    client.once('pong', listener);
    expect(client.eventNames()).toEqual(['error', 'removeListener', 'message', 'pong']);
    client.removeListener('message', listener);
    expect(removed).toEqual(['message']);
    client.emit('pong', Buffer.alloc(0));
    expect(removed).toEqual(['message', 'pong']);
    expect(client.eventNames()).toEqual(['error', 'removeListener']);
    client.removeAllListeners();
    expect(client.eventNames()).toEqual([]);
    connection.on('error', () => {});
    connection.terminate();
  });
});
