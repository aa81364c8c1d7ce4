import type { PubSubAdapter, PubSubNode } from './adapter.js';

/**
 * The default adapter: topics within one process. Each server gets its own unless you pass
 * one instance to several servers, which then share their topics (handy for tests).
 */
export class MemoryAdapter implements PubSubAdapter {
  readonly #subscribers = new Map<string, Set<PubSubNode>>();
  readonly #nodes = new Set<PubSubNode>();

  attach(node: PubSubNode): void {
    this.#nodes.add(node);
  }

  detach(node: PubSubNode): void {
    this.#nodes.delete(node);
    for (const [topic, nodes] of this.#subscribers) {
      nodes.delete(node);
      if (nodes.size === 0) this.#subscribers.delete(topic);
    }
  }

  subscribe(node: PubSubNode, topic: string): void {
    let nodes = this.#subscribers.get(topic);
    if (nodes === undefined) {
      nodes = new Set();
      this.#subscribers.set(topic, nodes);
    }
    nodes.add(node);
  }

  unsubscribe(node: PubSubNode, topic: string): void {
    const nodes = this.#subscribers.get(topic);
    if (nodes === undefined) return;
    nodes.delete(node);
    if (nodes.size === 0) this.#subscribers.delete(topic);
  }

  publish(node: PubSubNode, topic: string, data: Buffer, isBinary: boolean): void {
    const nodes = this.#subscribers.get(topic);
    if (nodes === undefined) return;
    for (const other of nodes) {
      if (other !== node) other.deliver(topic, data, isBinary);
    }
  }
}
