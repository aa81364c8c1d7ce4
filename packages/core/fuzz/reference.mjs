/**
 * An independent reference model of what a WebSocket endpoint must make of a byte stream
 * (RFC 6455 framing, RFC 7692 permessage-deflate, RFC 3629 UTF-8), written for testing weft:
 * it shares no code with the engine. The property tests (test/fuzz.property.test.ts) and the
 * long fuzz (fuzz/fuzz.mjs) both compare weft against it.
 *
 * Where the RFCs leave a choice to the implementation, the model follows weft's documented
 * policy, as `ws` does: a declared length over 2^53 - 1 is 1009, a message over `maxPayload`
 * bytes is 1009 as soon as a frame header announces it, a compressed message may carry
 * `maxPayload + maxPayload / 64 + 1024` compressed bytes, and a text message fails with 1007 as
 * soon as the bytes received so far cannot be the start of valid UTF-8.
 */
import zlib from 'node:zlib';

/** The 4 bytes a permessage-deflate receiver appends to every message (RFC 7692 §7.2.2). */
export const TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff]);

const SYNC_FLUSH = { finishFlush: zlib.constants.Z_SYNC_FLUSH };

/**
 * Malformed UTF-8 for the generators to plant in text: overlongs, surrogates, code points over
 * U+10FFFF, stray continuations, truncated sequences, and one valid run ending in a surrogate.
 */
export const MALFORMED_UTF8 = [
  [0xc0, 0x80],
  [0xc1, 0xbf],
  [0xe0, 0x80, 0x80],
  [0xed, 0xa0, 0x80],
  [0xf0, 0x80, 0x80, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0xf5],
  [0xff],
  [0x80],
  [0xbf, 0xbf],
  [0xe2, 0x82],
  [0xf0, 0x9f, 0x98],
  [0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80],
];

/** A byte-at-a-time UTF-8 decoder (Unicode 15 Table 3-7) that reports whether a prefix can still be valid. */
export class Utf8Prefix {
  #need = 0;
  #low = 0x80;
  #high = 0xbf;
  #bad = false;

  /** Feeds bytes; false once the bytes so far cannot begin valid UTF-8. */
  write(bytes) {
    for (let i = 0; i < bytes.length && !this.#bad; i++) this.#byte(bytes[i]);
    return !this.#bad;
  }

  /** Whether everything fed so far is complete, valid UTF-8. Resets. */
  end() {
    const ok = !this.#bad && this.#need === 0;
    this.#need = 0;
    this.#bad = false;
    return ok;
  }

  #byte(b) {
    if (this.#need > 0) {
      if (b < this.#low || b > this.#high) {
        this.#bad = true;
        return;
      }
      this.#need--;
      this.#low = 0x80;
      this.#high = 0xbf;
      return;
    }
    if (b <= 0x7f) return;
    this.#low = 0x80;
    this.#high = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) this.#need = 1;
    else if (b === 0xe0) {
      this.#need = 2;
      this.#low = 0xa0;
    } else if ((b >= 0xe1 && b <= 0xec) || b === 0xee || b === 0xef) this.#need = 2;
    else if (b === 0xed) {
      this.#need = 2;
      this.#high = 0x9f;
    } else if (b === 0xf0) {
      this.#need = 3;
      this.#low = 0x90;
    } else if (b >= 0xf1 && b <= 0xf3) this.#need = 3;
    else if (b === 0xf4) {
      this.#need = 3;
      this.#high = 0x8f;
    } else this.#bad = true;
  }
}

export function isUtf8Reference(bytes) {
  const decoder = new Utf8Prefix();
  return decoder.write(bytes) && decoder.end();
}

/** Close codes a peer may send (RFC 6455 §7.4.1, §7.4.2; 1012-1014 registered with IANA since). */
export function isWireCloseCode(code) {
  return (
    (code >= 1000 && code <= 1003) ||
    (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999)
  );
}

/** XORs `payload` with the 4-byte `key` into a new buffer. */
export function maskBytes(payload, key) {
  const out = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) out[i] = payload[i] ^ key[i & 3];
  return out;
}

/**
 * Builds one frame, valid or not. `rsv` holds the three RSV bits (RSV1 = 4); `maskKey` masks
 * the payload when given; `lengthBits` forces the length form; `declaredLength` lies about it.
 */
