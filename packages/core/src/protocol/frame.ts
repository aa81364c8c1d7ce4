import { randomFillSync } from 'node:crypto';
import { maskInto } from './mask.js';

/** How a frame is built. */
export interface FrameOptions {
  readonly opcode: number;
  readonly fin: boolean;
  /** RSV1: set on the first frame of a compressed message. */
  readonly rsv1: boolean;
  /** Clients mask every frame (RFC 6455 §5.3); servers never do. */
  readonly mask: boolean;
}

/** Every `FrameOptions` there is, made once: the sender builds frames without making options. */
const FRAME_OPTIONS: readonly FrameOptions[] = Array.from({ length: 128 }, (_, index) => ({
  opcode: index & 0x0f,
  fin: (index & 0x10) !== 0,
  rsv1: (index & 0x20) !== 0,
  mask: (index & 0x40) !== 0,
}));

/** The shared options object for these settings (not to be changed). */
export function frameOptions(
  opcode: number,
  fin: boolean,
  rsv1: boolean,
  mask: boolean,
): FrameOptions {
  return FRAME_OPTIONS[(opcode & 0x0f) | (fin ? 0x10 : 0) | (rsv1 ? 0x20 : 0) | (mask ? 0x40 : 0)]!;
}

/** Payloads up to this size are copied next to their header so the frame is one write. */
export const MERGE_LIMIT = 1024;

// Mask keys come from a pool of random bytes refilled in bulk: one syscall per 2048 frames.
const MASK_POOL_SIZE = 8192;
const maskPool = Buffer.allocUnsafe(MASK_POOL_SIZE);
let maskPoolOffset = MASK_POOL_SIZE;

/** Copies the next random masking key into `target` at `offset`. */
function writeMaskKey(target: Buffer, offset: number): void {
  if (maskPoolOffset === MASK_POOL_SIZE) {
    randomFillSync(maskPool);
    maskPoolOffset = 0;
  }
  target[offset] = maskPool[maskPoolOffset]!;
  target[offset + 1] = maskPool[maskPoolOffset + 1]!;
  target[offset + 2] = maskPool[maskPoolOffset + 2]!;
  target[offset + 3] = maskPool[maskPoolOffset + 3]!;
  maskPoolOffset += 4;
}

function headerLength(payloadLength: number, mask: boolean): number {
  const base = payloadLength < 126 ? 2 : payloadLength < 65536 ? 4 : 10;
  return mask ? base + 4 : base;
}

function writeHeader(target: Buffer, payloadLength: number, options: FrameOptions): number {
  target[0] = (options.fin ? 0x80 : 0) | (options.rsv1 ? 0x40 : 0) | options.opcode;
  const maskBit = options.mask ? 0x80 : 0;
  let offset: number;
  if (payloadLength < 126) {
    target[1] = maskBit | payloadLength;
    offset = 2;
  } else if (payloadLength < 65536) {
    target[1] = maskBit | 126;
    target.writeUInt16BE(payloadLength, 2);
    offset = 4;
  } else {
    target[1] = maskBit | 127;
    target.writeUInt32BE(Math.floor(payloadLength / 2 ** 32), 2);
    target.writeUInt32BE(payloadLength >>> 0, 6);
    offset = 10;
  }
  return offset;
}

/**
 * A frame buffer with room for `length` payload bytes at its end, behind its header (and its
 * masking key, drawn here when masked, in the 4 bytes before the payload).
 */
function frameWithRoom(length: number, options: FrameOptions): Buffer {
  const frame = Buffer.allocUnsafe(headerLength(length, options.mask) + length);
  const keyAt = writeHeader(frame, length, options);
  if (options.mask) writeMaskKey(frame, keyAt);
  return frame;
}

/**
 * Builds one frame around `payload`. The result is one buffer (small or masked payloads are
 * copied behind the header) or a header and the caller's payload, untouched, for a corked
 * write. Unmasked frames depend on nothing per connection, so one frame can go to many sockets.
 */
export function buildFrame(payload: Buffer, options: FrameOptions): Buffer | [Buffer, Buffer] {
  const length = payload.length;
  if (options.mask) {
    const frame = frameWithRoom(length, options);
    const payloadAt = frame.length - length;
    maskInto(payload, frame, payloadAt - 4, frame, payloadAt);
    return frame;
  }
  if (length <= MERGE_LIMIT) {
    const frame = frameWithRoom(length, options);
    payload.copy(frame, frame.length - length);
    return frame;
  }
  const header = Buffer.allocUnsafe(headerLength(length, false));
  writeHeader(header, length, options);
  return [header, payload];
}

/**
 * Builds one frame around a string of `byteLength` UTF-8 bytes (at most `MERGE_LIMIT`),
 * encoding it straight behind the header: no Buffer is made for the text first.
 */
export function buildStringFrame(text: string, byteLength: number, options: FrameOptions): Buffer {
  const frame = frameWithRoom(byteLength, options);
  const payloadAt = frame.length - byteLength;
  frame.write(text, payloadAt, 'utf8');
  // Masked in place: the payload is the frame's own tail.
  if (options.mask) maskInto(frame, frame, payloadAt - 4, frame, payloadAt, payloadAt);
  return frame;
}
