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

/** Below this many bytes the call into the addon costs more than the loop it saves. */
const NATIVE_THRESHOLD = 48;

/** Whether the native `bufferutil` masker is in use. */
export const usingNativeMasker: boolean = native !== undefined;

/** Writes `source` XOR the 4-byte `key` into `output` at `offset`. */
export function maskInto(source: Buffer, key: Buffer, output: Buffer, offset: number): void {
  const length = source.length;
  if (native !== undefined && length >= NATIVE_THRESHOLD) {
    native.mask(source, key, output, offset, length);
    return;
  }
  const k0 = key[0]!;
  const k1 = key[1]!;
  const k2 = key[2]!;
  const k3 = key[3]!;
  let i = 0;
  for (const end = length - 3; i < end; i += 4) {
    output[offset + i] = source[i]! ^ k0;
    output[offset + i + 1] = source[i + 1]! ^ k1;
    output[offset + i + 2] = source[i + 2]! ^ k2;
    output[offset + i + 3] = source[i + 3]! ^ k3;
  }
  for (; i < length; i++) output[offset + i] = source[i]! ^ key[i & 3]!;
}

/**
 * XORs `buffer` in place with `key`, as if the buffer started `phase` bytes into the payload
 * (payloads may arrive in several chunks, and the key cycles over the whole payload).
 */
export function unmaskInPlace(buffer: Buffer, key: Buffer, phase = 0): void {
  const length = buffer.length;
  if (length === 0) return;
  const rotated =
    (phase & 3) === 0
      ? key
      : Buffer.from([
          key[phase & 3]!,
          key[(phase + 1) & 3]!,
          key[(phase + 2) & 3]!,
          key[(phase + 3) & 3]!,
        ]);
  if (native !== undefined && length >= NATIVE_THRESHOLD) {
    native.unmask(buffer, rotated);
    return;
  }
  maskInto(buffer, rotated, buffer, 0);
}
