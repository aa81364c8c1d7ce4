/**
 * Caps how many zlib jobs run at once across every connection of the process. zlib work
 * runs on libuv's small thread pool and holds native memory while queued there; running a
 * bounded number and queueing the rest in JavaScript keeps memory flat under load.
 */
export class JobLimiter {
  readonly #limit: number;
  #running = 0;
  readonly #waiting: Array<(done: () => void) => void> = [];

  constructor(limit: number) {
    this.#limit = limit > 0 && Number.isFinite(limit) ? limit : Number.POSITIVE_INFINITY;
  }

  /** Runs `job` when a slot is free; the job calls `done` exactly once when it finishes. */
  run(job: (done: () => void) => void): void {
    this.#waiting.push(job);
    this.#next();
  }

  get pending(): number {
    return this.#waiting.length;
  }

  #next(): void {
    while (this.#running < this.#limit && this.#waiting.length > 0) {
      const job = this.#waiting.shift()!;
      this.#running++;
      let finished = false;
      job(() => {
        if (finished) return;
        finished = true;
        this.#running--;
        this.#next();
      });
    }
  }
}
