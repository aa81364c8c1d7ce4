/**
 * The wire format of one topic message on a Redis channel: a fixed 18-byte header, then the
 * payload bytes untouched (no JSON, no base64, so binary data costs nothing extra).
 *
 * ```
 * byte 0      0xF7        format marker and version (a byte no UTF-8 text starts with)
 * byte 1      flags       bit 0: the payload is binary (else text); other bits are zero
 * bytes 2-17  node id     16 random bytes naming the RedisAdapter that published it
 * bytes 18-   payload
 * ```
 */

/** Format marker and version 1. Not a valid first byte of UTF-8 text, so stray text is caught. */
export const ENVELOPE_MARKER = 0xf7;
/** Length of the random id each adapter stamps on its messages. */
export const NODE_ID_LENGTH = 16;
/** Bytes before the payload. */
export const HEADER_LENGTH = 2 + NODE_ID_LENGTH;

const FLAG_BINARY = 0x01;

/** A decoded message. `data` is a view into the received buffer, not a copy. */
export interface Envelope {
  nodeId: Buffer;
  isBinary: boolean;
  data: Buffer;
}

/** Header + payload in one buffer, ready for PUBLISH. */
export function encodeEnvelope(nodeId: Buffer, data: Buffer, isBinary: boolean): Buffer {
  if (nodeId.length !== NODE_ID_LENGTH) {
    throw new RangeError(`node id must be ${NODE_ID_LENGTH} bytes, got ${nodeId.length}`);
  }
  const message = Buffer.allocUnsafe(HEADER_LENGTH + data.length);
  message[0] = ENVELOPE_MARKER;
  message[1] = isBinary ? FLAG_BINARY : 0;
  nodeId.copy(message, 2);
  data.copy(message, HEADER_LENGTH);
  return message;
}

/** The envelope in `message`, or null when it is not one this version wrote. */
export function decodeEnvelope(message: Buffer): Envelope | null {
  if (message.length < HEADER_LENGTH || message[0] !== ENVELOPE_MARKER) return null;
  const flags = message[1]!;
  if ((flags & ~FLAG_BINARY) !== 0) return null;
  return {
    nodeId: message.subarray(2, HEADER_LENGTH),
    isBinary: (flags & FLAG_BINARY) !== 0,
    data: message.subarray(HEADER_LENGTH),
  };
}
