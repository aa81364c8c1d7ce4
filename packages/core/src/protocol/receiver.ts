import { ChunkQueue } from './chunk-queue.js';
import { CloseCode, isValidWireCloseCode } from './close-codes.js';
import { EMPTY_BUFFER, MAX_CONTROL_PAYLOAD, Opcode } from './constants.js';
import { messageTooBig, protocolError, WebSocketProtocolError } from './errors.js';
import { unmaskInPlace } from './mask.js';
import { MessageAssembler } from './message-assembler.js';
import { isValidUtf8, Utf8StreamValidator } from './utf8.js';

/** What the receiver reports, in the order the peer sent it. */
export interface ReceiverSink {
  /** A whole data message: one buffer, or its pieces in order, and its total length. */
  onMessage(data: Buffer | Buffer[], length: number, isBinary: boolean): void;
  onPing(payload: Buffer): void;
  onPong(payload: Buffer): void;
  /** A close frame; `code` is 1005 when the frame carried none. Parsing stops after it. */
  onClose(code: number, reason: Buffer): void;
  /** The peer broke the protocol; parsing has stopped and the connection must be failed. */
  onError(error: WebSocketProtocolError): void;
  /** Everything buffered has been parsed (no inflate pending): reading may go on. */
  onCaughtUp?(): void;
}

export interface ReceiverOptions {
  /** A server expects masked frames, a client unmasked ones (RFC 6455 §5.1). */
  readonly isServer: boolean;
  /** Largest message in bytes, checked before its bytes are buffered; 0 for no limit. */
  readonly maxPayload: number;
  /** Most frames a message may span (0: no limit); past it, 1009. */
  readonly maxFragments?: number;
  /** Skip the UTF-8 check of text messages and close reasons. */
  readonly skipUTF8Validation: boolean;
  /**
   * The negotiated permessage-deflate codec: it owns RSV1, which marks the first frame of a
   * compressed message. Without it RSV1 is a protocol error.
   */
  readonly decompressor?: MessageDecompressor;
}

/**
 * Inflates compressed frames; see `PerMessageDeflate.decompress`. The result comes back at once
 * (the chunks, or the error) or, when undefined is returned, later through `callback`.
 */
export interface MessageDecompressor {
  decompress(
    data: Buffer,
    fin: boolean,
    maxOutput: number,
    callback: (error: WebSocketProtocolError | null, chunks?: Buffer[]) => void,
  ): Buffer[] | WebSocketProtocolError | undefined;
}

// Parser states: each names what it waits for.
const READ_HEADER = 0;
const READ_PAYLOAD = 1;
const INFLATING = 2;
const STOPPED = 3;
type ParserState = 0 | 1 | 2 | 3;

/** A big-endian 32-bit integer `at` bytes ahead in the queue. */
function readUInt32(chunks: ChunkQueue, at: number): number {
  return (
    chunks.byteAt(at) * 0x1000000 +
    ((chunks.byteAt(at + 1) << 16) | (chunks.byteAt(at + 2) << 8) | chunks.byteAt(at + 3))
  );
}

/** The longest frame header: 2 bytes, a 64-bit length, a masking key. */
const MAX_HEADER = 14;
/** Where a header split across socket chunks is put together; parsing is synchronous. */
const headerScratch = Buffer.allocUnsafe(MAX_HEADER);

/** A payload waits whole in the chunk queue while it holds at most this many chunks... */
const SMALL_CHUNKS_ALLOWED = 16;
/** ...or while its chunks average at least this many bytes. */
const MIN_AVERAGE_CHUNK = 1024;

/**
 * The frame parser: an incremental state machine fed with socket chunks of any size. A
 * payload that sits in one chunk is unmasked in place and handed on as a view, with no copy.
 * Text payloads spanning chunks are consumed as they arrive, so they are checked for UTF-8 as
 * they stream in; other payloads spanning chunks are collected whole and unmasked in the copy
 * that joins them. A message over `maxPayload` is refused from its header, before its bytes
 * are kept.
 */
export class Receiver {
  readonly #sink: ReceiverSink;
  /** Kept as given, not copied: a server's connections without compression share one. */
  readonly #options: ReceiverOptions;

  #state: ParserState = READ_HEADER;
  readonly #chunks = new ChunkQueue();
  #paused = false;
  #running = false;
  #onDrained: (() => void) | null = null;

