// permessage-deflate (RFC 7692) between weft and ws, both directions:
// - the negotiation matrix (context takeover, window bits 8-15 offered by the
//   client or imposed by the server, zlib options), each setting carrying
//   small, 64 KiB and (for a few) 16 MiB messages both ways;
// - offers and answers at the edge of the rules (raw request, fake server);
// - fragmented compressed messages, `compress: false`, `threshold`;
// - ordering of compressed and uncompressed messages, Blobs, close, many
//   connections at once; maxPayload on the inflated size;
// - connections where one side does not want compression;
// - hand-made compressed frames (BFINAL blocks, arbitrary cuts, bad data);
// - zlib streams freed (weft's `PerMessageDeflate.openStreams`).
//
// Frames are checked where they arrive: a tap on the receiving TCP socket
// (`tapFrames`) sees every frame the peer sent, RSV1 and compressed payload
// included. Tests named [weft-specific] assert deliberate differences from ws.

import { randomBytes } from 'node:crypto';
import { deflateRawSync, inflateRawSync, constants as zlibConstants } from 'node:zlib';
import * as weft from '@weft/core';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanup,
  collectMessages,
  connect,
  type DeflateOpts,
  DIRECTIONS,
  type Direction,
  encodeFrame,
  endpoints,
  type FrameTap,
  type Message,
  nextMessage,
  openPair,
  type Pair,
  type PairOptions,
  type Peer,
  type RawData,
  rawUpgrade,
  rawWebSocket,
  sha256,
  startFakeServer,
  startServer,
  tapFrames,
  toBuffer,
  WEFT_SERVER,
  type WireFrame,
  waitClose,
  waitEvent,
  waitOpen,
  waitUntil,
} from './helpers.js';

afterEach(cleanup);

const SIDES = ['client', 'server'] as const;
type Side = (typeof SIDES)[number];

const KiB = 1024;
const MiB = 1024 * KiB;
const BIG_TIMEOUT = 15_000;
const TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff]);
const UNICODE = 'héllo wörld — 你好, Здравствуйте, مرحبا 🌍👋🏽 \u{1F600}';

// ---------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------

const ALPHABET = Buffer.from('abcdefghijklmnop ');

/** Random text over 17 characters: compresses to about half, never to nothing. */
function letters(length: number): Buffer {
  const bytes = randomBytes(length);
  for (let i = 0; i < length; i++) bytes[i] = ALPHABET[bytes[i]! % ALPHABET.length]!;
  return bytes;
}

/**
 * Text whose 20 KiB block repeats: back-references up to 20 KiB away, which
 * only a peer inflating with the window the sender compressed with can follow.
 */
function compressibleText(length: number): string {
  const block = letters(20 * KiB).toString('latin1');
  return block.repeat(Math.ceil(length / block.length)).slice(0, length);
}

/** Binary that is half random, half zeros (in 4 KiB stretches). */
function halfRandom(length: number): Buffer {
  const bytes = randomBytes(length);
  for (let i = 0; i < length; i += 8 * KiB) bytes.fill(0, i, Math.min(length, i + 4 * KiB));
  return bytes;
}

type Payload = string | Buffer;

interface Summary {
  isBinary: boolean;
  length: number;
  sha256: string;
}

function summarizeSent(data: Payload): Summary {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return { isBinary: typeof data !== 'string', length: bytes.length, sha256: sha256(bytes) };
}

function summarizeReceived(message: Message): Summary {
  const bytes = toBuffer(message.data);
  return { isBinary: message.isBinary, length: bytes.length, sha256: sha256(bytes) };
}

function expectReceived(received: Message[], sent: Payload[]): void {
  expect(received.map(summarizeReceived)).toEqual(sent.map(summarizeSent));
}

// The 16 MiB payloads are made once for the whole file.
let bigText: string | undefined;
let bigBinary: Buffer | undefined;
function bigPayloads(): { text: string; binary: Buffer } {
  bigText ??= letters(16 * MiB).toString('latin1');
  bigBinary ??= halfRandom(16 * MiB);
  return { text: bigText, binary: bigBinary };
}

// ---------------------------------------------------------------------------
// Negotiation
// ---------------------------------------------------------------------------

interface Negotiated {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  serverMaxWindowBits: number;
  clientMaxWindowBits: number;
}

const DEFAULT_PARAMS: Negotiated = {
  serverNoContextTakeover: false,
  clientNoContextTakeover: false,
  serverMaxWindowBits: 15,
  clientMaxWindowBits: 15,
};

/**
 * The parameters a server's Sec-WebSocket-Extensions answer sets (RFC 7692
 * §7.1), window bits defaulting to 15. Throws on anything unexpected.
 */
function parseDeflateAnswer(header: string): Negotiated {
  const [name, ...params] = header.split(';').map((part) => part.trim());
  if (name !== 'permessage-deflate') throw new Error(`not a permessage-deflate answer: ${header}`);
  const result = { ...DEFAULT_PARAMS };
  const seen = new Set<string>();
  for (const param of params) {
    const [key = '', rawValue] = param.split('=').map((part) => part.trim());
    if (seen.has(key)) throw new Error(`duplicate parameter ${key} in ${header}`);
    seen.add(key);
    const value = rawValue?.replace(/^"(.*)"$/, '$1');
    switch (key) {
      case 'server_no_context_takeover':
      case 'client_no_context_takeover':
        if (value !== undefined) throw new Error(`${key} with a value in ${header}`);
        result[
          key === 'server_no_context_takeover'
            ? 'serverNoContextTakeover'
            : 'clientNoContextTakeover'
        ] = true;
        break;
      case 'server_max_window_bits':
      case 'client_max_window_bits': {
        const bits = Number(value);
        if (!Number.isInteger(bits) || bits < 8 || bits > 15) {
          throw new Error(`bad ${key} in ${header}`);
        }
        result[key === 'server_max_window_bits' ? 'serverMaxWindowBits' : 'clientMaxWindowBits'] =
          bits;
        break;
      }
      default:
        throw new Error(`unknown parameter ${key} in ${header}`);
    }
  }
  return result;
}

/** The server's Sec-WebSocket-Extensions answer, as the client received it. */
function answerOf(pair: Pair): string | undefined {
  expect(pair.upgradeResponse).toBeDefined();
  const header = pair.upgradeResponse!.headers['sec-websocket-extensions'];
  return Array.isArray(header) ? header.join(', ') : header;
}

function weftPeer(pair: Pair, dir: Direction): Peer {
  return dir.client === 'weft' ? pair.client : pair.serverSide;
}

function wsPeer(pair: Pair, dir: Direction): Peer {
  return dir.client === 'ws' ? pair.client : pair.serverSide;
}

