import zlib from 'node:zlib';
import { CloseCode } from '../protocol/close-codes.js';
import { messageTooBig, WebSocketProtocolError } from '../protocol/errors.js';
import { type ExtensionOffer, formatExtension } from './header.js';
import { runInline } from './zlib-inline.js';
import { JobLimiter } from './zlib-limiter.js';

export const EXTENSION_NAME = 'permessage-deflate';

/** Options of permessage-deflate (RFC 7692), as `ws` names them. */
export interface PerMessageDeflateOptions {
  /** Ask for (client) or impose (server) no context takeover on the server's compressor. */
  serverNoContextTakeover?: boolean;
  /** Ask for (client) or impose (server) no context takeover on the client's compressor. */
  clientNoContextTakeover?: boolean;
  /** Largest LZ77 window (2^bits bytes, 8-15) the server's compressor may use. */
  serverMaxWindowBits?: number | boolean;
  /** Largest LZ77 window (8-15) the client's compressor may use; true offers the parameter without a value. */
  clientMaxWindowBits?: number | boolean;
  /** Extra options for zlib's deflate (level, memLevel, strategy...); windowBits is negotiated. */
  zlibDeflateOptions?: zlib.ZlibOptions;
  /** Extra options for zlib's inflate; windowBits is negotiated. */
  zlibInflateOptions?: zlib.ZlibOptions;
  /** Messages smaller than this many bytes are sent uncompressed (default 1024). */
  threshold?: number;
  /** zlib jobs running at once in the process (default 10); the rest wait their turn. */
  concurrencyLimit?: number;
}

/** What both ends agreed on; window bits are the effective sizes (15 when not limited). */
export interface DeflateParams {
  readonly serverNoContextTakeover: boolean;
  readonly clientNoContextTakeover: boolean;
  readonly serverMaxWindowBits: number;
  readonly clientMaxWindowBits: number;
}

/** An offer or response parameter set after validation. */
interface DeflateParamSet {
  server_no_context_takeover?: true;
  client_no_context_takeover?: true;
  server_max_window_bits?: number;
  client_max_window_bits?: number | true;
}

const WINDOW_BITS = /^(?:8|9|1[0-5])$/;

/** A negotiation the peer got wrong; the server answers it with 400, the client fails. */
export class NegotiationError extends Error {
  override readonly name = 'NegotiationError';
}

function validateParams(offer: ExtensionOffer, isResponse: boolean): DeflateParamSet {
  const set: DeflateParamSet = {};
  for (const [key, value] of offer.params) {
    if (Object.hasOwn(set, key))
      throw new NegotiationError(`Duplicate parameter "${key}" in ${EXTENSION_NAME}`);
    switch (key) {
      case 'server_no_context_takeover':
      case 'client_no_context_takeover':
        if (value !== true) throw new NegotiationError(`Parameter "${key}" takes no value`);
        set[key] = true;
        break;
      case 'server_max_window_bits':
        if (value === true || !WINDOW_BITS.test(value)) {
          throw new NegotiationError(`Invalid value for parameter "${key}": expected 8-15`);
        }
        set[key] = Number(value);
        break;
      case 'client_max_window_bits':
        // In an offer the value is optional; in a response it is required (RFC 7692 §7.1.2.2).
        if (value === true && !isResponse) {
          set[key] = true;
          break;
        }
        if (value === true || !WINDOW_BITS.test(value)) {
          throw new NegotiationError(`Invalid value for parameter "${key}": expected 8-15`);
        }
        set[key] = Number(value);
        break;
      default:
        throw new NegotiationError(`Unknown parameter "${key}" in ${EXTENSION_NAME}`);
    }
  }
  return set;
}

function windowBitsOption(value: number | boolean | undefined, name: string): number | undefined {
  if (typeof value !== 'number') return undefined;
  if (!Number.isInteger(value) || value < 8 || value > 15) {
    throw new RangeError(`perMessageDeflate.${name} must be an integer from 8 to 15`);
  }
  return value;
}

