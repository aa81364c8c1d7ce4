import { unmaskInto } from './mask.js';

/**
 * The socket chunks a receiver has not parsed yet, read through a cursor.
 *
 * Bytes are consumed by moving an offset into the first chunk, so reading a frame header
 * allocates nothing; only payload pieces become Buffer views. Most of the time one chunk is
 * queued (a socket read holds whole frames), and then no array exists at all: idle
 * connections carry two empty fields. Later chunks wait in an array read from a moving head
 * index (Array#shift goes quadratic on tens of thousands of tiny chunks).
 */
export class ChunkQueue {
  /** The chunk being read (null: the queue is empty). */
  #first: Buffer | null = null;
  /** Bytes of `#first` already consumed. */
  #offset = 0;
  #later: Buffer[] | null = null;
  #laterHead = 0;
  /** Bytes queued and not consumed yet. */
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#length += chunk.length;
    if (this.#first === null) {
      this.#first = chunk;
      this.#offset = 0;
    } else {
      if (this.#later === null) this.#later = [chunk];
      else this.#later.push(chunk);
    }
  }

  /** The chunk being read: its bytes from `offset` on are the oldest queued bytes. */
  get first(): Buffer {
    return this.#first!;
  }

  get offset(): number {
    return this.#offset;
  }

  /** Bytes readable in place in `first`. */
  get contiguous(): number {
    return this.#first === null ? 0 : this.#first.length - this.#offset;
  }

  /** The queued byte `index` bytes ahead of the cursor (`index < length`), not consumed. */
  byteAt(index: number): number {
    let chunk = this.#first!;
    let at = this.#offset + index;
    let next = this.#laterHead;
    while (at >= chunk.length) {
      at -= chunk.length;
      chunk = this.#later![next++]!;
    }
    return chunk[at]!;
  }

  /** Drops `n` bytes, all within `first` (`n <= contiguous`). */
  skip(n: number): void {
    this.#length -= n;
    this.#offset += n;
    if (this.#offset === this.#first!.length) this.#next();
  }

  /** Removes up to `n` bytes from `first`, as a view (the chunk itself when it fits whole). */
  takeUpTo(n: number): Buffer {
    const first = this.#first!;
    const start = this.#offset;
    const available = first.length - start;
    if (n >= available) {
      this.#length -= available;
      this.#next();
      return start === 0 ? first : first.subarray(start);
    }
    this.#length -= n;
    this.#offset = start + n;
    return first.subarray(start, start + n);
  }

  /** Removes exactly `n` queued bytes (`n <= length`), copying only when they span chunks. */
  take(n: number): Buffer {
    if (n <= this.contiguous) return this.takeUpTo(n);
    return this.copyTo(Buffer.allocUnsafe(n), n);
  }

  /** Chunks queued (the one being read included). */
  get count(): number {
    if (this.#first === null) return 0;
    return this.#later === null ? 1 : 1 + this.#later.length - this.#laterHead;
  }

  /**
   * Moves the next `n` queued bytes (`n <= length`) into `target` from its start. With a
   * masking `key`, they are unmasked on the way (one pass does both), as bytes that start
   * `phase` bytes into their payload (see `unmaskInto`).
   */
  copyTo(target: Buffer, n: number, key?: number, phase = 0): Buffer {
    let filled = 0;
    while (filled < n) {
      const first = this.#first!;
      const start = this.#offset;
      const count = Math.min(first.length - start, n - filled);
      if (key === undefined) first.copy(target, filled, start, start + count);
      else unmaskInto(first.subarray(start, start + count), key, phase + filled, target, filled);
      filled += count;
      this.skip(count);
    }
    return target;
  }

  clear(): void {
    this.#first = null;
    this.#offset = 0;
    this.#later = null;
    this.#laterHead = 0;
    this.#length = 0;
  }

  #next(): void {
    this.#offset = 0;
    const later = this.#later;
    if (later === null) {
      this.#first = null;
      return;
    }
    this.#first = later[this.#laterHead]!;
    this.#laterHead++;
    if (this.#laterHead === later.length) {
      this.#later = null;
      this.#laterHead = 0;
    } else if (this.#laterHead >= 1024 && this.#laterHead * 2 >= later.length) {
      this.#later = later.slice(this.#laterHead);
      this.#laterHead = 0;
    }
  }
}
