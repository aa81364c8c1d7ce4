/**
 * Property-based tests of everything that parses peer input: the frame parser (with and
 * without a real permessage-deflate inflater), the UTF-8 stream validator, the handshake
 * check and the Sec-WebSocket-Extensions parser and negotiation. weft is compared with the
 * independent model in fuzz/reference.mjs. The long, seeded fuzz is fuzz/fuzz.mjs.
 *
 * Bugs these properties found are pinned down in fuzz-regressions.test.ts.
 */
import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compressFragment,
  compressMessage,
  encodeFrame,
  MALFORMED_UTF8,
  referenceDecode,
  Utf8Prefix,
  validUpgradeRequest,
} from '../fuzz/reference.mjs';
import { type ExtensionOffer, formatExtension, parseExtensions } from '../src/extensions/header.js';
import {
  acceptOffers,
  acceptResponse,
  clientOffer,
  type DeflateParams,
  NegotiationError,
  PerMessageDeflate,
  type PerMessageDeflateOptions,
} from '../src/extensions/permessage-deflate.js';
import { checkUpgradeRequest } from '../src/handshake/upgrade-request.js';
import { buildFrame } from '../src/protocol/frame.js';
import { Utf8StreamValidator } from '../src/protocol/utf8.js';
import {
  checkInvariants,
  expectSameAsReference,
  type Observed,
  type RunOptions,
  referenceOptions,
  runReceiver,
  splitAt,
} from './fuzz-harness.js';

// ---- shared generators ------------------------------------------------------------------

/** Text with every UTF-8 length: ASCII, 2- and 3-byte characters, and astral (4-byte) ones. */
const textArb = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 24 }),
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc
    .array(
      fc.oneof(
        fc.integer({ min: 0x10000, max: 0x10ffff }),
        fc.integer({ min: 0x80, max: 0x7ff }),
        fc.integer({ min: 0x800, max: 0xd7ff }),
        fc.integer({ min: 0x20, max: 0x7e }),
      ),
      { maxLength: 16 },
    )
    .map((points) => String.fromCodePoint(...points)),
);
const textBytesArb = textArb.map((text) => Buffer.from(text));
const bytesArb = (maxLength: number) =>
  fc.uint8Array({ maxLength }).map((bytes) => Buffer.from(bytes));
const maskKeyArb = fc.uint8Array({ minLength: 4, maxLength: 4 });

/** Valid text with one malformed sequence somewhere in it. */
const badTextArb = fc
  .tuple(textBytesArb, fc.constantFrom(...MALFORMED_UTF8), textBytesArb)
  .map(([a, bad, b]) => Buffer.concat([a, Buffer.from(bad), b]));

const cutsArb = fc.oneof(
  { weight: 4, arbitrary: fc.array(fc.nat(), { maxLength: 8 }) },
  { weight: 1, arbitrary: fc.constant([...Array(400).keys()]) }, // byte by byte (streams are short)
);

/** maxPayload: none, small (so 1009 happens), or ws's default. */
const maxPayloadArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant(0) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 200 }) },
  { weight: 2, arbitrary: fc.constant(100 * 1024 * 1024) },
);

/** The same parameters both ways. */
function deflateParams(windowBits: number, noContextTakeover = true): DeflateParams {
  return {
    serverNoContextTakeover: noContextTakeover,
    clientNoContextTakeover: noContextTakeover,
    serverMaxWindowBits: windowBits,
    clientMaxWindowBits: windowBits,
  };
}

async function checkAgainstReference(
  stream: Buffer,
  cuts: readonly number[],
  options: RunOptions,
  yields: boolean[] = [],
): Promise<Observed[]> {
  const expected = referenceDecode(stream, referenceOptions(options));
  const result = await runReceiver(splitAt(stream, cuts), options, yields);
  checkInvariants(result, options);
  expectSameAsReference(result.events, expected.events, expected.undefinedFrom);
  return result.events;
}

// ---- 1. arbitrary byte streams -----------------------------------------------------------

