import { afterEach, describe, expect, it } from 'vitest';
import { type RawData, WebSocket } from '../src/index.js';
import { Opcode } from '../src/protocol/constants.js';
import { closePayload, rawFrame } from './frames.js';
import {
  closeAll,
  connectPair,
  connectRaw,
  RawClient,
  startServer,
  track,
  waitFor,
} from './net-helpers.js';

afterEach(closeAll);

describe('a weft server failing a connection on bad frames', () => {
  const cases: Array<[string, Buffer, number]> = [
    ['unmasked frame', rawFrame({ opcode: Opcode.Text, payload: 'x' }), 1002],
    ['reserved opcode', rawFrame({ opcode: 3, mask: true }), 1002],
    ['RSV2', rawFrame({ opcode: Opcode.Text, rsv: 2, mask: true }), 1002],
    ['fragmented ping', rawFrame({ opcode: Opcode.Ping, fin: false, mask: true }), 1002],
    [
      'bad close code',
      rawFrame({ opcode: Opcode.Close, payload: closePayload(1005), mask: true }),
      1002,
    ],
    [
      'invalid UTF-8',
      rawFrame({ opcode: Opcode.Text, payload: Buffer.from([0xff]), mask: true }),
      1007,
    ],
    [
      'invalid UTF-8 close reason',
      rawFrame({
        opcode: Opcode.Close,
        payload: closePayload(1000, Buffer.from([0xc0])),
        mask: true,
      }),
      1007,
    ],
    [
      'message over maxPayload',
      rawFrame({ opcode: Opcode.Binary, payload: Buffer.alloc(2000), mask: true }),
      1009,
    ],
  ];
  for (const [name, bytes, expected] of cases) {
    it(`${name}: close frame ${expected}, 'error' with the code, 'close' with 1006, socket closed`, async () => {
      const { wss, raw: client, ws } = await connectRaw({ maxPayload: 1024 });
      const errors: Error[] = [];
      ws.on('error', (error) => errors.push(error));
      const closed = waitFor<[number, Buffer]>(ws, 'close');
      client.socket.write(bytes);
      expect(await client.closeCode()).toBe(expected);
      await client.closed; // the server ends TCP after failing the connection
      const [code] = await closed;
      expect(code).toBe(1006);
      expect(errors).toHaveLength(1);
      expect((errors[0] as Error & { closeCode: number }).closeCode).toBe(expected);
      expect(wss.clients.size).toBe(0);
    });
  }

  it('does not crash without an error listener', async () => {
    const { raw: client, ws } = await connectRaw();
    client.socket.write(rawFrame({ opcode: Opcode.Text, payload: 'unmasked' }));
    expect(await client.closeCode()).toBe(1002);
    await waitFor(ws, 'close');
  });
});

describe('the closing handshake', () => {
  it('destroys the socket after closeTimeout when the peer never answers', async () => {
    const { raw: client, ws } = await connectRaw({ closeTimeout: 200 });
    ws.close(1000, 'bye');
    expect(ws.readyState).toBe(WebSocket.CLOSING);
    expect(await client.closeCode()).toBe(1000);
    const [code] = await waitFor<[number]>(ws, 'close');
    expect(code).toBe(1006);
    expect(ws.readyState).toBe(WebSocket.CLOSED);
  });

  it('answers a peer close frame with the same code and reason, then ends TCP', async () => {
    const { raw: client, ws } = await connectRaw();
    const closed = waitFor<[number, Buffer]>(ws, 'close');
    client.socket.write(
      rawFrame({ opcode: Opcode.Close, payload: closePayload(4001, 'done'), mask: true }),
    );
    expect(await client.closeCode()).toBe(4001);
    await client.closed;
    const [code, reason] = await closed;
    expect(code).toBe(4001);
    expect(reason.toString()).toBe('done');
  });

  it('validates close arguments', async () => {
    const { client, server: ws } = await connectPair();
    for (const code of [999, 1004, 1005, 1006, 1015, 2999])
      expect(() => ws.close(code)).toThrow(TypeError);
    expect(() => ws.close(5000)).toThrow(TypeError);
    expect(() => ws.close(1000, 'x'.repeat(124))).toThrow(RangeError);
    expect(() => ws.close(undefined, 'reason without code')).toThrow(TypeError);
    expect(ws.readyState).toBe(WebSocket.OPEN);
    ws.close(1008, 'é'.repeat(61));
    const [code, reason] = await waitFor<[number, Buffer]>(client, 'close');
    expect(code).toBe(1008);
    expect(reason.toString()).toBe('é'.repeat(61));
    expect(() => ws.close(2000)).not.toThrow(); // closed: nothing to validate, as in ws
  });

  it('closes a client still connecting with an error and a 1006 close', async () => {
    const { url } = await startServer();
    const client = new WebSocket(url);
    const errors: Error[] = [];
    client.on('error', (error) => errors.push(error));
    client.close();
    const [code] = await waitFor<[number]>(client, 'close');
    expect(code).toBe(1006);
    expect(errors[0]?.message).toMatch(/closed before the connection was established/);
  });
});

