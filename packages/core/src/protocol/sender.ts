import type { Blob } from 'node:buffer';
import type { Duplex } from 'node:stream';
import { Opcode } from './constants.js';
import { buildFrame, buildStringFrame, frameOptions, MERGE_LIMIT } from './frame.js';

/** Called once the data was handed to the operating system, or with the reason it was not. */
export type WriteCallback = (error?: Error | null) => void;

export interface DataFrameOptions {
  readonly binary: boolean;
  readonly fin: boolean;
  readonly mask: boolean;
  /** Compress when the connection negotiated permessage-deflate (decided per message). */
  readonly compress: boolean;
  /** Bytes on the wire when known up front (prebuilt frames). */
  readonly size?: number;
}

/** Every size-less `DataFrameOptions` there is, made once: a send makes no options object. */
const DATA_FRAME_OPTIONS: readonly DataFrameOptions[] = Array.from({ length: 16 }, (_, index) => ({
  binary: (index & 1) !== 0,
  fin: (index & 2) !== 0,
  mask: (index & 4) !== 0,
  compress: (index & 8) !== 0,
}));

/** The shared options object for these settings (not to be changed). */
export function dataFrameOptions(
  binary: boolean,
  fin: boolean,
  mask: boolean,
  compress: boolean,
): DataFrameOptions {
  return DATA_FRAME_OPTIONS[
    (binary ? 1 : 0) | (fin ? 2 : 0) | (mask ? 4 : 0) | (compress ? 8 : 0)
  ]!;
}

/** What the sender reports to the connection that owns it. */
export interface SenderOwner {
  /** A payload could not be produced (an unreadable Blob, a failed compression). */
  onPayloadError(error: Error): void;
  /** The queue emptied after an async step: a 'drain' may be due. */
  onSenderIdle(): void;
}

/**
 * Compresses outgoing messages; see `PerMessageDeflate.compress`. The result comes back at once
 * (the payload, or the error) or, when undefined is returned, later through `callback`.
 */
export interface MessageCompressor {
  /** Messages below this many bytes are not worth compressing. */
  readonly threshold: number;
  compress(
    data: Buffer,
    fin: boolean,
    callback: (error: Error | null, compressed?: Buffer) => void,
  ): Buffer | Error | undefined;
}

type Payload = Buffer | Blob;

/** A frame built once and written as is, to many sockets (broadcast, publish). */
export type PrebuiltFrame = Buffer | [Buffer, Buffer];

/** Opcode marks for queued items that are not a single control frame. */
const DATA = -1;
const PREBUILT = -2;

interface PendingSend {
  payload: Payload;
  /** DATA for a data frame (text, binary or continuation is decided in order), PREBUILT for a ready frame. */
  opcode: number;
  frame?: PrebuiltFrame;
  options: DataFrameOptions;
  callback: WriteCallback | undefined;
}

/** Broadcast frames up to this size, on a socket with less than this waiting, are merged per tick. */
const CORK_LIMIT = 64 * 1024;

/** Senders whose sockets are corked until the current tick ends (null: none). */
let corkedSenders: Sender[] | null = null;

function uncorkAll(): void {
  const senders = corkedSenders!;
  corkedSenders = null;
  for (const sender of senders) sender.uncorkTick();
}

/**
 * Turns messages and control frames into frames on the socket, in call order. A send that
 * needs time (a Blob being read, a message being compressed) holds back every send after it,
 * so the peer sees frames exactly in the order `send` was called.
 */
export class Sender {
  readonly #socket: Duplex;
  readonly #compressor: MessageCompressor | undefined;
  readonly #owner: SenderOwner;
  /** Set between a `fin: false` send and the message's last fragment. */
  #inFragmentedMessage = false;
  /** Whether the last queued data send left a message open (`fin: false`). */
  #openMessageAtTail = false;
  /** Prebuilt whole messages waiting for the open fragmented message to end (made on need). */
  #afterMessage: PendingSend[] | null = null;
  /** Whether the message in progress is compressed: decided by its first fragment. */
  #compressingMessage = false;
  /** Sends waiting behind a slow one (made on need: most connections never queue). */
  #queue: PendingSend[] | null = null;
  #queuedBytes = 0;
  #busy = false;
  /** Set when a payload could not be produced: later data is refused, control frames still go. */
  #broken: Error | null = null;
  /** Whether `#corkForTick` holds this socket's writes until the tick ends. */
  #corkedForTick = false;
  /** Set by `endAfterQueued` while sends wait: the socket ends when the last has gone out. */
  #endWhenIdle = false;

