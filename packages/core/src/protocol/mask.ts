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
    // bufferutil is optional: fall back to the TypeScript loop below.
  }
  return undefined;
}

const native = loadNativeMasker();

/** Where a key is laid out for the addon, which reads it from a Buffer; every call is synchronous. */
const keyScratch = Buffer.allocUnsafe(4);

/**
 * Payloads of at least this many bytes are masked by the addon; shorter ones by the loop below.
 * The call into C++ has a fixed cost (about what the loop takes for 80 bytes, measured on
 * Node 20 x64), which dominates for short frames: most of what a chatty client sends.
 */
export const NATIVE_MASK_THRESHOLD = 80;

/** Whether the native `bufferutil` masker is in use (for payloads of `NATIVE_MASK_THRESHOLD` bytes or more). */
export const usingNativeMasker: boolean = native !== undefined;

/**
 * Writes `source` from byte `from` on, XOR the 4-byte key found at `key[keyAt]`, into `output`
 * at `offset`. The key is read in place, so a frame's own header can hold it (no Buffer per
 * key), and `source` may be the frame itself (`from` = `offset`: masking in place, no view).
 */
export function maskInto(
  source: Buffer,
  key: Buffer,
  keyAt: number,
  output: Buffer,
  offset: number,
  from = 0,
): void {
  xorWithKey(
    source,
    from,
    key[keyAt]!,
    key[keyAt + 1]!,
    key[keyAt + 2]!,
    key[keyAt + 3]!,
    output,
    offset,
  );
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
  const shift = (phase & 3) * 8;
  const k = shift === 0 ? key : (key << shift) | (key >>> (32 - shift));
  xorWithKey(source, 0, k >>> 24, (k >>> 16) & 0xff, (k >>> 8) & 0xff, k & 0xff, output, offset);
}

/** `unmaskInto` the buffer itself. */
export function unmaskInPlace(buffer: Buffer, key: number, phase = 0): void {
  unmaskInto(buffer, key, phase, buffer, 0);
}

/** The one masking loop (both directions): `source[from..]` XOR the key bytes k0..k3, into `output` at `offset`. */
function xorWithKey(
  source: Buffer,
  from: number,
  k0: number,
  k1: number,
  k2: number,
  k3: number,
  output: Buffer,
  offset: number,
): void {
  const length = source.length - from;
  if (native !== undefined && length >= NATIVE_MASK_THRESHOLD) {
    keyScratch[0] = k0;
    keyScratch[1] = k1;
    keyScratch[2] = k2;
    keyScratch[3] = k3;
    native.mask(from === 0 ? source : source.subarray(from), keyScratch, output, offset, length);
    return;
  }
  const delta = offset - from;
  const end = source.length;
  let i = from;
  for (const last = end - 3; i < last; i += 4) {
    output[delta + i] = source[i]! ^ k0;
    output[delta + i + 1] = source[i + 1]! ^ k1;
    output[delta + i + 2] = source[i + 2]! ^ k2;
    output[delta + i + 3] = source[i + 3]! ^ k3;
  }
  if (i < end) output[delta + i] = source[i]! ^ k0;
  if (i + 1 < end) output[delta + i + 1] = source[i + 1]! ^ k1;
  if (i + 2 < end) output[delta + i + 2] = source[i + 2]! ^ k2;
}
