import { Duplex } from 'node:stream';

/**
 * One end of an in-memory connection. What one end writes, the other reads; ending or
 * destroying one end gives the other end-of-stream, as closing a TCP connection does. The
 * socket methods HTTP and WebSocket code call (`setNoDelay`, `setTimeout`, `setKeepAlive`)
 * are accepted and do nothing.
 */
export class SocketEnd extends Duplex {
  readonly remoteAddress = '127.0.0.1';
  readonly remoteFamily = 'IPv4';
  readonly remotePort: number;
  readonly localAddress = '127.0.0.1';
  readonly localPort: number;
  #peer: SocketEnd | null = null;
  /** The callback of a write the peer's buffer had no room for, run when the peer reads. */
  #blockedWrite: (() => void) | null = null;
  #readableEnded = false;

  constructor(localPort: number, remotePort: number) {
    // As a TCP socket without half-open support: end-of-stream from the peer ends this side.
    super({ allowHalfOpen: false });
    this.localPort = localPort;
    this.remotePort = remotePort;
  }

  static pair(): [client: SocketEnd, server: SocketEnd] {
    const client = new SocketEnd(50_000, 80);
    const server = new SocketEnd(80, 50_000);
    client.#peer = server;
    server.#peer = client;
    return [client, server];
  }

  override _read(): void {
    const peer = this.#peer;
    if (peer === null) return;
    const resume = peer.#blockedWrite;
    if (resume !== null) {
      peer.#blockedWrite = null;
      resume();
    }
  }

  override _write(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: (error?: Error) => void,
  ): void {
    // Delivered on a later turn of the event loop, as bytes from a network are: a peer that
    // answers inside its 'data' handler must not re-enter the writer's call stack.
    setImmediate(() => {
      const peer = this.#peer;
      if (peer === null || peer.destroyed || peer.#readableEnded) {
        callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
        return;
      }
      if (peer.push(chunk)) callback();
      else this.#blockedWrite = () => callback();
    });
  }

  override _final(callback: (error?: Error) => void): void {
    setImmediate(() => this.#peerEndsReading());
    callback();
  }

  override _destroy(error: Error | null, callback: (error: Error | null) => void): void {
    this.#blockedWrite = null;
    // After the chunks already on their way, the peer reads end of stream.
    setImmediate(() => this.#peerEndsReading());
    callback(error);
  }

  #peerEndsReading(): void {
    if (this.#peer !== null) this.#peer.#endReadable();
  }

  #endReadable(): void {
    if (this.#readableEnded || this.destroyed) return;
    this.#readableEnded = true;
    this.push(null);
  }

  setNoDelay(): this {
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  setTimeout(): this {
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }
}
