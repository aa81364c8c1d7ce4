import type { Blob } from 'node:buffer';
import type { Duplex } from 'node:stream';
import { Opcode } from './constants.js';
import { buildFrame } from './frame.js';

/** Called once the data was handed to the operating system, or with the reason it was not. */
export type WriteCallback = (error?: Error | null) => void;

export interface DataFrameOptions {
  readonly binary: boolean;
  readonly fin: boolean;
  readonly mask: boolean;
  /** Compress when the connection negotiated permessage-deflate (decided per message). */
  readonly compress: boolean;
}

/** Compresses outgoing messages; see `PerMessageDeflate.compress`. */
export interface MessageCompressor {
  /** Messages below this many bytes are not worth compressing. */
  readonly threshold: number;
  compress(
    data: Buffer,
    fin: boolean,
    callback: (error: Error | null, compressed?: Buffer) => void,
  ): void;
}

type Payload = Buffer | Blob;

interface PendingSend {
  payload: Payload;
  /** -1 for a data frame (text, binary or continuation is decided in order). */
  opcode: number;
  options: DataFrameOptions;
  callback: WriteCallback | undefined;
}

/**
 * Turns messages and control frames into frames on the socket, in call order. A send that
 * needs time (a Blob being read, a message being compressed) holds back every send after it,
 * so the peer sees frames exactly in the order `send` was called.
 */
export class Sender {
  readonly #socket: Duplex;
  readonly #compressor: MessageCompressor | undefined;
  readonly #onPayloadError: (error: Error) => void;
  /** Set between a `fin: false` send and the message's last fragment. */
  #inFragmentedMessage = false;
  /** Whether the message in progress is compressed: decided by its first fragment. */
  #compressingMessage = false;
  /** Sends waiting behind a slow one. */
  readonly #queue: PendingSend[] = [];
  #queuedBytes = 0;
  #busy = false;
  /** Set when a payload could not be produced: later data is refused, control frames still go. */
  #broken: Error | null = null;

  constructor(
    socket: Duplex,
    compressor: MessageCompressor | undefined,
    onPayloadError: (error: Error) => void,
  ) {
    this.#socket = socket;
    this.#compressor = compressor;
    this.#onPayloadError = onPayloadError;
  }

  /** Bytes accepted by `send` but not yet given to the socket. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  sendData(payload: Payload, options: DataFrameOptions, callback?: WriteCallback): void {
    this.#enqueue({ payload, opcode: -1, options, callback });
  }

  sendControl(opcode: number, payload: Buffer, mask: boolean, callback?: WriteCallback): void {
    this.#enqueue({
      payload,
      opcode,
      options: { binary: true, fin: true, mask, compress: false },
      callback,
    });
  }

  #enqueue(send: PendingSend): void {
    if (this.#broken !== null && send.opcode === -1) {
      const error = this.#broken;
      process.nextTick(() => send.callback?.(error));
      return;
    }
    if (this.#busy) {
      this.#queue.push(send);
      this.#queuedBytes += payloadSize(send.payload);
      return;
    }
    this.#process(send);
  }

  /** Sends one queued item; may leave the sender busy until an async step finishes. */
  #process(send: PendingSend): void {
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
          this.#abandon(send, error instanceof Error ? error : new Error(String(error))),
      );
      return;
    }
    if (send.opcode !== -1) {
      this.#write(send.opcode, payload, true, false, send.options.mask, send.callback);
      return;
    }
    const options = send.options;
    const first = !this.#inFragmentedMessage;
    const opcode = first ? (options.binary ? Opcode.Binary : Opcode.Text) : Opcode.Continuation;
    if (first) {
      const compressor = this.#compressor;
      this.#compressingMessage =
        options.compress && compressor !== undefined && payload.length >= compressor.threshold;
    }
    this.#inFragmentedMessage = !options.fin;
    if (!this.#compressingMessage) {
      this.#write(opcode, payload, options.fin, false, options.mask, send.callback);
      return;
    }
    this.#busy = true;
    this.#queuedBytes += payload.length;
    this.#compressor!.compress(payload, options.fin, (error, compressed) => {
      this.#queuedBytes -= payload.length;
      this.#busy = false;
      if (error !== null || compressed === undefined) {
        this.#abandon(send, error ?? new Error('Compression failed'));
        return;
      }
      // RSV1 marks the first frame of a compressed message only (RFC 7692 §6).
      this.#write(opcode, compressed, options.fin, first, options.mask, send.callback);
      this.#drain();
    });
  }

  #drain(): void {
    while (!this.#busy && this.#queue.length > 0) {
      const next = this.#queue.shift()!;
      this.#queuedBytes -= payloadSize(next.payload);
      this.#process(next);
    }
  }

  /**
   * A payload could not be produced. No data after it may go out, or the peer would see a
   * message with a piece missing: waiting and later data sends are refused, control frames
   * (the close frame that fails the connection) still go, and the owner is told.
   */
  #abandon(send: PendingSend, error: Error): void {
    this.#broken = error;
    this.#busy = false;
    const waiting = this.#queue.splice(0);
    this.#queuedBytes = 0;
    send.callback?.(error);
    for (const later of waiting) {
      if (later.opcode === -1) later.callback?.(error);
      else this.#process(later);
    }
    this.#onPayloadError(error);
  }

  #write(
    opcode: number,
    payload: Buffer,
    fin: boolean,
    rsv1: boolean,
    mask: boolean,
    callback: WriteCallback | undefined,
  ): void {
    const frame = buildFrame(payload, { opcode, fin, rsv1, mask });
    const socket = this.#socket;
    if (Buffer.isBuffer(frame)) {
      socket.write(frame, callback);
    } else {
      socket.cork();
      socket.write(frame[0]);
      socket.write(frame[1], callback);
      socket.uncork();
    }
  }
}

function payloadSize(payload: Payload): number {
  return Buffer.isBuffer(payload) ? payload.length : payload.size;
}
