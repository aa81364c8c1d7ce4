#!/usr/bin/env node
/**
 * Long, seeded fuzz of weft's peer-input parsing, against the built package (`npm run build
 * -w @weft/core` first):
 *
 *   node packages/core/fuzz/fuzz.mjs [--cases N] [--seconds S] [--seed X] [--smoke]
 *                                    [--net-max M] [--ignore-known] [--case K --verbose]
 *
 * Every case derives its own PRNG from (seed, case number), so `--seed X --case K --verbose`
 * replays one case alone and prints its input. Cases are:
 *  - frames: a generated valid frame stream (fragmented messages, text with 1-4 byte UTF-8,
 *    binary, interleaved pings and pongs, a close, permessage-deflate in several framings,
 *    random masking keys), mutated (bit flips, byte edits, length fields, header bits, spliced,
 *    swapped or dropped frames, bad UTF-8, truncation), cut into random chunks and fed to a
 *    Receiver in-process (with a real PerMessageDeflate when the case negotiates it). The
 *    events must satisfy the protocol invariants and equal those of the independent model in
 *    reference.mjs;
 *  - handshake: a generated upgrade request, mutated, handed to WebSocketServer.handleUpgrade
 *    over an in-memory socket: an HTTP 4xx answer, or a 101 (only for a valid request, with
 *    the right Sec-WebSocket-Accept) after which a message must get through;
 *  - net: one case in 1000 (at most --net-max) goes over real loopback sockets to real weft
 *    servers instead: a mutated frame stream after a valid handshake (the server's events must
 *    equal the model's), or a mutated raw upgrade request (an HTTP 4xx/5xx answer, or a 101
 *    after which a message is echoed). Each must finish within a per-case timeout, else it is
 *    a hang.
 * A crash is an exception thrown by weft or a violated invariant / model mismatch; each is
 * printed with the command that replays it. The last line is the summary; the exit status is
 * 1 when there was a crash or a hang.
 */
import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { Duplex } from 'node:stream';
import zlib from 'node:zlib';
import { PerMessageDeflate, Receiver, WebSocketProtocolError, WebSocketServer } from '@weft/core';
import {
  compressFragment,
  compressMessage,
  encodeFrame,
  isWireCloseCode,
  MALFORMED_UTF8,
  referenceDecode,
  validUpgradeRequest,
} from './reference.mjs';

// ---- options ------------------------------------------------------------------------------

function parseArgs(argv) {
  const options = {
    cases: 1_000_000,
    seconds: 300,
    seed: undefined,
    netMax: 1000,
    netEvery: 1000,
    ignoreKnown: false,
    only: undefined,
    verbose: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const next = argv[++i];
      if (next === undefined) usage(`${arg} needs a value`);
      return next;
    };
    const count = () => {
      const n = Number(value().replaceAll('_', ''));
      if (!Number.isInteger(n) || n < 0) usage(`${arg} needs a non-negative integer`);
      return n;
    };
    if (arg === '--cases') options.cases = count();
    else if (arg === '--seconds') options.seconds = count();
    else if (arg === '--seed') options.seed = value();
    else if (arg === '--net-max') options.netMax = count();
    else if (arg === '--smoke') {
      options.cases = 20_000;
      options.seconds = 20;
      options.netMax = 20;
    } else if (arg === '--ignore-known') options.ignoreKnown = true;
    else if (arg === '--case') options.only = count();
    else if (arg === '--verbose') options.verbose = true;
    else if (arg === '--help' || arg === '-h') usage();
    else usage(`unknown argument ${arg}`);
  }
  return options;
}

function usage(error) {
  const text =
    'usage: node packages/core/fuzz/fuzz.mjs [--cases N] [--seconds S] [--seed X] [--smoke]\n' +
    '         [--net-max M] [--ignore-known] [--case K --verbose]';
  if (error) {
    console.error(`fuzz: ${error}\n${text}`);
    process.exit(2);
  }
  console.log(text);
  process.exit(0);
}

// ---- deterministic randomness -------------------------------------------------------------

function hashSeed(seed) {
  let h = 2166136261;
  for (const char of String(seed)) h = Math.imul(h ^ char.codePointAt(0), 16777619);
  return h >>> 0;
}

/** sfc32, seeded from the run seed and the case number. */
class Rng {
  #a;
  #b;
  #c;
  #d;
  constructor(seed, index) {
    this.#a = seed | 0;
    this.#b = index | 0;
    this.#c = Math.floor(index / 2 ** 32) ^ 0x9e3779b9;
    this.#d = 0x85ebca6b ^ seed;
    for (let i = 0; i < 15; i++) this.next();
  }
  next() {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }
  /** 0 <= n < max. */
  int(max) {
    return max <= 1 ? 0 : Math.floor((this.next() / 2 ** 32) * max);
  }
  range(min, max) {
    return min + this.int(max - min + 1);
  }
  chance(p) {
    return this.next() / 2 ** 32 < p;
  }
  pick(items) {
    return items[this.int(items.length)];
  }
  /** Picks from [weight, value] pairs. */
  weighted(pairs) {
    let total = 0;
    for (const [weight] of pairs) total += weight;
    let r = this.int(total);
    for (const [weight, value] of pairs) {
      if (r < weight) return value;
      r -= weight;
    }
    return pairs[pairs.length - 1][1];
  }
  bytes(n) {
    const out = Buffer.allocUnsafe(n);
    let i = 0;
    for (; i + 4 <= n; i += 4) out.writeUInt32LE(this.next(), i);
    for (; i < n; i++) out[i] = this.next() & 0xff;
    return out;
  }
}

// ---- frame stream generation --------------------------------------------------------------

/** Text of `chars` code points; long texts repeat a random run of up to 200 (cheaper). */
function randomText(rng, chars) {
  if (chars > 200) {
    const run = randomText(rng, 200);
    const times = Math.ceil(chars / 200);
    return run.repeat(times);
  }
  const points = [];
  for (let i = 0; i < chars; i++) {
    const kind = rng.int(20);
    if (kind < 12) points.push(rng.range(0x20, 0x7e));
    else if (kind < 15) points.push(rng.range(0x80, 0x7ff));
    else if (kind < 18) {
      const point = rng.range(0x800, 0xfffd);
      points.push(point >= 0xd800 && point <= 0xdfff ? 0xfffd : point);
    } else points.push(rng.range(0x10000, 0x10ffff));
  }
  return String.fromCodePoint(...points);
}

function messageSize(rng) {
  return rng.weighted([
    [70, () => rng.int(33)],
    [22, () => rng.int(300)],
    [7, () => rng.range(126, 2000)],
    [1, () => rng.range(65_536, 70_000)],
  ])();
}

const VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014];
const ODD_CLOSE_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535];

/**
 * A receiver configuration and a valid stream for it, with the layout of its frames.
 * `fixed` pins the configuration (the network servers' settings).
 */