/** Frames that are mostly well-formed, so the parser gets past the first header. */
function frameishArb(isServer: boolean, deflate: boolean) {
  const payloads: Array<fc.WeightedArbitrary<Buffer>> = [
    { weight: 3, arbitrary: bytesArb(40) },
    { weight: 3, arbitrary: textBytesArb },
    { weight: 2, arbitrary: badTextArb },
    {
      weight: 2,
      arbitrary: fc
        .tuple(
          fc.oneof(
            fc.integer({ min: 0, max: 0xffff }),
            fc.constantFrom(999, 1000, 1004, 1005, 1006, 1012, 1014, 1015, 2999, 3000, 4999, 5000),
          ),
          fc.oneof(textBytesArb, badTextArb),
        )
        .map(([code, reason]) => {
          const payload = Buffer.alloc(2 + reason.length);
          payload.writeUInt16BE(code, 0);
          reason.copy(payload, 2);
          return payload;
        }),
    },
    { weight: 1, arbitrary: fc.integer({ min: 120, max: 300 }).map((n) => Buffer.alloc(n, 0x61)) },
  ];
  if (deflate) {
    payloads.push(
      {
        weight: 4,
        arbitrary: fc.oneof(textBytesArb, badTextArb).map((data) => compressMessage(data)),
      },
      { weight: 2, arbitrary: textBytesArb.map((data) => compressFragment(data)) },
    );
  }
  return fc
    .record({
      fin: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, fc.constant(false)),
      rsv: fc.oneof(
        { weight: 20, arbitrary: fc.constant(0) },
        { weight: deflate ? 10 : 1, arbitrary: fc.constant(4) },
        { weight: 1, arbitrary: fc.integer({ min: 0, max: 7 }) },
      ),
      opcode: fc.oneof(
        { weight: 8, arbitrary: fc.constantFrom(1, 2) },
        { weight: 4, arbitrary: fc.constant(0) },
        { weight: 4, arbitrary: fc.constantFrom(8, 9, 10) },
        { weight: 1, arbitrary: fc.integer({ min: 0, max: 15 }) },
      ),
      masked: fc.oneof({ weight: 12, arbitrary: fc.constant(isServer) }, fc.constant(!isServer)),
      key: maskKeyArb,
      payload: fc.oneof(...payloads),
      length: fc.oneof(
        { weight: 12, arbitrary: fc.constant(undefined) },
        fc.record({ lengthBits: fc.constant(7 as const), declaredLength: fc.nat(127) }),
        fc.record({ lengthBits: fc.constant(16 as const), declaredLength: fc.nat(0xffff) }),
        fc.record({
          lengthBits: fc.constant(64 as const),
          declaredLength: fc.oneof(
            fc.bigInt(0n, 2n ** 64n - 1n),
            fc.constantFrom(
              0n,
              5n,
              126n,
              65536n,
              2n ** 53n - 1n,
              2n ** 53n,
              2n ** 63n - 1n,
              2n ** 63n,
            ),
          ),
        }),
      ),
    })
    .map((frame) =>
      encodeFrame({
        fin: frame.fin,
        rsv: frame.rsv,
        opcode: frame.opcode,
        payload: frame.payload,
        maskKey: frame.masked ? frame.key : null,
        ...frame.length,
      }),
    );
}

/** A stream to feed: raw bytes, or a valid stream with junk frames spliced in and a few mutations. */
type StreamRecipe =
  | Buffer
  | { spec: StreamSpec; junk: Array<[number, Buffer]>; mutations: Mutation[]; tail: Buffer };

function streamArb(isServer: boolean, deflate: boolean): fc.Arbitrary<StreamRecipe> {
  return fc.oneof(
    { weight: 1, arbitrary: bytesArb(64) },
    {
      weight: 4,
      arbitrary: fc
        .tuple(fc.array(frameishArb(isServer, deflate), { maxLength: 6 }), bytesArb(4))
        .map(([frames, tail]) => Buffer.concat([...frames, tail])),
    },
    {
      weight: 5,
      arbitrary: fc.record({
        spec: streamSpecArb(deflate),
        junk: fc.array(fc.tuple(fc.nat(), frameishArb(isServer, deflate)), { maxLength: 2 }),
        mutations: fc.array(mutationArb(), { maxLength: 3 }),
        tail: bytesArb(3),
      }),
    },
  );
}

/** The length of the header a frame's first bytes announce (at most the frame). */
function headerLengthOf(frame: Buffer): number {
  const length7 = (frame[1] ?? 0) & 0x7f;
  const base = length7 === 126 ? 4 : length7 === 127 ? 10 : 2;
  return Math.min(frame.length, base + ((frame[1] ?? 0) & 0x80 ? 4 : 0));
}

async function materialize(recipe: StreamRecipe, isServer: boolean): Promise<Buffer> {
  if (Buffer.isBuffer(recipe)) return recipe;
  const built = await buildStream({ ...recipe.spec, builder: 'model' }, isServer, 15);
  const slices = built.frames.map((frame) => ({
    bytes: built.bytes.subarray(frame.start, frame.end),
    headerLength: frame.headerLength,
  }));
  for (const [at, junk] of recipe.junk) {
    slices.splice(at % (slices.length + 1), 0, { bytes: junk, headerLength: headerLengthOf(junk) });
  }
  let bytes: Buffer = Buffer.concat([...slices.map((slice) => slice.bytes), recipe.tail]);
  let start = 0;
  const frames = slices.map((slice) => {
    const frame = { start, end: start + slice.bytes.length, headerLength: slice.headerLength };
    start = frame.end;
    return frame;
  });
  for (const mutation of recipe.mutations) {
    if (bytes.length === 0) break;
    const frame =
      mutation.kind === 'length' ? frames[mutation.frame % Math.max(frames.length, 1)] : undefined;
    if (
      mutation.kind === 'length' &&
      (frame === undefined || frame.start + frame.headerLength > bytes.length)
    )
      continue;
    [bytes] = mutate(bytes, frames, mutation);
  }
  return bytes;
}