/** Both ends agree that permessage-deflate runs with `expected`. */
function expectNegotiated(pair: Pair, dir: Direction, expected: Negotiated): void {
  const answer = answerOf(pair);
  expect(answer).toBeDefined();
  expect(parseDeflateAnswer(answer!)).toEqual(expected);
  expect(wsPeer(pair, dir).extensions).toBe('permessage-deflate');
  expect(weftPeer(pair, dir).extensions.startsWith('permessage-deflate')).toBe(true);
}

function expectUncompressed(pair: Pair): void {
  expect(answerOf(pair)).toBeUndefined();
  expect(pair.client.extensions).toBe('');
  expect(pair.serverSide.extensions).toBe('');
}

function deflatePair(server: DeflateOpts, client: DeflateOpts): PairOptions {
  return { server: { perMessageDeflate: server }, client: { perMessageDeflate: client } };
}

/** Taps on both sockets of a pair: `received(side)` is what that side got on the wire. */
function tapPair(pair: Pair): { received(side: Side): FrameTap } {
  expect(pair.clientSocket).toBeDefined();
  const atClient = tapFrames(pair.clientSocket!);
  const atServer = tapFrames(pair.req.socket);
  return { received: (side) => (side === 'client' ? atClient : atServer) };
}

function other(side: Side): Side {
  return side === 'client' ? 'server' : 'client';
}

/** Whether `sender` compresses each message with a fresh context. */
function resetsContext(params: Negotiated, sender: Side): boolean {
  return sender === 'server' ? params.serverNoContextTakeover : params.clientNoContextTakeover;
}

function rsv1s(frames: WireFrame[]): boolean[] {
  return frames.map((frame) => frame.rsv1);
}

// ---------------------------------------------------------------------------
// 1. The negotiation matrix
// ---------------------------------------------------------------------------

interface MatrixCase {
  name: string;
  /** Server options besides `threshold: 0`. */
  server: DeflateOpts;
  /** Client options besides `threshold: 0`. */
  client: DeflateOpts;
  expected: Negotiated;
}

const MATRIX: MatrixCase[] = [];

for (const serverNoContextTakeover of [false, true]) {
  for (const clientNoContextTakeover of [false, true]) {
    const expected = { ...DEFAULT_PARAMS, serverNoContextTakeover, clientNoContextTakeover };
    const label = `server_no_context_takeover=${serverNoContextTakeover}, client_no_context_takeover=${clientNoContextTakeover}`;
    const options: DeflateOpts = {};
    if (serverNoContextTakeover) options.serverNoContextTakeover = true;
    if (clientNoContextTakeover) options.clientNoContextTakeover = true;
    if (!serverNoContextTakeover && !clientNoContextTakeover) {
      MATRIX.push({ name: label, server: {}, client: {}, expected });
    } else {
      MATRIX.push({ name: `${label} (client asks)`, server: {}, client: options, expected });
      MATRIX.push({ name: `${label} (server imposes)`, server: options, client: {}, expected });
    }
  }
}

for (const param of ['serverMaxWindowBits', 'clientMaxWindowBits'] as const) {
  const wire =
    param === 'serverMaxWindowBits' ? 'server_max_window_bits' : 'client_max_window_bits';
  for (let bits = 8; bits <= 15; bits++) {
    const expected = { ...DEFAULT_PARAMS, [param]: bits };
    MATRIX.push({
      name: `${wire}=${bits} (client offers)`,
      server: {},
      client: { [param]: bits },
      expected,
    });
    MATRIX.push({
      name: `${wire}=${bits} (server imposes)`,
      server: { [param]: bits },
      client: {},
      expected,
    });
  }
  // The client offers a limit and the server imposes a stricter one.
  MATRIX.push({
    name: `${wire}: client offers 12, server imposes 10`,
    server: { [param]: 10 },
    client: { [param]: 12 },
    expected: { ...DEFAULT_PARAMS, [param]: 10 },
  });
}

MATRIX.push({
  name: 'zlib options: level 9 / memLevel 9 and 1 KiB inflate chunks on the server, level 1 / memLevel 1 and 64-byte inflate chunks on the client',
  server: {
    zlibDeflateOptions: { level: 9, memLevel: 9 },
    zlibInflateOptions: { chunkSize: 1024 },
  },
  client: { zlibDeflateOptions: { level: 1, memLevel: 1 }, zlibInflateOptions: { chunkSize: 64 } },
  expected: DEFAULT_PARAMS,
});

MATRIX.push({
  name: 'everything at once: no takeover both ways, server bits 9, client bits 11',
  server: { serverNoContextTakeover: true, clientMaxWindowBits: 11 },
  client: { clientNoContextTakeover: true, serverMaxWindowBits: 9 },
  expected: {
    serverNoContextTakeover: true,
    clientNoContextTakeover: true,
    serverMaxWindowBits: 9,
    clientMaxWindowBits: 11,
  },
});

/** What each side sends in a matrix test, in order. */
function matrixSequence(side: Side): { messages: Payload[]; repeated: number; text64: number } {
  const repeated = `the ${side} says this more than once, word for word`;
  const text64 = compressibleText(64 * KiB);
  const messages: Payload[] = [
    'hi',
    Buffer.from([0, 1, 2, 255]),
    '',
    Buffer.alloc(0),
    text64,
    randomBytes(64 * KiB),
    UNICODE,
    repeated,
    repeated,
    repeated,
    text64,
    halfRandom(64 * KiB),
  ];
  return { messages, repeated: 7, text64: 4 };
}