function generateStream(rng, fixed) {
  const config = fixed ?? {
    isServer: rng.chance(0.5),
    deflate: rng.chance(0.35)
      ? {
          noContextTakeover: rng.chance(0.5),
          windowBits: rng.chance(0.8) ? 15 : rng.range(8, 15),
        }
      : null,
    maxPayload: 0,
    maxFragments: rng.chance(0.1) ? rng.range(1, 4) : 0,
    skipUTF8Validation: rng.chance(0.08),
  };
  const frames = [];
  const expected = [];
  const sizes = [];
  const windowBits = config.deflate?.windowBits ?? 15;
  const frame = (spec, kind) => {
    const key = config.isServer ? rng.bytes(4) : null;
    frames.push({ bytes: encodeFrame({ ...spec, maskKey: key }), kind, key, opcode: spec.opcode });
  };
  const control = () => {
    const opcode = rng.chance(0.5) ? 0x9 : 0xa;
    const payload = rng.chance(0.5)
      ? rng.bytes(rng.chance(0.1) ? 125 : rng.int(40))
      : Buffer.from(randomText(rng, rng.int(20))).subarray(0, 125);
    frame({ opcode, payload }, 'control');
    expected.push({ type: opcode === 0x9 ? 'ping' : 'pong', data: payload });
  };

  const messages = rng.weighted([
    [1, 0],
    [4, 1],
    [3, 2],
    [2, rng.range(3, 6)],
  ]);
  for (let m = 0; m < messages; m++) {
    if (rng.chance(0.15)) control();
    const isBinary = rng.chance(0.4);
    const size = messageSize(rng);
    const data = isBinary ? rng.bytes(size) : Buffer.from(randomText(rng, Math.ceil(size / 2)));
    const pieceCount = rng.weighted([
      [6, 1],
      [3, 2],
      [2, rng.range(3, 6)],
    ]);
    const cuts = [];
    for (let i = 1; i < pieceCount; i++) cuts.push(rng.int(data.length + 1));
    cuts.sort((a, b) => a - b);
    const pieces = [];
    let start = 0;
    for (const cut of [...cuts, data.length]) {
      pieces.push(data.subarray(start, cut));
      start = cut;
    }
    let payloads = pieces;
    let compressed = false;
    if (config.deflate !== null && rng.chance(0.75)) {
      compressed = true;
      const mode = rng.weighted([
        [6, 'whole'],
        [4, 'aligned'],
        [1, 'final'],
      ]);
      if (mode === 'aligned') {
        payloads = pieces.map((piece, i) =>
          i === pieces.length - 1
            ? compressMessage(piece, windowBits)
            : compressFragment(piece, windowBits),
        );
      } else {
        // 'final': deflated to the end, in a block with BFINAL set (RFC 7692 allows it).
        const whole =
          mode === 'final'
            ? zlib.deflateRawSync(data, { windowBits })
            : compressMessage(data, windowBits);
        const points = cuts.map((cut) =>
          Math.floor((cut / Math.max(data.length, 1)) * whole.length),
        );
        payloads = [];
        let from = 0;
        for (const point of [...points, whole.length]) {
          payloads.push(whole.subarray(from, point));
          from = point;
        }
      }
      let sum = 0;
      for (const piece of pieces) {
        sum += piece.length;
        sizes.push(sum);
      }
    }
    for (const [i, payload] of payloads.entries()) {
      const fin = i === payloads.length - 1;
      frame(
        {
          opcode: i === 0 ? (isBinary ? 2 : 1) : 0,
          fin,
          rsv: compressed && i === 0 ? 4 : 0,
          payload,
        },
        compressed ? 'compressed' : isBinary ? 'binary' : 'text',
      );
      if (fin) expected.push({ type: 'message', isBinary, data });
      if (!fin && rng.chance(0.2)) control();
    }
    sizes.push(data.length);
  }
  if (rng.chance(0.1)) control();
  if (rng.chance(0.25)) {
    const code = rng.pick(VALID_CLOSE_CODES.concat([3000, 4000, 4999]));
    const reason = Buffer.from(randomText(rng, rng.int(25))).subarray(0, 123);
    const payload = Buffer.alloc(2 + reason.length);
    payload.writeUInt16BE(code, 0);
    reason.copy(payload, 2);
    if (isUtf8(reason)) {
      frame({ opcode: 0x8, payload }, 'control');
      expected.push({ type: 'close', code, reason });
    }
  }

  if (fixed === undefined) {
    // Limits: none, ws's default, small, or exactly the size of a message or a fragment.
    config.maxPayload = rng.weighted([
      [5, 0],
      [2, 100 * 1024 * 1024],
      [2, rng.range(1, 300)],
      [3, sizes.length > 0 ? Math.max(1, rng.pick(sizes) + rng.pick([0, 0, 0, -1, 1])) : 64],
    ]);
  }
  return { config, frames, expected };
}

/** A frame that is often wrong: what a confused or hostile peer would send. */
function junkFrame(rng, config) {
  const opcode = rng.weighted([
    [4, rng.pick([0, 1, 2])],
    [4, rng.pick([8, 9, 10])],
    [1, rng.int(16)],
  ]);
  let payload;
  if (opcode === 8 && rng.chance(0.8)) {
    const reason = rng.chance(0.3)
      ? Buffer.from(rng.pick(MALFORMED_UTF8))
      : Buffer.from(randomText(rng, rng.int(10)));
    payload = Buffer.alloc(2 + reason.length);
    payload.writeUInt16BE(
      rng.chance(0.5) ? rng.pick(ODD_CLOSE_CODES) : rng.pick(VALID_CLOSE_CODES),
      0,
    );
    reason.copy(payload, 2);
    if (rng.chance(0.1)) payload = payload.subarray(0, 1);
  } else {
    const kind = rng.weighted([
      [3, 'bad'],
      [config.deflate === null ? 0 : 3, 'compressed'],
      [7, 'bytes'],
    ]);
    if (kind === 'bad') payload = Buffer.from(rng.pick(MALFORMED_UTF8));
    else if (kind === 'compressed')
      payload = compressMessage(Buffer.from(randomText(rng, rng.int(20))));
    else payload = rng.bytes(rng.chance(0.05) ? rng.range(126, 200) : rng.int(30));
  }
  const masked = rng.chance(0.9) ? config.isServer : !config.isServer;
  return encodeFrame({
    fin: rng.chance(0.8),
    rsv: rng.weighted([
      [10, 0],
      [config.deflate === null ? 1 : 5, 4],
      [1, rng.int(8)],
    ]),
    opcode,
    payload,
    maskKey: masked ? rng.bytes(4) : null,
  });
}

function headerLengthOf(bytes) {
  if (bytes.length < 2) return bytes.length;
  const length7 = bytes[1] & 0x7f;
  const base = length7 === 126 ? 4 : length7 === 127 ? 10 : 2;
  return Math.min(bytes.length, base + (bytes[1] & 0x80 ? 4 : 0));
}

function encodeLength(rng, payloadLength) {
  const kind = rng.int(6);
  if (kind === 0) return [rng.int(126)];
  if (kind === 1)
    return [rng.pick([payloadLength + 1, Math.max(0, payloadLength - 1), 0, 125]) & 0x7f];
  if (kind === 2) {
    const value = rng.chance(0.5)
      ? rng.int(0x10000)
      : rng.pick([0, 125, 126, payloadLength, 0xffff]);
    return [126, value >>> 8, value & 0xff];
  }
  const big = Buffer.alloc(8);
  const value =
    kind === 3
      ? BigInt(rng.next())
      : rng.pick([
          0n,
          BigInt(payloadLength),
          65_536n,
          2n ** 32n,
          2n ** 53n - 1n,
          2n ** 53n,
          2n ** 63n - 1n,
          2n ** 63n,
          2n ** 64n - 1n,
          (BigInt(rng.next()) << 32n) | BigInt(rng.next()),
        ]);
  big.writeBigUInt64BE(value);
  return [127, ...big];
}

