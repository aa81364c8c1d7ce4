import { describe, expect, it } from 'vitest';
import { Opcode } from '../src/protocol/constants.js';
import { buildFrame, buildStringFrame } from '../src/protocol/frame.js';
import { Receiver } from '../src/protocol/receiver.js';

function bytesOf(frame: Buffer | [Buffer, Buffer]): Buffer {
  return Buffer.isBuffer(frame) ? frame : Buffer.concat(frame);
}

/** Parses frames back with weft's own receiver, as the peer of the given role would. */
function parse(bytes: Buffer, isServer: boolean): Array<{ data: Buffer; isBinary: boolean }> {
  const messages: Array<{ data: Buffer; isBinary: boolean }> = [];
  const receiver = new Receiver(
    { isServer, maxPayload: 0, skipUTF8Validation: false },
    {
      onMessage: (fragments, length, isBinary) =>
        messages.push({
          data: Buffer.concat(Array.isArray(fragments) ? fragments : [fragments], length),
          isBinary,
        }),
      onPing: () => {},
      onPong: () => {},
      onClose: () => {},
      onError: (error) => {
        throw error;
      },
    },
  );
  receiver.write(bytes);
  return messages;
}

describe('buildFrame', () => {
  it('uses the 7-bit, 16-bit and 64-bit length forms at their boundaries', () => {
    const header = (length: number) =>
      bytesOf(
        buildFrame(Buffer.alloc(length), {
          opcode: Opcode.Binary,
          fin: true,
          rsv1: false,
          mask: false,
        }),
      );
    expect(header(125).subarray(0, 2)).toEqual(Buffer.from([0x82, 125]));
    expect(header(126).subarray(0, 4)).toEqual(Buffer.from([0x82, 126, 0, 126]));
    expect(header(65535).subarray(0, 4)).toEqual(Buffer.from([0x82, 126, 0xff, 0xff]));
    expect(header(65536).subarray(0, 10)).toEqual(Buffer.from([0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]));
  });

  it('sets FIN, RSV1 and the opcode', () => {
    const frame = bytesOf(
      buildFrame(Buffer.from('x'), {
        opcode: Opcode.Continuation,
        fin: false,
        rsv1: true,
        mask: false,
      }),
    );
    expect(frame[0]).toBe(0x40);
    expect(
      bytesOf(
        buildFrame(Buffer.alloc(0), { opcode: Opcode.Ping, fin: true, rsv1: false, mask: false }),
      ),
    ).toEqual(Buffer.from([0x89, 0]));
  });

  it('keeps a large unmasked payload as its own buffer (no copy)', () => {
    const payload = Buffer.alloc(4096, 1);
    const frame = buildFrame(payload, {
      opcode: Opcode.Binary,
      fin: true,
      rsv1: false,
      mask: false,
    });
    expect(Array.isArray(frame)).toBe(true);
    expect(Array.isArray(frame) && frame[1]).toBe(payload);
  });

  it('masks with a fresh key per frame and leaves the caller buffer intact', () => {
    const payload = Buffer.from('the payload to mask');
    const copy = Buffer.from(payload);
    const first = bytesOf(
      buildFrame(payload, { opcode: Opcode.Text, fin: true, rsv1: false, mask: true }),
    );
    const second = bytesOf(
      buildFrame(payload, { opcode: Opcode.Text, fin: true, rsv1: false, mask: true }),
    );
    expect(payload).toEqual(copy);
    expect(first[1]! & 0x80).toBe(0x80);
    expect(first.subarray(2, 6)).not.toEqual(second.subarray(2, 6));
  });

  for (const size of [0, 1, 47, 48, 125, 126, 1024, 1025, 65535, 65536, 200_000]) {
    for (const mask of [false, true]) {
      it(`round-trips a ${size}-byte payload through the receiver (${mask ? 'masked' : 'unmasked'})`, () => {
        const payload = Buffer.alloc(size);
        for (let i = 0; i < size; i++) payload[i] = (i * 31) & 0xff;
        const frame = bytesOf(
          buildFrame(payload, { opcode: Opcode.Binary, fin: true, rsv1: false, mask }),
        );
        const [message] = parse(frame, mask);
        expect(message?.isBinary).toBe(true);
        expect(message?.data.equals(payload)).toBe(true);
      });
    }
  }
});

describe('buildStringFrame', () => {
  const texts = [
    '',
    'a',
    'héllo wörld ✓ 🎉',
    'x'.repeat(125),
    'é'.repeat(100),
    'lone \ud800 surrogate',
  ];
  it.each([false, true])(
    'encodes text straight into the frame, as Buffer.from would (mask %s)',
    (mask) => {
      for (const text of texts) {
        const bytes = Buffer.from(text, 'utf8');
        const frame = buildStringFrame(text, bytes.length, {
          opcode: Opcode.Text,
          fin: true,
          rsv1: false,
          mask,
        });
        // A server parses what a client masks, and the other way round.
        expect(parse(frame, mask)).toEqual([{ data: bytes, isBinary: false }]);
        if (!mask)
          expect(frame).toEqual(
            bytesOf(buildFrame(bytes, { opcode: Opcode.Text, fin: true, rsv1: false, mask })),
          );
      }
    },
  );
});