  constructor(socket: Duplex, compressor: MessageCompressor | undefined, owner: SenderOwner) {
    this.#socket = socket;
    this.#compressor = compressor;
    this.#owner = owner;
  }

  /** Bytes accepted by `send` but not yet given to the socket. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /**
   * Queues a data message or fragment; false when it could not be written at once. A `whole`
   * message (a broadcast) never joins this connection's own open fragmented message: it waits
   * for that message's last fragment.
   */
  sendData(
    data: Payload | string,
    options: DataFrameOptions,
    callback?: WriteCallback,
    whole = false,
  ): boolean {
    if (typeof data === 'string') {
      const sent = this.#sendShortString(data, options, callback, whole);
      if (sent !== undefined) return sent;
    }
    const payload = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    if (whole && this.#openMessageAtTail && this.#broken === null) {
      const send: PendingSend = { payload, opcode: DATA, options, callback };
      this.#holdAfterMessage(send);
      this.#queuedBytes += sizeOf(send);
      return false;
    }
    this.#openMessageAtTail = !options.fin;
    // Nothing ahead of it: a buffer goes straight out, with no queue entry made for it.
    const flowing =
      !this.#busy && this.#broken === null && Buffer.isBuffer(payload)
        ? this.#sendBuffer(payload, options, callback)
        : this.#enqueue({ payload, opcode: DATA, options, callback });
    if (options.fin && this.#afterMessage !== null) {
      // The fragmented message is complete: the whole messages held behind it follow.
      const held = this.#afterMessage;
      this.#afterMessage = null;
      for (const send of held) {
        this.#queuedBytes -= sizeOf(send);
        this.#enqueue(send);
      }
      return false;
    }
    return flowing;
  }