describe.each(DIRECTIONS)('permessage-deflate negotiation matrix: $name', (dir) => {
  describe.each(MATRIX)('$name', (c) => {
    const options = (): PairOptions =>
      deflatePair({ threshold: 0, ...c.server }, { threshold: 0, ...c.client });

    it('both ends agree; messages of every kind arrive intact both ways, each compressed', async () => {
      const pair = await openPair(dir, options());
      expectNegotiated(pair, dir, c.expected);
      const taps = tapPair(pair);

      const sequences = { client: matrixSequence('client'), server: matrixSequence('server') };
      const received = {
        client: collectMessages(pair.client, sequences.server.messages.length),
        server: collectMessages(pair.serverSide, sequences.client.messages.length),
      };
      for (const sender of SIDES) {
        const [from] = endpoints(pair, sender);
        for (const message of sequences[sender].messages) from.send(message);
      }
      const [atClient, atServer] = await Promise.all([received.client, received.server]);
      expectReceived(atClient, sequences.server.messages);
      expectReceived(atServer, sequences.client.messages);

      for (const sender of SIDES) {
        const { messages, repeated, text64 } = sequences[sender];
        const frames = taps.received(other(sender)).dataFrames();
        // One frame per message, every one compressed (threshold 0).
        expect(frames.map((frame) => frame.fin)).toEqual(messages.map(() => true));
        expect(rsv1s(frames)).toEqual(messages.map(() => true));
        expect(frames[text64]!.payload.length).toBeLessThan(0.75 * 64 * KiB);
        // Without context takeover the same message compresses to the same
        // bytes every time; with it, the repeat refers back to the first one.
        const first = frames[repeated]!.payload;
        const second = frames[repeated + 1]!.payload;
        if (resetsContext(c.expected, sender)) expect(second.equals(first)).toBe(true);
        else expect(second.length).toBeLessThan(first.length);
      }
    });

    it("[weft-specific] weft's extensions is the server's answer, with the negotiated parameters", async () => {
      const pair = await openPair(dir, options());
      const weftSide = weftPeer(pair, dir);
      expect(weftSide.extensions).toBe(answerOf(pair));
      expect(parseDeflateAnswer(weftSide.extensions)).toEqual(c.expected);
    });
  });
});

describe('permessage-deflate negotiation: weft server, limits the ws server refuses', () => {
  const dir = WEFT_SERVER;
  it.each([
    {
      name: 'client offers server_max_window_bits=10, server allows 12',
      server: { serverMaxWindowBits: 12 },
      client: { serverMaxWindowBits: 10 },
      expected: { ...DEFAULT_PARAMS, serverMaxWindowBits: 10 },
    },
    {
      name: 'client offers client_max_window_bits=9, server allows 12',
      server: { clientMaxWindowBits: 12 },
      client: { clientMaxWindowBits: 9 },
      expected: { ...DEFAULT_PARAMS, clientMaxWindowBits: 9 },
    },
  ])('[weft-specific] $name: weft answers with the smaller limit (ws answers 400)', async (c) => {
    const pair = await openPair(
      dir,
      deflatePair({ threshold: 0, ...c.server }, { threshold: 0, ...c.client }),
    );
    expectNegotiated(pair, dir, c.expected);
    expect(parseDeflateAnswer(pair.serverSide.extensions)).toEqual(c.expected);
    const text = compressibleText(64 * KiB);
    const received = Promise.all([nextMessage(pair.client), nextMessage(pair.serverSide)]);
    pair.client.send(text);
    pair.serverSide.send(text);
    const [atClient, atServer] = await received;
    expectReceived([atClient, atServer], [text, text]);
  });

  it('[weft-specific] weft declines an offer it cannot honour and runs uncompressed (ws answers 400)', async () => {
    const pair = await openPair(
      dir,
      deflatePair({ serverNoContextTakeover: false }, { serverNoContextTakeover: true }),
    );
    expect(pair.req.headers['sec-websocket-extensions']).toContain('server_no_context_takeover');
    expectUncompressed(pair);
    const text = compressibleText(8 * KiB);
    const received = nextMessage(pair.client);
    pair.serverSide.send(text);
    expectReceived([await received], [text]);
  });
});

// Offers and answers at the edge of the rules: the server side judged with a
// hand-made request, the client side with a fake server's hand-made answer.
describe.each(['weft', 'ws'] as const)('permessage-deflate offers to a %s server', (engine) => {
  it.each([
    {
      offer: 'permessage-deflate; client_max_window_bits="10"; server_max_window_bits="9"',
      answer: { ...DEFAULT_PARAMS, clientMaxWindowBits: 10, serverMaxWindowBits: 9 },
    },
    {
      offer: 'x-unknown-extension; a=1, permessage-deflate; server_no_context_takeover',
      answer: { ...DEFAULT_PARAMS, serverNoContextTakeover: true },
    },
    {
      offer: 'permessage-deflate; server_max_window_bits=8, permessage-deflate',
      answer: { ...DEFAULT_PARAMS, serverMaxWindowBits: 8 },
    },
    { offer: 'x-unknown-extension', answer: undefined },
  ])('$offer: 101 with the right answer', async ({ offer, answer }) => {
    const { port } = await startServer(engine, { perMessageDeflate: true });
    const response = await rawUpgrade(port, '/', { 'Sec-WebSocket-Extensions': offer });
    expect(response.statusCode).toBe(101);
    const header = response.headers['sec-websocket-extensions'];
    if (answer === undefined) expect(header).toBeUndefined();
    else expect(parseDeflateAnswer(String(header))).toEqual(answer);
  });

  it.each([
    'permessage-deflate; server_max_window_bits=7',
    'permessage-deflate; server_max_window_bits=16',
    'permessage-deflate; server_max_window_bits',
    'permessage-deflate; client_max_window_bits=0',
    'permessage-deflate; server_no_context_takeover=1',
    'permessage-deflate; server_no_context_takeover; server_no_context_takeover',
    'permessage-deflate; unknown_parameter',
    'permessage-deflate;;',
  ])('%s: 400', async (offer) => {
    const { port } = await startServer(engine, { perMessageDeflate: true });
    const response = await rawUpgrade(port, '/', { 'Sec-WebSocket-Extensions': offer });
    expect(response.statusCode).toBe(400);
  });
});

describe.each(['weft', 'ws'] as const)('permessage-deflate answers to a %s client', (engine) => {
  const expectFailure = async (answer: string, options: DeflateOpts | false): Promise<void> => {
    const fake = await startFakeServer(() => [`Sec-WebSocket-Extensions: ${answer}`]);
    const client = connect(engine, fake.url, undefined, { perMessageDeflate: options });
    await expect(waitOpen(client)).rejects.toThrow(/before 'open'/);
    expect(client.extensions).toBe('');
  };

  it.each([
    { answer: 'permessage-deflate', client: false as const },
    {
      answer: 'permessage-deflate; client_max_window_bits=12',
      client: { clientMaxWindowBits: 10 },
    },
    { answer: 'permessage-deflate; client_max_window_bits', client: {} },
    { answer: 'permessage-deflate; server_max_window_bits=16', client: {} },
    { answer: 'permessage-deflate; unknown_parameter', client: {} },
    { answer: 'x-webkit-deflate-frame', client: {} },
  ])('$answer (client options $client): the client fails the connection', async (c) => {
    await expectFailure(c.answer, c.client);
  });

  // ws accepts these answers (RFC 7692 §7.1.2.1 and §5 say to fail).
  if (engine === 'weft') {
    it.each([
      {
        answer: 'permessage-deflate; server_max_window_bits=12',
        client: { serverMaxWindowBits: 10 },
      },
      { answer: 'permessage-deflate, permessage-deflate', client: {} },
    ])(
      '[weft-specific] $answer (client options $client): the client fails the connection (ws accepts it)',
      async (c) => {
        await expectFailure(c.answer, c.client);
      },
    );
  }

  it('an answer within the offer is accepted', async () => {
    const fake = await startFakeServer(() => [
      'Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9; client_max_window_bits=8; client_no_context_takeover',
    ]);
    const client = connect(engine, fake.url, undefined, {
      perMessageDeflate: { serverMaxWindowBits: 10, clientMaxWindowBits: 12 },
    });
    await waitOpen(client);
    expect(fake.requests[0]!.headers['sec-websocket-extensions']).toBe(
      'permessage-deflate; server_max_window_bits=10; client_max_window_bits=12',
    );
    expect(client.extensions.startsWith('permessage-deflate')).toBe(true);
  });
});

