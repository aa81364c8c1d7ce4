import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { type ExtensionOffer, parseExtensions } from '../src/extensions/header.js';
import {
  acceptOffers,
  acceptResponse,
  clientOffer,
  NegotiationError,
} from '../src/extensions/permessage-deflate.js';
import { runInline } from '../src/extensions/zlib-inline.js';
import { PerMessageDeflate, WebSocket, WebSocketServer } from '../src/index.js';
import { Opcode } from '../src/protocol/constants.js';
import { rawFrame } from './frames.js';
import { closeAll, connectPair, RawClient, startServer, track, waitFor } from './net-helpers.js';

afterEach(closeAll);

/** What a sender puts on the wire for a compressed message: deflate, sync flush, trailer removed. */
function compressed(data: Buffer | string): Buffer {
  const out = zlib.deflateRawSync(typeof data === 'string' ? Buffer.from(data) : data, {
    finishFlush: zlib.constants.Z_SYNC_FLUSH,
  });
  return out.subarray(0, out.length - 4);
}

function offers(header: string): ExtensionOffer[] {
  return parseExtensions(header);
}

describe('Sec-WebSocket-Extensions parsing (RFC 6455 §9.1)', () => {
  it('reads several offers, parameters, spaces and quoted values', () => {
    expect(
      parseExtensions(
        'permessage-deflate ; client_max_window_bits; server_max_window_bits="10" , x-foo, permessage-deflate',
      ),
    ).toEqual([
      {
        name: 'permessage-deflate',
        params: [
          ['client_max_window_bits', true],
          ['server_max_window_bits', '10'],
        ],
      },
      { name: 'x-foo', params: [] },
      { name: 'permessage-deflate', params: [] },
    ]);
  });

  for (const header of [
    '',
    ';',
    'permessage-deflate;',
    'a b',
    'a; b=',
    'a; b="unterminated',
    'a; b="not token"',
    'a; =1',
    'a;; b',
  ]) {
    it(`refuses ${JSON.stringify(header)}`, () => {
      expect(() => parseExtensions(header)).toThrow(SyntaxError);
    });
  }
});

describe('permessage-deflate negotiation (RFC 7692 §5, §7)', () => {
  it('offers client_max_window_bits by default and the configured parameters', () => {
    expect(clientOffer({})).toBe('permessage-deflate; client_max_window_bits');
    expect(
      clientOffer({
        serverNoContextTakeover: true,
        clientNoContextTakeover: true,
        serverMaxWindowBits: 10,
        clientMaxWindowBits: 9,
      }),
    ).toBe(
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9',
    );
    expect(() => clientOffer({ serverMaxWindowBits: 16 })).toThrow(RangeError);
  });

  it('accepts the first offer it can honour, skipping others', () => {
    const accepted = acceptOffers(
      offers('x-unknown, permessage-deflate; server_max_window_bits=10; client_max_window_bits'),
      {
        clientMaxWindowBits: 12,
      },
    );
    expect(accepted?.response).toBe(
      'permessage-deflate; server_max_window_bits=10; client_max_window_bits=12',
    );
    expect(accepted?.params).toEqual({
      serverNoContextTakeover: false,
      clientNoContextTakeover: false,
      serverMaxWindowBits: 10,
      clientMaxWindowBits: 12,
    });
  });

  it('declines an offer it cannot honour and falls back to the next', () => {
    // Limiting the client window needs a client that offered client_max_window_bits.
    const header = 'permessage-deflate, permessage-deflate; client_max_window_bits=11';
    expect(
      acceptOffers(offers(header), { clientMaxWindowBits: 10 })?.params.clientMaxWindowBits,
    ).toBe(10);
    expect(acceptOffers(offers('permessage-deflate'), { clientMaxWindowBits: 10 })).toBeNull();
    expect(acceptOffers(offers('x-other'), {})).toBeNull();
  });

  it('imposes the server no-context-takeover settings', () => {
    expect(
      acceptOffers(offers('permessage-deflate'), {
        serverNoContextTakeover: true,
        clientNoContextTakeover: true,
      })?.response,
    ).toBe('permessage-deflate; server_no_context_takeover; client_no_context_takeover');
  });

  const badOffers = [
    'permessage-deflate; server_no_context_takeover; server_no_context_takeover',
    'permessage-deflate; server_no_context_takeover=1',
    'permessage-deflate; server_max_window_bits',
    'permessage-deflate; server_max_window_bits=7',
    'permessage-deflate; server_max_window_bits=16',
    'permessage-deflate; client_max_window_bits=010',
    'permessage-deflate; unknown_param',
  ];
  for (const header of badOffers) {
    it(`refuses the malformed offer ${header}`, () => {
      expect(() => acceptOffers(offers(header), {})).toThrow(NegotiationError);
    });
  }

  it('checks the server response against the offer', () => {
    expect(
      acceptResponse(offers('permessage-deflate; client_max_window_bits=10'), {}),
    ).toMatchObject({ clientMaxWindowBits: 10 });
    const bad: Array<[string, object]> = [
      ['x-other', {}],
      ['permessage-deflate, permessage-deflate', {}],
      ['permessage-deflate; client_max_window_bits', {}],
      ['permessage-deflate; client_max_window_bits=12', { clientMaxWindowBits: 10 }],
      ['permessage-deflate; client_max_window_bits=12', { clientMaxWindowBits: false }],
      ['permessage-deflate; server_max_window_bits=12', { serverMaxWindowBits: 10 }],
      ['permessage-deflate; client_no_context_takeover', { clientNoContextTakeover: false }],
      ['permessage-deflate; foo', {}],
    ];
    for (const [header, options] of bad) {
      expect(() => acceptResponse(offers(header), options), header).toThrow(NegotiationError);
    }
  });
});