  /**
   * A short whole message with nothing ahead of it and no compression: its text is encoded
   * straight into the frame. Undefined when the general path must take it.
   */
  #sendShortString(
    text: string,
    options: DataFrameOptions,
    callback: WriteCallback | undefined,
    whole: boolean,
  ): boolean | undefined {
    if (
      this.#busy ||
      this.#broken !== null ||
      this.#inFragmentedMessage ||
      !options.fin ||
      (whole && this.#openMessageAtTail) ||
      text.length > MERGE_LIMIT
    ) {
      return undefined;
    }
    const byteLength = Buffer.byteLength(text, 'utf8');
    if (byteLength > MERGE_LIMIT || this.#compresses(options, byteLength)) return undefined;
    this.#openMessageAtTail = false;
    this.#compressingMessage = false;
    const opcode = options.binary ? Opcode.Binary : Opcode.Text;
    const frame = buildStringFrame(
      text,
      byteLength,
      frameOptions(opcode, true, false, options.mask),
    );
    return this.#writeFrame(frame, callback);
  }

  /**
   * Queues a frame built elsewhere (one frame for many sockets). Inside a fragmented message
   * of this connection's own it waits for that message's last fragment, so it never lands
   * between fragments.
   */
  sendFrame(frame: PrebuiltFrame, callback?: WriteCallback): boolean {
    const size = Buffer.isBuffer(frame) ? frame.length : frame[0].length + frame[1].length;
    if (!this.#busy && this.#broken === null && !this.#openMessageAtTail) {
      this.#corkForTick(size);
      return this.#writeFrame(frame, callback);
    }
    const send: PendingSend = {
      payload: Buffer.isBuffer(frame) ? frame : frame[1],
      opcode: PREBUILT,
      frame,
      options: { binary: true, fin: true, mask: false, compress: false, size },
      callback,
    };
    if (this.#openMessageAtTail && this.#broken === null) {
      this.#holdAfterMessage(send);
      this.#queuedBytes += size;
      return false;
    }
    return this.#enqueue(send);
  }

  /**
   * Holds this socket's writes until the current tick ends, so the frames that several
   * broadcasts in one tick send it leave in one `writev` (one system call) instead of one
   * each. Only small frames and a small backlog are held: a big frame gains nothing from
   * merging, and what waits here is not yet in the kernel (it counts in `bufferedAmount`).
   */
  #corkForTick(size: number): void {
    if (size <= CORK_LIMIT && this.#socket.writableLength < CORK_LIMIT) {
      if (this.#corkedForTick) return;
      this.#corkedForTick = true;
      this.#socket.cork();
      if (corkedSenders === null) {
        corkedSenders = [this];
        process.nextTick(uncorkAll);
      } else {
        corkedSenders.push(this);
      }
    } else {
      this.uncorkTick();
    }
  }

  /** Lets out what `#corkForTick` held (the tick ended, or the backlog grew). @internal */
  uncorkTick(): void {
    if (!this.#corkedForTick) return;
    this.#corkedForTick = false;
    this.#socket.uncork();
  }

  sendControl(opcode: number, payload: Buffer, mask: boolean, callback?: WriteCallback): boolean {
    return this.#enqueue({
      payload,
      opcode,
      options: dataFrameOptions(true, true, mask, false),
      callback,
    });
  }

  #enqueue(send: PendingSend): boolean {
    if (this.#broken !== null && send.opcode < 0) {
      const error = this.#broken;
      process.nextTick(() => send.callback?.(error));
      return false;
    }
    if (this.#busy) {
      if (this.#queue === null) this.#queue = [send];
      else this.#queue.push(send);
      this.#queuedBytes += sizeOf(send);
      return false;
    }
    return this.#process(send);
  }

  #holdAfterMessage(send: PendingSend): void {
    if (this.#afterMessage === null) this.#afterMessage = [send];
    else this.#afterMessage.push(send);
  }

  /**
   * Sends one queued item; may leave the sender busy until an async step finishes. True when
   * the bytes went to the socket without filling its buffer.
   */
  #process(send: PendingSend): boolean {
    if (send.frame !== undefined) return this.#writeFrame(send.frame, send.callback);
    const payload = send.payload;
    if (!Buffer.isBuffer(payload)) {
      this.#busy = true;
      this.#queuedBytes += payload.size;
      payload.arrayBuffer().then(
        (bytes) => {
          this.#queuedBytes -= payload.size;
          this.#busy = false;
          send.payload = Buffer.from(bytes);
          this.#process(send);
          this.#drain();
        },
        (error: unknown) =>
          this.#abandon(send.callback, error instanceof Error ? error : new Error(String(error))),
      );
      return false;
    }
    if (send.opcode !== DATA) {
      return this.#write(send.opcode, payload, true, false, send.options.mask, send.callback);
    }
    return this.#sendBuffer(payload, send.options, send.callback);
  }

  /** Sends a data message or fragment held in a buffer (compressing it when negotiated). */
  #sendBuffer(
    payload: Buffer,
    options: DataFrameOptions,
    callback: WriteCallback | undefined,
  ): boolean {
    const first = !this.#inFragmentedMessage;
    const opcode = first ? (options.binary ? Opcode.Binary : Opcode.Text) : Opcode.Continuation;
    if (first) {
      this.#compressingMessage = this.#compresses(options, payload.length);
    }
    this.#inFragmentedMessage = !options.fin;
    if (!this.#compressingMessage) {
      return this.#write(opcode, payload, options.fin, false, options.mask, callback);
    }
    const compressed = this.#compressor!.compress(payload, options.fin, (error, later) => {
      this.#queuedBytes -= payload.length;
      this.#busy = false;
      const result = error ?? later;
      this.#sendCompressed(result, opcode, first, options, callback);
      // An abandoned message has already dealt with the sends behind it.
      if (Buffer.isBuffer(result)) this.#drain();
    });
    if (compressed !== undefined) {
      return this.#sendCompressed(compressed, opcode, first, options, callback);
    }
    // Compressing on the thread pool: every send after this one waits for it.
    this.#busy = true;
    this.#queuedBytes += payload.length;
    return false;
  }

  /** Writes a compressed payload, or abandons the message when there is none (false then). */
  #sendCompressed(
    compressed: Buffer | Error | undefined,
    opcode: number,
    first: boolean,
    options: DataFrameOptions,
    callback: WriteCallback | undefined,
  ): boolean {
    if (!Buffer.isBuffer(compressed)) {
      this.#abandon(callback, compressed ?? new Error('Compression failed'));
      return false;
    }
    // RSV1 marks the first frame of a compressed message only (RFC 7692 §6).
    return this.#write(opcode, compressed, options.fin, first, options.mask, callback);
  }

  /** Whether a message of `length` bytes starting now is to be compressed. */
  #compresses(options: DataFrameOptions, length: number): boolean {
    const compressor = this.#compressor;
    return options.compress && compressor !== undefined && length >= compressor.threshold;
  }

  /** Whether `endAfterQueued` is waiting for the queue: the socket will end by itself. */
  get ending(): boolean {
    return this.#endWhenIdle;
  }

  /**
   * Ends the socket once every send accepted so far has been written: the last step of the
   * closing handshake (RFC 6455 §7.1.1), whose close frame may be waiting behind a message
   * still being compressed or a Blob still being read. Frames held for an open fragmented
   * message that never ends are not waited for.
   */
  endAfterQueued(): void {
    if (this.#busy || this.#queue !== null) {
      this.#endWhenIdle = true;
      return;
    }
    const socket = this.#socket;
    if (!socket.writableEnded && !socket.destroyed) socket.end();
  }

  #drain(): void {
    while (!this.#busy && this.#queue !== null) {
      const next = this.#queue.shift()!;
      if (this.#queue.length === 0) this.#queue = null;
      this.#queuedBytes -= sizeOf(next);
      this.#process(next);
    }
    if (!this.#busy && this.#queue === null) {
      this.#endIfAsked();
      this.#owner.onSenderIdle();
    }
  }

  /** The queue has gone out: the end `endAfterQueued` put off is due. */
  #endIfAsked(): void {
    if (!this.#endWhenIdle) return;
    this.#endWhenIdle = false;
    this.endAfterQueued();
  }

  /**
   * A payload could not be produced. No data after it may go out, or the peer would see a
   * message with a piece missing: waiting and later data sends are refused, control frames
   * (the close frame that fails the connection) still go, and the owner is told.
   */
  #abandon(callback: WriteCallback | undefined, error: Error): void {
    this.#broken = error;
    this.#busy = false;
    const waiting = [...(this.#queue ?? []), ...(this.#afterMessage ?? [])];
    this.#queue = null;
    this.#afterMessage = null;
    this.#queuedBytes = 0;
    callback?.(error);
    for (const later of waiting) {
      if (later.opcode < 0) later.callback?.(error);
      else this.#process(later);
    }
    this.#owner.onPayloadError(error);
    if (!this.#busy && this.#queue === null) this.#endIfAsked();
  }

  #write(
    opcode: number,
    payload: Buffer,
    fin: boolean,
    rsv1: boolean,
    mask: boolean,
    callback: WriteCallback | undefined,
  ): boolean {
    return this.#writeFrame(buildFrame(payload, frameOptions(opcode, fin, rsv1, mask)), callback);
  }

  #writeFrame(frame: PrebuiltFrame, callback: WriteCallback | undefined): boolean {
    const socket = this.#socket;
    // The connection ended the socket (the peer left, or the closing handshake is done) while
    // this frame waited its turn behind a compression or a Blob: it cannot go out. Its
    // callback says so; a write now would only raise 'write after end' on the socket.
    if (socket.writableEnded) {
      if (callback !== undefined) process.nextTick(callback, socketEndedError());
      return false;
    }
    if (Buffer.isBuffer(frame)) return socket.write(frame, callback);
    socket.cork();
    socket.write(frame[0]);
    const flowing = socket.write(frame[1], callback);
    socket.uncork();
    return flowing;
  }
}

function socketEndedError(): Error {
  return new Error('The connection ended before this frame could be sent');
}

function sizeOf(send: PendingSend): number {
  if (send.options.size !== undefined) return send.options.size;
  return Buffer.isBuffer(send.payload) ? send.payload.length : send.payload.size;
}
