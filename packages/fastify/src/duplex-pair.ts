import { Duplex } from 'node:stream';

/**
 * One end of an in-memory connection: what one end writes, the other reads. It behaves like
 * a TCP socket where `injectWS` needs it to: backpressure reaches the writer, ending one side
 * ends the other's reading, and destroying one end is seen by the other as the connection
 * closing (after it has read what was already sent), never as lost data.
 */
export class PairedSocket extends Duplex {
  /** Read by Fastify for `request.ip`; an injected client is local by definition. */
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort = 0;
  readonly localAddress = '127.0.0.1';
  readonly localPort = 0;
  /** Set on the server end of an HTTPS app's pair, as Node sets it on a TLS socket. */
  encrypted = false;
  /**
   * The protocol TLS would have negotiated: an HTTP/2 server with `allowHTTP1` serves a
   * connection as HTTP/1.1 only when it says so.
   */
  alpnProtocol: string | false = false;
  /** The server that accepted the connection, as on a TLS socket (HTTP/2's fallback reads it). */
  server: object | null = null;
  #peer: PairedSocket | null = null;
  /** The callback of a write the peer could not take yet: called when it reads again. */
  #pendingWrite: (() => void) | null = null;
  /** Whether the end of data was pushed to the peer (it must be pushed once only). */
  #endSent = false;

  constructor() {
    // A TCP socket of an HTTP server closes once both directions are done; without this, an
    // end that only ended reading would keep the pair (and a test) alive.
    super({ allowHalfOpen: false });
  }

  /** Creates two connected ends. */
  static pair(): [PairedSocket, PairedSocket] {
    const a = new PairedSocket();
    const b = new PairedSocket();
    a.#peer = b;
    b.#peer = a;
    return [a, b];
  }

  override _read(): void {
    // The peer's held write may go on now that this end wants more.
    const peer = this.#peer;
    if (peer === null) return;
    const resume = peer.#pendingWrite;
    peer.#pendingWrite = null;
    resume?.();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    const peer = this.#peer;
    // A TCP peer that is gone drops what is sent to it; the writer learns of it from 'close'.
    if (peer === null || peer.destroyed || this.#endSent) {
      callback();
      return;
    }
    if (peer.push(chunk)) callback();
    else this.#pendingWrite = callback;
  }

  override _final(callback: () => void): void {
    this.#sendEnd();
    callback();
  }

  override _destroy(error: Error | null, callback: (error: Error | null) => void): void {
    this.#sendEnd();
    // Writes waiting on either side would wait forever: this end reads and writes no more.
    for (const end of [this, this.#peer]) {
      if (end === null) continue;
      const resume = end.#pendingWrite;
      end.#pendingWrite = null;
      resume?.();
    }
    callback(error);
  }

  #sendEnd(): void {
    const peer = this.#peer;
    if (this.#endSent || peer === null) return;
    this.#endSent = true;
    if (!peer.destroyed) peer.push(null);
  }

  // The net.Socket methods the HTTP server and client call when present: nothing to tune here.
  setTimeout(_ms: number, _callback?: () => void): this {
    return this;
  }

  setNoDelay(_noDelay?: boolean): this {
    return this;
  }

  setKeepAlive(_enable?: boolean, _delay?: number): this {
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  /** Ends the writable side and closes once it is flushed, as `net.Socket#destroySoon` does. */
  destroySoon(): void {
    if (this.writableFinished) {
      this.destroy();
      return;
    }
    this.once('finish', () => this.destroy());
    this.end();
  }
}
