import { EMPTY_BUFFER } from './constants.js';

/** Pieces at least this long are kept as they are; shorter ones are copied into a block. */
const KEEP_LIMIT = 2048;
const BLOCK_SIZE = 16 * 1024;

/**
 * Collects the pieces of one message. The first piece and every large one are kept without a
 * copy; runs of small pieces (tiny fragments, say) are packed into shared blocks, so memory
 * follows the payload size and not the fragment count: a peer cannot make a 1 MiB message
 * cost 100 MiB of Buffer objects by sending it one byte per frame.
 *
 * A message in one piece (the usual case) needs no array: `take()` hands the piece itself.
 */
export class MessageAssembler {
  #first: Buffer | null = null;
  /** Every piece, once there is more than one. */
  #pieces: Buffer[] | null = null;
  #length = 0;
  #block: Buffer | null = null;
  #blockStart = 0;
  #blockEnd = 0;

  /** Bytes collected so far. */
  get length(): number {
    return this.#length;
  }

  push(piece: Buffer): void {
    this.#length += piece.length;
    if (this.#first === null) {
      this.#first = piece;
      return;
    }
    if (piece.length >= KEEP_LIMIT) {
      this.#sealBlock();
      this.#add(piece);
      return;
    }
    if (this.#block === null || this.#block.length - this.#blockEnd < piece.length) {
      this.#sealBlock();
      this.#block = Buffer.allocUnsafe(BLOCK_SIZE);
      this.#blockStart = 0;
      this.#blockEnd = 0;
    }
    piece.copy(this.#block, this.#blockEnd);
    this.#blockEnd += piece.length;
  }

  /**
   * Hands the message over (one piece, or the pieces in order) and starts an empty one.
   * An empty message is an empty buffer.
   */
  take(): Buffer | Buffer[] {
    this.#sealBlock();
    const message = this.#pieces ?? this.#first ?? EMPTY_BUFFER;
    this.reset();
    return message;
  }

  reset(): void {
    this.#first = null;
    this.#pieces = null;
    this.#length = 0;
    this.#block = null;
    this.#blockStart = 0;
    this.#blockEnd = 0;
  }

  #add(piece: Buffer): void {
    if (this.#pieces === null) this.#pieces = [this.#first!, piece];
    else this.#pieces.push(piece);
  }

  #sealBlock(): void {
    if (this.#block === null || this.#blockEnd === this.#blockStart) return;
    this.#add(this.#block.subarray(this.#blockStart, this.#blockEnd));
    this.#blockStart = this.#blockEnd;
  }
}