/** Mutates the frame list or the bytes. Returns the list of mutation names applied. */
function mutateStream(rng, generated, count) {
  let { frames } = generated;
  frames = frames.map((frame) => ({ ...frame, bytes: Buffer.from(frame.bytes) }));
  const applied = [];
  const frameMutations = [
    'length',
    'headerBit',
    'maskBit',
    'splice',
    'swap',
    'drop',
    'badUtf8',
    'payloadBit',
    'duplicate',
  ];
  const byteMutations = ['flip', 'set', 'insert', 'delete', 'copy', 'truncate'];
  let bytes = null;
  for (let n = 0; n < count; n++) {
    const useFrames = bytes === null && frames.length > 0 && rng.chance(0.55);
    const name = useFrames ? rng.pick(frameMutations) : rng.pick(byteMutations);
    applied.push(name);
    if (useFrames) {
      const index = rng.int(frames.length);
      const frame = frames[index];
      const b = frame.bytes;
      const headerLength = headerLengthOf(b);
      switch (name) {
        case 'length': {
          const masked = (b[1] & 0x80) !== 0;
          const key = masked ? b.subarray(headerLength - 4, headerLength) : Buffer.alloc(0);
          const head = [b[0]];
          const [first, ...rest] = encodeLength(rng, b.length - headerLength);
          head.push((b[1] & 0x80) | first, ...rest);
          frame.bytes = Buffer.concat([Buffer.from(head), key, b.subarray(headerLength)]);
          break;
        }
        case 'headerBit':
          if (rng.chance(0.3)) b[0] = (b[0] & 0xf0) | rng.int(16);
          else b[0] ^= rng.pick([0x80, 0x40, 0x20, 0x10]);
          break;
        case 'maskBit':
          b[1] ^= 0x80;
          break;
        case 'splice':
          frames.splice(rng.int(frames.length + 1), 0, {
            bytes: junkFrame(rng, generated.config),
            kind: 'junk',
          });
          break;
        case 'swap':
          if (index + 1 < frames.length) {
            frames[index] = frames[index + 1];
            frames[index + 1] = frame;
          }
          break;
        case 'drop':
          frames.splice(index, 1);
          break;
        case 'duplicate':
          frames.splice(index, 0, { ...frame, bytes: Buffer.from(frame.bytes) });
          break;
        case 'badUtf8':
        case 'payloadBit': {
          const payloadLength = b.length - headerLength;
          if (payloadLength === 0) break;
          const at = headerLength + rng.int(payloadLength);
          const keyStart = headerLength - 4;
          const masked = (b[1] & 0x80) !== 0 && headerLength >= 6;
          if (name === 'payloadBit') {
            b[at] ^= 1 << rng.int(8);
            break;
          }
          const bad = rng.pick(MALFORMED_UTF8);
          for (let i = 0; i < bad.length && at + i < b.length; i++) {
            const phase = at + i - headerLength;
            b[at + i] = masked ? bad[i] ^ b[keyStart + (phase & 3)] : bad[i];
          }
          break;
        }
      }
      continue;
    }
    bytes ??= Buffer.concat(frames.map((frame) => frame.bytes));
    if (bytes.length === 0) continue;
    const at = rng.int(bytes.length);
    switch (name) {
      case 'flip':
        bytes[at] ^= 1 << rng.int(8);
        break;
      case 'set':
        bytes[at] = rng.int(256);
        break;
      case 'insert':
        bytes = Buffer.concat([
          bytes.subarray(0, at),
          rng.bytes(rng.range(1, 4)),
          bytes.subarray(at),
        ]);
        break;
      case 'delete':
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + rng.range(1, 8))]);
        break;
      case 'copy': {
        const from = rng.int(bytes.length);
        const slice = Buffer.from(bytes.subarray(from, from + rng.range(1, 16)));
        bytes = Buffer.concat([bytes.subarray(0, at), slice, bytes.subarray(at)]);
        break;
      }
      case 'truncate':
        bytes = bytes.subarray(0, at);
        break;
    }
  }
  return { bytes: bytes ?? Buffer.concat(frames.map((frame) => frame.bytes)), applied };
}

const MAX_CHUNKS = 4096;

function splitStream(rng, bytes) {
  if (bytes.length === 0) return [];
  const mode = rng.weighted([
    [3, 'whole'],
    [6, 'random'],
    [1, 'bytewise'],
    [1, 'fixed'],
  ]);
  if (mode === 'whole') return [bytes];
  // At most MAX_CHUNKS chunks: longer queues are the 'flood' cases' business (see there).
  const step = Math.max(
    mode === 'bytewise' && bytes.length <= 400 ? 1 : mode === 'fixed' ? rng.range(1, 7) : 0,
    mode === 'random' ? 0 : Math.ceil(bytes.length / MAX_CHUNKS),
  );
  if (step > 0) {
    const chunks = [];
    for (let i = 0; i < bytes.length; i += step) chunks.push(bytes.subarray(i, i + step));
    return chunks;
  }
  const cuts = [];
  for (let i = rng.range(1, 8); i > 0; i--) cuts.push(rng.int(bytes.length));
  cuts.sort((a, b) => a - b);
  const chunks = [];
  let start = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (cut > start) chunks.push(bytes.subarray(start, cut));
    start = Math.max(start, cut);
  }
  return chunks;
}

/** A frame case: configuration, input bytes, chunks and what the model expects. */
function frameCase(rng, fixed) {
  const generated = generateStream(rng, fixed);
  const mutations = rng.weighted([
    [1, 0],
    [6, 1],
    [3, rng.range(2, 4)],
  ]);
  const { bytes, applied } = mutateStream(rng, generated, mutations);
  const config = generated.config;
  const model = referenceDecode(bytes, {
    isServer: config.isServer,
    maxPayload: config.maxPayload,
    maxFragments: config.maxFragments,
    skipUTF8Validation: config.skipUTF8Validation,
    deflate: config.deflate,
  });
  return {
    config,
    bytes,
    chunks: splitStream(rng, bytes),
    yields: config.deflate !== null && rng.chance(0.3),
    // Sometimes a listener pauses the receiver after an event and resumes it a tick later.
    pauses: rng.chance(0.1) ? Array.from({ length: 8 }, () => rng.chance(0.5)) : null,
    mutations: applied,
    model,
    generatedExpected: mutations === 0 ? generated.expected : null,
  };
}

// ---- checking events ------------------------------------------------------------------------

const CLOSE_CODE_OF = {
  WS_ERR_INVALID_UTF8: [1007],
  WS_ERR_INVALID_COMPRESSED_DATA: [1007],
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: [1009],
  WS_ERR_TOO_MANY_FRAGMENTS: [1009],
  WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH: [1002, 1009],
};

class Finding extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

function show(event) {
  switch (event.type) {
    case 'message':
      return `${event.isBinary ? 'binary' : 'text'}(${event.data.length}) ${event.data.toString('hex').slice(0, 64)}`;
    case 'ping':
    case 'pong':
      return `${event.type} ${event.data.toString('hex')}`;
    case 'close':
      return `close ${event.code} ${event.reason.toString('hex')}`;
    default:
      return event.closeCodes === undefined
        ? `error ${event.closeCode} ${event.code}`
        : `error ${event.closeCodes.join('|')}`;
  }
}

function same(actual, expected) {
  if (actual.type !== expected.type) return false;
  switch (actual.type) {
    case 'message':
      return actual.isBinary === expected.isBinary && actual.data.equals(expected.data);
    case 'ping':
    case 'pong':
      return actual.data.equals(expected.data);
    case 'close':
      return actual.code === expected.code && actual.reason.equals(expected.reason);
    default:
      return expected.closeCodes.includes(actual.closeCode);
  }
}

function checkEvents(events, config) {
  const terminal = events.findIndex((event) => event.type === 'close' || event.type === 'error');
  if (terminal !== -1 && terminal !== events.length - 1) {
    throw new Finding('invariant', `events after a terminal event: ${events.map(show).join(', ')}`);
  }
  for (const event of events) {
    if (event.type === 'message') {
      if (event.length !== event.data.length)
        throw new Finding(
          'invariant',
          `onMessage length ${event.length} for ${event.data.length} bytes`,
        );
      if (!event.isBinary && !config.skipUTF8Validation && !isUtf8(event.data))
        throw new Finding(
          'invariant',
          `text message with invalid UTF-8: ${event.data.toString('hex')}`,
        );
      if (config.maxPayload > 0 && event.data.length > config.maxPayload)
        throw new Finding(
          'invariant',
          `message of ${event.data.length} bytes over maxPayload ${config.maxPayload}`,
        );
    } else if (event.type === 'ping' || event.type === 'pong') {
      if (event.data.length > 125)
        throw new Finding('invariant', `${event.type} of ${event.data.length} bytes`);
    } else if (event.type === 'close') {
      if (event.code !== 1005 && !isWireCloseCode(event.code))
        throw new Finding('invariant', `close code ${event.code} reported`);
      if (!config.skipUTF8Validation && !isUtf8(event.reason))
        throw new Finding('invariant', 'close reason with invalid UTF-8');
    } else {
      if (!event.isProtocolError)
        throw new Finding('invariant', `error is a ${event.name}, not a WebSocketProtocolError`);
      if (![1002, 1007, 1009].includes(event.closeCode))
        throw new Finding('invariant', `error with closeCode ${event.closeCode}`);
      if (typeof event.code !== 'string' || !/^WS_ERR_[A-Z0-9_]+$/.test(event.code))
        throw new Finding('invariant', `error with code ${String(event.code)}`);
      if (!(CLOSE_CODE_OF[event.code] ?? [1002]).includes(event.closeCode))
        throw new Finding('invariant', `${event.code} with closeCode ${event.closeCode}`);
    }
  }
}