  // The frame being read.
  #fin = false;
  #opcode = 0;
  #masked = false;
  #payloadLength = 0;
  #remaining = 0;
  /** The frame's masking key, big-endian in an integer. */
  #maskKey = 0;

  // The message being assembled (opcode 0: none in progress).
  #messageOpcode = 0;
  #messageFrames = 0;
  // Message state is made on first use: a connection that never received data carries none.
  #message: MessageAssembler | null = null;
  /** Whether the message in progress is compressed (RSV1 on its first frame). */
  #compressed = false;
  /** The compressed frame being read, and the compressed bytes of the message so far. */
  #compressedPieces: Buffer[] | null = null;
  #compressedLength = 0;
  #utf8: Utf8StreamValidator | null = null;

  constructor(options: ReceiverOptions, sink: ReceiverSink) {
    this.#sink = sink;
    this.#options = options;
  }

  /** Bytes received but not parsed yet. */
  get bufferedBytes(): number {
    return this.#chunks.length;
  }

  /** Whether a compressed frame is being inflated (bytes after it wait in the buffer). */
  get inflating(): boolean {
    return this.#state === INFLATING;
  }

  /** Whether parsing ended (a close frame, a protocol error, or `stop()`). */
  get stopped(): boolean {
    return this.#state === STOPPED;
  }

  /** Feeds bytes from the socket. */
  write(chunk: Buffer): void {
    if (this.#state === STOPPED || chunk.length === 0) return;
    this.#chunks.push(chunk);
    if (!this.#paused) this.#run();
  }

  /** Stops delivering events (already buffered bytes are kept) until `resume()`. */
  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (this.#state !== STOPPED) this.#run();
  }

  get paused(): boolean {
    return this.#paused;
  }

  /**
   * Parses everything buffered (ignoring `pause()`), waits for an inflate in flight, then
   * calls `callback`: the peer's last messages are delivered before the connection ends.
   */
  drain(callback: () => void): void {
    this.#paused = false;
    this.#onDrained = callback;
    this.#run();
  }

  #checkDrained(): void {
    if (this.#onDrained === null || this.#running || this.#state === INFLATING) return;
    const callback = this.#onDrained;
    this.#onDrained = null;
    callback();
  }

  /** Ends parsing for good and drops what is buffered. */
  stop(): void {
    this.#state = STOPPED;
    this.#chunks.clear();
    this.#message?.reset();
    this.#compressedPieces = null;
  }

  #run(): void {
    // A sink callback may write more bytes or resume us re-entrantly; the outer loop owns them.
    if (this.#running) return;
    this.#running = true;
    try {
      while (!this.#paused && this.#step()) {
        // each step consumes bytes or changes state
      }
    } finally {
      this.#running = false;
    }
    this.#checkDrained();
    if (this.#state !== INFLATING && this.#state !== STOPPED && !this.#paused)
      this.#sink.onCaughtUp?.();
  }

  /** Advances one state; false when it needs more bytes or parsing is over. */
  #step(): boolean {
    if (this.#state === READ_HEADER) return this.#readHeader();
    if (this.#state === READ_PAYLOAD) {
      return this.#opcode >= Opcode.Close ? this.#readControlPayload() : this.#readDataPayload();
    }
    return false;
  }

  /**
   * Reads a whole frame header at once, in place when the socket chunk holds it. The first two
   * bytes are checked as soon as they are here, so a bad frame fails before the rest arrives.
   */
  #readHeader(): boolean {
    const chunks = this.#chunks;
    if (chunks.length < 2) return false;
    const b0 = chunks.byteAt(0);
    const b1 = chunks.byteAt(1);
    const headerError = this.#headerError(b0, b1);
    if (headerError !== null) return this.#fail(headerError);
    const masked = (b1 & 0x80) !== 0;
    const length7 = b1 & 0x7f;
    const lengthEnd = 2 + (length7 < 126 ? 0 : length7 === 126 ? 2 : 8);
    if (chunks.length < lengthEnd) return false;
    let length = length7;
    if (length7 === 126) {
      length = (chunks.byteAt(2) << 8) | chunks.byteAt(3);
    } else if (length7 === 127) {
      const high = readUInt32(chunks, 2);
      if (high > 0x7fffffff) {
        return this.#fail(
          protocolError(
            'Invalid payload length: most significant bit set',
            'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH',
          ),
        );
      }
      if (high > 0x1fffff) {
        return this.#fail(
          new WebSocketProtocolError(
            'Unsupported WebSocket frame: payload length > 2^53 - 1',
            'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH',
            CloseCode.MessageTooBig,
          ),
        );
      }
      length = high * 2 ** 32 + readUInt32(chunks, 6);
    }
    const opcode = b0 & 0x0f;
    const size = lengthEnd + (masked ? 4 : 0);
    if (chunks.length < size) {
      // A frame over a limit fails as soon as its length is known, before its masking key.
      if (opcode < Opcode.Close) {
        const starts = opcode !== Opcode.Continuation;
        const compressed = starts ? (b0 & 0x40) !== 0 : this.#compressed;
        const limitError = this.#limitError(length, compressed, starts);
        if (limitError !== null) return this.#fail(limitError);
      }
      return false;
    }
    if (chunks.contiguous >= size) {
      if (masked) this.#maskKey = chunks.first.readInt32BE(chunks.offset + lengthEnd);
      chunks.skip(size);
    } else {
      const header = chunks.copyTo(headerScratch, size);
      if (masked) this.#maskKey = header.readInt32BE(lengthEnd);
    }
    this.#fin = (b0 & 0x80) !== 0;
    this.#opcode = opcode;
    this.#masked = masked;
    if (opcode === Opcode.Text || opcode === Opcode.Binary) {
      this.#messageOpcode = opcode;
      this.#compressed = (b0 & 0x40) !== 0;
    }
    return this.#haveLength(length);
  }

