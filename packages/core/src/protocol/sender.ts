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
}

type PendingPayload = Buffer | Blob;

interface PendingSend {
  payload: PendingPayload;
  opcode: number;
  options: DataFrameOptions | null;
  callback: WriteCallback | undefined;
}

/**
 * Turns messages and control frames into frames on the socket, in call order. A message
 * whose bytes are not at hand yet (a Blob being read) holds back everything sent after it.
 */
export class Sender {
  readonly #socket: Duplex;
  readonly #onPayloadError: (error: Error) => void;
  /** Set between a `fin: false` send and the message's last fragment. */
  #inFragmentedMessage = false;
  /** Sends waiting behind a Blob, or null when sends go straight to the socket. */
  #waiting: PendingSend[] | null = null;
  #waitingBytes = 0;

  constructor(socket: Duplex, onPayloadError: (error: Error) => void) {
    this.#socket = socket;
    this.#onPayloadError = onPayloadError;
  }

  /** Bytes accepted by `send` but not yet given to the socket. */
  get queuedBytes(): number {
    return this.#waitingBytes;
  }

  sendData(payload: PendingPayload, options: DataFrameOptions, callback?: WriteCallback): void {
    this.#enqueue({ payload, opcode: -1, options, callback });
  }

  sendControl(opcode: number, payload: Buffer, mask: boolean, callback?: WriteCallback): void {
    this.#enqueue({ payload, opcode, options: { binary: true, fin: true, mask }, callback });
  }

  #enqueue(send: PendingSend): void {
    if (this.#waiting !== null) {
      this.#waiting.push(send);
      this.#waitingBytes += payloadSize(send.payload);
      return;
    }
    if (Buffer.isBuffer(send.payload)) {
      this.#write(send, send.payload);
      return;
    }
    this.#waiting = [];
    this.#waitingBytes = send.payload.size;
    this.#readBlob(send, send.payload);
  }

  #readBlob(send: PendingSend, blob: Blob): void {
    blob.arrayBuffer().then(
      (bytes) => {
        this.#waitingBytes -= blob.size;
        this.#write(send, Buffer.from(bytes));
        this.#drainWaiting();
      },
      (error: unknown) => {
        // Nothing after an unreadable payload may go out, or the peer would see a message
        // with a piece missing; the connection is failed by the owner.
        const reason = error instanceof Error ? error : new Error(String(error));
        const waiting = this.#waiting ?? [];
        this.#waiting = [];
        this.#waitingBytes = 0;
        send.callback?.(reason);
        for (const later of waiting) later.callback?.(reason);
        this.#onPayloadError(reason);
      },
    );
  }

  #drainWaiting(): void {
    const waiting = this.#waiting;
    if (waiting === null) return;
    while (waiting.length > 0) {
      const next = waiting.shift()!;
      if (!Buffer.isBuffer(next.payload)) {
        this.#readBlob(next, next.payload);
        return;
      }
      this.#waitingBytes -= next.payload.length;
      this.#write(next, next.payload);
    }
    this.#waiting = null;
  }

  #write(send: PendingSend, payload: Buffer): void {
    const options = send.options!;
    let opcode = send.opcode;
    if (opcode === -1) {
      opcode = this.#inFragmentedMessage
        ? Opcode.Continuation
        : options.binary
          ? Opcode.Binary
          : Opcode.Text;
      this.#inFragmentedMessage = !options.fin;
    }
    const frame = buildFrame(payload, {
      opcode,
      fin: options.fin,
      rsv1: false,
      mask: options.mask,
    });
    const socket = this.#socket;
    if (Buffer.isBuffer(frame)) {
      socket.write(frame, send.callback);
    } else {
      socket.cork();
      socket.write(frame[0]);
      socket.write(frame[1], send.callback);
      socket.uncork();
    }
  }
}

function payloadSize(payload: PendingPayload): number {
  return Buffer.isBuffer(payload) ? payload.length : payload.size;
}