/** Checks option values once, when a server or client is created, with errors naming the option. */
export function validateDeflateOptions(options: PerMessageDeflateOptions): void {
  windowBitsOption(options.serverMaxWindowBits, 'serverMaxWindowBits');
  windowBitsOption(options.clientMaxWindowBits, 'clientMaxWindowBits');
  for (const name of ['threshold', 'concurrencyLimit'] as const) {
    const value = options[name];
    if (value !== undefined && (typeof value !== 'number' || !(value >= 0))) {
      throw new RangeError(`perMessageDeflate.${name} must be a number >= 0`);
    }
  }
}

/** The client's offer: one element, `permessage-deflate; client_max_window_bits` by default. */
export function clientOffer(options: PerMessageDeflateOptions): string {
  const params: Array<[string, string | true]> = [];
  if (options.serverNoContextTakeover) params.push(['server_no_context_takeover', true]);
  if (options.clientNoContextTakeover) params.push(['client_no_context_takeover', true]);
  const serverBits = windowBitsOption(options.serverMaxWindowBits, 'serverMaxWindowBits');
  if (serverBits !== undefined) params.push(['server_max_window_bits', String(serverBits)]);
  const clientBits = windowBitsOption(options.clientMaxWindowBits, 'clientMaxWindowBits');
  if (clientBits !== undefined) params.push(['client_max_window_bits', String(clientBits)]);
  else if (options.clientMaxWindowBits !== false) params.push(['client_max_window_bits', true]);
  return formatExtension({ name: EXTENSION_NAME, params });
}

/**
 * Server side (RFC 7692 §5, §7.1): picks the first permessage-deflate offer this server's
 * options can honour and builds the response element. Returns null when none fits (the
 * connection then runs uncompressed); throws a NegotiationError for a malformed offer.
 */
export function acceptOffers(
  offers: readonly ExtensionOffer[],
  options: PerMessageDeflateOptions,
): { params: DeflateParams; response: string } | null {
  const candidates = offers
    .filter((offer) => offer.name === EXTENSION_NAME)
    .map((offer) => validateParams(offer, false));
  const serverLimit = windowBitsOption(options.serverMaxWindowBits, 'serverMaxWindowBits') ?? 15;
  const clientLimit = windowBitsOption(options.clientMaxWindowBits, 'clientMaxWindowBits');
  for (const offer of candidates) {
    if (options.serverNoContextTakeover === false && offer.server_no_context_takeover) continue;
    if (options.serverMaxWindowBits === false && offer.server_max_window_bits !== undefined)
      continue;
    // Limiting the client's window needs a client that understands the parameter.
    if (clientLimit !== undefined && offer.client_max_window_bits === undefined) continue;

    const serverBits = Math.min(serverLimit, offer.server_max_window_bits ?? 15);
    let clientBits = 15;
    let announceClientBits = false;
    if (offer.client_max_window_bits !== undefined) {
      const offered = offer.client_max_window_bits === true ? 15 : offer.client_max_window_bits;
      clientBits = Math.min(clientLimit ?? 15, offered);
      announceClientBits = clientLimit !== undefined || offer.client_max_window_bits !== true;
    }
    const params: DeflateParams = {
      serverNoContextTakeover:
        options.serverNoContextTakeover === true || offer.server_no_context_takeover === true,
      clientNoContextTakeover:
        options.clientNoContextTakeover === true || offer.client_no_context_takeover === true,
      serverMaxWindowBits: serverBits,
      clientMaxWindowBits: clientBits,
    };
    const response: Array<[string, string | true]> = [];
    if (params.serverNoContextTakeover) response.push(['server_no_context_takeover', true]);
    if (params.clientNoContextTakeover) response.push(['client_no_context_takeover', true]);
    if (offer.server_max_window_bits !== undefined || serverBits < 15) {
      response.push(['server_max_window_bits', String(serverBits)]);
    }
    if (announceClientBits) response.push(['client_max_window_bits', String(clientBits)]);
    return { params, response: formatExtension({ name: EXTENSION_NAME, params: response }) };
  }
  return null;
}

/**
 * Client side: checks the server's response against what was offered (RFC 7692 §5) and
 * returns the agreed parameters; throws a NegotiationError when the server broke the rules.
 */