/**
 * Names the known, not yet fixed engine bug a finding comes from, so that --ignore-known can
 * look past it while it is open. None is open: the bugs this fuzz found are pinned down in
 * test/fuzz-regressions.test.ts and were fixed.
 */
function knownBugOf(_kase, _record) {
  return null;
}

function compareWithModel(events, kase) {
  const { undefinedFrom } = kase.model;
  // Past `undefinedFrom` the RFCs leave the outcome open: only the invariants hold there.
  const expected = kase.model.events.slice(0, undefinedFrom);
  const actual = undefinedFrom === undefined ? events : events.slice(0, undefinedFrom);
  const ok =
    actual.length === expected.length && actual.every((event, i) => same(event, expected[i]));
  if (!ok) {
    const finding = new Finding(
      'mismatch',
      `weft: [${events.map(show).join(', ')}]\n      model: [${expected.map(show).join(', ')}]`,
    );
    finding.known = knownBugOf(kase);
    throw finding;
  }
  if (
    kase.generatedExpected !== null &&
    undefinedFrom === undefined &&
    !(kase.config.maxFragments > 0) &&
    (kase.config.maxPayload === 0 || kase.config.maxPayload >= 100 * 1024 * 1024)
  ) {
    const generated = kase.generatedExpected;
    if (
      events.length !== generated.length ||
      !events.every((event, i) => same(event, { ...generated[i], closeCodes: [] }))
    )
      throw new Finding(
        'mismatch',
        `valid stream: weft [${events.map(show).join(', ')}] generated [${generated.map(show).join(', ')}]`,
      );
  }
}

function outcomeOf(events) {
  const last = events.at(-1);
  if (last?.type === 'error') return String(last.closeCode);
  if (events.some((event) => event.type === 'message')) return 'message';
  if (last?.type === 'close') return 'close';
  return 'incomplete';
}

// ---- in-process frame cases -------------------------------------------------------------------

function sinkInto(events) {
  return {
    onMessage: (data, length, isBinary) =>
      events.push({
        type: 'message',
        isBinary,
        data: Buffer.concat(Array.isArray(data) ? data : [data]),
        length,
      }),
    onPing: (data) => events.push({ type: 'ping', data: Buffer.from(data) }),
    onPong: (data) => events.push({ type: 'pong', data: Buffer.from(data) }),
    onClose: (code, reason) => events.push({ type: 'close', code, reason: Buffer.from(reason) }),
    onError: (error) =>
      events.push({
        type: 'error',
        closeCode: error.closeCode,
        code: error.code,
        name: error?.name,
        isProtocolError: error instanceof WebSocketProtocolError,
      }),
  };
}

function deflateParams(deflate) {
  return {
    serverNoContextTakeover: deflate.noContextTakeover,
    clientNoContextTakeover: deflate.noContextTakeover,
    serverMaxWindowBits: deflate.windowBits,
    clientMaxWindowBits: deflate.windowBits,
  };
}

const CASE_TIMEOUT_MS = 5000;

/** Runs a frame case in-process; synchronous when no inflater is involved. */
function runFrameCase(kase) {
  const { config } = kase;
  const events = [];
  const codec =
    config.deflate === null
      ? undefined
      : new PerMessageDeflate(
          deflateParams(config.deflate),
          config.isServer,
          { threshold: 0 },
          'permessage-deflate',
        );
  let receiver;
  let pending = 0;
  let draining = false;
  const sink = sinkInto(events);
  if (kase.pauses !== null) {
    // After some events, pause the receiver and resume it from the next macrotask.
    for (const name of ['onMessage', 'onPing', 'onPong']) {
      const deliver = sink[name];
      sink[name] = (...args) => {
        deliver(...args);
        if (draining || !kase.pauses[events.length % kase.pauses.length]) return;
        receiver.pause();
        pending++;
        setImmediate(() => {
          pending--;
          receiver.resume();
        });
      };
    }
  }
  receiver = new Receiver(
    {
      isServer: config.isServer,
      maxPayload: config.maxPayload,
      maxFragments: config.maxFragments,
      skipUTF8Validation: config.skipUTF8Validation,
      decompressor: codec,
    },
    sink,
  );
  const finish = () => {
    receiver.stop();
    codec?.close();
    checkEvents(events, config);
    compareWithModel(events, kase);
    return outcomeOf(events);
  };
  const fail = (error) => {
    receiver.stop();
    codec?.close();
    throw error instanceof Finding
      ? error
      : Object.assign(new Finding('exception', describeError(error)), { cause: error });
  };

  if (codec === undefined && kase.pauses === null) {
    try {
      for (const chunk of kase.chunks) receiver.write(Buffer.from(chunk));
    } catch (error) {
      fail(error);
    }
    let drained = false;
    receiver.drain(() => {
      drained = true;
    });
    if (!drained) fail(new Finding('hang', 'drain() did not call back without an inflater'));
    return finish();
  }

  return (async () => {
    try {
      for (const [i, chunk] of kase.chunks.entries()) {
        if (kase.yields && i % 2 === 1) await new Promise((resolve) => setImmediate(resolve));
        receiver.write(Buffer.from(chunk));
      }
    } catch (error) {
      fail(error);
    }
    // Let paused parsing resume by itself before draining (drain ignores pause()).
    for (let spins = 0; pending > 0 && spins < 100_000; spins++) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    draining = true;
    const drained = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), CASE_TIMEOUT_MS);
      receiver.drain(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!drained)
      fail(new Finding('hang', `the receiver did not finish within ${CASE_TIMEOUT_MS} ms`));
    return finish();
  })();
}

function describeError(error) {
  if (error instanceof Error)
    return `${error.name}: ${error.message}\n${error.stack?.split('\n').slice(1, 4).join('\n')}`;
  return `thrown non-error ${String(error)}`;
}

// ---- upgrade requests -------------------------------------------------------------------------

const TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const token = (rng, max = 10) => {
  let out = '';
  for (let i = rng.range(1, max); i > 0; i--) out += TOKEN_CHARS[rng.int(TOKEN_CHARS.length)];
  return out;
};
const PADDING = [' ', '\t', '\u00a0', '\u000b', '\u000c', ',', ';'];
const JUNK_CHARS = [
  '',
  ',',
  ' ',
  '\t',
  ';',
  '=',
  '"',
  '\\',
  'A',
  '+',
  '/',
  '\u00a0',
  '\u00ff',
  '\u007f',
  '\u0000',
];

function randomLatin1(rng, n) {
  let out = '';
  for (let i = 0; i < n; i++) {
    const code = rng.chance(0.8) ? rng.range(0x20, 0x7e) : rng.range(0x80, 0xff);
    out += String.fromCharCode(code);
  }
  return out;
}

/** A valid permessage-deflate offer (behind an unknown extension sometimes). */
function deflateOfferHeader(rng) {
  const params = [];
  if (rng.chance(0.5)) {
    params.push(`client_max_window_bits${rng.chance(0.5) ? '' : `=${rng.range(8, 15)}`}`);
  }
  if (rng.chance(0.3)) params.push(`server_max_window_bits=${rng.pick(['8', '10', '15', '"12"'])}`);
  if (rng.chance(0.3)) params.push('client_no_context_takeover');
  if (rng.chance(0.2)) params.push('server_no_context_takeover');
  const offer = ['permessage-deflate', ...params].join(rng.pick(['; ', ';', ' ; ']));
  return rng.chance(0.2) ? `x-${token(rng)}; a=1, ${offer}` : offer;
}