// ---------------------------------------------------------------------------
// 1b. 16 MiB messages, for a few settings
// ---------------------------------------------------------------------------

const BIG_CASES: MatrixCase[] = [
  {
    name: 'window bits 8 both ways (client offers)',
    server: {},
    client: { serverMaxWindowBits: 8, clientMaxWindowBits: 8 },
    expected: { ...DEFAULT_PARAMS, serverMaxWindowBits: 8, clientMaxWindowBits: 8 },
  },
  {
    name: 'window bits 15 both ways (server imposes), context takeover both ways',
    server: { serverMaxWindowBits: 15, clientMaxWindowBits: 15 },
    client: {},
    expected: DEFAULT_PARAMS,
  },
  {
    name: 'server_no_context_takeover (server imposes)',
    server: { serverNoContextTakeover: true },
    client: {},
    expected: { ...DEFAULT_PARAMS, serverNoContextTakeover: true },
  },
  {
    name: 'client_no_context_takeover (client asks)',
    server: {},
    client: { clientNoContextTakeover: true },
    expected: { ...DEFAULT_PARAMS, clientNoContextTakeover: true },
  },
  {
    name: 'no context takeover either way (server imposes)',
    server: { serverNoContextTakeover: true, clientNoContextTakeover: true },
    client: {},
    expected: { ...DEFAULT_PARAMS, serverNoContextTakeover: true, clientNoContextTakeover: true },
  },
];

describe.each(DIRECTIONS)('permessage-deflate, 16 MiB messages: $name', (dir) => {
  it.each(BIG_CASES)(
    '$name: 16 MiB text from the client and 16 MiB binary from the server, at once, then small ones',
    async (c) => {
      const { text, binary } = bigPayloads();
      const pair = await openPair(dir, deflatePair({ threshold: 0, ...c.server }, c.client));
      expectNegotiated(pair, dir, c.expected);
      const fromClient: Payload[] = ['before', text, 'after ✓'];
      const fromServer: Payload[] = [Buffer.from('before'), binary, 'after ✓'];
      const received = Promise.all([
        collectMessages(pair.serverSide, fromClient.length, BIG_TIMEOUT),
        collectMessages(pair.client, fromServer.length, BIG_TIMEOUT),
      ]);
      for (const message of fromClient) pair.client.send(message);
      for (const message of fromServer) pair.serverSide.send(message);
      const [atServer, atClient] = await received;
      expectReceived(atServer, fromClient);
      expectReceived(atClient, fromServer);
    },
  );
});

// ---------------------------------------------------------------------------
// 2. Fragmented compressed messages
// ---------------------------------------------------------------------------

interface Fragment {
  data: Payload;
  fin: boolean;
  compress: boolean;
}

describe.each(DIRECTIONS)('permessage-deflate, fragmented messages: $name', (dir) => {
  describe.each([
    { name: 'context takeover', server: {} as DeflateOpts },
    {
      name: 'no context takeover',
      server: { serverNoContextTakeover: true, clientNoContextTakeover: true } as DeflateOpts,
    },
  ])('$name', ({ server }) => {
    it.each(SIDES)(
      '%s sends fragmented compressed messages (a ping between fragments): they arrive whole',
      async (sender) => {
        const pair = await openPair(dir, deflatePair(server, {}));
        const [from, to] = endpoints(pair, sender);
        const taps = tapPair(pair);

        const text64 = compressibleText(64 * KiB);
        const binA = randomBytes(40 * KiB);
        const binB = halfRandom(40 * KiB);
        const later = compressibleText(10 * KiB);
        const single = compressibleText(2 * KiB);
        // Compression is decided by a message's first fragment, in both engines.
        const messages: Fragment[][] = [
          [
            { data: text64, fin: false, compress: true },
            { data: 'middle ', fin: false, compress: true },
            { data: '', fin: false, compress: true },
            { data: 'end ✓', fin: true, compress: true },
          ],
          [
            { data: binA, fin: false, compress: true },
            { data: binB, fin: false, compress: true },
            { data: Buffer.from([1, 2, 3]), fin: true, compress: true },
          ],
          [
            { data: 'abc', fin: false, compress: false },
            { data: later, fin: true, compress: true },
          ],
          [{ data: single, fin: true, compress: true }],
        ];
        const expected: Payload[] = [
          `${text64}middle end ✓`,
          Buffer.concat([binA, binB, Buffer.from([1, 2, 3])]),
          `abc${later}`,
          single,
        ];

        const received = collectMessages(to, expected.length);
        const pinged = waitEvent<[Buffer]>(to, 'ping');
        messages.forEach((fragments, m) => {
          fragments.forEach((fragment, f) => {
            from.send(fragment.data, { fin: fragment.fin, compress: fragment.compress });
            if (m === 0 && f === 1) from.ping('between fragments');
          });
        });
        const [[pingData], messagesIn] = await Promise.all([pinged, received]);
        expect(pingData.toString()).toBe('between fragments');
        expectReceived(messagesIn, expected);

        const frames = taps.received(other(sender)).frames.filter((frame) => frame.opcode !== 0xa);
        expect(frames.map((frame) => frame.opcode)).toEqual([1, 0, 9, 0, 0, 2, 0, 0, 1, 0, 1]);
        expect(frames.map((frame) => frame.fin)).toEqual([
          false,
          false,
          true,
          false,
          true,
          false,
          false,
          true,
          false,
          true,
          true,
        ]);
        // RSV1 on the first frame of a compressed message only.
        expect(rsv1s(frames)).toEqual([
          true,
          false,
          false,
          false,
          false,
          true,
          false,
          false,
          false,
          false,
          true,
        ]);
      },
    );
  });
});

// ---------------------------------------------------------------------------
// 3. compress: false and threshold, on the wire
// ---------------------------------------------------------------------------