export function acceptResponse(
  elements: readonly ExtensionOffer[],
  options: PerMessageDeflateOptions,
): DeflateParams {
  const unknown = elements.find((element) => element.name !== EXTENSION_NAME);
  if (unknown !== undefined)
    throw new NegotiationError(
      `Server accepted an extension that was not offered: ${unknown.name}`,
    );
  if (elements.length !== 1)
    throw new NegotiationError(`Server accepted ${EXTENSION_NAME} more than once`);
  const response = validateParams(elements[0]!, true);
  const serverLimit = windowBitsOption(options.serverMaxWindowBits, 'serverMaxWindowBits');
  const clientLimit = windowBitsOption(options.clientMaxWindowBits, 'clientMaxWindowBits');

  if (options.clientNoContextTakeover === false && response.client_no_context_takeover) {
    throw new NegotiationError(
      'Server required client_no_context_takeover, which this client refuses',
    );
  }
  let clientBits = clientLimit ?? 15;
  if (typeof response.client_max_window_bits === 'number') {
    if (options.clientMaxWindowBits === false) {
      throw new NegotiationError(
        'Server sent client_max_window_bits, which this client did not offer',
      );
    }
    if (clientLimit !== undefined && response.client_max_window_bits > clientLimit) {
      throw new NegotiationError('Server sent a client_max_window_bits larger than offered');
    }
    clientBits = response.client_max_window_bits;
  }
  let serverBits = 15;
  if (response.server_max_window_bits !== undefined) {
    if (serverLimit !== undefined && response.server_max_window_bits > serverLimit) {
      throw new NegotiationError('Server sent a server_max_window_bits larger than offered');
    }
    serverBits = response.server_max_window_bits;
  }
  return {
    serverNoContextTakeover: response.server_no_context_takeover === true,
    clientNoContextTakeover:
      response.client_no_context_takeover === true || options.clientNoContextTakeover === true,
    serverMaxWindowBits: serverBits,
    clientMaxWindowBits: clientBits,
  };
}

/** The 4 bytes a sync flush ends with; removed from each message and restored on receipt (§7.2.1). */
const TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff]);
const DEFAULT_THRESHOLD = 1024;
const DEFAULT_CONCURRENCY = 10;
/**
 * Every write to our zlib streams ends with a sync flush: one write is one zlib job per
 * message (or fragment), whose callback comes once all of its output has been emitted.
 */
const { Z_NO_FLUSH, Z_SYNC_FLUSH } = zlib.constants;

/**
 * Payloads up to this size are (de)compressed inline, on the event loop's thread: for them, the
 * thread pool's hand-off costs CPU on both threads and adds latency, while the loop is held for
 * about a millisecond at most (level 6). Bigger ones go to the pool, so a large message never
 * stalls the other connections.
 */
const INLINE_LIMIT = 32 * 1024;
/**
 * Inflated bytes an inline run may produce before the rest of the frame moves to the thread
 * pool: a small frame may inflate to much more (a decompression bomb, up to 1:1032).
 */
const INLINE_OUTPUT_LIMIT = 256 * 1024;

let limiter: JobLimiter | undefined;
let openStreams = 0;

function noop(): void {}

function closedWhileCompressing(): Error {
  return new Error('The connection closed while the message was being compressed');
}

function invalidCompressedData(error: Error): WebSocketProtocolError {
  return new WebSocketProtocolError(
    `Invalid compressed data: ${error.message}`,
    'WS_ERR_INVALID_COMPRESSED_DATA',
    CloseCode.InvalidPayload,
  );
}

/** A message's last compressed bytes with the trailer put back, for a single inflate write. */
function withTrailer(data: Buffer): Buffer {
  const input = Buffer.allocUnsafe(data.length + TRAILER.length);
  data.copy(input, 0);
  TRAILER.copy(input, data.length);
  return input;
}

/** Called with the compressed payload, or the reason there is none. */
export type CompressCallback = (error: Error | null, compressed?: Buffer) => void;
/** Called with the decompressed chunks, or the protocol error that fails the connection. */
export type DecompressCallback = (error: WebSocketProtocolError | null, chunks?: Buffer[]) => void;

