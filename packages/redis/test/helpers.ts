import type { EventEmitter } from 'node:events';
import type { PubSubNode } from '@weft/core';

/** Every wait in these tests is bounded by this much unless it says otherwise. */
export const WAIT = 8_000;

/** Rejects with a message naming what never happened, instead of waiting forever. */
export function within<T>(promise: Promise<T>, what: string, ms = WAIT): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `check` (sync or async) until it is true; fails naming `what` after `ms`. */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  what: string,
  ms = WAIT,
): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The next `event` of `emitter`, bounded. */
export function nextEvent<T extends unknown[]>(
  emitter: EventEmitter,
  event: string,
  ms = WAIT,
): Promise<T> {
  let listener: ((...args: T) => void) | undefined;
  const seen = new Promise<T>((resolve) => {
    listener = (...args: T) => resolve(args);
    emitter.once(event, listener as (...args: unknown[]) => void);
  });
  return within(seen, `'${event}'`, ms).finally(() =>
    emitter.off(event, listener as (...args: unknown[]) => void),
  );
}

export interface Delivery {
  topic: string;
  data: Buffer;
  isBinary: boolean;
}

/** A stand-in for a WebSocketServer: records what its adapter hands it. */
export class FakeNode implements PubSubNode {
  readonly received: Delivery[] = [];
  readonly name: string;

  constructor(name: string) {
    this.name = name;
  }

  deliver(topic: string, data: Buffer, isBinary: boolean): void {
    // A copy: the test must see the bytes as they were when delivered.
    this.received.push({ topic, data: Buffer.from(data), isBinary });
  }

  /** The text payloads received on `topic`, in order. */
  texts(topic?: string): string[] {
    return this.received
      .filter((delivery) => topic === undefined || delivery.topic === topic)
      .map((delivery) => delivery.data.toString());
  }

  /** Waits until a delivery with this text arrived. */
  async waitForText(text: string, ms = WAIT): Promise<void> {
    await waitUntil(() => this.texts().includes(text), `${this.name} to receive "${text}"`, ms);
  }
}
