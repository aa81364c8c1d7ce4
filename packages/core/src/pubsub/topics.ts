import type { SendableData } from '../protocol/buffers.js';
import type { WebSocket } from '../websocket.js';

/** How `publish` sends: binary or text, and whom to leave out. */
export interface PublishOptions {
  /** Send as binary; defaults to true for everything but strings. */
  binary?: boolean;
  /** A connection (or several) that must not receive it, such as the sender. */
  except?: WebSocket | ReadonlySet<WebSocket> | readonly WebSocket[];
  /** Compress for clients that negotiated permessage-deflate (default true). */
  compress?: boolean;
}

/** The server as its connections see it: topics, and the word that a connection ended. */
export interface ServerHub {
  subscribe(socket: WebSocket, topic: string): void;
  unsubscribe(socket: WebSocket, topic: string): void;
  publish(topic: string, data: SendableData, options: PublishOptions): Promise<void>;
  /**
   * The connection closed; called just before its 'close' event (so before any listener's),
   * instead of a 'close' listener of the server's on every connection.
   */
  closed(socket: WebSocket): void;
}

/**
 * Local subscribers per topic. It tells its owner when a topic gets its first subscriber
 * and loses its last, which is when an adapter subscribes upstream or lets go.
 */
export class TopicRegistry {
  readonly #subscribers = new Map<string, Set<WebSocket>>();
  readonly #onFirst: (topic: string) => void;
  readonly #onLast: (topic: string) => void;

  constructor(onFirst: (topic: string) => void, onLast: (topic: string) => void) {
    this.#onFirst = onFirst;
    this.#onLast = onLast;
  }

  add(socket: WebSocket, topic: string): void {
    let sockets = this.#subscribers.get(topic);
    if (sockets === undefined) {
      sockets = new Set();
      this.#subscribers.set(topic, sockets);
      sockets.add(socket);
      this.#onFirst(topic);
      return;
    }
    sockets.add(socket);
  }

  remove(socket: WebSocket, topic: string): void {
    const sockets = this.#subscribers.get(topic);
    if (sockets === undefined || !sockets.delete(socket)) return;
    if (sockets.size === 0) {
      this.#subscribers.delete(topic);
      this.#onLast(topic);
    }
  }

  subscribers(topic: string): ReadonlySet<WebSocket> | undefined {
    return this.#subscribers.get(topic);
  }

  count(topic: string): number {
    return this.#subscribers.get(topic)?.size ?? 0;
  }

  get topics(): IterableIterator<string> {
    return this.#subscribers.keys();
  }
}

/** Whether `socket` is left out by an `except` option. */
export function isExcepted(socket: WebSocket, except: PublishOptions['except']): boolean {
  if (except === undefined) return false;
  if (except instanceof Set) return except.has(socket);
  if (Array.isArray(except)) return except.includes(socket);
  return except === socket;
}