/** A raw client that negotiated permessage-deflate with a weft server. */
async function rawDeflateClient(
  serverOptions: Parameters<typeof startServer>[0] = {},
  client: { allowHalfOpen?: boolean } = {},
) {
  const { wss, port } = await startServer({
    perMessageDeflate: { threshold: 0 },
    ...serverOptions,
  });
  const raw = new RawClient(port, client);
  const [[ws], head] = await Promise.all([
    waitFor<[WebSocket]>(wss, 'connection'),
    raw.upgrade('/', 'Sec-WebSocket-Extensions: permessage-deflate\r\n'),
  ]);
  expect(head).toContain('Sec-WebSocket-Extensions: permessage-deflate');
  return { wss, raw, ws };
}

describe('permessage-deflate on the wire', () => {
  it('refuses a malformed extension header with 400', async () => {
    const { port } = await startServer({ perMessageDeflate: true });
    const raw = new RawClient(port);
    await raw.connected();
    raw.socket.write(
      'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=99\r\n\r\n',
    );
    await raw.closed;
    expect(raw.received.toString()).toMatch(
      /^HTTP\/1\.1 400 .*\r\n[\s\S]*Sec-WebSocket-Extensions/,
    );
  });

  it('runs uncompressed when no offer fits, and ignores the header when compression is off', async () => {
    for (const perMessageDeflate of [{ clientMaxWindowBits: 10 }, false]) {
      const { wss, port } = await startServer({ perMessageDeflate });
      const raw = new RawClient(port);
      const [[ws], head] = await Promise.all([
        waitFor<[WebSocket]>(wss, 'connection'),
        raw.upgrade('/', 'Sec-WebSocket-Extensions: permessage-deflate\r\n'),
      ]);
      expect(head).not.toContain('Sec-WebSocket-Extensions');
      expect(ws.extensions).toBe('');
    }
  });

  it('inflates a compressed message, and sends RSV1 only on compressed ones', async () => {
    const { raw, ws } = await rawDeflateClient();
    const got: string[] = [];
    ws.on('message', (data) => got.push(String(data)));
    raw.socket.write(
      rawFrame({ opcode: Opcode.Text, rsv: 4, payload: compressed('hello, deflate'), mask: true }),
    );
    await expect.poll(() => got).toEqual(['hello, deflate']);
    ws.send('plain', { compress: false });
    ws.send('squeezed');
    const bytes = await raw.readUntil((b) => b.length >= 7 + 2);
    expect(bytes[0]).toBe(0x81); // FIN + text, RSV1 clear
    expect(bytes.subarray(2, 7).toString()).toBe('plain');
    expect(bytes[7]).toBe(0xc1); // FIN + RSV1 + text
  });

  for (const clientNoContextTakeover of [false, true]) {
    it(`inflates messages that end the deflate stream with a BFINAL block (no takeover: ${clientNoContextTakeover})`, async () => {
      const { raw, ws } = await rawDeflateClient({
        perMessageDeflate: { threshold: 0, clientNoContextTakeover },
      });
      const got: string[] = [];
      ws.on('message', (data) => got.push(String(data)));
      for (const text of ['first', 'second', 'third']) {
        // deflateRawSync finishes the stream: the payload ends with a BFINAL=1 block.
        raw.socket.write(
          rawFrame({
            opcode: Opcode.Text,
            rsv: 4,
            payload: zlib.deflateRawSync(Buffer.from(text)),
            mask: true,
          }),
        );
      }
      raw.socket.write(
        rawFrame({ opcode: Opcode.Text, rsv: 4, payload: compressed('fourth'), mask: true }),
      );
      await expect.poll(() => got).toEqual(['first', 'second', 'third', 'fourth']);
    });
  }

  it('sends empty messages and empty fragments as an empty block, in the middle of a stream', async () => {
    const { client, server } = await connectPair({ perMessageDeflate: { threshold: 0 } });
    expect(client.extensions).toMatch(/^permessage-deflate/);
    const got: string[] = [];
    client.on('message', (data) => got.push(String(data)));
    server.send('first');
    server.send('');
    server.send(Buffer.alloc(0), { binary: false });
    server.send('frag', { fin: false });
    server.send('', { fin: false });
    server.send('ment', { fin: true });
    server.send('', { fin: false });
    server.send('', { fin: true });
    server.send('last');
    await expect.poll(() => got).toEqual(['first', '', '', 'fragment', '', 'last']);
  });

  it('inflates a fragmented compressed message with a ping between its fragments', async () => {
    const { raw, ws } = await rawDeflateClient();
    const got: string[] = [];
    ws.on('message', (data) => got.push(String(data)));
    const body = compressed('fragmented and compressed');
    raw.socket.write(
      Buffer.concat([
        rawFrame({
          opcode: Opcode.Text,
          rsv: 4,
          fin: false,
          payload: body.subarray(0, 5),
          mask: true,
        }),
        rawFrame({ opcode: Opcode.Ping, payload: 'p', mask: true }),
        rawFrame({ opcode: Opcode.Continuation, payload: body.subarray(5), mask: true }),
      ]),
    );
    await expect.poll(() => got).toEqual(['fragmented and compressed']);
  });

  const violations: Array<[string, () => Buffer, number]> = [
    [
      'RSV1 on a continuation frame',
      () =>
        Buffer.concat([
          rawFrame({ opcode: Opcode.Text, fin: false, payload: 'a', mask: true }),
          rawFrame({ opcode: Opcode.Continuation, rsv: 4, payload: 'b', mask: true }),
        ]),
      1002,
    ],
    [
      'a compressed ping',
      () => rawFrame({ opcode: Opcode.Ping, rsv: 4, payload: compressed('x'), mask: true }),
      1002,
    ],
    [
      'data that does not inflate',
      () =>
        rawFrame({
          opcode: Opcode.Binary,
          rsv: 4,
          payload: Buffer.from([0xff, 0xff, 0xff, 0xff]),
          mask: true,
        }),
      1007,
    ],
    [
      'compressed text that is not UTF-8',
      () =>
        rawFrame({
          opcode: Opcode.Text,
          rsv: 4,
          payload: compressed(Buffer.from([0x61, 0xff])),
          mask: true,
        }),
      1007,
    ],
  ];
  for (const [name, bytes, code] of violations) {
    it(`fails ${name} with ${code}`, async () => {
      const { raw, ws } = await rawDeflateClient();
      const closed = waitFor<[number]>(ws, 'close');
      raw.socket.write(bytes());
      expect(await raw.closeCode()).toBe(code);
      await closed;
    });
  }

  it('refuses RSV1 with 1002 when the extension was not negotiated', async () => {
    const { port } = await startServer({ perMessageDeflate: false });
    const raw = new RawClient(port);
    await raw.upgrade('/', 'Sec-WebSocket-Extensions: permessage-deflate\r\n');
    raw.socket.write(
      rawFrame({ opcode: Opcode.Text, rsv: 4, payload: compressed('x'), mask: true }),
    );
    expect(await raw.closeCode()).toBe(1002);
  });

  it('stops a decompression bomb at maxPayload with 1009 and frees the inflater', async () => {
    const before = PerMessageDeflate.openStreams;
    const { raw, ws } = await rawDeflateClient({ maxPayload: 1024 * 1024 });
    const bomb = compressed(Buffer.alloc(64 * 1024 * 1024)); // ~64 KiB that inflates to 64 MiB
    expect(bomb.length).toBeLessThan(1024 * 1024);
    const got: unknown[] = [];
    ws.on('message', (data) => got.push(data));
    const closed = waitFor<[number]>(ws, 'close');
    raw.socket.write(rawFrame({ opcode: Opcode.Binary, rsv: 4, payload: bomb, mask: true }));
    expect(await raw.closeCode()).toBe(1009);
    await closed;
    expect(got).toEqual([]);
    expect(PerMessageDeflate.openStreams).toBe(before);
  });

  it('keeps order across 100 connections x 10 compressed messages and frees every zlib stream', async () => {
    const before = PerMessageDeflate.openStreams;
    const { wss, url } = await startServer({ perMessageDeflate: { threshold: 0 } });
    wss.on('connection', (ws) =>
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })),
    );
    const clients = await Promise.all(
      Array.from({ length: 100 }, async (_, c) => {
        const client = track(new WebSocket(url, { perMessageDeflate: { threshold: 0 } }));
        await waitFor(client, 'open', 10_000);
        expect(client.extensions).toMatch(/^permessage-deflate/);
        const got: string[] = [];
        client.on('message', (data) => got.push(String(data)));
        for (let m = 0; m < 10; m++) {
          // Sizes alternate so compression jobs of different lengths race each other.
          client.send(`${c}:${m}:${'x'.repeat(m % 2 === 0 ? 20_000 : 3)}`);
        }
        return { client, got, c };
      }),
    );
    expect(PerMessageDeflate.openStreams).toBeGreaterThan(before);
    for (const { got, c } of clients) {
      await expect.poll(() => got.length, { timeout: 15_000 }).toBe(10);
      expect(got.map((text) => text.split(':').slice(0, 2).join(':'))).toEqual(
        Array.from({ length: 10 }, (_, m) => `${c}:${m}`),
      );
    }
    await Promise.all(
      clients.map(async ({ client }) => {
        const closed = waitFor(client, 'close', 10_000);
        client.close();
        await closed;
      }),
    );
    await expect.poll(() => wss.clients.size).toBe(0);
    expect(PerMessageDeflate.openStreams).toBe(before);
  });

  it('frees zlib streams when a connection is terminated mid-compression, without an error event', async () => {
    const before = PerMessageDeflate.openStreams;
    const { client, server } = await connectPair({ perMessageDeflate: { threshold: 0 } });
    const reported: Error[] = [];
    server.on('error', (error) => reported.push(error));
    const errors: Array<Error | null | undefined> = [];
    for (let i = 0; i < 20; i++)
      server.send(Buffer.alloc(256 * 1024, i), (error) => errors.push(error));
    client.terminate();
    await waitFor(server, 'close');
    await expect.poll(() => errors.length).toBe(20);
    // A message compressed before the server saw the close went out (one zlib job each is
    // quick); every one after it fails, in order.
    const firstFailed = errors.findIndex((error) => error instanceof Error);
    expect(firstFailed).toBeGreaterThanOrEqual(0);
    expect(errors.slice(firstFailed).every((error) => error instanceof Error)).toBe(true);
    expect(PerMessageDeflate.openStreams).toBe(before);
    expect(reported).toEqual([]);
  });

  it('fails the sends still compressing when the peer ends the connection, without an error event', async () => {
    const { raw, ws } = await rawDeflateClient();
    const reported: Error[] = [];
    ws.on('error', (error) => reported.push(error));
    const closed = waitFor(ws, 'close', 10_000);
    // A peer that reads nothing: an uncompressed 8 MiB message fills the socket buffers, so
    // the server's end of the socket cannot finish while the compressed ones are still made.
    raw.socket.pause();
    ws.send(randomBytes(8 * 1024 * 1024), { compress: false });
    const errors: Array<Error | null | undefined> = [];
    for (let i = 0; i < 8; i++) ws.send(randomBytes(256 * 1024), (error) => errors.push(error));
    raw.socket.end();
    await expect.poll(() => errors.length, { timeout: 10_000 }).toBe(8);
    expect(errors.every((error) => error instanceof Error)).toBe(true);
    raw.socket.resume();
    await closed;
    expect(reported).toEqual([]);
  });

  it('answers a close that comes while a message compresses after that message, then ends TCP', async () => {
    const { wss, url } = await startServer({ perMessageDeflate: { threshold: 0 } });
    // Over the inline limit: compressed on the thread pool, which takes a while for 4 MiB.
    const big = randomBytes(4 * 1024 * 1024);
    const sent: Array<Error | null | undefined> = [];
    wss.on('connection', (ws) => ws.on('message', () => ws.send(big, (error) => sent.push(error))));
    const client = track(new WebSocket(url, { perMessageDeflate: { threshold: 0 } }));
    await waitFor(client, 'open');
    const got: Buffer[] = [];
    client.on('message', (data) => got.push(data as Buffer));
    const closed = waitFor<[number, Buffer]>(client, 'close', 10_000);
    // The close frame follows the message at once: the server reads it while its answer to
    // the message is still compressing, and its own close frame has to wait behind it.
    client.send('go');
    client.close(1000, 'bye');
    const [code, reason] = await closed;
    expect(got).toHaveLength(1);
    expect(got[0]!.equals(big)).toBe(true);
    expect([code, String(reason)]).toEqual([1000, 'bye']);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toBeFalsy();
  });

  it('answers a close frame that comes with FIN while a message compresses, after that message', async () => {
    const { raw, ws } = await rawDeflateClient({}, { allowHalfOpen: true });
    const big = randomBytes(4 * 1024 * 1024);
    ws.on('message', () => ws.send(big));
    const closed = waitFor<[number]>(ws, 'close', 10_000);
    // A message, the close frame and FIN at once: the answer to the message is compressing
    // on the thread pool when the close frame and the end of TCP are read.
    raw.socket.end(
      Buffer.concat([
        rawFrame({ opcode: Opcode.Text, rsv: 4, payload: compressed('go'), mask: true }),
        rawFrame({ opcode: Opcode.Close, payload: Buffer.from([0x03, 0xe8]), mask: true }),
      ]),
    );
    await raw.closed;
    const bytes = raw.received;
    // First the compressed binary message (FIN, RSV1, opcode 2, 64-bit length) ...
    expect(bytes[0]).toBe(0xc2);
    expect(bytes[1]).toBe(127);
    const length = Number(bytes.readBigUInt64BE(2));
    const message = zlib.inflateRawSync(
      Buffer.concat([bytes.subarray(10, 10 + length), Buffer.from([0, 0, 0xff, 0xff])]),
      { finishFlush: zlib.constants.Z_SYNC_FLUSH },
    );
    expect(message.equals(big)).toBe(true);
    // ... then the answer to the close frame, and nothing after it.
    expect(bytes.subarray(10 + length)).toEqual(Buffer.from([0x88, 0x02, 0x03, 0xe8]));
    expect((await closed)[0]).toBe(1000);
  });

  describe('inline and thread-pool zlib work (payloads up to 32 KiB run inline)', () => {
    /** Bytes that deflate cannot shrink, so the compressed size is about the message size. */
    function noise(length: number, seed: number): Buffer {
      const bytes = Buffer.alloc(length);
      let state = seed;
      for (let i = 0; i < length; i++) {
        state = (state * 1103515245 + 12345) >>> 0;
        bytes[i] = state >>> 24;
      }
      return bytes;
    }

    it('runInline: the same bytes as zlib, an error that destroys the stream, null once closed', () => {
      const input = Buffer.from('inline '.repeat(20_000));
      const deflate = zlib.createDeflateRaw();
      const run = runInline(deflate, input, zlib.constants.Z_SYNC_FLUSH, Number.POSITIVE_INFINITY);
      if (run === null || run instanceof Error) throw new Error('expected output');
      expect(run.complete).toBe(true);
      expect(run.unread).toBe(0);
      const inflated = zlib.inflateRawSync(Buffer.concat(run.chunks), {
        finishFlush: zlib.constants.Z_SYNC_FLUSH,
      });
      expect(inflated.equals(input)).toBe(true);
      deflate.close();
      expect(runInline(deflate, input, zlib.constants.Z_SYNC_FLUSH, 1)).toBeNull();

      const inflate = zlib.createInflateRaw();
      inflate.on('error', () => {});
      const bad = runInline(inflate, Buffer.from([0xff, 0xff]), zlib.constants.Z_SYNC_FLUSH, 1);
      expect(bad).toBeInstanceOf(Error);
      expect(inflate.destroyed).toBe(true);

      // Output past the limit stops the run with the rest still to come.
      const zeros = zlib.deflateRawSync(Buffer.alloc(1024 * 1024));
      const partial = runInline(zlib.createInflateRaw(), zeros, zlib.constants.Z_SYNC_FLUSH, 1);
      if (partial === null || partial instanceof Error) throw new Error('expected output');
      expect(partial.complete).toBe(false);
      expect(partial.length).toBeLessThan(1024 * 1024);
    });

    it('sends and receives messages on both sides of the limit intact and in order', async () => {
      const { client, server } = await connectPair({ perMessageDeflate: { threshold: 0 } });
      const sizes = [0, 1, 32_767, 32_768, 32_769, 200_000, 3, 100_000, 32_768, 7];
      const sent = sizes.flatMap((size, i) => [noise(size, i), Buffer.alloc(size, i)]);
      const echoed: Buffer[] = [];
      server.on('message', (data) => server.send(data as Buffer));
      client.on('message', (data) => echoed.push(data as Buffer));
      for (const message of sent) client.send(message);
      await expect.poll(() => echoed.length, { timeout: 10_000 }).toBe(sent.length);
      expect(echoed.map((message, i) => message.equals(sent[i]!))).not.toContain(false);
    });

    for (const size of [1_000, 100_000]) {
      it(`inflates a BFINAL message of ${size} incompressible bytes and goes on with a fresh inflater`, async () => {
        const { raw, ws } = await rawDeflateClient({ perMessageDeflate: { threshold: 0 } });
        const got: Buffer[] = [];
        ws.on('message', (data) => got.push(data as Buffer));
        const first = noise(size, 1);
        raw.socket.write(
          rawFrame({
            opcode: Opcode.Binary,
            rsv: 4,
            payload: zlib.deflateRawSync(first),
            mask: true,
          }),
        );
        raw.socket.write(
          rawFrame({ opcode: Opcode.Text, rsv: 4, payload: compressed('next'), mask: true }),
        );
        await expect.poll(() => got.length).toBe(2);
        expect(got[0]!.equals(first)).toBe(true);
        expect(String(got[1])).toBe('next');
      });
    }

    // 4 MiB of zeros deflates to about 4 KiB: an inline run stops at 256 KiB of output and the
    // rest of the frame inflates on the thread pool.
    for (const [maxPayload, outcome] of [
      [8 * 1024 * 1024, 'arrives whole'],
      [100 * 1024, 'fails with 1009 within the inline run'],
      [1024 * 1024, 'fails with 1009 on the thread pool'],
    ] as const) {
      it(`a small frame that inflates to 4 MiB ${outcome} (maxPayload ${maxPayload})`, async () => {
        const before = PerMessageDeflate.openStreams;
        const { raw, ws } = await rawDeflateClient({ maxPayload });
        const message = Buffer.alloc(4 * 1024 * 1024);
        const got: Buffer[] = [];
        ws.on('message', (data) => got.push(data as Buffer));
        raw.socket.write(
          rawFrame({ opcode: Opcode.Binary, rsv: 4, payload: compressed(message), mask: true }),
        );
        if (maxPayload > message.length) {
          await expect.poll(() => got.length).toBe(1);
          expect(got[0]!.equals(message)).toBe(true);
          ws.send('still open', { compress: false });
          await raw.readUntil((bytes) => bytes.includes('still open'));
          return;
        }
        const closed = waitFor<[number]>(ws, 'close');
        expect(await raw.closeCode()).toBe(1009);
        await closed;
        expect(got).toEqual([]);
        expect(PerMessageDeflate.openStreams).toBe(before);
      });
    }

    it('fails corrupt data with 1007 in an inline run and in a thread-pool run', async () => {
      for (const size of [100, 100_000]) {
        const { raw, ws } = await rawDeflateClient({ perMessageDeflate: { threshold: 0 } });
        const payload = compressed(noise(size, 3));
        payload[0] = 0xff; // block type 3: reserved, an error
        const closed = waitFor<[number]>(ws, 'close');
        raw.socket.write(rawFrame({ opcode: Opcode.Binary, rsv: 4, payload, mask: true }));
        expect(await raw.closeCode()).toBe(1007);
        await closed;
      }
    });
  });

  it('checks option values when the server or client is created', () => {
    expect(
      () => new WebSocketServer({ noServer: true, perMessageDeflate: { serverMaxWindowBits: 16 } }),
    ).toThrow(RangeError);
    expect(
      () => new WebSocketServer({ noServer: true, perMessageDeflate: { threshold: -1 } }),
    ).toThrow(RangeError);
    expect(
      () => new WebSocket('ws://127.0.0.1:1', { perMessageDeflate: { clientMaxWindowBits: 7 } }),
    ).toThrow(RangeError);
  });
});