/** The inflate job in flight on a connection: where the inflater's output goes. */
interface InflateJob {
  readonly chunks: Buffer[];
  length: number;
  readonly maxOutput: number;
  readonly fin: boolean;
  finished: boolean;
  readonly done: () => void;
  readonly callback: DecompressCallback;
}

/**
 * The per-connection codec: one deflate stream for what this end sends and one inflate stream
 * for what it receives, each made on first use and freed by `close()`. Each direction runs one
 * job at a time (the sender and the receiver wait for one message before the next), so each
 * stream has one 'data' listener for its whole life, filling the output of the current job.
 */
export class PerMessageDeflate {
  /** zlib streams alive in this process (both directions, all connections): a leak gauge. */
  static get openStreams(): number {
    return openStreams;
  }

  readonly params: DeflateParams;
  /** The server's Sec-WebSocket-Extensions answer: what `ws.extensions` shows. */
  readonly header: string;
  readonly threshold: number;
  readonly #isServer: boolean;
  readonly #options: PerMessageDeflateOptions;
  #deflate: zlib.DeflateRaw | null = null;
  #inflate: zlib.InflateRaw | null = null;
  /** What the deflater emitted for the job in flight. */
  readonly #deflatedChunks: Buffer[] = [];
  #deflatedLength = 0;
  /** Stops the compression in flight (see `close()`), or null. */
  #abortCompress: (() => void) | null = null;
  #inflateJob: InflateJob | null = null;
  /**
   * Jobs given to the thread pool and not finished, per direction. zlib must never be driven
   * inline while one of them is running on the same stream (Node aborts the process on it).
   */
  #deflatesInPool = 0;
  #inflatesInPool = 0;
  #closed = false;

  constructor(
    params: DeflateParams,
    isServer: boolean,
    options: PerMessageDeflateOptions,
    header: string,
  ) {
    this.params = params;
    this.header = header;
    this.#isServer = isServer;
    this.#options = options;
    this.threshold = options.threshold ?? DEFAULT_THRESHOLD;
    limiter ??= new JobLimiter(options.concurrencyLimit ?? DEFAULT_CONCURRENCY);
  }

  /** zlib options of this end's compressor (a broadcast reuses them to compress once for many). */
  get zlibDeflateOptions(): zlib.ZlibOptions | undefined {
    return this.#options.zlibDeflateOptions;
  }

  /**
   * Compresses one message or fragment; the trailer is stripped from a message's last part.
   * A payload of up to `INLINE_LIMIT` bytes is compressed at once, on this thread, and
   * returned (or the error, when zlib failed); `callback` is then never called. A bigger one
   * goes to the thread pool: the return is undefined and `callback` gets the result.
   */
  compress(data: Buffer, fin: boolean, callback: CompressCallback): Buffer | Error | undefined {
    // A job still on the pool owns the stream (and goes first): this one queues behind it.
    if (data.length <= INLINE_LIMIT && this.#deflatesInPool === 0 && !this.#closed) {
      const compressed = this.#deflateInline(data, fin);
      if (compressed !== null) return compressed;
    }
    this.#deflateInPool(data, fin, callback);
    return undefined;
  }

