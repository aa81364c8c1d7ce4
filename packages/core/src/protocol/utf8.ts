import { isUtf8 } from 'node:buffer';

/** Length of the UTF-8 sequence a lead byte starts; 0 for a byte that cannot lead one. */
function sequenceLength(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead < 0xc2) return 0; // continuation bytes, and the overlong leads C0/C1
  if (lead < 0xe0) return 2;
  if (lead < 0xf0) return 3;
  if (lead < 0xf5) return 4;
  return 0;
}

/**
 * Whether `bytes` (fewer than a whole sequence) can still become a valid sequence. The second
 * byte's range depends on the lead: this is where overlongs, surrogates and code points above
 * U+10FFFF are caught (RFC 3629 §4).
 */
function isValidPrefix(bytes: Uint8Array, length: number): boolean {
  const lead = bytes[0]!;
  if (sequenceLength(lead) <= length) return false;
  for (let i = 1; i < length; i++) {
    const byte = bytes[i]!;
    let low = 0x80;
    let high = 0xbf;
    if (i === 1) {
      if (lead === 0xe0) low = 0xa0;
      else if (lead === 0xed) high = 0x9f;
      else if (lead === 0xf0) low = 0x90;
      else if (lead === 0xf4) high = 0x8f;
    }
    if (byte < low || byte > high) return false;
  }
  return true;
}

/**
 * Validates UTF-8 that arrives in pieces, failing at the first piece that cannot be part of
 * valid text (so a connection can be failed before the rest of a bad message arrives).
 * Whole pieces are checked with `buffer.isUtf8`; only a sequence split across pieces is
 * checked byte by byte.
 */
/** Where a carried sequence is laid out for checking; shared, as every check is synchronous. */
const scratch = Buffer.allocUnsafe(4);

/** Lays the `length` bytes packed in `carry` (byte i in bits 8i..8i+7) out in `scratch`. */
function unpack(carry: number, length: number): Buffer {
  for (let i = 0; i < length; i++) scratch[i] = (carry >>> (8 * i)) & 0xff;
  return scratch;
}

export class Utf8StreamValidator {
  /** The bytes of a sequence cut short by the last piece, packed in an integer. */
  #carry = 0;
  #carryLength = 0;
  #carryNeeded = 0;

  /** Feeds the next piece; false as soon as the text so far cannot be valid. */
  write(piece: Buffer): boolean {
    let start = 0;
    if (this.#carryLength > 0) {
      let carry = this.#carry;
      let length = this.#carryLength;
      while (length < this.#carryNeeded && start < piece.length) {
        carry |= piece[start++]! << (8 * length);
        length++;
      }
      this.#carry = carry;
      this.#carryLength = length;
      const bytes = unpack(carry, length);
      if (length < this.#carryNeeded) return isValidPrefix(bytes, length);
      if (!isUtf8(bytes.subarray(0, length))) return false;
      this.#carryLength = 0;
    }

    // Find a trailing sequence the piece cuts short: at most 3 bytes long.
    const end = piece.length;
    let tail = end;
    for (let back = 1; back <= 3 && end - back >= start; back++) {
      const byte = piece[end - back]!;
      if ((byte & 0xc0) === 0x80) continue;
      if (byte >= 0xc0 && sequenceLength(byte) !== back) tail = end - back;
      break;
    }
    if (tail > start) {
      const whole = start === 0 && tail === end ? piece : piece.subarray(start, tail);
      if (!isUtf8(whole)) return false;
    }
    if (tail === end) return true;

    const needed = sequenceLength(piece[tail]!);
    if (needed === 0) return false;
    let carry = 0;
    for (let i = tail; i < end; i++) carry |= piece[i]! << (8 * (i - tail));
    this.#carry = carry;
    this.#carryLength = end - tail;
    this.#carryNeeded = needed;
    return isValidPrefix(unpack(carry, end - tail), end - tail);
  }

  /** Ends the text: false when it stops inside a sequence. Resets for the next message. */
  end(): boolean {
    const complete = this.#carryLength === 0;
    this.#carryLength = 0;
    this.#carryNeeded = 0;
    return complete;
  }

  /** Forgets any partial sequence. */
  reset(): void {
    this.#carryLength = 0;
    this.#carryNeeded = 0;
  }
}

export { isUtf8 as isValidUtf8 };
