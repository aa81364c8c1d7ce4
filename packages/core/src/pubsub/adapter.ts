/** A value, or a promise of it: adapters may be synchronous or not. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * A WebSocketServer as its pub/sub adapter sees it: the one thing an adapter may do to a
 * server is hand it a message another node published.
 */
export interface PubSubNode {
  /** Delivers `data` to this server's local subscribers of `topic`. */
  deliver(topic: string, data: Buffer, isBinary: boolean): void;
}

/**
 * Carries topic messages between WebSocketServers: in one process (`MemoryAdapter`) or across
 * processes and machines (`@weft/redis`). The server delivers its own publishes to its local
 * subscribers itself; the adapter's job is every other node, exactly once each.
 *
 * Each method may return a promise; a rejection is reported by the server (on `publish()`'s
 * promise and as an 'error' event), never swallowed.
 */
export interface PubSubAdapter {
  /** A server starts using this adapter (one adapter may serve several servers). */
  attach(node: PubSubNode): MaybePromise<void>;
  /** The server stops using it (it is closing); release what belongs to that node. */
  detach(node: PubSubNode): MaybePromise<void>;
  /** `node` got its first local subscriber to `topic`: start receiving it. */
  subscribe(node: PubSubNode, topic: string): MaybePromise<void>;
  /** `node` lost its last local subscriber to `topic`: stop receiving it. */
  unsubscribe(node: PubSubNode, topic: string): MaybePromise<void>;
  /** Sends to the subscribers of `topic` on every node but `node`. */
  publish(node: PubSubNode, topic: string, data: Buffer, isBinary: boolean): MaybePromise<void>;
}