  #deflateInline(data: Buffer, fin: boolean): Buffer | Error | null {
    const deflate = this.#deflater();
    // An empty message needs its empty block: see `#deflateInPool`.
    if (data.length === 0) {
      const primed = runInline(deflate, data, Z_NO_FLUSH, Number.POSITIVE_INFINITY);
      if (primed === null || primed instanceof Error) return primed;
    }
    const run = runInline(deflate, data, Z_SYNC_FLUSH, Number.POSITIVE_INFINITY);
    if (run === null || run instanceof Error) return run;
    const out = run.chunks.length === 1 ? run.chunks[0]! : Buffer.concat(run.chunks, run.length);
    return this.#deflated(out, fin);
  }

  /** A message's compressed bytes: the trailer goes from its last part (RFC 7692 §7.2.1). */
  #deflated(out: Buffer, fin: boolean): Buffer {
    if (!fin) return out;
    const noTakeover = this.#isServer
      ? this.params.serverNoContextTakeover
      : this.params.clientNoContextTakeover;
    if (noTakeover) this.#deflate?.reset();
    return out.subarray(0, out.length - TRAILER.length);
  }

  #deflateInPool(data: Buffer, fin: boolean, callback: CompressCallback): void {
    this.#deflatesInPool++;
    limiter!.run((release) => {
      const done = (): void => {
        this.#deflatesInPool--;
        release();
      };
      if (this.#closed) {
        done();
        callback(closedWhileCompressing());
        return;
      }
      const deflate = this.#deflater();
      let finished = false;
      // A closed stream may never call back: `close()` ends the job through this.
      const abort = (): void => {
        if (finished) return;
        finished = true;
        this.#abortCompress = null;
        this.#deflatedChunks.length = 0;
        this.#deflatedLength = 0;
        done();
        callback(closedWhileCompressing());
      };
      this.#abortCompress = abort;
      // zlib skips a flush that asks no more than the previous call did and has no input
      // (Z_BUF_ERROR, no output), but an empty message still needs its empty stored block:
      // a call without flush first makes the sync flush count.
      if (data.length === 0) deflate.flush(Z_NO_FLUSH);
      // One zlib job: the stream flushes every write (Z_SYNC_FLUSH), and the callback comes
      // after all of the output, however many chunks, went to the 'data' listener.
      deflate.write(data, () => {
        if (finished) return;
        if (this.#closed) {
          abort();
          return;
        }
        finished = true;
        this.#abortCompress = null;
        const chunks = this.#deflatedChunks;
        const out = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.#deflatedLength);
        chunks.length = 0;
        this.#deflatedLength = 0;
        done();
        callback(null, this.#deflated(out, fin));
      });
    });
  }

  /**
   * Decompresses one frame's payload. Output beyond `maxOutput` bytes (Infinity: no limit) stops
   * zlib at once and fails with 1009, so a decompression bomb costs no more than the limit.
   * A frame of up to `INLINE_LIMIT` compressed bytes is inflated at once, on this thread, and
   * its chunks (or the protocol error) returned; `callback` is then never called. A bigger
   * frame, or one that inflates past `INLINE_OUTPUT_LIMIT`, continues on the thread pool: the
   * return is undefined and `callback` gets the result.
   */
  decompress(
    data: Buffer,
    fin: boolean,
    maxOutput: number,
    callback: DecompressCallback,
  ): Buffer[] | WebSocketProtocolError | undefined {
    if (this.#closed) return undefined;
    // The last frame of a message carries the trailer in the same zlib call.
    const input = fin ? withTrailer(data) : data;
    // A job still on the pool owns the stream (and goes first): this one queues behind it.
    if (data.length > INLINE_LIMIT || this.#inflatesInPool > 0) {
      this.#inflateInPool(input, fin, maxOutput, callback, [], 0);
      return undefined;
    }
    const inflate = this.#inflater();
    const run = runInline(
      inflate,
      input,
      Z_SYNC_FLUSH,
      Math.min(INLINE_OUTPUT_LIMIT, maxOutput + 1),
    );
    if (run === null) {
      this.#inflateInPool(input, fin, maxOutput, callback, [], 0);
      return undefined;
    }
    if (run instanceof Error) {
      this.#discardInflater();
      return invalidCompressedData(run);
    }
    if (run.length > maxOutput) {
      this.#discardInflater();
      return messageTooBig();
    }
    if (!run.complete) {
      this.#inflateInPool(
        input.subarray(input.length - run.unread),
        fin,
        maxOutput,
        callback,
        run.chunks,
        run.length,
      );
      return undefined;
    }
    this.#inflated(fin, run.unread > 0);
    return run.chunks;
  }

  /**
   * After a frame's output is all out: the next message starts a fresh inflater when this one
   * reached the end of its deflate stream, or a reset one without context takeover.
   */
  #inflated(fin: boolean, ended: boolean): void {
    if (ended || this.#inflate?.readableEnded === true) {
      this.#discardInflater();
    } else if (fin) {
      const noTakeover = this.#isServer
        ? this.params.clientNoContextTakeover
        : this.params.serverNoContextTakeover;
      if (noTakeover) this.#inflate?.reset();
    }
  }

  /** Feeds `input` to the inflater as one thread-pool job; `chunks` holds output so far. */
  #inflateInPool(
    input: Buffer,
    fin: boolean,
    maxOutput: number,
    callback: DecompressCallback,
    chunks: Buffer[],
    length: number,
  ): void {
    this.#inflatesInPool++;
    limiter!.run((release) => {
      const done = (): void => {
        this.#inflatesInPool--;
        release();
      };
      if (this.#closed) {
        done();
        return;
      }
      const inflate = this.#inflater();
      const job: InflateJob = { chunks, length, maxOutput, fin, finished: false, done, callback };
      this.#inflateJob = job;
      const consumedBefore = inflate.bytesWritten;
      // One zlib job: the stream flushes every write (Z_SYNC_FLUSH).
      inflate.write(input, (error) => {
        // zlib errors come as an 'error' event, not here; this is for anything else.
        if (error) {
          this.#endInflate(job, invalidCompressedData(error));
          return;
        }
        // zlib stops reading at the end of a deflate stream (a BFINAL block, RFC 7692
        // §7.2.3.3), leaving input unread: the next message starts a fresh inflater.
        const ended = inflate.bytesWritten - consumedBefore < input.length;
        this.#endInflate(job, null, ended);
      });
    });
  }

  #endInflate(job: InflateJob, error: WebSocketProtocolError | null, ended = false): void {
    if (job.finished) return;
    job.finished = true;
    this.#inflateJob = null;
    job.done();
    if (this.#closed) return; // the receiver is gone: no callback, just the slot back
    if (error !== null) {
      this.#discardInflater();
      job.callback(error);
      return;
    }
    this.#inflated(job.fin, ended);
    job.callback(null, job.chunks);
  }

  /** Frees both zlib streams; later jobs are refused. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#abortCompress?.();
    if (this.#inflateJob !== null) this.#endInflate(this.#inflateJob, null);
    if (this.#deflate !== null) {
      this.#deflate.close();
      this.#deflate = null;
      openStreams--;
    }
    this.#discardInflater();
  }

  #discardInflater(): void {
    if (this.#inflate === null) return;
    this.#inflate.close();
    this.#inflate = null;
    openStreams--;
  }

  #deflater(): zlib.DeflateRaw {
    if (this.#deflate === null) {
      const windowBits = this.#isServer
        ? this.params.serverMaxWindowBits
        : this.params.clientMaxWindowBits;
      const deflate = zlib.createDeflateRaw({
        ...this.#options.zlibDeflateOptions,
        windowBits,
        flush: Z_SYNC_FLUSH,
      });
      deflate.on('error', noop);
      deflate.on('data', (chunk: Buffer) => {
        this.#deflatedChunks.push(chunk);
        this.#deflatedLength += chunk.length;
      });
      this.#deflate = deflate;
      openStreams++;
    }
    return this.#deflate;
  }

  #inflater(): zlib.InflateRaw {
    if (this.#inflate === null) {
      const windowBits = this.#isServer
        ? this.params.clientMaxWindowBits
        : this.params.serverMaxWindowBits;
      const inflate = zlib.createInflateRaw({
        ...this.#options.zlibInflateOptions,
        windowBits,
        flush: Z_SYNC_FLUSH,
      });
      // Only the current stream's output and errors count: a discarded one may still report.
      inflate.on('data', (chunk: Buffer) => {
        const job = this.#inflateJob;
        if (job === null || inflate !== this.#inflate) return;
        job.length += chunk.length;
        if (job.length > job.maxOutput) {
          this.#endInflate(job, messageTooBig());
          return;
        }
        job.chunks.push(chunk);
      });
      inflate.on('error', (error: Error) => {
        const job = this.#inflateJob;
        if (job === null || inflate !== this.#inflate) return;
        this.#endInflate(job, invalidCompressedData(error));
      });
      this.#inflate = inflate;
      openStreams++;
    }
    return this.#inflate;
  }
}
