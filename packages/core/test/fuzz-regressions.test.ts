/**
 * Bugs found by the property tests (fuzz.property.test.ts) and the fuzz (fuzz/fuzz.mjs), each
 * reduced to a minimal input. Each test failed when it was written; the engine was fixed while
 * the fuzz was being finished (2f79150 BFINAL, c2f9d53 maxPayload and header whitespace,
 * 0fd883f handshake leftovers and the chunk queue, 682de8e socket backpressure while
 * inflating), so they stay as regression tests.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import { Duplex } from 'node:stream';
import zlib from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { checkUpgradeRequest } from '../src/handshake/upgrade-request.js';
import { type DeflateParams, PerMessageDeflate, WebSocketServer } from '../src/index.js';
import { Receiver } from '../src/protocol/receiver.js';
import { runReceiver } from './fuzz-harness.js';
import { closeAll, startServer, track } from './net-helpers.js';

afterEach(closeAll);

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');

function summary(events: Awaited<ReturnType<typeof runReceiver>>['events']): string[] {
  return events.map((event) => {
    if (event.type === 'message') {
      const text = event.data.length > 40 ? `${event.data.length} bytes` : `"${event.data}"`;
      return `${event.isBinary ? 'binary' : 'text'} ${text}`;
    }
    if (event.type === 'error') return `error ${event.closeCode} ${event.code}`;
    if (event.type === 'close') return `close ${event.code}`;
    return event.type;
  });
}

describe('permessage-deflate: maxPayload', () => {
  // Fixed in c2f9d53; the bug, as found:
  // A compressed message whose first fragment inflates to exactly maxPayload bytes: the next
  // fragment is inflated with maxOutput = maxPayload - messageLength = 0, which the inflater
  // reads as "no limit" (Receiver #inflateFrame). Here 117 compressed bytes in the second
  // fragment become 102 400 bytes; with the default maxPayload (100 MiB) a peer gets past the
  // limit by a factor of up to ~1000 (deflate's ratio), i.e. unbounded memory per connection.
  it('a fragment after exactly maxPayload inflated bytes still counts against maxPayload', async () => {
    const stream = Buffer.concat([
      // text, RSV1, not FIN: "0123456789abcdef" deflated and sync-flushed (22 bytes)
      hex('41 16 3230343236313533b7b04c4c4a4e494d03000000ffff'),
      // continuation, FIN: 102 400 x "a" deflated (117 bytes, trailer removed)
      hex(`80 75 ecc18100000000c320d6f94b1ce45501 ${'00'.repeat(98)} 7c1800`),
    ]);
    const { events } = await runReceiver([stream], {
      isServer: false,
      maxPayload: 16,
      deflate: {
        serverNoContextTakeover: false,
        clientNoContextTakeover: false,
        serverMaxWindowBits: 15,
        clientMaxWindowBits: 15,
      },
    });
    expect(summary(events)).toEqual(['error 1009 WS_ERR_UNSUPPORTED_MESSAGE_LENGTH']);
  });
});

describe('permessage-deflate: a deflate block with BFINAL set', () => {
  // Fixed in 2f79150; the bug, as found:
  // A sender may end a message's deflate data with a BFINAL block (RFC 7692 §7.2.3 shows one).
  // zlib then reports the end of the stream and ignores everything written afterwards, so with
  // context takeover every later compressed message inflates to nothing: messages are silently
  // emptied. ws 8 starts a new inflate stream after one ended and delivers "World".
  it('later messages still inflate after a message that ended its deflate stream', async () => {
    const stream = Buffer.concat([
      hex('c1 07 f348cdc9c90700'), // "Hello" in a BFINAL block
      hex('c1 07 0acf2fca490100'), // "World", sync-flushed, trailer removed
    ]);
    const { events } = await runReceiver([stream], {
      isServer: false,
      maxPayload: 0,
      deflate: {
        serverNoContextTakeover: false,
        clientNoContextTakeover: false,
        serverMaxWindowBits: 15,
        clientMaxWindowBits: 15,
      },
    });
    expect(summary(events)).toEqual(['text "Hello"', 'text "World"']);
  });
});

describe('handshake: header values are trimmed as JavaScript strings, not as HTTP OWS', () => {
  // Fixed in c2f9d53; the bug, as found:
  // checkUpgradeRequest and parseSubprotocols use String.prototype.trim(), which also removes
  // U+00A0 (a byte Node's HTTP parser passes through as obs-text), U+000B, U+000C, U+FEFF ...
  // HTTP only trims SP and HTAB (RFC 9110 §5.5), so these requests are malformed and must be
  // refused (ws 8 refuses the key and the subprotocol ones). Low severity: nothing worse than
  // accepting a malformed handshake.
  const request = (headers: Record<string, string>): IncomingMessage =>
    ({
      method: 'GET',
      url: '/',
      headers: {
        upgrade: 'websocket',
        connection: 'Upgrade',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'sec-websocket-version': '13',
        ...headers,
      },
    }) as unknown as IncomingMessage;

  it('refuses a Sec-WebSocket-Key padded with U+00A0', () => {
    const check = checkUpgradeRequest(
      request({ 'sec-websocket-key': '\u00a0dGhlIHNhbXBsZSBub25jZQ==' }),
    );
    expect(check).toMatchObject({ ok: false, status: 400 });
  });

  it('refuses a Sec-WebSocket-Version padded with U+00A0', () => {
    const check = checkUpgradeRequest(request({ 'sec-websocket-version': '13\u00a0' }));
    expect(check.ok).toBe(false);
  });

  it('refuses a Sec-WebSocket-Protocol element padded with U+00A0', () => {
    const check = checkUpgradeRequest(request({ 'sec-websocket-protocol': 'chat\u00a0' }));
    expect(check).toMatchObject({ ok: false, status: 400 });
  });
});

describe('server: frames that arrive with the upgrade request', () => {
  // Fixed in 0fd883f; the bug, as found:
  // Bytes after the request head (`head`) are parsed inside setSocket(), before the 'connection'
  // event, so events they cause reach no listener: messages are held for the first 'message'
  // listener, but 'ping', 'pong' and 'error' are lost. ws 8 parses `head` after 'connection'
  // and emits all of them. Found by the fuzz's loopback cases (server error=null, model 1002).
  // Input after the 101: 89 82 00000000 6869 (ping "hi"), 8c 80 00000000 (opcode 0xC).
  it('emits ping and the protocol error to listeners added on connection', async () => {
    const { wss, port } = await startServer();
    const seen: string[] = [];
    const closed = new Promise<void>((resolve) =>
      wss.on('connection', (ws) => {
        ws.on('ping', (data) => seen.push(`ping ${data}`));
        ws.on('error', (error) => seen.push(`error ${(error as { code?: string }).code}`));
        ws.on('close', () => resolve());
      }),
    );
    const socket = net.connect(port, '127.0.0.1');
    track({ close: () => socket.destroy() });
    socket.on('error', () => {});
    socket.on('data', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(
      Buffer.concat([
        Buffer.from(
          'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
            'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
        ),
        hex('89 82 00000000 6869'),
        hex('8c 80 00000000'),
      ]),
    );
    socket.end();
    await closed;
    expect(seen).toEqual(['ping hi', 'error WS_ERR_INVALID_OPCODE']);
  });
});

describe('permessage-deflate: bytes that arrive while a frame is inflating', () => {
  // Fixed in 0fd883f (and 682de8e added backpressure, see below); the bug, as found:
  // While a compressed frame waits for zlib (behind the process-wide limit of 10 jobs when the
  // server is busy), every socket chunk is queued in Receiver#chunks (no backpressure on the
  // socket, unlike ws, which pauses it). Past ~16 000 entries the array leaves V8's fast path
  // and each chunks.shift() in #take/#takeUpTo copies the rest of the queue: parsing n queued
  // chunks costs O(n^2). How much depends on V8's heap: here 60 000 one-byte chunks blocked the
  // event loop for 0.4-2.7 s, 200 000 for 4-6 s, 250 000 for 50 s; a linear parse of 200 000
  // takes ~0.3 s. Found by the fuzz as per-case timeouts (5 s) of compressed streams cut into
  // 1-7 byte chunks.
  it('parses chunks queued during an inflate in linear time', { timeout: 120_000 }, async () => {
    const params: DeflateParams = {
      serverNoContextTakeover: false,
      clientNoContextTakeover: false,
      serverMaxWindowBits: 15,
      clientMaxWindowBits: 15,
    };
    const codec = new PerMessageDeflate(params, false, { threshold: 0 }, 'permessage-deflate');
    let messages = 0;
    const receiver = new Receiver(
      { isServer: false, maxPayload: 0, skipUTF8Validation: false, decompressor: codec },
      {
        onMessage: () => messages++,
        onPing: () => {},
        onPong: () => {},
        onClose: () => {},
        onError: (error) => {
          throw error;
        },
      },
    );
    const hello = zlib.deflateRawSync('hello', { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    receiver.write(Buffer.concat([Buffer.from([0xc2, hello.length - 4]), hello.subarray(0, -4)]));
    // While "hello" inflates: a 200 000-byte binary message, one byte per chunk.
    const n = 200_000;
    const frame = Buffer.concat([
      hex(`82 7f 00000000 ${n.toString(16).padStart(8, '0')}`),
      Buffer.alloc(n),
    ]);
    for (let i = 0; i < frame.length; i++) receiver.write(frame.subarray(i, i + 1));
    const start = performance.now();
    await new Promise<void>((resolve) => receiver.drain(resolve));
    const elapsed = performance.now() - start;
    codec.close();
    expect(messages).toBe(2);
    expect(elapsed).toBeLessThan(2000);
  });
});

describe('permessage-deflate: a peer that keeps sending while a frame inflates', () => {
  // Fixed in 682de8e; found while reducing the chunk-queue hang above, the bug, as found: while a
  // compressed frame is inflating (or waiting for one of the 10 process-wide zlib slots), the
  // connection keeps reading the socket and queues everything in the receiver: nothing bounds
  // it (maxPayload bounds one message, not the number of queued messages). Over loopback, with
  // the zlib slots busy, a server read 64 MiB sent behind one compressed frame before parsing
  // any of it. ws stops reading (its receiver's write() returns false, the socket is paused)
  // until the inflate is done.
  it('stops reading the socket once megabytes queue up behind an inflating frame', async () => {
    class MemorySocket extends Duplex {
      override _read(): void {}
      override _write(_chunk: Buffer, _encoding: string, callback: () => void): void {
        callback();
      }
    }
    const wss = track(new WebSocketServer({ noServer: true, perMessageDeflate: true }));
    const socket = new MemorySocket();
    const request = {
      method: 'GET',
      url: '/',
      headers: {
        upgrade: 'websocket',
        connection: 'Upgrade',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'sec-websocket-version': '13',
        'sec-websocket-extensions': 'permessage-deflate',
      },
      socket: {},
    } as unknown as IncomingMessage;
    const ws = await new Promise<{ terminate(): void }>((resolve) =>
      wss.handleUpgrade(request, socket, Buffer.alloc(0), resolve),
    );
    track({ close: () => ws.terminate() });
    await new Promise((resolve) => setImmediate(resolve)); // the server starts reading
    // A compressed frame too big to inflate inline (masked with a zero key), so it inflates
    // on the thread pool, then a 64 MiB binary frame.
    const noise = zlib
      .deflateRawSync(randomBytes(80 * 1024), { finishFlush: zlib.constants.Z_SYNC_FLUSH })
      .subarray(0, -4);
    const length = Buffer.alloc(8);
    length.writeUInt32BE(noise.length, 4);
    socket.push(Buffer.concat([hex('c2 ff'), length, hex('00000000'), noise]));
    socket.push(hex('82 ff 00000000 04000000 00000000'));
    const block = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < 64; i++) socket.push(block);
    expect(socket.isPaused()).toBe(true);
  });
});