describe.each(DIRECTIONS)('permessage-deflate, compress: false: $name', (dir) => {
  it.each(SIDES)(
    '%s sends messages with compress: false between compressed ones: all arrive, RSV1 only on the compressed',
    async (sender) => {
      const pair = await openPair(dir, deflatePair({}, {}));
      expectNegotiated(pair, dir, DEFAULT_PARAMS);
      const [from, to] = endpoints(pair, sender);
      const taps = tapPair(pair);
      const text = compressibleText(64 * KiB);
      const binary = halfRandom(32 * KiB);
      const sends: Array<{ data: Payload; compress: boolean }> = [
        { data: text, compress: false },
        { data: text, compress: true },
        { data: binary, compress: false },
        { data: binary, compress: true },
        { data: text.slice(0, 2000), compress: false },
        { data: text.slice(0, 2000), compress: true },
      ];
      const received = collectMessages(to, sends.length);
      for (const { data, compress } of sends) from.send(data, { compress });
      expectReceived(
        await received,
        sends.map((s) => s.data),
      );
      const frames = taps.received(other(sender)).dataFrames();
      expect(rsv1s(frames)).toEqual(sends.map((s) => s.compress));
      // The uncompressed frames carry the message as is.
      expect(frames[0]!.payload.toString('latin1')).toBe(text);
      expect(frames[2]!.payload.equals(binary)).toBe(true);
    },
  );
});

describe.each(DIRECTIONS)('permessage-deflate, threshold: $name', (dir) => {
  // ws applies `threshold` only when its own side has no context takeover, so
  // these setups disable it on both sides; weft applies it always (below).
  const noTakeover = { serverNoContextTakeover: true, clientNoContextTakeover: true };

  it.each(SIDES)(
    '%s, default threshold 1024: smaller messages go uncompressed, others compressed',
    async (sender) => {
      const pair = await openPair(dir, deflatePair(noTakeover, {}));
      expectNegotiated(pair, dir, { ...DEFAULT_PARAMS, ...noTakeover });
      const [from, to] = endpoints(pair, sender);
      const taps = tapPair(pair);
      const sends: Payload[] = [
        'x'.repeat(10),
        'y'.repeat(1023),
        'z'.repeat(1024),
        Buffer.alloc(1023, 7),
        Buffer.alloc(1024, 7),
        compressibleText(3000),
      ];
      const received = collectMessages(to, sends.length);
      for (const data of sends) from.send(data);
      expectReceived(await received, sends);
      expect(rsv1s(taps.received(other(sender)).dataFrames())).toEqual([
        false,
        false,
        true,
        false,
        true,
        true,
      ]);
    },
  );

  it('each side applies its own threshold (server 16, client 4096)', async () => {
    const pair = await openPair(
      dir,
      deflatePair({ ...noTakeover, threshold: 16 }, { ...noTakeover, threshold: 4096 }),
    );
    const taps = tapPair(pair);
    const fromServer: Payload[] = ['s'.repeat(15), 's'.repeat(16), 's'.repeat(4095)];
    const fromClient: Payload[] = ['c'.repeat(16), 'c'.repeat(4095), 'c'.repeat(4096)];
    const received = Promise.all([
      collectMessages(pair.client, fromServer.length),
      collectMessages(pair.serverSide, fromClient.length),
    ]);
    for (const data of fromServer) pair.serverSide.send(data);
    for (const data of fromClient) pair.client.send(data);
    const [atClient, atServer] = await received;
    expectReceived(atClient, fromServer);
    expectReceived(atServer, fromClient);
    expect(rsv1s(taps.received('client').dataFrames())).toEqual([false, true, true]);
    expect(rsv1s(taps.received('server').dataFrames())).toEqual([false, false, true]);
  });

  it(`[weft-specific] weft applies the threshold with context takeover too (ws compresses every message then)`, async () => {
    const pair = await openPair(dir, deflatePair({}, {}));
    expectNegotiated(pair, dir, DEFAULT_PARAMS);
    const weftSide = weftPeer(pair, dir);
    const weftIs: Side = dir.client === 'weft' ? 'client' : 'server';
    const taps = tapPair(pair);
    const sends: Payload[] = ['x'.repeat(10), 'y'.repeat(1023), 'z'.repeat(1024)];
    const received = collectMessages(wsPeer(pair, dir), sends.length);
    for (const data of sends) weftSide.send(data);
    expectReceived(await received, sends);
    expect(rsv1s(taps.received(other(weftIs)).dataFrames())).toEqual([false, false, true]);
  });
});

describe.each(['weft', 'ws'] as const)(
  'permessage-deflate seen by a raw client: %s server',
  (engine) => {
    const offer = async (extensions: string) => {
      const { server, port } = await startServer(engine, { perMessageDeflate: true });
      const connection = waitEvent<[Peer]>(server, 'connection');
      const raw = await rawWebSocket(port, '/', { 'Sec-WebSocket-Extensions': extensions });
      const [serverSide] = await connection;
      return { raw, serverSide };
    };

    it('below the threshold RSV1 is clear; above it RSV1 is set and the payload inflates to the message', async () => {
      const { raw, serverSide } = await offer(
        'permessage-deflate; server_no_context_takeover; client_max_window_bits',
      );
      const answer = raw.response.headers['sec-websocket-extensions'];
      expect(parseDeflateAnswer(String(answer))).toEqual({
        ...DEFAULT_PARAMS,
        serverNoContextTakeover: true,
      });
      const big = compressibleText(2 * KiB);
      serverSide.send('tiny message');
      serverSide.send(big);
      serverSide.send(big, { compress: false });
      await waitUntil(() => raw.tap.dataFrames().length >= 3, 'three frames arrived');
      const [tiny, compressed, plain] = raw.tap.dataFrames();
      expect(tiny).toMatchObject({ fin: true, rsv1: false, opcode: 1, masked: false });
      expect(tiny!.payload.toString()).toBe('tiny message');
      expect(compressed).toMatchObject({ fin: true, rsv1: true, opcode: 1, masked: false });
      expect(compressed!.payload.length).toBeLessThan(big.length);
      // The message ends in a sync flush, not a final block (RFC 7692 §7.2.2).
      const inflated = inflateRawSync(Buffer.concat([compressed!.payload, TRAILER]), {
        finishFlush: zlibConstants.Z_SYNC_FLUSH,
      });
      expect(inflated.toString('latin1')).toBe(big);
      expect(plain).toMatchObject({ fin: true, rsv1: false, opcode: 1 });
      expect(plain!.payload.toString('latin1')).toBe(big);
    });

    if (engine === 'weft') {
      it('[weft-specific] with context takeover, a message below the threshold still goes uncompressed', async () => {
        const { raw, serverSide } = await offer('permessage-deflate; client_max_window_bits');
        expect(
          parseDeflateAnswer(String(raw.response.headers['sec-websocket-extensions'])),
        ).toEqual(DEFAULT_PARAMS);
        serverSide.send('tiny message');
        serverSide.send('t'.repeat(1024));
        await waitUntil(() => raw.tap.dataFrames().length >= 2, 'two frames arrived');
        expect(rsv1s(raw.tap.dataFrames())).toEqual([false, true]);
        expect(raw.tap.dataFrames()[0]!.payload.toString()).toBe('tiny message');
      });
    }
  },
);