describe('Receiver on arbitrary byte streams', () => {
  it('never throws and decodes exactly as the reference model (no extension)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.boolean().chain((isServer) =>
          fc.record({
            isServer: fc.constant(isServer),
            stream: streamArb(isServer, false),
            cuts: cutsArb,
            maxPayload: maxPayloadArb,
            maxFragments: fc.oneof(
              { weight: 4, arbitrary: fc.constant(0) },
              fc.integer({ min: 1, max: 4 }),
            ),
            skipUTF8Validation: fc.oneof(
              { weight: 5, arbitrary: fc.constant(false) },
              fc.constant(true),
            ),
          }),
        ),
        async ({ isServer, stream, cuts, maxPayload, maxFragments, skipUTF8Validation }) => {
          const bytes = await materialize(stream, isServer);
          const options = { isServer, maxPayload, maxFragments, skipUTF8Validation };
          await checkAgainstReference(bytes, cuts, options);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('never throws and decodes exactly as the reference model (real permessage-deflate inflater)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.boolean().chain((isServer) =>
          fc.record({
            isServer: fc.constant(isServer),
            stream: streamArb(isServer, true),
            cuts: cutsArb,
            yields: fc.array(fc.boolean(), { maxLength: 4 }),
            maxPayload: maxPayloadArb,
            windowBits: fc.oneof(
              { weight: 4, arbitrary: fc.constant(15) },
              fc.integer({ min: 8, max: 15 }),
            ),
            noContextTakeover: fc.boolean(),
          }),
        ),
        async ({ isServer, stream, cuts, yields, maxPayload, windowBits, noContextTakeover }) => {
          const deflate = deflateParams(windowBits, noContextTakeover);
          const bytes = await materialize(stream, isServer);
          await checkAgainstReference(bytes, cuts, { isServer, maxPayload, deflate }, yields);
        },
      ),
      { numRuns: 200 },
    );
  });
});

// ---- 2. valid frame sequences round-trip -------------------------------------------------

interface ControlSpec {
  after: number;
  opcode: 0x9 | 0xa;
  payload: Buffer;
}
interface MessageSpec {
  isBinary: boolean;
  data: Buffer;
  cuts: readonly number[];
  /** How a compressed message is cut into frames: its deflate stream anywhere, or at fragment boundaries. */
  compress: 'none' | 'whole' | 'aligned';
  controls: ControlSpec[];
  keys: Uint8Array[];
}
interface StreamSpec {
  messages: MessageSpec[];
  close: { code: number; reason: Buffer } | null;
  closeKey: Uint8Array;
  /** Build frames with weft's buildFrame (random mask keys) or the model's encoder (generated keys). */
  builder: 'weft' | 'model';
}

const controlArb = fc.record({
  after: fc.nat(),
  opcode: fc.constantFrom(0x9 as const, 0xa as const),
  payload: fc.oneof(
    bytesArb(125),
    textBytesArb.map((text) => text.subarray(0, 125)),
  ),
});

function messageArb(deflate: boolean) {
  return fc
    .record({
      isBinary: fc.boolean(),
      binary: fc.oneof(
        { weight: 6, arbitrary: bytesArb(64) },
        {
          weight: 1,
          arbitrary: fc
            .oneof(fc.integer({ min: 126, max: 2000 }), fc.integer({ min: 65_536, max: 70_000 }))
            .map((n) => Buffer.alloc(n, 7)),
        },
      ),
      text: fc.oneof(
        { weight: 6, arbitrary: textBytesArb },
        {
          weight: 1,
          arbitrary: fc
            .tuple(textArb, fc.integer({ min: 10, max: 400 }))
            .map(([text, times]) => Buffer.from(`${text}€😀`.repeat(times))),
        },
      ),
      cuts: fc.array(fc.nat(), { maxLength: 5 }),
      compress: deflate
        ? fc.constantFrom('none' as const, 'whole' as const, 'aligned' as const)
        : fc.constant('none' as const),
      controls: fc.array(controlArb, { maxLength: 3 }),
      keys: fc.array(maskKeyArb, { minLength: 12, maxLength: 12 }),
    })
    .map(
      ({ isBinary, binary, text, ...rest }): MessageSpec => ({
        isBinary,
        data: isBinary ? binary : text,
        ...rest,
      }),
    );
}

function streamSpecArb(deflate: boolean): fc.Arbitrary<StreamSpec> {
  return fc.record({
    messages: fc.array(messageArb(deflate), { maxLength: 5 }),
    close: fc.option(
      fc.record({
        code: fc.oneof(
          fc.constantFrom(1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014),
          fc.integer({ min: 3000, max: 4999 }),
        ),
        reason: textBytesArb.filter((reason) => reason.length <= 123),
      }),
      { nil: null },
    ),
    closeKey: maskKeyArb,
    builder: fc.constantFrom('weft' as const, 'model' as const),
  });
}

