import type zlib from 'node:zlib';

/**
 * A zlib stream's native handle, driven the way Node's own `deflateRawSync` and friends drive
 * it: one `writeSync` runs zlib on this thread and leaves, in the stream's `_writeState`, the
 * output space and the input it did not use. These are not public API, so `runInline` checks
 * for them and gives up (null) when a Node version lacks them; the caller then uses the
 * stream's asynchronous writes, which every version has.
 */
interface NativeZlibHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inputOffset: number,
    inputLength: number,
    output: Uint8Array,
    outputOffset: number,
    outputLength: number,
  ): void;
}

interface ZlibStreamInternals {
  readonly _handle?: NativeZlibHandle | null;
  readonly _writeState?: Uint32Array;
}

/** What one inline run of zlib produced. */
export interface InlineRun {
  /** The output, in order, each chunk a buffer of its own. */
  readonly chunks: Buffer[];
  readonly length: number;
  /**
   * Input zlib did not read. When `complete`, it lies past the end of the deflate stream (a
   * BFINAL block); when not, it is still to be fed.
   */
  readonly unread: number;
  /** False when the run stopped at its output limit while zlib had more to give. */
  readonly complete: boolean;
}

/**
 * Output goes through one scratch buffer, copied out in exact-size chunks: inline runs never
 * overlap (they run to the end on this thread), so one buffer serves every stream.
 */
const SCRATCH_SIZE = 64 * 1024;
let scratch: Buffer | null = null;

/**
 * Runs `input` through `stream` on this thread, ending with `flush`, until zlib has consumed
 * what it can and emitted everything (or `outputLimit` bytes are out and more are coming).
 * Returns null when the stream cannot be driven this way (no native handle: closed, or a
 * Node version without it), and the error when zlib refused the data: the stream is then
 * destroyed, as an asynchronous write would have left it.
 *
 * The caller guarantees that no asynchronous write is in flight on `stream`.
 */
export function runInline(
  stream: zlib.DeflateRaw | zlib.InflateRaw,
  input: Buffer,
  flush: number,
  outputLimit: number,
): InlineRun | Error | null {
  const internals = stream as unknown as ZlibStreamInternals;
  const handle = internals._handle;
  const state = internals._writeState;
  if (
    stream.destroyed ||
    handle == null ||
    typeof handle.writeSync !== 'function' ||
    !(state instanceof Uint32Array)
  ) {
    return null;
  }
  scratch ??= Buffer.allocUnsafeSlow(SCRATCH_SIZE);
  const chunks: Buffer[] = [];
  let length = 0;
  let offset = 0;
  let unread = input.length;
  for (;;) {
    handle.writeSync(flush, input, offset, unread, scratch, 0, SCRATCH_SIZE);
    // A zlib error destroys the stream from inside the call (Node's error handler).
    if (stream.destroyed) return stream.errored ?? new Error('zlib failed');
    const outputSpaceLeft = state[0]!;
    const produced = SCRATCH_SIZE - outputSpaceLeft;
    offset += unread - state[1]!;
    unread = state[1]!;
    if (produced > 0) {
      const chunk = Buffer.allocUnsafe(produced);
      scratch.copy(chunk, 0, 0, produced);
      chunks.push(chunk);
      length += produced;
    }
    // Output space to spare means zlib is done with this input (or stopped at a BFINAL).
    if (outputSpaceLeft !== 0) return { chunks, length, unread, complete: true };
    if (length >= outputLimit) return { chunks, length, unread, complete: false };
  }
}