// ---------------------------------------------------------------------------
// 4. Ordering of compressed and uncompressed messages
// ---------------------------------------------------------------------------

describe.each(DIRECTIONS)('permessage-deflate, ordering: $name', (dir) => {
  it('200 messages alternating 50 KiB JSON and tiny, back to back from both sides, arrive in order', async () => {
    const pair = await openPair(dir, deflatePair({}, {}));
    expectNegotiated(pair, dir, DEFAULT_PARAMS);
    const build = (side: Side): Array<{ data: string; compress: boolean }> => {
      const sends: Array<{ data: string; compress: boolean }> = [];
      for (let i = 0; i < 200; i++) {
        if (i % 2 === 0) {
          // About 50 KiB of JSON, different in every message.
          const items = Array.from({ length: 1100 }, (_, k) => ({ side, i, k, word: 'ordered' }));
          sends.push({ data: JSON.stringify(items), compress: true });
        } else {
          // Every other tiny one bypasses compression explicitly.
          sends.push({ data: `${side} #${i}`, compress: i % 4 !== 1 });
        }
      }
      return sends;
    };
    const fromClient = build('client');
    const fromServer = build('server');
    expect(fromClient[0]!.data.length).toBeGreaterThan(50 * KiB);
    const received = Promise.all([
      collectMessages(pair.serverSide, fromClient.length, BIG_TIMEOUT),
      collectMessages(pair.client, fromServer.length, BIG_TIMEOUT),
    ]);
    for (let i = 0; i < 200; i++) {
      pair.client.send(fromClient[i]!.data, { compress: fromClient[i]!.compress });
      pair.serverSide.send(fromServer[i]!.data, { compress: fromServer[i]!.compress });
    }
    const [atServer, atClient] = await received;
    expect(atServer.map((m) => toBuffer(m.data).toString())).toEqual(fromClient.map((s) => s.data));
    expect(atClient.map((m) => toBuffer(m.data).toString())).toEqual(fromServer.map((s) => s.data));
  });
});

describe.each(DIRECTIONS)('permessage-deflate, more ordering: $name', (dir) => {
  it.each(SIDES)(
    '%s closes right after sending compressed messages: they arrive before the close',
    async (sender) => {
      const pair = await openPair(dir, deflatePair({}, {}));
      const [from, to] = endpoints(pair, sender);
      const log: string[] = [];
      to.on('message', (data: RawData) => log.push(`message ${sha256(toBuffer(data))}`));
      const closed = Promise.all([waitClose(to), waitClose(from)]);
      const big = compressibleText(2 * MiB);
      from.send(big);
      from.send('last words', { compress: true });
      from.close(1000, 'bye');
      const [atReceiver] = await closed;
      log.push(`close ${atReceiver.code} ${atReceiver.reason}`);
      expect(log).toEqual([
        `message ${sha256(Buffer.from(big, 'latin1'))}`,
        `message ${sha256(Buffer.from('last words'))}`,
        'close 1000 bye',
      ]);
    },
  );

  it.each(SIDES)('%s sends Blobs between other messages: compressed, in order', async (sender) => {
    const pair = await openPair(dir, deflatePair({ threshold: 0 }, { threshold: 0 }));
    const [from, to] = endpoints(pair, sender);
    const taps = tapPair(pair);
    const text = compressibleText(64 * KiB);
    const binary = halfRandom(16 * KiB);
    // A Blob is sent as binary by both engines; its bytes are read asynchronously.
    const sends: Array<{ data: Payload | Blob; expected: Payload }> = [
      { data: new Blob([text]), expected: Buffer.from(text, 'latin1') },
      { data: 'tiny', expected: 'tiny' },
      { data: new Blob([binary]), expected: binary },
      { data: text, expected: text },
      { data: new Blob([]), expected: Buffer.alloc(0) },
      { data: 'end', expected: 'end' },
    ];
    const received = collectMessages(to, sends.length);
    for (const { data } of sends) from.send(data as Payload);
    expectReceived(
      await received,
      sends.map((s) => s.expected),
    );
    expect(rsv1s(taps.received(other(sender)).dataFrames())).toEqual(sends.map(() => true));
  });

  it('8 connections at once, compressing both ways: each side gets its own messages, in order', async () => {
    const pairs = await Promise.all(
      Array.from({ length: 8 }, () => openPair(dir, deflatePair({ threshold: 0 }, {}))),
    );
    const make = (side: Side, p: number): Payload[] =>
      Array.from({ length: 10 }, (_, i) =>
        i % 3 === 2 ? `${side} ${p}/${i}` : `${side} ${p}/${i} ${compressibleText(32 * KiB)}`,
      );
    const expected = pairs.map((_, p) => ({
      client: make('client', p),
      server: make('server', p),
    }));
    const received = Promise.all(
      pairs.map((pair, p) =>
        Promise.all([
          collectMessages(pair.serverSide, expected[p]!.client.length, BIG_TIMEOUT),
          collectMessages(pair.client, expected[p]!.server.length, BIG_TIMEOUT),
        ]),
      ),
    );
    pairs.forEach((pair, p) => {
      for (const data of expected[p]!.client) pair.client.send(data);
      for (const data of expected[p]!.server) pair.serverSide.send(data);
    });
    const results = await received;
    results.forEach(([atServer, atClient], p) => {
      expectReceived(atServer, expected[p]!.client);
      expectReceived(atClient, expected[p]!.server);
    });
  });
});

