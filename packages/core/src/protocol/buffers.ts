import { Blob } from 'node:buffer';
import { EMPTY_BUFFER } from './constants.js';

/** Anything `send()` accepts. Numbers are sent as their decimal text, as `ws` does. */
export type SendableData =
  | string
  | number
  | Buffer
  | ArrayBuffer
  | ArrayBufferView
  | Blob
  | readonly Buffer[];

/** Joins message pieces; a message in one piece is returned as it is, without a copy. */
export function concatFragments(
  fragments: Buffer | readonly Buffer[],
  totalLength: number,
): Buffer {
  if (Buffer.isBuffer(fragments)) return fragments;
  if (fragments.length === 0) return EMPTY_BUFFER;
  if (fragments.length === 1) return fragments[0]!;
  return Buffer.concat(fragments as Buffer[], totalLength);
}

/** An ArrayBuffer holding exactly the bytes of `buffer` (copied only when it is a view). */
export function toArrayBuffer(buffer: Buffer): ArrayBuffer {
  if (
    buffer.byteOffset === 0 &&
    buffer.byteLength === buffer.buffer.byteLength &&
    buffer.buffer instanceof ArrayBuffer
  ) {
    return buffer.buffer;
  }
  const copy = new ArrayBuffer(buffer.byteLength);
  new Uint8Array(copy).set(buffer);
  return copy;
}

/** A Buffer over the bytes of `data` without copying them (strings are encoded as UTF-8). */
export function toBuffer(data: Exclude<SendableData, Blob | number>): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof SharedArrayBuffer) return Buffer.from(data);
  throw new TypeError(
    'The data to send must be a string, Buffer, ArrayBuffer, TypedArray, DataView or Blob',
  );
}

export function isBlob(data: unknown): data is Blob {
  return data instanceof Blob;
}