describe('sending', () => {
  it('throws while connecting and reports an error after close', async () => {
    const { url } = await startServer();
    const client = new WebSocket(url);
    expect(() => client.send('early')).toThrow(/CONNECTING/);
    await waitFor(client, 'open');
    client.close();
    const error = await new Promise<Error | null | undefined>((resolve) =>
      client.send('late', resolve),
    );
    expect(error?.message).toMatch(/CLOSING/);
    await waitFor(client, 'close');
  });

  it('refuses control payloads over 125 bytes', async () => {
    const { url } = await startServer();
    const client = track(new WebSocket(url));
    await waitFor(client, 'open');
    expect(() => client.ping(Buffer.alloc(126))).toThrow(RangeError);
  });

  it('takes the ping/pong callback in any position, as ws does', async () => {
    const { client, server } = await connectPair();
    const pongs: string[] = [];
    client.on('pong', (data) => pongs.push(data.toString()));
    const done: string[] = [];
    client.ping(() => done.push('ping()'));
    client.ping('a', () => done.push('ping(data)'));
    client.ping('b', true, () => done.push('ping(data, mask)'));
    server.pong('c', () => done.push('pong(data)'));
    await expect.poll(() => done.length).toBe(4);
    await expect.poll(() => [...pongs].sort()).toEqual(['', 'a', 'b', 'c']);
  });

  it('keeps order when a Blob is sent before a string', async () => {
    const { client, server } = await connectPair();
    const got: string[] = [];
    server.on('message', (data) => got.push(String(data)));
    client.send(new Blob(['first']));
    client.send('second');
    client.send(new Blob(['third']));
    client.send(Buffer.from('fourth'));
    await expect.poll(() => got, { timeout: 5000 }).toEqual(['first', 'second', 'third', 'fourth']);
  });

  it('fails the connection with 1011 when a Blob cannot be read, refusing later sends', async () => {
    const { client, server } = await connectPair();
    class UnreadableBlob extends Blob {
      override arrayBuffer(): Promise<ArrayBuffer> {
        return Promise.reject(new Error('unreadable'));
      }
    }
    const results: Array<string | undefined> = [];
    server.on('error', () => {});
    server.send(new UnreadableBlob(['x']), (error) => results.push(error?.message));
    server.send('after', (error) => results.push(error?.message));
    const [code] = await waitFor<[number]>(client, 'close');
    expect(code).toBe(1011);
    expect(results).toEqual(['unreadable', 'unreadable']);
  });

  it('counts bufferedAmount while the peer does not read', async () => {
    const { raw: client, ws } = await connectRaw();
    client.socket.pause();
    const chunk = Buffer.alloc(1 << 20);
    for (let i = 0; i < 64; i++) ws.send(chunk);
    expect(ws.bufferedAmount).toBeGreaterThan(0);
  });
});

