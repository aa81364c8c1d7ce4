import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { Opcode } from '../src/protocol/constants.js';
import { buildFrame, buildStringFrame, frameOptions } from '../src/protocol/frame.js';
import {
  maskInto,
  NATIVE_MASK_THRESHOLD,
  unmaskInPlace,
  unmaskInto,
  usingNativeMasker,
} from '../src/protocol/mask.js';

interface NativeMasker {
  mask(source: Buffer, mask: Buffer, output: Buffer, offset: number, length: number): void;
}

/** bufferutil itself, loaded whether or not weft uses it (WEFT_NO_BUFFER_UTIL), when installed. */
function loadBufferutil(): NativeMasker | undefined {
  try {
    return createRequire(import.meta.url)('bufferutil') as NativeMasker;
  } catch {
    return undefined;
  }
}
const bufferutil = loadBufferutil();

/** RFC 6455 §5.3, byte by byte: the oracle for both paths. */
function referenceMask(source: Buffer, key: Buffer, phase: number): Buffer {
  const out = Buffer.alloc(source.length);
  for (let i = 0; i < source.length; i++) out[i] = source[i]! ^ key[(i + phase) % 4]!;
  return out;
}

/** What the addon makes of `source` with `key` started `phase` bytes in (or the oracle without it). */
function nativeMask(source: Buffer, key: Buffer, phase: number): Buffer {
  if (bufferutil === undefined) return referenceMask(source, key, phase);
  const rotated = Buffer.from([0, 1, 2, 3].map((i) => key[(i + phase) % 4]!));
  const out = Buffer.alloc(source.length);
  if (source.length > 0) bufferutil.mask(source, rotated, out, 0, source.length);
  return out;
}

// Every length on the JavaScript path, the crossover, and a few on the addon's side of it.
const LENGTHS = Array.from({ length: NATIVE_MASK_THRESHOLD + 9 }, (_, length) => length);
// Keys with the high bit set in every byte position (negative as a 32-bit integer) and without.
const KEYS = [
  Buffer.from([0x00, 0x00, 0x00, 0x00]),
  Buffer.from([0x12, 0x34, 0x56, 0x78]),
  Buffer.from([0xff, 0x80, 0x7f, 0x01]),
  Buffer.from([0x81, 0xfe, 0x02, 0xc3]),
  randomBytes(4),
];

describe('masking: the JavaScript path equals the native one', () => {
  it('reports the masker in use', () => {
    expect(usingNativeMasker).toBe(bufferutil !== undefined && !process.env.WEFT_NO_BUFFER_UTIL);
  });

  it('maskInto, for every length to the crossover + 8, key position and output offset', () => {
    const failures: string[] = [];
    for (const length of LENGTHS) {
      const source = randomBytes(length);
      const before = Buffer.from(source);
      for (const key of KEYS) {
        const expected = nativeMask(source, key, 0);
        if (!expected.equals(referenceMask(source, key, 0))) failures.push(`native ${length}`);
        for (const keyAt of [0, 1, 2, 3]) {
          const keyHolder = randomBytes(keyAt + 8);
          key.copy(keyHolder, keyAt);
          for (const offset of [0, 1, 2, 3, 6]) {
            const output = Buffer.alloc(offset + length + 3, 0xaa);
            maskInto(source, keyHolder, keyAt, output, offset);
            // The payload's place holds the masked bytes, and nothing is written outside it.
            const fill = Buffer.alloc(offset + length + 3, 0xaa);
            expected.copy(fill, offset);
            if (!output.equals(fill))
              failures.push(`length ${length} keyAt ${keyAt} offset ${offset}`);
          }
        }
      }
      if (!source.equals(before)) failures.push(`source changed, length ${length}`);
    }
    expect(failures).toEqual([]);
  });

  it('maskInto from an offset of the source, in place (a frame masking its own tail)', () => {
    const failures: string[] = [];
    for (const length of LENGTHS) {
      for (const key of KEYS) {
        for (const headerLength of [2, 4, 10]) {
          const payload = randomBytes(length);
          const frame = Buffer.alloc(headerLength + 4 + length);
          key.copy(frame, headerLength);
          payload.copy(frame, headerLength + 4);
          const at = headerLength + 4;
          maskInto(frame, frame, headerLength, frame, at, at);
          if (!frame.subarray(at).equals(nativeMask(payload, key, 0)))
            failures.push(`length ${length} header ${headerLength}`);
          if (!frame.subarray(headerLength, at).equals(key)) failures.push(`key ${length}`);
        }
      }
    }
    expect(failures).toEqual([]);
  });

  it('unmaskInPlace, for every length to the crossover + 8 and every key phase', () => {
    const failures: string[] = [];
    for (const length of LENGTHS) {
      const payload = randomBytes(length);
      for (const key of KEYS) {
        const keyInt = key.readInt32BE(0);
        for (const phase of [0, 1, 2, 3, 4, 5, 6, 7, 1001, 2 ** 31 + 2]) {
          const buffer = Buffer.from(payload);
          unmaskInPlace(buffer, keyInt, phase);
          const expected = nativeMask(payload, key, phase % 4);
          if (!buffer.equals(expected)) failures.push(`length ${length} phase ${phase}`);
          const output = Buffer.alloc(length + 5, 0xaa);
          unmaskInto(payload, keyInt, phase, output, 3);
          if (!output.subarray(3, 3 + length).equals(expected))
            failures.push(`into: length ${length} phase ${phase}`);
          if (!expected.equals(referenceMask(payload, key, phase % 4)))
            failures.push(`native ${length} phase ${phase}`);
        }
      }
    }
    expect(failures).toEqual([]);
  });

  it('unmasks a payload split in pieces at any point, as it comes off the socket', () => {
    const key = KEYS[3]!;
    const keyInt = key.readInt32BE(0);
    for (const length of [NATIVE_MASK_THRESHOLD - 5, NATIVE_MASK_THRESHOLD + 7, 300]) {
      const payload = randomBytes(length);
      const masked = referenceMask(payload, key, 0);
      for (let cut = 0; cut <= length; cut += 3) {
        const first = Buffer.from(masked.subarray(0, cut));
        const second = Buffer.from(masked.subarray(cut));
        unmaskInPlace(first, keyInt, 0);
        unmaskInPlace(second, keyInt, cut);
        expect(Buffer.concat([first, second]).equals(payload)).toBe(true);
      }
    }
  });

  it('masked frames (buffer and string) carry their payload XOR the key in their header', () => {
    for (const length of LENGTHS) {
      const text = 'é'.repeat(length >> 1) + 'x'.repeat(length & 1);
      const bytes = Buffer.from(text, 'utf8');
      const options = frameOptions(Opcode.Text, true, false, true);
      const built = buildFrame(bytes, options);
      const fromString = buildStringFrame(text, bytes.length, options);
      for (const frame of [built, fromString]) {
        expect(Buffer.isBuffer(frame)).toBe(true);
        const whole = frame as Buffer;
        const payloadAt = whole.length - bytes.length;
        const key = whole.subarray(payloadAt - 4, payloadAt);
        expect(referenceMask(whole.subarray(payloadAt), key, 0).equals(bytes)).toBe(true);
      }
    }
  });
});