/** A valid upgrade request as a header list, then 0-3 mutations of it. */
function generateRequest(rng) {
  const key = rng.bytes(16).toString('base64');
  const headers = [
    ['Host', '127.0.0.1'],
    ['Upgrade', rng.pick(['websocket', 'WebSocket', 'WEBSOCKET'])],
    ['Connection', rng.pick(['Upgrade', 'upgrade', 'keep-alive, Upgrade', 'Upgrade,close'])],
    ['Sec-WebSocket-Key', key],
    ['Sec-WebSocket-Version', rng.chance(0.9) ? '13' : '8'],
  ];
  if (rng.chance(0.3)) {
    const protocols = new Set();
    for (let i = rng.range(1, 3); i > 0; i--) protocols.add(token(rng, 6));
    headers.push(['Sec-WebSocket-Protocol', [...protocols].join(rng.pick([',', ', ', ' , ']))]);
  }
  if (rng.chance(0.4)) headers.push(['Sec-WebSocket-Extensions', deflateOfferHeader(rng)]);
  if (rng.chance(0.2)) headers.push(['Origin', 'http://127.0.0.1']);
  for (let i = rng.int(headers.length); i > 0; i--) {
    const j = rng.int(headers.length);
    [headers[i], headers[j]] = [headers[j], headers[i]];
  }
  let method = 'GET';
  const mutations = rng.weighted([
    [2, 0],
    [5, 1],
    [3, rng.range(2, 3)],
  ]);
  const applied = [];
  for (let n = 0; n < mutations; n++) {
    const index = rng.int(headers.length);
    const header = headers[index];
    const name = rng.pick([
      'method',
      'remove',
      'duplicate',
      'nameCase',
      'valueCase',
      'pad',
      'junk',
      'edit',
      'version',
      'key',
      'extensions',
      'protocol',
    ]);
    applied.push(name);
    switch (name) {
      case 'method':
        method = rng.pick(['POST', 'HEAD', 'PUT', 'get', 'OPTIONS', token(rng)]);
        break;
      case 'remove':
        headers.splice(index, 1);
        break;
      case 'duplicate':
        headers.splice(rng.int(headers.length + 1), 0, [
          header[0],
          rng.chance(0.5) ? header[1] : token(rng),
        ]);
        break;
      case 'nameCase':
        header[0] = rng.chance(0.5) ? header[0].toUpperCase() : header[0].toLowerCase();
        break;
      case 'valueCase':
        header[1] = rng.chance(0.5) ? header[1].toUpperCase() : header[1].toLowerCase();
        break;
      case 'pad':
        header[1] = rng.chance(0.5)
          ? `${rng.pick(PADDING)}${header[1]}`
          : `${header[1]}${rng.pick(PADDING)}`;
        break;
      case 'junk':
        header[1] = rng.chance(0.5) ? randomLatin1(rng, rng.int(30)) : token(rng);
        break;
      case 'edit': {
        const value = header[1];
        const at = rng.int(value.length + 1);
        const char = rng.pick(JUNK_CHARS);
        header[1] = rng.chance(0.5)
          ? value.slice(0, at) + char + value.slice(at)
          : value.slice(0, at) + char + value.slice(at + 1);
        break;
      }
      case 'version':
        setHeader(
          headers,
          'Sec-WebSocket-Version',
          rng.pick(['7', '9', '12', '14', '013', '13, 8', '', '+13', '1e1', '13.0']),
        );
        break;
      case 'key':
        setHeader(
          headers,
          'Sec-WebSocket-Key',
          rng.pick([
            key.slice(1),
            `${key}=`,
            key.replace('==', 'A='),
            rng.bytes(rng.range(1, 30)).toString('base64'),
            key.replace(/.$/, '.'),
            `${key.slice(0, 21)}B==`,
          ]),
        );
        break;
      case 'extensions':
        setHeader(
          headers,
          'Sec-WebSocket-Extensions',
          rng.pick([
            () => deflateOfferHeader(rng),
            () => `permessage-deflate; ${token(rng)}`,
            () => `permessage-deflate; server_max_window_bits=${rng.pick(['7', '16', '08', ''])}`,
            () => 'permessage-deflate; server_max_window_bits',
            () => 'permessage-deflate; client_max_window_bits=16',
            () => 'permessage-deflate; server_no_context_takeover=1',
            () => 'permessage-deflate; server_no_context_takeover; server_no_context_takeover',
            () => `permessage-deflate; x="${randomLatin1(rng, 5)}"`,
            () => randomLatin1(rng, rng.int(20)),
            () => `${deflateOfferHeader(rng)}${rng.pick(JUNK_CHARS)}`,
          ])(),
        );
        break;
      case 'protocol':
        setHeader(
          headers,
          'Sec-WebSocket-Protocol',
          rng.pick([
            () => 'chat, chat',
            () => 'chat,,x',
            () => '',
            () => `chat${rng.pick(JUNK_CHARS)}x`,
            () => randomLatin1(rng, 10),
          ])(),
        );
        break;
    }
  }
  return { method, headers, mutations: applied };
}

function setHeader(headers, name, value) {
  const existing = headers.find(([header]) => header.toLowerCase() === name.toLowerCase());
  if (existing) existing[1] = value;
  else headers.push([name, value]);
}

/** The headers object Node's parser would build: names lower-cased, OWS trimmed, duplicates joined. */
const DISCARD_DUPLICATES = new Set(['host', 'origin']);
function nodeHeaders(headers) {
  const out = {};
  for (const [name, raw] of headers) {
    const key = name.toLowerCase();
    const value = raw.replace(/^[ \t]+|[ \t]+$/g, '');
    if (out[key] === undefined) out[key] = value;
    else if (!DISCARD_DUPLICATES.has(key)) out[key] = `${out[key]}, ${value}`;
  }
  return out;
}

function acceptOf(key) {
  return createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
}

/** A Duplex that records what is written to it and is fed with push(). */
class MemorySocket extends Duplex {
  written = [];
  _read() {}
  _write(chunk, _encoding, callback) {
    this.written.push(Buffer.from(chunk));
    callback();
  }
  get output() {
    return Buffer.concat(this.written).toString('latin1');
  }
}

const TRIM_BUG = 'known: header values trimmed with String.prototype.trim() (U+00A0, VT, FF...)';

function jsTrimmed(headers) {
  const out = {};
  for (const [name, value] of Object.entries(headers)) {
    out[name] = value
      .split(',')
      .map((part) => part.trim())
      .join(',');
  }
  return out;
}

/** Runs a handshake case in-process on a noServer WebSocketServer. */
async function runHandshakeCase(kase, servers) {
  const server = kase.deflate ? servers.noServerDeflate : servers.noServer;
  const socket = new MemorySocket();
  const headers = nodeHeaders(kase.request.headers);
  const request = {
    method: kase.request.method,
    url: '/',
    headers,
    socket: { remoteAddress: '127.0.0.1' },
  };
  let ws;
  try {
    server.handleUpgrade(request, socket, Buffer.alloc(0), (connection) => {
      ws = connection;
    });
  } catch (error) {
    socket.destroy();
    throw Object.assign(new Finding('exception', describeError(error)), { cause: error });
  }
  try {
    await waitUntil(() => ws !== undefined || socket.destroyed || socket.writableFinished, 2000);
    const head = socket.output;
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
    if (ws === undefined) {
      if (!(status >= 400 && status <= 599))
        throw new Finding(
          'invariant',
          `handshake ended without an HTTP error: ${JSON.stringify(head.slice(0, 80))}`,
        );
      if (status >= 500)
        throw new Finding(
          'invariant',
          `5xx answer to a client's handshake: ${head.split('\r\n')[0]}`,
        );
      if (kase.request.mutations.length === 0)
        throw new Finding('invariant', `a valid request was refused: ${head.split('\r\n')[0]}`);
      return 'http4xx';
    }
    if (status !== 101)
      throw new Finding(
        'invariant',
        `connection without a 101: ${JSON.stringify(head.slice(0, 80))}`,
      );
    const valid = validUpgradeRequest(request.method, headers);
    if (valid === null) {
      const finding = new Finding(
        'invariant',
        `accepted an invalid request ${JSON.stringify(headers)}`,
      );
      if (validUpgradeRequest(request.method, jsTrimmed(headers)) !== null)
        finding.known = TRIM_BUG;
      throw finding;
    }
    if (!head.includes(`\r\nSec-WebSocket-Accept: ${acceptOf(valid.key)}\r\n`))
      throw new Finding('invariant', `wrong Sec-WebSocket-Accept for key ${valid.key}`);
    if (
      valid.protocols.length > 0 &&
      !head.includes(`\r\nSec-WebSocket-Protocol: ${valid.protocols[0]}\r\n`)
    )
      throw new Finding('invariant', `subprotocol ${valid.protocols[0]} not selected`);
    // The connection works: a message gets through.
    const message = new Promise((resolve) =>
      ws.once('message', (data) => resolve(Buffer.from(data).toString())),
    );
    socket.push(
      encodeFrame({ opcode: 1, payload: Buffer.from('fuzz'), maskKey: Buffer.from([1, 2, 3, 4]) }),
    );
    const text = await withTimeout(message, 2000, 'no message after the handshake');
    if (text !== 'fuzz') throw new Finding('invariant', `message after the handshake: ${text}`);
    return 'message';
  } finally {
    ws?.terminate();
    socket.destroy();
  }
}