/** Splits `data` into 1-6 fragments at the given cuts (empty fragments included). */
function fragmentsOf(data: Buffer, cuts: readonly number[]): Buffer[] {
  const points = cuts.map((cut) => cut % (data.length + 1)).sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let start = 0;
  for (const point of [...points, data.length]) {
    pieces.push(data.subarray(start, point));
    start = point;
  }
  return pieces;
}

interface FrameRecord {
  start: number;
  end: number;
  headerLength: number;
}

/**
 * The bytes a peer sends for `spec` and the events the receiver must report, frame by frame,
 * with where each frame starts (for the mutation tests). `compressed(data, fin)` compresses a
 * fragment of a message that goes through `compress: 'weft'`, when given.
 */
async function buildStream(
  spec: StreamSpec,
  isServer: boolean,
  windowBits: number,
  compressor?: (data: Buffer, fin: boolean) => Promise<Buffer>,
): Promise<{ bytes: Buffer; expected: Observed[]; frames: FrameRecord[] }> {
  const chunks: Buffer[] = [];
  const expected: Observed[] = [];
  const frames: FrameRecord[] = [];
  let offset = 0;
  let keyIndex = 0;
  const emit = (opcode: number, fin: boolean, rsv1: boolean, payload: Buffer, key: Uint8Array) => {
    const frame =
      spec.builder === 'weft'
        ? buildFrame(payload, { opcode, fin, rsv1, mask: isServer })
        : encodeFrame({ opcode, fin, rsv: rsv1 ? 4 : 0, payload, maskKey: isServer ? key : null });
    const bytes = Buffer.isBuffer(frame) ? frame : Buffer.concat(frame);
    frames.push({
      start: offset,
      end: offset + bytes.length,
      headerLength: bytes.length - payload.length,
    });
    chunks.push(bytes);
    offset += bytes.length;
    keyIndex++;
  };
  for (const message of spec.messages) {
    const plain = fragmentsOf(message.data, message.cuts);
    let payloads: Buffer[];
    let compressed = message.compress !== 'none';
    if (compressor !== undefined && compressed) {
      payloads = [];
      for (const [index, piece] of plain.entries()) {
        payloads.push(await compressor(piece, index === plain.length - 1));
      }
    } else if (message.compress === 'whole') {
      payloads = fragmentsOf(compressMessage(message.data, windowBits), message.cuts);
    } else if (message.compress === 'aligned') {
      payloads = plain.map((piece, index) =>
        index === plain.length - 1
          ? compressMessage(piece, windowBits)
          : compressFragment(piece, windowBits),
      );
    } else {
      payloads = plain;
      compressed = false;
    }
    for (const [index, payload] of payloads.entries()) {
      const fin = index === payloads.length - 1;
      const opcode = index > 0 ? 0 : message.isBinary ? 2 : 1;
      emit(opcode, fin, compressed && index === 0, payload, message.keys[keyIndex % 12]!);
      if (fin) {
        const { isBinary, data } = message;
        expected.push({ type: 'message', isBinary, data, length: data.length });
      }
      for (const control of message.controls) {
        if (control.after % payloads.length !== index) continue;
        emit(control.opcode, true, false, control.payload, message.keys[keyIndex % 12]!);
        expected.push({ type: control.opcode === 0x9 ? 'ping' : 'pong', data: control.payload });
      }
    }
  }
  if (spec.close !== null) {
    const payload = Buffer.alloc(2 + spec.close.reason.length);
    payload.writeUInt16BE(spec.close.code, 0);
    spec.close.reason.copy(payload, 2);
    emit(0x8, true, false, payload, spec.closeKey);
    expected.push({ type: 'close', code: spec.close.code, reason: spec.close.reason });
  }
  return { bytes: Buffer.concat(chunks), expected, frames };
}

function expectEvents(observed: Observed[], expected: Observed[]): void {
  const show = (event: Observed) =>
    event.type === 'error'
      ? `error ${event.closeCode}`
      : `${event.type} ${('data' in event ? event.data : event.reason).toString('hex')}`;
  expect(observed.map(show)).toEqual(expected.map(show));
}