describe('receiving', () => {
  it('holds messages that arrive before a message listener is attached', async () => {
    const { wss, url } = await startServer();
    const client = track(new WebSocket(url));
    client.on('open', () => {
      client.send('one');
      client.send('two');
    });
    const [ws] = await waitFor<[WebSocket]>(wss, 'connection');
    await new Promise((resolve) => setTimeout(resolve, 100)); // an async auth lookup, say
    const got: string[] = [];
    ws.on('message', (data) => got.push(String(data)));
    await expect.poll(() => got, { timeout: 5000 }).toEqual(['one', 'two']);
  });

  it('keeps held messages ahead of ones that arrive while their release is pending', async () => {
    const { raw, ws } = await connectRaw();
    const got: string[] = [];
    // The listener arrives mid-chunk (from a ping listener): 'a' is held, 'b' parses before
    // the held messages are released, and must still come second.
    ws.once('ping', () => ws.on('message', (data) => got.push(String(data))));
    raw.socket.write(
      Buffer.concat([
        rawFrame({ opcode: Opcode.Text, payload: 'a', mask: true }),
        rawFrame({ opcode: Opcode.Ping, mask: true }),
        rawFrame({ opcode: Opcode.Text, payload: 'b', mask: true }),
      ]),
    );
    await expect.poll(() => got).toEqual(['a', 'b']);
  });

  it('keeps the rest of the held messages when a once listener takes one and listens again later', async () => {
    const { wss, url } = await startServer();
    const client = track(new WebSocket(url));
    client.on('open', () => {
      for (const text of ['one', 'two', 'three']) client.send(text);
    });
    const [ws] = await waitFor<[WebSocket]>(wss, 'connection');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const got: string[] = [];
    // A reader that takes one message, awaits something, then takes the next.
    for (let i = 0; i < 3; i++) {
      const [data] = await waitFor<[Buffer]>(ws, 'message');
      got.push(String(data));
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    client.send('four');
    const [last] = await waitFor<[Buffer]>(ws, 'message');
    got.push(String(last));
    expect(got).toEqual(['one', 'two', 'three', 'four']);
  });

  it('drops unheard messages past the 1 MiB hold budget, as ws would, and delivers what follows', async () => {
    const { client, server: ws } = await connectPair();
    for (let i = 0; i < 3; i++) client.send(Buffer.alloc(400 * 1024, i));
    await new Promise<void>((resolve) => client.send('sync', () => resolve()));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const got: string[] = [];
    ws.on('message', (data) => got.push(String(data)));
    client.send('later');
    await expect.poll(() => got).toEqual(['later']);
  });

  it('delivers frames sent in the same packet as the upgrade request', async () => {
    const { wss, port } = await startServer();
    const client = new RawClient(port);
    await client.connected();
    client.socket.write(
      Buffer.concat([
        Buffer.from(
          'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
        ),
        rawFrame({ opcode: Opcode.Text, payload: 'in the head', mask: true }),
      ]),
    );
    const [ws] = await waitFor<[WebSocket]>(wss, 'connection');
    const [data] = await waitFor<[Buffer]>(ws, 'message');
    expect(data.toString()).toBe('in the head');
  });

  it('keeps memory bounded under a ping flood from a peer that never reads', async () => {
    const { raw, ws } = await connectRaw();
    raw.socket.pause(); // never read our pongs
    const ping = rawFrame({ opcode: Opcode.Ping, payload: Buffer.alloc(125, 1), mask: true });
    const flood = Buffer.concat(Array.from({ length: 2000 }, () => ping));
    for (let i = 0; i < 100; i++) raw.socket.write(flood); // 200 000 pings, ~26 MB of pongs owed
    raw.socket.write(rawFrame({ opcode: Opcode.Text, payload: 'end of flood', mask: true }));
    const [data] = await waitFor<[Buffer]>(ws, 'message', 20_000);
    expect(data.toString()).toBe('end of flood');
    // Unanswered pings are dropped once 64 pongs wait: the send buffer stays small.
    expect(ws.bufferedAmount).toBeLessThan(64 * 1024);
    expect(ws.readyState).toBe(WebSocket.OPEN);
  });

  it('answers pings unless autoPong is false', async () => {
    for (const autoPong of [true, false]) {
      const { port } = await startServer({ autoPong });
      const client = new RawClient(port);
      await client.upgrade();
      client.socket.write(rawFrame({ opcode: Opcode.Ping, payload: 'hi', mask: true }));
      client.socket.write(rawFrame({ opcode: Opcode.Text, payload: 'after', mask: true }));
      if (autoPong) {
        const bytes = await client.readUntil((b) => b.length >= 4);
        expect(bytes.subarray(0, 4)).toEqual(Buffer.from([0x8a, 2, 0x68, 0x69]));
      } else {
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(client.received.length).toBe(0);
      }
    }
  });

  it('hands binary messages over in the binaryType form', async () => {
    const { client, server } = await connectPair();
    const got: RawData[] = [];
    client.on('message', (data) => got.push(data));
    for (const type of ['nodebuffer', 'arraybuffer', 'fragments', 'blob'] as const) {
      client.binaryType = type;
      server.send(Buffer.from([1, 2, 3]));
      await expect
        .poll(() => got.length)
        .toBe(['nodebuffer', 'arraybuffer', 'fragments', 'blob'].indexOf(type) + 1);
    }
    expect(Buffer.isBuffer(got[0])).toBe(true);
    expect(got[1]).toBeInstanceOf(ArrayBuffer);
    expect(Array.isArray(got[2])).toBe(true);
    expect(got[3]).toBeInstanceOf(Blob);
    expect(Buffer.from(await (got[3] as Blob).arrayBuffer())).toEqual(Buffer.from([1, 2, 3]));
  });

  for (const allowSynchronousEvents of [true, false]) {
    it(`emits messages from one chunk ${allowSynchronousEvents ? 'in one tick' : 'one tick apart'} (allowSynchronousEvents: ${allowSynchronousEvents})`, async () => {
      const { raw: client, ws } = await connectRaw({ allowSynchronousEvents });
      const order: string[] = [];
      ws.on('message', (data) => {
        order.push(`message ${data}`);
        process.nextTick(() => order.push(`tick ${data}`));
      });
      client.socket.write(
        Buffer.concat(
          [1, 2, 3].map((n) => rawFrame({ opcode: Opcode.Text, payload: String(n), mask: true })),
        ),
      );
      await expect.poll(() => order.length).toBe(6);
      expect(order).toEqual(
        allowSynchronousEvents
          ? ['message 1', 'message 2', 'message 3', 'tick 1', 'tick 2', 'tick 3']
          : ['message 1', 'tick 1', 'message 2', 'tick 2', 'message 3', 'tick 3'],
      );
    });
  }

  it('pause() stops message delivery and resume() restarts it', async () => {
    const { client, server } = await connectPair();
    const got: string[] = [];
    server.on('message', (data) => got.push(String(data)));
    server.pause();
    expect(server.isPaused).toBe(true);
    client.send('a');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(got).toEqual([]);
    server.resume();
    await expect.poll(() => got).toEqual(['a']);
  });
});