  /** What is wrong with a frame whose first two bytes are `b0` `b1`, in this state; or null. */
  #headerError(b0: number, b1: number): WebSocketProtocolError | null {
    const fin = (b0 & 0x80) !== 0;
    const rsv1 = (b0 & 0x40) !== 0;
    const opcode = b0 & 0x0f;
    if ((b0 & 0x30) !== 0) {
      return protocolError(
        'Invalid WebSocket frame: RSV2 and RSV3 must be clear',
        'WS_ERR_UNEXPECTED_RSV_2_3',
      );
    }
    if (opcode >= Opcode.Close) {
      if (opcode > Opcode.Pong) {
        return protocolError(
          `Invalid WebSocket frame: invalid opcode ${opcode}`,
          'WS_ERR_INVALID_OPCODE',
        );
      }
      if (rsv1) {
        return protocolError(
          'Invalid WebSocket frame: RSV1 must be clear',
          'WS_ERR_UNEXPECTED_RSV_1',
        );
      }
      if (!fin) {
        return protocolError('Invalid WebSocket frame: FIN must be set', 'WS_ERR_EXPECTED_FIN');
      }
      if ((b1 & 0x7f) > MAX_CONTROL_PAYLOAD) {
        return protocolError(
          `Invalid WebSocket frame: invalid payload length ${b1 & 0x7f}`,
          'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH',
        );
      }
    } else if (opcode === Opcode.Continuation) {
      if (this.#messageOpcode === 0) {
        return protocolError('Invalid WebSocket frame: invalid opcode 0', 'WS_ERR_INVALID_OPCODE');
      }
      if (rsv1) {
        return protocolError(
          'Invalid WebSocket frame: RSV1 must be clear',
          'WS_ERR_UNEXPECTED_RSV_1',
        );
      }
    } else if (opcode === Opcode.Text || opcode === Opcode.Binary) {
      if (this.#messageOpcode !== 0) {
        return protocolError(
          `Invalid WebSocket frame: invalid opcode ${opcode}`,
          'WS_ERR_INVALID_OPCODE',
        );
      }
      if (rsv1 && this.#options.decompressor === undefined) {
        return protocolError(
          'Invalid WebSocket frame: RSV1 must be clear',
          'WS_ERR_UNEXPECTED_RSV_1',
        );
      }
    } else {
      return protocolError(
        `Invalid WebSocket frame: invalid opcode ${opcode}`,
        'WS_ERR_INVALID_OPCODE',
      );
    }
    if (((b1 & 0x80) !== 0) !== this.#options.isServer) {
      return this.#options.isServer
        ? protocolError('Invalid WebSocket frame: MASK must be set', 'WS_ERR_EXPECTED_MASK')
        : protocolError('Invalid WebSocket frame: MASK must be clear', 'WS_ERR_UNEXPECTED_MASK');
    }
    return null;
  }

  #haveLength(length: number): boolean {
    this.#payloadLength = length;
    this.#remaining = length;
    if (this.#opcode < Opcode.Close) {
      const error = this.#limitError(length, this.#compressed, false);
      if (error !== null) return this.#fail(error);
      this.#messageFrames++;
    }
    this.#state = READ_PAYLOAD;
    return true;
  }

  /**
   * What a data frame of `length` bytes would break, or null. `starts`: the frame opens a new
   * message (not counted in the message state yet).
   */
  #limitError(length: number, compressed: boolean, starts: boolean): WebSocketProtocolError | null {
    const frames = starts ? 1 : this.#messageFrames + 1;
    const maxFragments = this.#options.maxFragments ?? 0;
    if (maxFragments > 0 && frames > maxFragments) {
      return new WebSocketProtocolError(
        `Too many fragments: a message may span at most ${maxFragments} frames`,
        'WS_ERR_TOO_MANY_FRAGMENTS',
        CloseCode.MessageTooBig,
      );
    }
    const maxPayload = this.#options.maxPayload;
    if (maxPayload === 0) return null;
    // A compressed message is held to maxPayload after inflating; its compressed size gets
    // a margin for incompressible data, and a bound so empty deflate blocks cannot stream forever.
    const sofar = starts ? 0 : compressed ? this.#compressedLength : (this.#message?.length ?? 0);
    const limit = compressed ? maxPayload + Math.floor(maxPayload / 64) + 1024 : maxPayload;
    if (sofar + length <= limit) return null;
    return messageTooBig();
  }

  #readDataPayload(): boolean {
    const chunks = this.#chunks;
    if (this.#remaining > chunks.contiguous && this.#collectsWhole()) {
      // The rest of the payload spans socket chunks and nothing needs to see it as it streams
      // in: wait for all of it, then one pass copies (and unmasks) it into a buffer of its own.
      // Unmasking each chunk in place and joining them later would touch every byte twice.
      // The buffer is allocated once its bytes are here, never from a header's claim.
      if (chunks.length < this.#remaining) return false;
      const phase = this.#payloadLength - this.#remaining;
      const n = this.#remaining;
      const key = this.#masked ? this.#maskKey : undefined;
      const piece = chunks.copyTo(Buffer.allocUnsafe(n), n, key, phase);
      this.#remaining = 0;
      if (!this.#takePiece(piece)) return false;
    }
    while (this.#remaining > 0) {
      if (chunks.length === 0) return false;
      const piece = chunks.takeUpTo(this.#remaining);
      if (this.#masked) unmaskInPlace(piece, this.#maskKey, this.#payloadLength - this.#remaining);
      this.#remaining -= piece.length;
      if (!this.#takePiece(piece)) return false;
    }
    if (this.#compressed) return this.#inflateFrame();
    this.#state = READ_HEADER;
    if (this.#fin) return this.#finishMessage();
    return true;
  }

  /**
   * Whether the rest of this frame may wait in the chunk queue until all of it is here: not
   * while text is checked as it streams in (a bad byte fails the message at once), and not when
   * the queue holds many small chunks. A peer trickling a big frame in tiny segments would
   * otherwise make each byte cost a Buffer object; consumed now, small pieces are packed.
   */
  #collectsWhole(): boolean {
    if (
      !this.#compressed &&
      this.#messageOpcode === Opcode.Text &&
      !this.#options.skipUTF8Validation
    ) {
      return false;
    }
    const count = this.#chunks.count;
    return count <= SMALL_CHUNKS_ALLOWED || this.#chunks.length >= count * MIN_AVERAGE_CHUNK;
  }

  /** A piece of the current frame's payload, unmasked: on to the inflater or the message. */
  #takePiece(piece: Buffer): boolean {
    if (this.#compressed) {
      if (this.#compressedPieces === null) this.#compressedPieces = [piece];
      else this.#compressedPieces.push(piece);
      this.#compressedLength += piece.length;
      return true;
    }
    return this.#acceptMessageData(piece);
  }

  /**
   * Hands a whole compressed frame to the inflater and waits: nothing after it is parsed
   * until its bytes are out, which keeps messages in order.
   */
  #inflateFrame(): boolean {
    const pieces = this.#compressedPieces;
    const data =
      pieces === null ? EMPTY_BUFFER : pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
    this.#compressedPieces = null;
    const fin = this.#fin;
    const maxOutput =
      this.#options.maxPayload > 0
        ? this.#options.maxPayload - (this.#message?.length ?? 0)
        : Number.POSITIVE_INFINITY;
    this.#state = INFLATING;
    const inflated = this.#options.decompressor!.decompress(
      data,
      fin,
      maxOutput,
      (error, chunks) => {
        if (this.#state !== INFLATING) return; // stopped meanwhile
        if (this.#deliverInflated(error ?? chunks ?? [], fin)) this.#run();
        else this.#checkDrained();
      },
    );
    // Inflated at once: parsing goes on in this same pass.
    return inflated !== undefined && this.#deliverInflated(inflated, fin);
  }

  #deliverInflated(inflated: Buffer[] | WebSocketProtocolError, fin: boolean): boolean {
    if (!Array.isArray(inflated)) return this.#fail(inflated);
    this.#state = READ_HEADER;
    for (const chunk of inflated) {
      if (!this.#acceptMessageData(chunk)) return false;
    }
    if (!fin) return true;
    this.#compressedLength = 0;
    return this.#finishMessage();
  }

  /** Takes the next piece of the current message, checking text as it streams in. */
  #acceptMessageData(piece: Buffer): boolean {
    if (this.#messageOpcode === Opcode.Text && !this.#options.skipUTF8Validation) {
      this.#utf8 ??= new Utf8StreamValidator();
      if (!this.#utf8.write(piece)) return this.#fail(this.#invalidUtf8());
    }
    this.#message ??= new MessageAssembler();
    this.#message.push(piece);
    return true;
  }

  #finishMessage(): boolean {
    const isBinary = this.#messageOpcode === Opcode.Binary;
    if (
      !isBinary &&
      !this.#options.skipUTF8Validation &&
      this.#utf8 !== null &&
      !this.#utf8.end()
    ) {
      return this.#fail(this.#invalidUtf8());
    }
    this.#message ??= new MessageAssembler();
    const length = this.#message.length;
    const data = this.#message.take();
    this.#messageOpcode = 0;
    this.#messageFrames = 0;
    this.#compressed = false;
    this.#sink.onMessage(data, length, isBinary);
    return !this.stopped;
  }

  #readControlPayload(): boolean {
    if (this.#chunks.length < this.#remaining) return false;
    const payload = this.#remaining === 0 ? EMPTY_BUFFER : this.#chunks.take(this.#remaining);
    if (this.#masked) unmaskInPlace(payload, this.#maskKey);
    this.#remaining = 0;
    this.#state = READ_HEADER;
    if (this.#opcode === Opcode.Ping) {
      this.#sink.onPing(payload);
    } else if (this.#opcode === Opcode.Pong) {
      this.#sink.onPong(payload);
    } else {
      return this.#readClose(payload);
    }
    return !this.stopped;
  }

  #readClose(payload: Buffer): boolean {
    if (payload.length === 0) {
      this.stop();
      this.#sink.onClose(CloseCode.NoStatus, EMPTY_BUFFER);
      return false;
    }
    if (payload.length === 1) {
      return this.#fail(
        protocolError(
          'Invalid WebSocket frame: invalid payload length 1',
          'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH',
        ),
      );
    }
    const code = payload.readUInt16BE(0);
    if (!isValidWireCloseCode(code)) {
      return this.#fail(
        protocolError(
          `Invalid WebSocket frame: invalid status code ${code}`,
          'WS_ERR_INVALID_CLOSE_CODE',
        ),
      );
    }
    const reason = payload.subarray(2);
    if (!this.#options.skipUTF8Validation && !isValidUtf8(reason))
      return this.#fail(this.#invalidUtf8());
    this.stop();
    this.#sink.onClose(code, reason);
    return false;
  }

  #invalidUtf8(): WebSocketProtocolError {
    return new WebSocketProtocolError(
      'Invalid WebSocket frame: invalid UTF-8 sequence',
      'WS_ERR_INVALID_UTF8',
      CloseCode.InvalidPayload,
    );
  }

  #fail(error: WebSocketProtocolError): false {
    this.stop();
    this.#utf8?.reset();
    this.#sink.onError(error);
    return false;
  }
}
