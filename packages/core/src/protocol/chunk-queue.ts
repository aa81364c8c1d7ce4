/**
 * A FIFO of socket chunks. Array#shift copies the whole array once it leaves V8's fast path
 * (tens of thousands of entries, e.g. tiny chunks queued while a frame inflates), which made
 * parsing quadratic; a moving head index keeps every operation O(1).
 */
export class ChunkQueue {
  #items: Buffer[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(chunk: Buffer): void {
    this.#items.push(chunk);
  }

  /** The oldest chunk (the queue must not be empty). */
  peek(): Buffer {
    return this.#items[this.#head]!;
  }

  /** Replaces the oldest chunk with what is left of it. */
  replaceHead(rest: Buffer): void {
    this.#items[this.#head] = rest;
  }

  /** Removes the oldest chunk. */
  shift(): Buffer {
    const chunk = this.#items[this.#head]!;
    this.#head++;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return chunk;
  }

  clear(): void {
    this.#items = [];
    this.#head = 0;
  }
}
