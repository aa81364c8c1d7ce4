// The wire format, without Redis.

import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  decodeEnvelope,
  ENVELOPE_MARKER,
  encodeEnvelope,
  HEADER_LENGTH,
  NODE_ID_LENGTH,
} from '../src/index.js';

describe('envelope', () => {
  const id = randomBytes(NODE_ID_LENGTH);

  it('round-trips payload, flag and node id, with an 18-byte header', () => {
    for (const [data, isBinary] of [
      [Buffer.alloc(0), false],
      [Buffer.from('hé ✓'), false],
      [randomBytes(1000), true],
      [Buffer.alloc(HEADER_LENGTH, ENVELOPE_MARKER), true],
    ] as const) {
      const message = encodeEnvelope(id, data, isBinary);
      expect(message.length).toBe(HEADER_LENGTH + data.length);
      expect(HEADER_LENGTH).toBe(18);
      const decoded = decodeEnvelope(message)!;
      expect(decoded.isBinary).toBe(isBinary);
      expect(decoded.nodeId.equals(id)).toBe(true);
      expect(decoded.data.equals(data)).toBe(true);
    }
  });

  it('lays the header out as documented', () => {
    const message = encodeEnvelope(id, Buffer.from('x'), true);
    expect(message[0]).toBe(0xf7);
    expect(message[1]).toBe(1);
    expect(message.subarray(2, 18).equals(id)).toBe(true);
    expect(message.subarray(18).toString()).toBe('x');
    expect(encodeEnvelope(id, Buffer.from('x'), false)[1]).toBe(0);
  });

  it('refuses what it did not write', () => {
    expect(decodeEnvelope(Buffer.from('{"hello":"json"}'))).toBeNull();
    expect(decodeEnvelope(Buffer.alloc(HEADER_LENGTH - 1, ENVELOPE_MARKER))).toBeNull();
    const unknownFlag = encodeEnvelope(id, Buffer.from('x'), true);
    unknownFlag[1] = 0x03;
    expect(decodeEnvelope(unknownFlag)).toBeNull();
    expect(() => encodeEnvelope(Buffer.alloc(4), Buffer.alloc(0), false)).toThrow(RangeError);
  });
});