export function encodeFrame({
  fin = true,
  rsv = 0,
  opcode,
  payload = Buffer.alloc(0),
  maskKey = null,
  lengthBits,
  declaredLength,
}) {
  const length = declaredLength ?? payload.length;
  const bits = lengthBits ?? (length < 126 ? 7 : length < 65536 ? 16 : 64);
  const maskBit = maskKey === null ? 0 : 0x80;
  const head = [(fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f)];
  if (bits === 7) head.push(maskBit | (length & 0x7f));
  else if (bits === 16) head.push(maskBit | 126, (length >>> 8) & 0xff, length & 0xff);
  else {
    const big = Buffer.alloc(8);
    big.writeBigUInt64BE(BigInt(length));
    head.push(maskBit | 127, ...big);
  }
  if (maskKey === null) return Buffer.concat([Buffer.from(head), payload]);
  return Buffer.concat([Buffer.from(head), Buffer.from(maskKey), maskBytes(payload, maskKey)]);
}

/** A message compressed as RFC 7692 §7.2.1 says: raw deflate, sync flush, trailer removed. */
export function compressMessage(data, windowBits = 15) {
  const out = zlib.deflateRawSync(data, { ...SYNC_FLUSH, windowBits });
  return out.subarray(0, out.length - 4);
}

/** One fragment's data, sync-flushed on its own so it inflates to exactly `data` (trailer kept). */
export function compressFragment(data, windowBits = 15) {
  return zlib.deflateRawSync(data, { ...SYNC_FLUSH, windowBits });
}

const MAX_LENGTH = 2n ** 53n - 1n;

/**
 * The inflater of the model: each frame is inflated by re-inflating the whole deflate stream so
 * far with zlib's one-shot API and keeping the new bytes, which needs no streaming state to get
 * right. After a message whose deflate stream ended (a block with BFINAL, which RFC 7692 lets a
 * sender use to end a message), the next message starts a new stream, as `ws` does. A stream
 * that ends before its message does is left undefined (see `undefinedFrom`).
 */
class ModelInflater {
  #windowBits;
  #noContextTakeover;
  #input = Buffer.alloc(0);
  #produced = 0;
  #ended = false;

  constructor(windowBits, noContextTakeover) {
    this.#windowBits = windowBits;
    this.#noContextTakeover = noContextTakeover;
  }

  /** Whether the deflate stream ended (BFINAL) inside the current message. */
  get ended() {
    return this.#ended;
  }

