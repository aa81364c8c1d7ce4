import { isUtf8 } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { Utf8StreamValidator } from '../src/protocol/utf8.js';

function validInPieces(bytes: Buffer, pieceSize: number): boolean {
  const validator = new Utf8StreamValidator();
  for (let i = 0; i < bytes.length; i += pieceSize) {
    if (!validator.write(bytes.subarray(i, i + pieceSize))) return false;
  }
  return validator.end();
}

const samples: Array<[string, number[]]> = [
  ['ascii', [...Buffer.from('hello')]],
  ['2-byte', [...Buffer.from('é')]],
  ['3-byte', [...Buffer.from('€')]],
  ['4-byte', [...Buffer.from('😀')]],
  ['max code point', [0xf4, 0x8f, 0xbf, 0xbf]],
  ['above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
  ['surrogate', [0xed, 0xa0, 0x80]],
  ['overlong 2-byte', [0xc0, 0x80]],
  ['overlong 3-byte', [0xe0, 0x80, 0xaf]],
  ['overlong 4-byte', [0xf0, 0x80, 0x80, 0xaf]],
  ['lone continuation', [0x80]],
  ['truncated', [0xe2, 0x82]],
  ['invalid lead F5', [0xf5, 0x80, 0x80, 0x80]],
  ['FF', [0xff]],
  ['mixed valid', [...Buffer.from('κόσμε a€😀z')]],
  ['continuation too many', [0xc3, 0xa9, 0x80]],
];

describe('Utf8StreamValidator', () => {
  for (const [name, bytes] of samples) {
    it(`agrees with buffer.isUtf8 for ${name} at every split`, () => {
      const buffer = Buffer.from(bytes);
      for (let size = 1; size <= buffer.length; size++) {
        expect(validInPieces(buffer, size)).toBe(isUtf8(buffer));
      }
    });
  }

  it('agrees with buffer.isUtf8 on random byte strings split at random', () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const alphabet = [
      0x41, 0x7f, 0x80, 0xbf, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0x9f, 0xa0, 0x8f, 0x90,
    ];
    for (let round = 0; round < 3000; round++) {
      const bytes = Buffer.from(
        Array.from({ length: random() % 12 }, () => alphabet[random() % alphabet.length]!),
      );
      expect(validInPieces(bytes, 1 + (random() % 4))).toBe(isUtf8(bytes));
    }
  });

  it('fails at the first piece that cannot start valid text', () => {
    const validator = new Utf8StreamValidator();
    expect(validator.write(Buffer.from([0xf0]))).toBe(true);
    expect(validator.write(Buffer.from([0x8f]))).toBe(false); // F0 8F is an overlong prefix
  });
});
