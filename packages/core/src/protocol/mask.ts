import { createRequire } from 'node:module';

/** The `bufferutil` function weft uses; the native addon is used when it is installed. */
interface NativeMasker {
  mask(source: Buffer, mask: Buffer, output: Buffer, offset: number, length: number): void;
}

function loadNativeMasker(): NativeMasker | undefined {
  if (process.env.WEFT_NO_BUFFER_UTIL) return undefined;
  try {
    const required = createRequire(import.meta.url)('bufferutil') as Partial<NativeMasker>;
    if (typeof required.mask === 'function') {
      return required as NativeMasker;
    }
  } catch {
    // bufferutil is optional: fall back to the TypeScript loops below.
  }
  return undefined;
}

const native = loadNativeMasker();

/** Where a key held in an integer is laid out for `maskInto`; shared, as every call is synchronous. */
const keyScratch = Buffer.allocUnsafe(4);

/** Below this many bytes the call into the addon costs more than the loop it saves. */
const NATIVE_THRESHOLD = 48;

/** Whether the native `bufferutil` masker is in use. */
export const usingNativeMasker: boolean = native !== undefined;

/**
 * Writes `source` XOR the 4-byte key found at `key[keyAt]` into `output` at `offset`. The key
 * is read in place, so a frame's own header can hold it (no Buffer per key).
 */
export function maskInto(
  source: Buffer,
  key: Buffer,
  keyAt: number,
  output: Buffer,
  offset: number,
): void {
  const length = source.length;
  const k0 = key[keyAt]!;
  const k1 = key[keyAt + 1]!;
  const k2 = key[keyAt + 2]!;
  const k3 = key[keyAt + 3]!;
  if (native !== undefined && length >= NATIVE_THRESHOLD) {
    keyScratch[0] = k0;
    keyScratch[1] = k1;
    keyScratch[2] = k2;
    keyScratch[3] = k3;
    native.mask(source, keyScratch, output, offset, length);
    return;
  }
  let i = 0;
  for (const end = length - 3; i < end; i += 4) {
    output[offset + i] = source[i]! ^ k0;
    output[offset + i + 1] = source[i + 1]! ^ k1;
    output[offset + i + 2] = source[i + 2]! ^ k2;
    output[offset + i + 3] = source[i + 3]! ^ k3;
  }
  if (i < length) output[offset + i] = source[i]! ^ k0;
  if (i + 1 < length) output[offset + i + 1] = source[i + 1]! ^ k1;
  if (i + 2 < length) output[offset + i + 2] = source[i + 2]! ^ k2;
}

/**
 * Writes `source` XOR the 4-byte masking key `key` (big-endian in a 32-bit integer, so a
 * receiver keeps its key without a Buffer) into `output` at `offset`, as if `source` started
 * `phase` bytes into the payload: payloads may arrive in several chunks, and the key cycles
 * over the whole payload.
 */
export function unmaskInto(
  source: Buffer,
  key: number,
  phase: number,
  output: Buffer,
  offset: number,
): void {
  if (source.length === 0) return;
  const shift = (phase & 3) * 8;
  const rotated = shift === 0 ? key | 0 : (key << shift) | (key >>> (32 - shift));
  keyScratch.writeInt32BE(rotated, 0);
  maskInto(source, keyScratch, 0, output, offset);
}

/** `unmaskInto` the buffer itself. */
export function unmaskInPlace(buffer: Buffer, key: number, phase = 0): void {
  unmaskInto(buffer, key, phase, buffer, 0);
}