describe('valid frame sequences round-trip', () => {
  it('decode to exactly the generated messages and control frames (no extension)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        streamSpecArb(false),
        cutsArb,
        fc.oneof(fc.constant(0), fc.nat(200)),
        async (isServer, spec, cuts, slack) => {
          const { bytes, expected } = await buildStream(spec, isServer, 15);
          const largest = Math.max(0, ...spec.messages.map((message) => message.data.length));
          const options = { isServer, maxPayload: slack === 0 ? largest || 1 : largest + slack };
          const result = await runReceiver(splitAt(bytes, cuts), options);
          checkInvariants(result, options);
          expectEvents(result.events, expected);
        },
      ),
      { numRuns: 250 },
    );
  });

  it('decode to exactly the generated messages through weft compressor and inflater (any parameters)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        streamSpecArb(true),
        cutsArb,
        fc.array(fc.boolean(), { maxLength: 4 }),
        fc.record({
          serverNoContextTakeover: fc.boolean(),
          clientNoContextTakeover: fc.boolean(),
          serverMaxWindowBits: fc.integer({ min: 8, max: 15 }),
          clientMaxWindowBits: fc.integer({ min: 8, max: 15 }),
        }),
        async (isServer, spec, cuts, yields, params) => {
          // The peer's compressor: weft's own codec on the other side, context kept as negotiated.
          const sender = new PerMessageDeflate(
            params,
            !isServer,
            { threshold: 0 },
            'permessage-deflate',
          );
          const compress = (data: Buffer, fin: boolean) =>
            new Promise<Buffer>((resolve, reject) => {
              const now = sender.compress(data, fin, (error, out) =>
                error ? reject(error) : resolve(out!),
              );
              if (now instanceof Error) reject(now);
              else if (now !== undefined) resolve(now);
            });
          try {
            const { bytes, expected } = await buildStream(spec, isServer, 15, compress);
            const options = { isServer, maxPayload: 0, deflate: params };
            const result = await runReceiver(splitAt(bytes, cuts), options, yields);
            checkInvariants(result, options);
            expectEvents(result.events, expected);
          } finally {
            sender.close();
          }
        },
      ),
      { numRuns: 80 },
    );
  });

  it('decode to exactly the generated messages with one-shot and fragment-aligned deflate streams', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        streamSpecArb(true),
        cutsArb,
        fc.array(fc.boolean(), { maxLength: 4 }),
        fc.boolean(),
        async (isServer, spec, cuts, yields, takeover) => {
          // Independently compressed messages decode with or without context takeover.
          const { bytes, expected } = await buildStream(spec, isServer, 15);
          const deflate = deflateParams(15, !takeover);
          const options = { isServer, maxPayload: 0, deflate };
          const result = await runReceiver(splitAt(bytes, cuts), options, yields);
          checkInvariants(result, options);
          expectEvents(result.events, expected);
        },
      ),
      { numRuns: 80 },
    );
  });
});

describe('pausing the receiver', () => {
  it('changes nothing: a listener that pauses and resumes it sees the same events', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.boolean().chain((deflate) => fc.tuple(fc.constant(deflate), streamSpecArb(deflate))),
        cutsArb,
        fc.array(fc.boolean(), { minLength: 1, maxLength: 6 }),
        fc.boolean(),
        async (isServer, [deflate, spec], cuts, pauses, takeover) => {
          const { bytes, expected } = await buildStream(spec, isServer, 15);
          const options: RunOptions = {
            isServer,
            maxPayload: 0,
            pauses,
            ...(deflate ? { deflate: deflateParams(15, !takeover) } : {}),
          };
          const result = await runReceiver(splitAt(bytes, cuts), options);
          checkInvariants(result, options);
          expectEvents(result.events, expected);
        },
      ),
      { numRuns: 100 },
    );
  });
});

// ---- 3. single mutations of valid streams ------------------------------------------------

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'insert'; at: number; byte: number }
  | { kind: 'delete'; at: number; count: number }
  | { kind: 'length'; frame: number; bits: 7 | 16 | 64; value: bigint };

const mutationArb = (): fc.Arbitrary<Mutation> =>
  fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: fc.nat(255) }),
    fc.record({
      kind: fc.constant('delete' as const),
      at: fc.nat(),
      count: fc.integer({ min: 1, max: 3 }),
    }),
    fc.oneof(
      fc.record({
        kind: fc.constant('length' as const),
        frame: fc.nat(),
        bits: fc.constant(7 as const),
        value: fc.bigInt(0n, 125n),
      }),
      fc.record({
        kind: fc.constant('length' as const),
        frame: fc.nat(),
        bits: fc.constant(16 as const),
        value: fc.bigInt(0n, 0xffffn),
      }),
      fc.record({
        kind: fc.constant('length' as const),
        frame: fc.nat(),
        bits: fc.constant(64 as const),
        value: fc.oneof(fc.bigInt(0n, 0xffffffffn), fc.bigInt(0n, 2n ** 64n - 1n)),
      }),
    ),
  );