describe.each(DIRECTIONS)(
  'permessage-deflate and maxPayload (64 KiB) on the weft side: $name',
  (dir) => {
    const maxPayload = 64 * KiB;
    const weftIsClient = dir.client === 'weft';
    const open = () =>
      openPair(dir, {
        server: { perMessageDeflate: { threshold: 0 }, ...(weftIsClient ? {} : { maxPayload }) },
        client: { perMessageDeflate: { threshold: 0 }, ...(weftIsClient ? { maxPayload } : {}) },
      });

    it('a compressed message of exactly maxPayload bytes arrives', async () => {
      const pair = await open();
      const text = compressibleText(maxPayload);
      const received = nextMessage(weftPeer(pair, dir));
      wsPeer(pair, dir).send(text);
      expectReceived([await received], [text]);
    });

    it.each([
      { name: 'one compressed message of maxPayload + 1 bytes', fragments: [maxPayload + 1] },
      {
        name: 'a fragmented compressed message of 3 x 30 KiB',
        fragments: [30 * KiB, 30 * KiB, 30 * KiB],
      },
    ])('$name fails the connection with 1009', async ({ fragments }) => {
      const pair = await open();
      const weftSide = weftPeer(pair, dir);
      const wsSide = wsPeer(pair, dir);
      weftSide.on('error', () => {});
      const closed = Promise.all([waitClose(wsSide), waitClose(weftSide)]);
      fragments.forEach((size, i) => {
        wsSide.send(compressibleText(size), { fin: i === fragments.length - 1, compress: true });
      });
      const [atWs] = await closed;
      expect(atWs.code).toBe(1009);
    });

    it('[weft-specific] an incompressible message of exactly maxPayload bytes arrives though its compressed form is larger (ws fails it with 1009)', async () => {
      const pair = await open();
      const taps = tapPair(pair);
      const random = randomBytes(maxPayload);
      const received = nextMessage(weftPeer(pair, dir));
      wsPeer(pair, dir).send(random);
      expectReceived([await received], [random]);
      const [frame] = taps.received(weftIsClient ? 'client' : 'server').dataFrames();
      expect(frame!.rsv1).toBe(true);
      expect(frame!.payload.length).toBeGreaterThan(maxPayload);
    });
  },
);

// ---------------------------------------------------------------------------
// 5. Compression not wanted by one side
// ---------------------------------------------------------------------------

describe.each(DIRECTIONS)('permessage-deflate not negotiated: $name', (dir) => {
  it.each([
    {
      name: 'the client does not offer it (server has it on)',
      options: {
        server: { perMessageDeflate: { threshold: 0 } },
        client: { perMessageDeflate: false },
      } as PairOptions,
      clientOffers: false,
    },
    {
      name: 'the server does not accept it (client offers it)',
      options: { client: { perMessageDeflate: { threshold: 0 } } } as PairOptions,
      clientOffers: true,
    },
  ])(
    '$name: extensions is empty and messages go uncompressed',
    async ({ options, clientOffers }) => {
      const pair = await openPair(dir, options);
      const offered = pair.req.headers['sec-websocket-extensions'];
      if (clientOffers) expect(offered).toContain('permessage-deflate');
      else expect(offered).toBeUndefined();
      expectUncompressed(pair);
      const taps = tapPair(pair);
      const text = compressibleText(64 * KiB);
      const sends: Payload[] = [text, 'small', halfRandom(16 * KiB)];
      const received = Promise.all([
        collectMessages(pair.client, sends.length),
        collectMessages(pair.serverSide, sends.length),
      ]);
      for (const data of sends) {
        pair.client.send(data);
        pair.serverSide.send(data, { compress: true });
      }
      const [atClient, atServer] = await received;
      expectReceived(atClient, sends);
      expectReceived(atServer, sends);
      for (const side of SIDES) {
        expect(rsv1s(taps.received(side).dataFrames())).toEqual([false, false, false]);
      }
    },
  );
});

// ---------------------------------------------------------------------------
// zlib streams are freed (weft's leak gauge)
// ---------------------------------------------------------------------------

/** `PerMessageDeflate.openStreams` when the built package exports it. */
function openStreams(): number {
  const gauge = (weft as { PerMessageDeflate?: { openStreams?: number } }).PerMessageDeflate
    ?.openStreams;
  if (typeof gauge !== 'number') {
    throw new Error('@weft/core does not export PerMessageDeflate.openStreams');
  }
  return gauge;
}