  /**
   * `{ output, ended, endedBefore }`, or `{ error: true, partial }` with the bytes produced
   * before the bad data. `endedBefore`: the stream had ended before this frame's bytes.
   */
  frame(data, fin) {
    if (this.#ended) return { output: Buffer.alloc(0), ended: true, endedBefore: true };
    const before = this.#input.length;
    this.#input = Buffer.concat([this.#input, data, fin ? TRAILER : Buffer.alloc(0)]);
    const options = { ...SYNC_FLUSH, windowBits: this.#windowBits, info: true };
    try {
      const { buffer, engine } = zlib.inflateRawSync(this.#input, options);
      const output = buffer.subarray(this.#produced);
      this.#produced = buffer.length;
      if (engine.bytesWritten < this.#input.length) this.#ended = true;
      const endedBefore =
        this.#ended && engine.bytesWritten <= before && this.#input.length > before;
      return { output, ended: this.#ended, endedBefore };
    } catch {
      // The longest prefix that still inflates: what a streaming inflater emitted before failing.
      let good = this.#input.length - data.length - (fin ? 4 : 0);
      let bad = this.#input.length;
      while (bad - good > 1) {
        const mid = (good + bad) >>> 1;
        try {
          zlib.inflateRawSync(this.#input.subarray(0, mid), options);
          good = mid;
        } catch {
          bad = mid;
        }
      }
      const { buffer } = zlib.inflateRawSync(this.#input.subarray(0, good), options);
      return { error: true, partial: buffer.length - this.#produced };
    }
  }

  /** The message ended: forget the stream when no context is kept, or when it ended. */
  endMessage() {
    if (this.#noContextTakeover || this.#ended) {
      this.#input = Buffer.alloc(0);
      this.#produced = 0;
      this.#ended = false;
    }
  }
}

/**
 * Decodes a whole byte stream as an endpoint must. Options: `isServer` (frames must be masked),
 * `maxPayload` (0: none), `maxFragments` (0 or absent: none), `skipUTF8Validation`, and
 * `deflate`: null, or `{ windowBits, noContextTakeover }` of the peer's compressor.
 *
 * Returns `{ events, notes }`. Events: `{ type: 'message', isBinary, data }`, `{ type: 'ping' |
 * 'pong', data }`, `{ type: 'close', code, reason }` (code 1005 for an empty close frame) and
 * `{ type: 'error', closeCodes }`: the codes a correct endpoint may fail with (two only when a
 * compressed frame is both over the limit and corrupt, where the order zlib reports them in is
 * not specified). A close or error is last; nothing else means the stream ended mid-frame or
 * between frames. `notes` name rare situations the model met (see NOTE_*).
 *
 * `undefinedFrom`, when set, is the index of the first event the RFCs leave open: a message
 * that goes on after its deflate stream ended (a BFINAL block before its last frame). Events
 * before it are exact; from there on only the protocol's invariants hold.
 */
export function referenceDecode(input, options) {
  const { isServer, maxPayload = 0, skipUTF8Validation = false, deflate = null } = options;
  const maxFragments = options.maxFragments ?? 0;
  const validate = !skipUTF8Validation;
  const events = [];
  const notes = new Set();
  const result = { events, notes, undefinedFrom: undefined };
  const fail = (...closeCodes) => {
    events.push({ type: 'error', closeCodes });
    return result;
  };
  const inflater =
    deflate === null ? null : new ModelInflater(deflate.windowBits, deflate.noContextTakeover);
  const utf8 = new Utf8Prefix();

  // The message in progress: opcode 0 when none.
  let messageOpcode = 0;
  let compressed = false;
  let parts = [];
  let messageLength = 0;
  let compressedLength = 0;
  let frames = 0;

  let pos = 0;
  for (;;) {
    if (input.length - pos < 2) break;
    const b0 = input[pos];
    const b1 = input[pos + 1];
    const fin = (b0 & 0x80) !== 0;
    const rsv1 = (b0 & 0x40) !== 0;
    const opcode = b0 & 0x0f;
    const masked = (b1 & 0x80) !== 0;
    const control = opcode >= 8;
    if ((b0 & 0x30) !== 0) return fail(1002);
    if (control) {
      if (opcode > 0xa || rsv1 || !fin || (b1 & 0x7f) > 125) return fail(1002);
    } else if (opcode === 0) {
      if (messageOpcode === 0 || rsv1) return fail(1002);
    } else if (opcode === 1 || opcode === 2) {
      if (messageOpcode !== 0) return fail(1002);
      if (rsv1 && inflater === null) return fail(1002);
    } else {
      return fail(1002);
    }
    if (masked !== isServer) return fail(1002);

    let p = pos + 2;
    let length = b1 & 0x7f;
    if (length === 126) {
      if (input.length - p < 2) break;
      length = input.readUInt16BE(p);
      p += 2;
    } else if (length === 127) {
      if (input.length - p < 8) break;
      const big = input.readBigUInt64BE(p);
      if (big >= 2n ** 63n) return fail(1002);
      if (big > MAX_LENGTH) return fail(1009);
      length = Number(big);
      p += 8;
    }

    const frameCompressed = control ? false : opcode === 0 ? compressed : rsv1;
    if (!control) {
      if (maxFragments > 0 && (opcode === 0 ? frames : 0) + 1 > maxFragments) return fail(1009);
      if (maxPayload > 0) {
        const sofar = opcode === 0 ? (frameCompressed ? compressedLength : messageLength) : 0;
        const limit = frameCompressed
          ? maxPayload + Math.floor(maxPayload / 64) + 1024
          : maxPayload;
        if (sofar + length > limit) return fail(1009);
      }
      if (opcode !== 0) {
        messageOpcode = opcode;
        compressed = rsv1;
        parts = [];
        messageLength = 0;
        compressedLength = 0;
        frames = 0;
      }
      frames++;
    }

    let key = null;
    if (masked) {
      if (input.length - p < 4) break;
      key = input.subarray(p, p + 4);
      p += 4;
    }
    const available = Math.min(length, input.length - p);
    const raw = input.subarray(p, p + available);
    const payload = key === null ? Buffer.from(raw) : maskBytes(raw, key);

    if (control) {
      if (available < length) break;
      pos = p + length;
      if (opcode === 0x9) events.push({ type: 'ping', data: payload });
      else if (opcode === 0xa) events.push({ type: 'pong', data: payload });
      else {
        if (length === 0) {
          events.push({ type: 'close', code: 1005, reason: Buffer.alloc(0) });
          return result;
        }
        if (length === 1) return fail(1002);
        const code = payload.readUInt16BE(0);
        if (!isWireCloseCode(code)) return fail(1002);
        const reason = payload.subarray(2);
        if (validate && !isUtf8Reference(reason)) return fail(1007);
        events.push({ type: 'close', code, reason });
        return result;
      }
      continue;
    }

    const text = messageOpcode === 1 && validate;
    let output;
    if (!frameCompressed) {
      // Plain data is checked as it arrives, so bad text fails before its frame is complete.
      if (text && !utf8.write(payload)) return fail(1007);
      if (available < length) break;
      output = payload;
    } else {
      // A compressed frame is inflated once it is complete.
      if (available < length) break;
      compressedLength += length;
      if (maxPayload > 0 && messageLength === maxPayload) notes.add(NOTE_COMPRESSED_FRAME_AT_LIMIT);
      const inflated = inflater.frame(payload, fin);
      if (inflated.error) {
        if (maxPayload > 0 && messageLength + inflated.partial > maxPayload)
          return fail(1007, 1009);
        return fail(1007);
      }
      if (inflated.ended) notes.add(NOTE_DEFLATE_STREAM_ENDED);
      if (inflated.endedBefore) result.undefinedFrom ??= events.length;
      output = inflated.output;
      if (maxPayload > 0 && messageLength + output.length > maxPayload) return fail(1009);
      if (text && !utf8.write(output)) return fail(1007);
    }
    pos = p + length;
    parts.push(output);
    messageLength += output.length;
    if (!fin) continue;
    if (text && !utf8.end()) return fail(1007);
    if (frameCompressed) inflater.endMessage();
    events.push({ type: 'message', isBinary: messageOpcode === 2, data: Buffer.concat(parts) });
    messageOpcode = 0;
    compressed = false;
    parts = [];
    messageLength = 0;
    compressedLength = 0;
    frames = 0;
  }
  return result;
}

/** A compressed frame was inflated while the message already held exactly maxPayload bytes. */
export const NOTE_COMPRESSED_FRAME_AT_LIMIT = 'compressed-frame-at-limit';
/** A deflate block with BFINAL ended the compressed stream inside a message. */
export const NOTE_DEFLATE_STREAM_ENDED = 'deflate-stream-ended';

/** Tokens of RFC 7230 §3.2.6. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Optional whitespace around a field value or list element: SP and HTAB only (RFC 7230 §3.2.3). */
const trimOws = (value) => value.replace(/^[ \t]+|[ \t]+$/g, '');
const listElements = (value) => value.split(',').map(trimOws);

/**
 * Whether an upgrade request (method and lower-cased headers, values as strings, as Node's
 * http parser gives them) is a valid opening handshake for a server that speaks versions 13
 * and 8 (RFC 6455 §4.2.1). Returns `{ key, version, protocols }` or null.
 */
export function validUpgradeRequest(method, headers) {
  if (method !== 'GET') return null;
  const upgrade = headers.upgrade;
  if (typeof upgrade !== 'string' || trimOws(upgrade).toLowerCase() !== 'websocket') return null;
  const connection = headers.connection;
  if (typeof connection !== 'string') return null;
  if (!listElements(connection).some((token) => token.toLowerCase() === 'upgrade')) return null;
  const keyHeader = headers['sec-websocket-key'];
  if (typeof keyHeader !== 'string') return null;
  const key = trimOws(keyHeader);
  if (!/^[A-Za-z0-9+/]{22}==$/.test(key) || Buffer.from(key, 'base64').length !== 16) return null;
  const versionHeader = headers['sec-websocket-version'];
  if (typeof versionHeader !== 'string') return null;
  const version = trimOws(versionHeader);
  if (version !== '13' && version !== '8') return null;
  const protocols = [];
  const protocolHeader = headers['sec-websocket-protocol'];
  if (protocolHeader !== undefined) {
    if (typeof protocolHeader !== 'string') return null;
    for (const element of listElements(protocolHeader)) {
      if (!TOKEN.test(element) || protocols.includes(element)) return null;
      protocols.push(element);
    }
  }
  return { key, version: Number(version), protocols };
}