/** Applies one mutation; returns the new bytes and the first offset it changed. */
function mutate(bytes: Buffer, frames: FrameRecord[], mutation: Mutation): [Buffer, number] {
  const out = Buffer.from(bytes);
  switch (mutation.kind) {
    case 'flip': {
      const at = mutation.at % out.length;
      out[at]! ^= 1 << mutation.bit;
      return [out, at];
    }
    case 'insert': {
      const at = mutation.at % (out.length + 1);
      return [
        Buffer.concat([out.subarray(0, at), Buffer.from([mutation.byte]), out.subarray(at)]),
        at,
      ];
    }
    case 'delete': {
      const at = mutation.at % out.length;
      return [Buffer.concat([out.subarray(0, at), out.subarray(at + mutation.count)]), at];
    }
    case 'length': {
      const frame = frames[mutation.frame % frames.length]!;
      const b0 = out[frame.start]!;
      const maskBit = out[frame.start + 1]! & 0x80;
      const masked = maskBit !== 0;
      const oldLength = frame.headerLength - (masked ? 4 : 0);
      const key = out.subarray(frame.start + oldLength, frame.start + frame.headerLength);
      const head = [b0];
      if (mutation.bits === 7) head.push(maskBit | Number(mutation.value));
      else if (mutation.bits === 16) {
        const value = Number(mutation.value);
        head.push(maskBit | 126, value >>> 8, value & 0xff);
      } else {
        const big = Buffer.alloc(8);
        big.writeBigUInt64BE(mutation.value);
        head.push(maskBit | 127, ...big);
      }
      const header = Buffer.concat([Buffer.from(head), key]);
      return [
        Buffer.concat([
          out.subarray(0, frame.start),
          header,
          out.subarray(frame.start + frame.headerLength),
        ]),
        frame.start,
      ];
    }
  }
}

describe('single mutations of valid streams', () => {
  it('give the reference decode, keep every event before the mutation, and never bad text', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.boolean().chain((deflate) => fc.tuple(fc.constant(deflate), streamSpecArb(deflate))),
        mutationArb(),
        cutsArb,
        fc.boolean(),
        async (isServer, [deflate, spec], mutation, cuts, takeover) => {
          const { bytes, frames } = await buildStream({ ...spec, builder: 'model' }, isServer, 15);
          fc.pre(bytes.length > 0);
          const [mutated, at] = mutate(bytes, frames, mutation);
          const options: RunOptions = deflate
            ? { isServer, maxPayload: 100_000, deflate: deflateParams(15, !takeover) }
            : { isServer, maxPayload: 100_000 };
          const events = await checkAgainstReference(mutated, cuts, options);
          // What was complete before the mutated byte cannot change.
          const before = referenceDecode(bytes.subarray(0, at), referenceOptions(options));
          const complete = before.undefinedFrom ?? before.events.length;
          expectSameAsReference(events.slice(0, complete), before.events.slice(0, complete));
        },
      ),
      { numRuns: 300 },
    );
  });
});

// ---- 4. UTF-8 stream validation ----------------------------------------------------------

describe('Utf8StreamValidator', () => {
  const bytesOrText = fc.oneof(
    bytesArb(24),
    textBytesArb,
    badTextArb,
    fc
      .array(
        fc.oneof(
          textBytesArb,
          fc.constantFrom(...MALFORMED_UTF8).map((bad) => Buffer.from(bad)),
        ),
        {
          maxLength: 4,
        },
      )
      .map((parts) => Buffer.concat(parts)),
  );

  it('agrees with buffer.isUtf8 on any bytes split anywhere, and fails at the first bad piece', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(bytesOrText, cutsArb), { minLength: 1, maxLength: 3 }),
        (messages) => {
          // One validator for several messages, as a receiver uses it.
          const validator = new Utf8StreamValidator();
          for (const [bytes, cuts] of messages) {
            const model = new Utf8Prefix();
            let ok = true;
            for (const piece of splitAt(bytes, cuts)) {
              const modelOk = model.write(piece);
              ok = validator.write(piece);
              expect(ok).toBe(modelOk);
              if (!ok) break;
            }
            if (ok) expect(validator.end()).toBe(isUtf8(bytes));
            else {
              expect(isUtf8(bytes)).toBe(false);
              validator.reset();
            }
          }
        },
      ),
      { numRuns: 1500 },
    );
  });
});

// ---- 5. handshake and extension negotiation ----------------------------------------------

const TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const tokenArb = fc.string({ unit: fc.constantFrom(...TOKEN_CHARS), minLength: 1, maxLength: 10 });
/** Optional whitespace as HTTP defines it. */
const owsArb = fc.constantFrom('', ' ', '\t', ' \t ');
/** Characters that parsers of comma lists, tokens and base64 trip on. */
const NASTY = [
  '\u00a0',
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
  '\u0000',
  '\u007f',
  '\u00ff',
  '\u00e9',
];

function caseVariant(value: string): fc.Arbitrary<string> {
  return fc
    .array(fc.boolean(), { minLength: value.length, maxLength: value.length })
    .map((upper) =>
      [...value].map((c, i) => (upper[i] ? c.toUpperCase() : c.toLowerCase())).join(''),
    );
}

/** Small edits of a string: insertions, deletions, replacements with nasty characters. */
function edited(base: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc
    .tuple(
      base,
      fc.array(fc.tuple(fc.nat(), fc.nat(2), fc.constantFrom(...NASTY)), {
        minLength: 1,
        maxLength: 3,
      }),
    )
    .map(([value, edits]) => {
      let out = value;
      for (const [at, kind, char] of edits) {
        const i = at % (out.length + 1);
        if (kind === 0) out = out.slice(0, i) + char + out.slice(i);
        else if (kind === 1) out = out.slice(0, i) + out.slice(i + 1);
        else out = out.slice(0, i) + char + out.slice(i + 1);
      }
      return out;
    });
}

