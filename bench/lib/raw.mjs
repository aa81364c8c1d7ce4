/**
 * The ceiling peer: plain TCP with a trivial length-prefixed framing, behind a small
 * ws-like surface (`send`, `close`, `'message'`, `'close'`, `readyState`, `bufferedAmount`)
 * so that the scenarios drive it with the same code as the WebSocket peers.
 *
 * Frame: 1 byte type (1 text, 2 binary, 8 close, 9 open), 4 bytes big-endian payload length,
 * payload. No masking, no UTF-8 check. The only handshake: the server writes an empty open frame
 * when it accepts, and the client counts as open when that arrives (so, as with WebSocket, the
 * server knows the connection before the client uses it). What is left is the cost of Node's
 * sockets and of splitting a byte stream into messages.
 *
 * Closing mirrors the WebSocket closing handshake: the client sends a close frame and the
 * server ends TCP first (so TIME_WAIT lands on the server side, as with ws and weft).
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';

const TEXT = 1;
const BINARY = 2;
const CLOSE = 8;
const OPEN_FRAME = 9;
const HEADER = 5;
/** Payloads up to this size are copied behind their header and written in one call. */
const COPY_LIMIT = 16 * 1024;

const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/** Builds one frame (header and payload in one buffer): what a broadcast writes to every socket. */
export function rawFrame(payload, binary) {
  const frame = Buffer.allocUnsafe(HEADER + payload.length);
  frame[0] = binary ? BINARY : TEXT;
  frame.writeUInt32BE(payload.length, 1);
  payload.copy(frame, HEADER);
  return frame;
}

export class RawConnection extends EventEmitter {
  readyState = OPEN;
  #socket;
  #isServer;
  #chunks = [];
  #size = 0;
  #type = 0;
  /** Payload length of the frame being read, -1 while its header is incomplete. */
  #length = -1;

  constructor(socket, isServer) {
    super();
    this.#socket = socket;
    this.#isServer = isServer;
    socket.setNoDelay(true);
    socket.on('data', (chunk) => this.#onData(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.readyState = CLOSED;
      this.emit('close', 1000, Buffer.alloc(0));
    });
  }

  get bufferedAmount() {
    return this.#socket.writableLength;
  }

  send(data, options, callback) {
    if (typeof options === 'function') {
      callback = options;
      options = {};
    }
    if (this.readyState !== OPEN) {
      if (callback) process.nextTick(callback, new Error('not open'));
      return;
    }
    const payload = typeof data === 'string' ? Buffer.from(data) : data;
    const binary = options?.binary ?? typeof data !== 'string';
    if (payload.length <= COPY_LIMIT) {
      this.#socket.write(rawFrame(payload, binary), callback);
      return;
    }
    const header = Buffer.allocUnsafe(HEADER);
    header[0] = binary ? BINARY : TEXT;
    header.writeUInt32BE(payload.length, 1);
    this.#socket.cork();
    this.#socket.write(header);
    this.#socket.write(payload, callback);
    this.#socket.uncork();
  }

  /** Writes a frame built once by `rawFrame` (broadcast). */
  sendFrame(frame) {
    if (this.readyState !== OPEN) return false;
    this.#socket.write(frame);
    return true;
  }

  close() {
    if (this.readyState !== OPEN) return;
    this.readyState = CLOSING;
    if (this.#isServer) this.#socket.end();
    else this.#socket.write(Buffer.from([CLOSE, 0, 0, 0, 0]));
  }

  terminate() {
    this.readyState = CLOSED;
    this.#socket.destroy();
  }

  #onData(chunk) {
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    for (;;) {
      if (this.#length < 0) {
        if (this.#size < HEADER) return;
        const header = this.#take(HEADER);
        this.#type = header[0];
        this.#length = header.readUInt32BE(1);
      }
      if (this.#size < this.#length) return;
      const payload = this.#take(this.#length);
      this.#length = -1;
      if (this.#type === OPEN_FRAME) {
        this.emit('open');
        continue;
      }
      if (this.#type === CLOSE) {
        this.readyState = CLOSING;
        this.#socket.end();
        return;
      }
      this.emit('message', payload, this.#type === BINARY);
    }
  }

  /** Removes `n` bytes from the front of the queue: a view when one chunk holds them. */
  #take(n) {
    this.#size -= n;
    const first = this.#chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (first.length >= n) {
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let offset = 0;
    while (offset < n) {
      const chunk = this.#chunks[0];
      const count = Math.min(chunk.length, n - offset);
      chunk.copy(out, offset, 0, count);
      offset += count;
      if (count === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(count);
    }
    return out;
  }
}

/** A raw TCP server on `host`, port 0. Resolves once it listens. */
export function listenRaw({ host, onConnection }) {
  const clients = new Set();
  const server = net.createServer({ noDelay: true }, (socket) => {
    const connection = new RawConnection(socket, true);
    socket.write(Buffer.from([OPEN_FRAME, 0, 0, 0, 0]));
    clients.add(connection);
    connection.on('close', () => clients.delete(connection));
    onConnection(connection);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: 0, backlog: 4096 }, () => {
      resolve({ server, clients, port: server.address().port });
    });
  });
}

/** Opens a raw client connection; resolves once the server's open frame arrived. */
export function connectRaw({ host, port, localAddress }) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, localAddress });
    const connection = new RawConnection(socket, false);
    const fail = () => reject(new Error('connection closed before it opened'));
    connection.once('close', fail);
    connection.once('open', () => {
      connection.removeListener('close', fail);
      resolve(connection);
    });
  });
}