// ---- loopback cases -----------------------------------------------------------------------------

const NET_TIMEOUT_MS = 10_000;

async function startServers() {
  const observed = new Map();
  const start = async (options) => {
    const wss = new WebSocketServer({ ...options, port: 0, host: '127.0.0.1' });
    wss.on('error', () => {});
    await new Promise((resolve) => wss.once('listening', resolve));
    wss.on('connection', (ws, request) => {
      ws.on('error', (error) => {
        const record = observed.get(request.headers['x-fuzz-case']);
        if (record && record.error === null) record.error = error;
      });
      const id = request.headers['x-fuzz-case'];
      const record = id === undefined ? undefined : observed.get(id);
      if (record === undefined) {
        // Upgrade cases: echo, so the client sees the connection work.
        ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
        return;
      }
      record.connected = true;
      ws.on('message', (data, isBinary) =>
        record.events.push({ type: 'message', isBinary, data: Buffer.from(data) }),
      );
      ws.on('close', (code, reason) => {
        record.closeCode = code;
        record.closeReason = Buffer.from(reason);
        record.closed();
      });
    });
    return { wss, port: wss.address().port, options };
  };
  return {
    observed,
    // A short handshake timeout answers a request cut short (408) well within the case timeout.
    plain: await start({ maxPayload: 1000, handshakeTimeout: 2000 }),
    deflate: await start({
      maxPayload: 5000,
      perMessageDeflate: { threshold: 0 },
      handshakeTimeout: 2000,
    }),
    noServer: new WebSocketServer({ noServer: true }),
    noServerDeflate: new WebSocketServer({ noServer: true, perMessageDeflate: true }),
  };
}

async function stopServers(servers) {
  for (const server of [
    servers.plain.wss,
    servers.deflate.wss,
    servers.noServer,
    servers.noServerDeflate,
  ]) {
    for (const client of server.clients) client.terminate();
    await new Promise((resolve) => server.close(() => resolve()));
  }
}

/** A raw TCP connection to a server. */
class RawConnection {
  chunks = [];
  closed;
  #waiters = new Set();
  constructor(port) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.on('error', () => {});
    this.socket.on('data', (chunk) => {
      this.chunks.push(chunk);
      for (const waiter of this.#waiters) waiter();
    });
    this.closed = new Promise((resolve) => this.socket.once('close', resolve));
    this.socket.once('close', () => {
      for (const waiter of this.#waiters) waiter();
    });
  }
  get received() {
    return Buffer.concat(this.chunks);
  }
  /** Resolves once `done(received)` holds or the socket closed. */
  until(done) {
    return new Promise((resolve) => {
      const check = () => {
        if (done(this.received) || this.socket.destroyed) {
          this.#waiters.delete(check);
          resolve(this.received);
        }
      };
      this.#waiters.add(check);
      check();
    });
  }
}

function headEnd(bytes) {
  const end = bytes.indexOf('\r\n\r\n');
  return end === -1 ? -1 : end + 4;
}

/** Frames a server sent (unmasked), as far as they are complete. */
function serverFrames(bytes) {
  const frames = [];
  let pos = 0;
  while (bytes.length - pos >= 2) {
    let length = bytes[pos + 1] & 0x7f;
    let p = pos + 2;
    if (length === 126) {
      if (bytes.length - p < 2) break;
      length = bytes.readUInt16BE(p);
      p += 2;
    } else if (length === 127) {
      if (bytes.length - p < 8) break;
      length = Number(bytes.readBigUInt64BE(p));
      p += 8;
    }
    if (bytes.length - p < length) break;
    frames.push({ opcode: bytes[pos] & 0x0f, payload: bytes.subarray(p, p + length) });
    pos = p + length;
  }
  return frames;
}

/** A mutated frame stream sent after a valid handshake; the server must decode it as the model. */
async function runNetFrameCase(kase, servers, id) {
  const server = kase.deflate ? servers.deflate : servers.plain;
  const record = { events: [], error: null, closeCode: undefined, connected: false, closed: null };
  const closed = new Promise((resolve) => {
    record.closed = resolve;
  });
  servers.observed.set(id, record);
  const connection = new RawConnection(server.port);
  try {
    await withTimeout(
      new Promise((resolve) => connection.socket.once('connect', resolve)),
      NET_TIMEOUT_MS,
      'no TCP connection',
    );
    const offer =
      kase.config.deflate === null
        ? ''
        : `Sec-WebSocket-Extensions: permessage-deflate${kase.config.deflate.noContextTakeover ? '; client_no_context_takeover' : ''}\r\n`;
    const request = Buffer.from(
      `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${kase.key}\r\nSec-WebSocket-Version: 13\r\nX-Fuzz-Case: ${id}\r\n${offer}\r\n`,
    );
    const chunks = [...kase.chunks];
    // Sometimes the first bytes ride with the handshake (the server's `head`).
    connection.socket.write(
      kase.withHead && chunks.length > 0 ? Buffer.concat([request, chunks.shift()]) : request,
    );
    const head = await withTimeout(
      connection.until((bytes) => headEnd(bytes) !== -1),
      NET_TIMEOUT_MS,
      'no handshake answer',
    );
    const status = head.subarray(0, 12).toString();
    if (status !== 'HTTP/1.1 101')
      throw new Finding(
        'invariant',
        `valid handshake answered ${JSON.stringify(head.subarray(0, 40).toString())}`,
      );
    if (
      kase.config.deflate !== null &&
      !head.includes('Sec-WebSocket-Extensions: permessage-deflate')
    )
      throw new Finding('invariant', 'permessage-deflate not negotiated');
    for (const chunk of chunks) {
      if (connection.socket.destroyed) break;
      connection.socket.write(chunk);
      if (kase.pace) await new Promise((resolve) => setImmediate(resolve));
    }
    connection.socket.end();
    await withTimeout(
      Promise.all([closed, connection.closed]),
      NET_TIMEOUT_MS,
      'the connection did not end',
    );
    // The server saw what the model says (where the RFCs define it).
    const expected = kase.model.events;
    if (kase.model.undefinedFrom !== undefined) {
      if (record.error !== null) return String(record.error.closeCode);
      return record.events.length > 0 ? 'message' : 'incomplete';
    }
    const terminal = expected.at(-1);
    const messages = expected.filter((event) => event.type === 'message');
    const ok =
      record.events.length === messages.length &&
      record.events.every((event, i) => same(event, messages[i])) &&
      (terminal?.type === 'error'
        ? record.error !== null && terminal.closeCodes.includes(record.error.closeCode)
        : terminal?.type === 'close'
          ? record.error === null && record.closeCode === terminal.code
          : record.error === null && record.closeCode === 1006);
    if (!ok) {
      const finding = new Finding(
        'net-mismatch',
        `server: [${record.events.map(show).join(', ')}] error=${record.error?.code ?? record.error?.message ?? null} close=${record.closeCode}\n      model: [${expected.map(show).join(', ')}]`,
      );
      finding.known = knownBugOf(kase, record);
      throw finding;
    }
    // What reached the client: a close frame, when the server failed or echoed one, with the right code.
    const frames = serverFrames(connection.received.subarray(headEnd(connection.received)));
    const close = frames.find((frame) => frame.opcode === 8);
    if (close !== undefined) {
      const code = close.payload.length >= 2 ? close.payload.readUInt16BE(0) : 1005;
      const want =
        terminal?.type === 'error'
          ? terminal.closeCodes
          : terminal?.type === 'close'
            ? [terminal.code]
            : [];
      if (!want.includes(code))
        throw new Finding(
          'net-mismatch',
          `close frame ${code}, expected ${want.join('|') || 'none'}`,
        );
    } else if (terminal?.type === 'error' && kase.config.deflate === null) {
      throw new Finding(
        'net-mismatch',
        `no close frame after a ${terminal.closeCodes.join('|')} error`,
      );
    }
    if (record.error !== null) return String(record.error.closeCode);
    if (record.events.length > 0) return 'message';
    return terminal?.type === 'close' ? 'close' : 'incomplete';
  } finally {
    servers.observed.delete(id);
    connection.socket.destroy();
  }
}

/** A mutated raw upgrade request: an HTTP error, or a 101 after which a message is echoed. */
async function runNetUpgradeCase(kase, servers) {
  const server = kase.deflate ? servers.deflate : servers.plain;
  const connection = new RawConnection(server.port);
  try {
    await withTimeout(
      new Promise((resolve) => connection.socket.once('connect', resolve)),
      NET_TIMEOUT_MS,
      'no TCP connection',
    );
    connection.socket.write(kase.raw);
    if (!kase.keepOpen) connection.socket.end();
    const received = await withTimeout(
      connection.until((bytes) => headEnd(bytes) !== -1),
      NET_TIMEOUT_MS,
      `no answer to ${JSON.stringify(kase.raw.toString('latin1').slice(0, 120))}`,
    );
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(received.toString('latin1'))?.[1]);
    if (headEnd(received) === -1) {
      // The server closed without a word: only acceptable for bytes that are not HTTP at all.
      throw new Finding(
        'net-invariant',
        `connection closed without an HTTP answer to ${JSON.stringify(kase.raw.toString('latin1').slice(0, 120))}`,
      );
    }
    if (status >= 400 && status <= 499) {
      await withTimeout(
        connection.closed,
        NET_TIMEOUT_MS,
        `the connection stayed open after ${status}`,
      );
      return 'http4xx';
    }
    if (status >= 500 && status <= 599) {
      await withTimeout(
        connection.closed,
        NET_TIMEOUT_MS,
        `the connection stayed open after ${status}`,
      );
      return 'http5xx';
    }
    if (status !== 101)
      throw new Finding(
        'net-invariant',
        `unexpected answer ${received.subarray(0, 40).toString()}`,
      );
    if (connection.socket.writableEnded) {
      // We half-closed after the request: the server ends too, without a message.
      await withTimeout(
        connection.closed,
        NET_TIMEOUT_MS,
        'the connection did not end after a 101 and EOF',
      );
      return 'close';
    }
    const start = headEnd(received);
    connection.socket.write(
      encodeFrame({ opcode: 1, payload: Buffer.from('fuzz'), maskKey: Buffer.from([9, 8, 7, 6]) }),
    );
    const bytes = await withTimeout(
      connection.until((all) => serverFrames(all.subarray(start)).length > 0),
      NET_TIMEOUT_MS,
      'no echo after a 101',
    );
    const [frame] = serverFrames(bytes.subarray(start));
    if (frame === undefined)
      throw new Finding('net-invariant', 'connection closed after a 101 without an echo');
    if (frame.opcode === 8) {
      const code = frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005;
      if (code === 1011) return '1011';
      throw new Finding('net-invariant', `close ${code} instead of an echo`);
    }
    if (frame.opcode !== 1) throw new Finding('net-invariant', `echo with opcode ${frame.opcode}`);
    return 'message';
  } finally {
    connection.socket.destroy();
  }
}