const keyArb = fc
  .uint8Array({ minLength: 16, maxLength: 16 })
  .map((bytes) => Buffer.from(bytes).toString('base64'));
const validHeaders = {
  upgrade: caseVariant('websocket'),
  connection: fc
    .tuple(fc.array(tokenArb, { maxLength: 2 }), caseVariant('upgrade'), owsArb)
    .map(([others, upgrade, ows]) => [...others, upgrade].join(`${ows},${ows}`)),
  'sec-websocket-key': keyArb,
  'sec-websocket-version': fc.constantFrom('13', '8'),
  'sec-websocket-protocol': fc
    .uniqueArray(tokenArb, { minLength: 1, maxLength: 3 })
    .chain((tokens) => owsArb.map((ows) => tokens.join(`${ows},${ows}`))),
};

/** Whitespace that may pad a value: OWS (SP, HTAB), and characters JavaScript's trim() also removes. */
const PADDING = ['', ' ', '\t', ' \t', '\u00a0', '\u000b', '\u000c', '\ufeff', '\u2028', '\u3000'];

/** A header value: valid, padded, edited, arbitrary, or absent. */
function headerValue(valid: fc.Arbitrary<string>): fc.Arbitrary<string | undefined> {
  return fc.oneof(
    { weight: 6, arbitrary: valid },
    { weight: 2, arbitrary: edited(valid) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom(...PADDING), valid, fc.constantFrom(...PADDING))
        .map(([before, value, after]) => `${before}${value}${after}`),
    },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );
}

function request(method: string, headers: Record<string, string | undefined>): IncomingMessage {
  const defined = Object.fromEntries(
    Object.entries(headers).filter(([, value]) => value !== undefined),
  );
  return { method, headers: defined, url: '/' } as unknown as IncomingMessage;
}