describe.each(DIRECTIONS)('permessage-deflate zlib streams: $name', (dir) => {
  it('[weft-specific] a connection holds one deflate and one inflate stream, freed by a clean close', async () => {
    const before = openStreams();
    const pair = await openPair(dir, deflatePair({ threshold: 0 }, { threshold: 0 }));
    const received = Promise.all([nextMessage(pair.client), nextMessage(pair.serverSide)]);
    pair.client.send('to the server');
    pair.serverSide.send('to the client');
    await received;
    expect(openStreams()).toBe(before + 2);
    const closed = Promise.all([waitClose(pair.client), waitClose(pair.serverSide)]);
    pair.client.close(1000, 'done');
    const [atClient] = await closed;
    expect(atClient.code).toBe(1000);
    await waitUntil(() => openStreams() === before, 'the zlib streams were freed');
  });

  it('[weft-specific] terminating while a 4 MiB message is being compressed frees the streams', async () => {
    const before = openStreams();
    const pair = await openPair(dir, deflatePair({}, {}));
    const weftSide = weftPeer(pair, dir);
    const wsSide = wsPeer(pair, dir);
    const received = nextMessage(weftSide);
    wsSide.send(compressibleText(4 * KiB));
    await received;
    const closed = Promise.all([waitClose(weftSide), waitClose(wsSide)]);
    const callback = new Promise<Error | null | undefined>((resolve) => {
      weftSide.send(letters(4 * MiB), (error) => resolve(error));
    });
    weftSide.terminate();
    await closed;
    // The send did not complete: its callback reports an error.
    expect(await callback).toBeInstanceOf(Error);
    await waitUntil(() => openStreams() === before, 'the zlib streams were freed');
  });

  it('[weft-specific] terminating while a 4 MiB message is being inflated delivers it before close, and frees the streams', async () => {
    const before = openStreams();
    const pair = await openPair(dir, deflatePair({}, {}));
    const weftSide = weftPeer(pair, dir);
    const wsSide = wsPeer(pair, dir);
    const events: string[] = [];
    weftSide.on('message', (data: RawData) => events.push(`message ${toBuffer(data).length}`));
    weftSide.on('error', (error: Error) => events.push(`error ${error.message}`));
    const closed = waitClose(weftSide);
    void closed.then(() => events.push('close'));
    wsSide.send(letters(4 * MiB));
    // The inflater is made when the message's inflating starts, which takes many zlib jobs:
    // polled on every turn of the event loop, to catch it in flight.
    const deadline = Date.now() + BIG_TIMEOUT;
    while (openStreams() !== before + 1) {
      if (Date.now() > deadline) throw new Error('the inflate did not start');
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(events).toEqual([]);
    weftSide.terminate();
    await closed;
    // Like ws, a message whose bytes had all arrived is still delivered, before 'close'.
    expect(events).toEqual([`message ${4 * MiB}`, 'close']);
    await waitUntil(() => openStreams() === before, 'the zlib streams were freed');
  });

  it('[weft-specific] an uncompressed connection makes no zlib stream', async () => {
    const before = openStreams();
    const pair = await openPair(dir, { client: { perMessageDeflate: false } });
    const received = nextMessage(pair.serverSide);
    pair.client.send(compressibleText(8 * KiB));
    await received;
    expect(openStreams()).toBe(before);
  });
});

// ---------------------------------------------------------------------------
// Compressed frames written by hand
// ---------------------------------------------------------------------------

/** Deflate `data` as permessage-deflate does: sync flush, trailer removed. */
function deflateMessage(data: Buffer): Buffer {
  const out = deflateRawSync(data, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
  expect(out.subarray(-4).equals(TRAILER)).toBe(true);
  return out.subarray(0, out.length - 4);
}

interface HandMade {
  name: string;
  /** The raw frames, given whether they must be masked (the ws side is the client). */
  frames: (mask: boolean) => Buffer[];
  /** What the weft side receives... */
  messages?: Payload[];
  /** ...or the code it fails the connection with. */
  code?: number;
}

const bfinalMessages = ['first, in a final block', 'second, in a final block', 'third ✓'];
const cutText = compressibleText(64 * KiB);
const CUT_SIZES = [1, 2, 3, 500, 7, 1000];

const HAND_MADE: HandMade[] = [
  {
    // RFC 7692 §7.2.3.3: a sender may end a message with a DEFLATE block with
    // BFINAL set; the receiver must inflate the following messages all the same.
    name: 'messages compressed into a final (BFINAL=1) block, then a sync-flushed one',
    frames: (mask) => [
      ...bfinalMessages.map((text) =>
        encodeFrame(0x1, deflateRawSync(Buffer.from(text)), { mask, rsv1: true }),
      ),
      encodeFrame(0x1, deflateMessage(Buffer.from('sync flushed')), { mask, rsv1: true }),
    ],
    messages: [...bfinalMessages, 'sync flushed'],
  },
  {
    name: 'a compressed message cut into fragments of 1 to 1000 bytes at arbitrary points',
    frames: (mask) => {
      const compressed = deflateMessage(Buffer.from(cutText, 'latin1'));
      const frames: Buffer[] = [];
      for (let at = 0, i = 0; at < compressed.length; i++) {
        const piece = compressed.subarray(at, at + CUT_SIZES[i % CUT_SIZES.length]!);
        at += piece.length;
        frames.push(
          encodeFrame(i === 0 ? 0x1 : 0x0, piece, {
            mask,
            rsv1: i === 0,
            fin: at >= compressed.length,
          }),
        );
      }
      return frames;
    },
    messages: [cutText],
  },
  {
    name: 'an empty compressed message (payload 0x00), then another message',
    frames: (mask) => [
      encodeFrame(0x1, Buffer.from([0x00]), { mask, rsv1: true }),
      encodeFrame(0x1, deflateMessage(Buffer.from('next')), { mask, rsv1: true }),
    ],
    messages: ['', 'next'],
  },
  {
    name: 'invalid DEFLATE data',
    frames: (mask) => [
      encodeFrame(0x1, Buffer.from([0xff, 0xff, 0xff, 0xff]), { mask, rsv1: true }),
    ],
    code: 1007,
  },
  {
    name: 'compressed text that inflates to invalid UTF-8',
    frames: (mask) => [
      encodeFrame(0x1, deflateMessage(Buffer.from([0x61, 0xff, 0xfe, 0x62])), { mask, rsv1: true }),
    ],
    code: 1007,
  },
  {
    name: 'RSV1 on a continuation frame',
    frames: (mask) => [
      encodeFrame(0x1, Buffer.from('first part'), { mask, fin: false }),
      encodeFrame(0x0, deflateMessage(Buffer.from('second part')), { mask, rsv1: true }),
    ],
    code: 1002,
  },
  {
    name: 'RSV1 on a ping',
    frames: (mask) => [encodeFrame(0x9, Buffer.from('ping'), { mask, rsv1: true })],
    code: 1002,
  },
  {
    name: 'a compressed message that inflates beyond maxPayload (64 KiB): 1 MiB of zeros',
    frames: (mask) => [encodeFrame(0x2, deflateMessage(Buffer.alloc(MiB)), { mask, rsv1: true })],
    code: 1009,
  },
];

// The ws side writes frames straight onto its TCP socket; the weft side must
// inflate what is valid and fail the connection on what is not.
describe.each(DIRECTIONS)('hand-made compressed frames to weft: $name', (dir) => {
  const weftIsClient = dir.client === 'weft';
  describe.each([
    { name: 'context takeover', server: {} as DeflateOpts },
    {
      name: 'no context takeover',
      server: { serverNoContextTakeover: true, clientNoContextTakeover: true } as DeflateOpts,
    },
  ])('$name', ({ server }) => {
    it.each(HAND_MADE)('$name', async (h) => {
      const maxPayload = 64 * KiB;
      const pair = await openPair(dir, {
        server: { perMessageDeflate: server, ...(weftIsClient ? {} : { maxPayload }) },
        client: { perMessageDeflate: {}, ...(weftIsClient ? { maxPayload } : {}) },
      });
      expect(pair.client.extensions).not.toBe('');
      const weftSide = weftPeer(pair, dir);
      const wsSide = wsPeer(pair, dir);
      const wsSocket = weftIsClient ? pair.req.socket : pair.clientSocket!;
      const events: string[] = [];
      weftSide.on('error', (error: Error) => events.push(`error: ${error.message}`));
      for (const frame of h.frames(!weftIsClient)) wsSocket.write(frame);
      if (h.messages !== undefined) {
        const failed = new Promise<never>((_, reject) => {
          weftSide.once('close', (code: number) =>
            reject(new Error(`weft closed the connection (${code}); ${events.join('; ')}`)),
          );
        });
        failed.catch(() => {});
        const received = await Promise.race([collectMessages(weftSide, h.messages.length), failed]);
        expect(events).toEqual([]);
        expectReceived(received, h.messages);
        // The connection is still good both ways.
        const back = nextMessage(wsSide);
        weftSide.send(compressibleText(4 * KiB));
        expect(toBuffer((await back).data).length).toBe(4 * KiB);
      } else {
        const [wsClosed] = await Promise.all([waitClose(wsSide), waitClose(weftSide)]);
        expect(wsClosed.code).toBe(h.code);
        expect(events).toHaveLength(1);
      }
    });
  });
});
