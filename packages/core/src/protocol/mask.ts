import { createRequire } from 'node:module';

/** The two functions `bufferutil` exports; the native addon is used when it is installed. */
interface NativeMasker {
  mask(source: Buffer, mask: Buffer, output: Buffer, offset: number, length: number): void;
  unmask(buffer: Buffer, mask: Buffer): void;
}

function loadNativeMasker(): NativeMasker | undefined {
  if (process.env.WEFT_NO_BUFFER_UTIL) return undefined;
  try {
    const required = createRequire(import.meta.url)('bufferutil') as Partial<NativeMasker>;
    if (typeof required.mask === 'function' && typeof required.unmask === 'function') {
      return required as NativeMasker;
    }
  } catch {
    // bufferutil is optional: fall back to the TypeScript loops below.
  }
  return undefined;
}

const native = loadNativeMasker();

/** The native masker reads its key from a buffer; one serves every call (all synchronous). */
const nativeKey = Buffer.allocUnsafe(4);

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
    nativeKey[0] = k0;
    nativeKey[1] = k1;
    nativeKey[2] = k2;
    nativeKey[3] = k3;
    native.mask(source, nativeKey, output, offset, length);
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
 * XORs `buffer` in place with the 4-byte masking key `key` (big-endian in a 32-bit integer,
 * so a receiver keeps its key without a Buffer), as if the buffer started `phase` bytes into
 * the payload: payloads may arrive in several chunks, and the key cycles over the whole payload.
 */
export function unmaskInPlace(buffer: Buffer, key: number, phase = 0): void {
  const length = buffer.length;
  if (length === 0) return;
  const shift = (phase & 3) * 8;
  const rotated = shift === 0 ? key | 0 : (key << shift) | (key >>> (32 - shift));
  if (native !== undefined && length >= NATIVE_THRESHOLD) {
    nativeKey.writeInt32BE(rotated, 0);
    native.unmask(buffer, nativeKey);
    return;
  }
  const k0 = rotated >>> 24;
  const k1 = (rotated >>> 16) & 0xff;
  const k2 = (rotated >>> 8) & 0xff;
  const k3 = rotated & 0xff;
  let i = 0;
  for (const end = length - 3; i < end; i += 4) {
    buffer[i] = buffer[i]! ^ k0;
    buffer[i + 1] = buffer[i + 1]! ^ k1;
    buffer[i + 2] = buffer[i + 2]! ^ k2;
    buffer[i + 3] = buffer[i + 3]! ^ k3;
  }
  if (i < length) buffer[i] = buffer[i]! ^ k0;
  if (i + 1 < length) buffer[i + 1] = buffer[i + 1]! ^ k1;
  if (i + 2 < length) buffer[i + 2] = buffer[i + 2]! ^ k2;
}