/** The request's bytes, sometimes damaged; `damaged` says whether they were. */
function upgradeRaw(rng, request) {
  let damaged = false;
  let text = `${request.method} / HTTP/1.1\r\n`;
  for (const [name, value] of request.headers) text += `${name}: ${value}\r\n`;
  let raw = Buffer.from(`${text}\r\n`, 'latin1');
  if (rng.chance(0.15)) {
    damaged = true;
    // Byte-level damage to the request itself.
    for (let n = rng.range(1, 3); n > 0; n--) {
      const at = rng.int(raw.length);
      const kind = rng.int(3);
      if (kind === 0) raw[at] ^= 1 << rng.int(8);
      else if (kind === 1)
        raw = Buffer.concat([raw.subarray(0, at), raw.subarray(at + rng.range(1, 4))]);
      else raw = Buffer.concat([raw.subarray(0, at), rng.bytes(rng.range(1, 3)), raw.subarray(at)]);
    }
  }
  return { raw, damaged };
}

// ---- the run ----------------------------------------------------------------------------------

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Finding('hang', `${what} (${ms} ms)`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function waitUntil(condition, ms) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Finding('hang', `nothing happened within ${ms} ms`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const FLOOD_EVERY = 250_000;
const FLOOD_BUDGET_MS = 1500;

/**
 * A flood case: a compressed frame, then a big binary frame in one-byte chunks that queue up
 * while the first frame inflates. Parsing the queue must take linear time (about 1.5 us per
 * chunk): it runs alone, with a time budget.
 */
async function runFloodCase(kase) {
  const params = deflateParams({ noContextTakeover: false, windowBits: 15 });
  const codec = new PerMessageDeflate(params, false, { threshold: 0 }, 'permessage-deflate');
  const events = [];
  const receiver = new Receiver(
    { isServer: false, maxPayload: 0, skipUTF8Validation: false, decompressor: codec },
    sinkInto(events),
  );
  try {
    receiver.write(
      encodeFrame({ opcode: 1, rsv: 4, payload: compressMessage(Buffer.from('hello')) }),
    );
    const body = encodeFrame({ opcode: 2, payload: Buffer.alloc(kase.size, 7) });
    for (let i = 0; i < body.length; i++) receiver.write(body.subarray(i, i + 1));
    const start = performance.now();
    await withTimeout(new Promise((resolve) => receiver.drain(resolve)), 120_000, 'flood drain');
    const elapsed = Math.round(performance.now() - start);
    checkEvents(events, { maxPayload: 0, skipUTF8Validation: false });
    if (events.length !== 2 || events[1].data?.length !== kase.size)
      throw new Finding('mismatch', `flood: [${events.map(show).join(', ')}]`);
    if (elapsed > FLOOD_BUDGET_MS) {
      const finding = new Finding(
        'hang',
        `parsing ${body.length} one-byte chunks queued during an inflate took ${elapsed} ms (budget ${FLOOD_BUDGET_MS} ms)`,
      );
      // Was a bug: fuzz-regressions.test.ts "parses chunks queued during an inflate in linear time".
      throw finding;
    }
    return 'message';
  } finally {
    receiver.stop();
    codec.close();
  }
}

/** What case number `index` is, and its input. */
function makeCase(seed, index, options, netBudget) {
  const rng = new Rng(seed, index);
  if (rng.int(FLOOD_EVERY) === 0) return { type: 'flood', size: rng.range(100_000, 150_000) };
  const kind = rng.weighted([
    [88, 'frames'],
    [12, 'handshake'],
  ]);
  const net = rng.int(options.netEvery) === 0 && netBudget.left > 0;
  if (kind === 'frames') {
    if (!net) return { type: 'frames', ...frameCase(rng) };
    netBudget.left--;
    const deflate = rng.chance(0.4);
    const fixed = {
      isServer: true,
      deflate: deflate ? { noContextTakeover: rng.chance(0.5), windowBits: 15 } : null,
      maxPayload: deflate ? 5000 : 1000,
      skipUTF8Validation: false,
    };
    return {
      type: 'net-frames',
      deflate,
      key: rng.bytes(16).toString('base64'),
      withHead: rng.chance(0.3),
      pace: rng.chance(0.3),
      ...frameCase(rng, fixed),
    };
  }
  const request = generateRequest(rng);
  if (!net) return { type: 'handshake', deflate: rng.chance(0.5), request };
  netBudget.left--;
  const deflate = rng.chance(0.5);
  const keepOpen = rng.chance(0.8);
  const { raw, damaged } = upgradeRaw(rng, request);
  // Damaged bytes may leave the server waiting for the rest of a head: end ours then.
  return { type: 'net-upgrade', deflate, request, keepOpen: keepOpen && !damaged, raw };
}

function runCase(kase, servers, id) {
  switch (kase.type) {
    case 'frames':
      return runFrameCase(kase);
    case 'handshake':
      return runHandshakeCase(kase, servers);
    case 'net-frames':
      return runNetFrameCase(kase, servers, id);
    case 'flood':
      return runFloodCase(kase);
    default:
      return runNetUpgradeCase(kase, servers);
  }
}

function describeCase(kase) {
  const lines = [`type: ${kase.type}`];
  if (kase.size !== undefined)
    lines.push(`binary message of ${kase.size} bytes in one-byte chunks`);
  if (kase.config !== undefined) {
    lines.push(`config: ${JSON.stringify(kase.config)}`);
    lines.push(`mutations: ${kase.mutations.join(', ') || 'none'}`);
    lines.push(
      `stream (${kase.bytes.length} bytes, ${kase.chunks.length} chunks): ${kase.bytes.toString('hex')}`,
    );
    lines.push(`model: [${kase.model.events.map(show).join(', ')}]`);
  }
  if (kase.request !== undefined) {
    lines.push(
      `method: ${kase.request.method}, mutations: ${kase.request.mutations.join(', ') || 'none'}`,
    );
    lines.push(`headers: ${JSON.stringify(kase.request.headers)}`);
  }
  if (kase.raw !== undefined) lines.push(`raw: ${JSON.stringify(kase.raw.toString('latin1'))}`);
  return lines.join('\n  ');
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const seedText = options.seed ?? String(Math.floor(Math.random() * 2 ** 32));
  const seed = /^\d+$/.test(seedText) ? Number(seedText) >>> 0 : hashSeed(seedText);
  const started = Date.now();
  const deadline = started + options.seconds * 1000;
  const OUTCOMES = [
    'message',
    '1002',
    '1007',
    '1009',
    'http4xx',
    'http5xx',
    '1011',
    'close',
    'incomplete',
  ];
  const outcomes = Object.fromEntries(OUTCOMES.map((name) => [name, 0]));
  const findings = new Map(); // signature -> { count, first: [...] }
  let crashes = 0;
  let hangs = 0;
  let known = 0;
  let cases = 0;
  let netCases = 0;
  let currentCases = new Set();

  const record = (index, kase, error) => {
    const finding =
      error instanceof Finding
        ? error
        : Object.assign(new Finding('exception', describeError(error)), { cause: error });
    if (finding.known && options.ignoreKnown) {
      known++;
      return;
    }
    if (finding.kind === 'hang') hangs++;
    else crashes++;
    const signature =
      finding.known ??
      `${finding.kind}: ${finding.message
        .split('\n')[0]
        .replace(/[0-9a-f]{8,}/g, '…')
        .replace(/\d+/g, '#')
        .slice(0, 60)}`;
    let entry = findings.get(signature);
    if (entry === undefined) {
      entry = { count: 0, printed: 0 };
      findings.set(signature, entry);
    }
    entry.count++;
    if (entry.printed < 2 || options.verbose) {
      entry.printed++;
      console.log(
        `fuzz: ${finding.kind === 'hang' ? 'HANG' : 'CRASH'} case ${index} (${finding.kind}${finding.known ? `, ${finding.known}` : ''})\n  ${finding.message}\n  ${describeCase(kase)}\n  replay: node packages/core/fuzz/fuzz.mjs --seed ${seed} --case ${index}${kase.type.startsWith('net') ? '' : ' --net-max 0'} --verbose`,
      );
    }
  };

  process.on('uncaughtException', (error) => {
    crashes++;
    console.log(
      `fuzz: CRASH uncaught exception while cases ${[...currentCases].slice(0, 10).join(', ')} ran\n  ${describeError(error)}`,
    );
  });
  process.on('unhandledRejection', (error) => {
    crashes++;
    console.log(
      `fuzz: CRASH unhandled rejection while cases ${[...currentCases].slice(0, 10).join(', ')} ran\n  ${describeError(error)}`,
    );
  });

  const servers = await startServers();
  console.log(
    `fuzz: seed ${seed}, up to ${options.cases} cases in ${options.seconds} s, 1 in ${options.netEvery} over loopback (at most ${options.netMax})`,
  );

  const netBudget = { left: options.netMax };
  const inflight = new Set();
  let netInflight = 0;
  const launch = (index, kase) => {
    currentCases.add(index);
    let result;
    try {
      result = runCase(kase, servers, `${seed}-${index}`);
    } catch (error) {
      currentCases.delete(index);
      record(index, kase, error);
      return;
    }
    if (!(result instanceof Promise)) {
      currentCases.delete(index);
      outcomes[result]++;
      return;
    }
    const isNet = kase.type.startsWith('net');
    if (isNet) {
      netInflight++;
      netCases++;
    }
    const promise = result
      .then(
        (outcome) => {
          outcomes[outcome]++;
        },
        (error) => record(index, kase, error),
      )
      .finally(() => {
        inflight.delete(promise);
        currentCases.delete(index);
        if (isNet) netInflight--;
      });
    inflight.add(promise);
  };

  if (options.only !== undefined) {
    const budget = { left: options.netMax > 0 ? Number.POSITIVE_INFINITY : 0 };
    const kase = makeCase(seed, options.only, options, budget);
    if (options.verbose) console.log(`fuzz: case ${options.only}\n  ${describeCase(kase)}`);
    launch(options.only, kase);
    await Promise.all(inflight);
    cases = 1;
  } else {
    for (let index = 0; index < options.cases; index++) {
      if ((index & 63) === 0) {
        if (Date.now() > deadline) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
      let kase;
      try {
        kase = makeCase(seed, index, options, netBudget);
      } catch (error) {
        console.log(`fuzz: the generator failed on case ${index}: ${describeError(error)}`);
        crashes++;
        continue;
      }
      // A flood case measures time: it runs alone.
      if (kase.type === 'flood') await Promise.all(inflight);
      launch(index, kase);
      if (kase.type === 'flood') await Promise.all(inflight);
      cases++;
      while (inflight.size >= 64 || netInflight >= 8) await Promise.race(inflight);
    }
    await Promise.all(inflight);
  }
  await stopServers(servers);

  for (const [signature, { count }] of findings) console.log(`fuzz: ${count} x ${signature}`);
  if (known > 0) console.log(`fuzz: ${known} cases hit known bugs (ignored with --ignore-known)`);
  const seconds = Math.round((Date.now() - started) / 1000);
  const list = OUTCOMES.map((name) => `${name}=${outcomes[name]}`).join(', ');
  console.log(
    `fuzz: ${cases} cases in ${seconds} s, outcomes: ${list}, ${crashes} crashes, ${hangs} hangs`,
  );
  if (options.verbose && netCases > 0) console.error(`fuzz: ${netCases} loopback cases`);
  process.exitCode = crashes > 0 || hangs > 0 ? 1 : 0;
  currentCases = new Set();
  // Everything is closed: the process ends by itself. If a handle leaked, say which.
  setTimeout(() => {
    console.error(
      `fuzz: still running 10 s after the summary: ${process.getActiveResourcesInfo().join(', ')}`,
    );
    process.exit(process.exitCode || 3);
  }, 10_000).unref();
}

await main();