describe('checkUpgradeRequest', () => {
  const methodArb = fc.oneof(
    { weight: 8, arbitrary: fc.constant('GET') },
    fc.constantFrom('get', 'POST', 'HEAD', 'GET '),
    tokenArb,
  );
  const headersArb = fc.record(
    {
      upgrade: headerValue(validHeaders.upgrade),
      connection: headerValue(validHeaders.connection),
      'sec-websocket-key': headerValue(validHeaders['sec-websocket-key']),
      'sec-websocket-version': headerValue(
        fc.oneof(
          validHeaders['sec-websocket-version'],
          fc.constantFrom('7', '9', '12', '14', '013', '13, 8'),
        ),
      ),
      'sec-websocket-protocol': fc.oneof(
        fc.constant(undefined),
        headerValue(validHeaders['sec-websocket-protocol']),
      ),
      host: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
    },
    { requiredKeys: [] },
  );

  it('never throws, and accepts only RFC 6455 §4.2.1 valid requests', () => {
    fc.assert(
      fc.property(methodArb, headersArb, (method, headers) => {
        const check = checkUpgradeRequest(request(method, headers));
        const valid = validUpgradeRequest(method, request(method, headers).headers);
        if (check.ok) {
          expect(valid, 'accepted an invalid request').not.toBeNull();
          expect(check.key).toBe(valid!.key);
          expect(check.version).toBe(valid!.version);
          expect([...check.protocols]).toEqual(valid!.protocols);
        } else {
          expect([400, 405, 426]).toContain(check.status);
          expect(check.message).toEqual(expect.any(String));
        }
      }),
      { numRuns: 1500 },
    );
  });

  it('accepts every valid request', () => {
    fc.assert(
      fc.property(
        fc.record(
          {
            upgrade: validHeaders.upgrade,
            connection: validHeaders.connection,
            'sec-websocket-key': validHeaders['sec-websocket-key'],
            'sec-websocket-version': validHeaders['sec-websocket-version'],
            'sec-websocket-protocol': validHeaders['sec-websocket-protocol'],
          },
          { requiredKeys: ['upgrade', 'connection', 'sec-websocket-key', 'sec-websocket-version'] },
        ),
        (headers) => {
          expect(checkUpgradeRequest(request('GET', headers)).ok).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('Sec-WebSocket-Extensions parsing', () => {
  it('returns or throws a SyntaxError, nothing else, on any string', () => {
    const grammarish = fc
      .array(
        fc.oneof(
          tokenArb,
          fc.constantFrom(',', ';', '=', '"', '\\', ' ', '\t', 'permessage-deflate', '"a\\"b"'),
        ),
        { maxLength: 12 },
      )
      .map((parts) => parts.join(''));
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), grammarish), (header) => {
        let offers: ExtensionOffer[];
        try {
          offers = parseExtensions(header);
        } catch (error) {
          expect(error).toBeInstanceOf(SyntaxError);
          return;
        }
        expect(offers.length).toBeGreaterThan(0);
        // What parsed formats back to a header that parses the same.
        expect(parseExtensions(offers.map(formatExtension).join(', '))).toEqual(offers);
      }),
      { numRuns: 1500 },
    );
  });

  it('round-trips well-formed headers written with any spacing, quoting and empty elements', () => {
    const paramArb = fc.tuple(tokenArb, fc.option(tokenArb, { nil: true as const }));
    const offerArb = fc.record({ name: tokenArb, params: fc.array(paramArb, { maxLength: 4 }) });
    const writtenValue = (value: string) =>
      fc.oneof(
        fc.constant(value),
        fc
          .array(fc.boolean(), { minLength: value.length, maxLength: value.length })
          .map((escaped) => `"${[...value].map((c, i) => (escaped[i] ? `\\${c}` : c)).join('')}"`),
      );
    const headerArb = fc.array(offerArb, { minLength: 1, maxLength: 4 }).chain((offers) =>
      fc
        .tuple(
          ...offers.map((offer) =>
            fc
              .tuple(
                ...offer.params.map(([key, value]) =>
                  fc
                    .tuple(
                      owsArb,
                      owsArb,
                      owsArb,
                      value === true ? fc.constant('') : writtenValue(value),
                    )
                    .map(([a, b, c, written]) =>
                      value === true ? `${a};${b}${key}` : `${a};${b}${key}${c}=${c}${written}`,
                    ),
                ),
              )
              .map((params) => `${offer.name}${params.join('')}`),
          ),
        )
        .chain((elements) =>
          fc
            .array(fc.tuple(owsArb, fc.constantFrom(',', ', ,', ',,')), {
              minLength: elements.length - 1,
              maxLength: elements.length - 1,
            })
            .map((separators) =>
              elements.reduce(
                (header, element, i) => `${header}${separators[i - 1]!.join('')}${element}`,
              ),
            ),
        )
        .map((header) => ({ header, offers })),
    );
    fc.assert(
      fc.property(headerArb, owsArb, ({ header, offers }, ows) => {
        const parsed = parseExtensions(`${ows}${header}${ows}`);
        expect(parsed).toEqual(offers.map(({ name, params }) => ({ name, params })));
      }),
      { numRuns: 500 },
    );
  });
});

describe('permessage-deflate negotiation', () => {
  const bitsArb = fc.option(fc.oneof(fc.boolean(), fc.integer({ min: 8, max: 15 })), {
    nil: undefined,
  });
  const optionsArb: fc.Arbitrary<PerMessageDeflateOptions> = fc.record(
    {
      serverNoContextTakeover: fc.boolean(),
      clientNoContextTakeover: fc.boolean(),
      serverMaxWindowBits: bitsArb,
      clientMaxWindowBits: bitsArb,
    },
    { requiredKeys: [] },
  );
  const PARAMS = [
    'server_no_context_takeover',
    'client_no_context_takeover',
    'server_max_window_bits',
    'client_max_window_bits',
  ];
  const offersArb = fc.array(
    fc.record({
      name: fc.oneof({ weight: 4, arbitrary: fc.constant('permessage-deflate') }, tokenArb),
      params: fc.array(
        fc.tuple(
          fc.oneof(
            { weight: 6, arbitrary: fc.constantFrom(...PARAMS) },
            tokenArb,
            fc.constantFrom('__proto__', 'constructor', 'hasOwnProperty'),
          ),
          fc.oneof(
            fc.constant(true as const),
            fc.constantFrom('8', '9', '10', '15', '7', '16', '08', '1e1', ' 9', '', '9.0'),
            fc.string({ maxLength: 6 }),
          ),
        ),
        { maxLength: 5 },
      ),
    }),
    { maxLength: 4 },
  );

  it('acceptOffers and acceptResponse throw nothing but NegotiationError', () => {
    fc.assert(
      fc.property(offersArb, optionsArb, (offers, options) => {
        for (const call of [
          () => acceptOffers(offers, options),
          () => acceptResponse(offers, options),
        ]) {
          try {
            call();
          } catch (error) {
            expect(error).toBeInstanceOf(NegotiationError);
          }
        }
      }),
      { numRuns: 1500 },
    );
  });

  it('a client accepts what a server answered to its offer, with the same parameters', () => {
    fc.assert(
      fc.property(optionsArb, optionsArb, (clientOptions, serverOptions) => {
        const accepted = acceptOffers(parseExtensions(clientOffer(clientOptions)), serverOptions);
        if (accepted === null) return;
        let params: DeflateParams;
        try {
          params = acceptResponse(parseExtensions(accepted.response), clientOptions);
        } catch (error) {
          // A client may refuse one thing only: a context takeover it explicitly said it keeps.
          expect(error).toBeInstanceOf(NegotiationError);
          expect(clientOptions.clientNoContextTakeover).toBe(false);
          expect(accepted.params.clientNoContextTakeover).toBe(true);
          return;
        }
        expect(params).toEqual(accepted.params);
      }),
      { numRuns: 1000 },
    );
  });
});
