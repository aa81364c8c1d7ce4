import { randomBytes } from 'node:crypto';

/** Hand-built frames for tests, including ones weft itself would never build. */
export interface RawFrame {
  fin?: boolean;
  rsv?: number; // the three RSV bits as a number 0-7, RSV1 = 4
  opcode: number;
  payload?: Buffer | string;
  mask?: boolean;
  /** Force the length encoding: 7, 16 or 64 bits. */
  lengthBits?: 7 | 16 | 64;
  /** Override the advertised payload length (to lie about it). */
  declaredLength?: number;
}

export function rawFrame(frame: RawFrame): Buffer {
  const payload =
    typeof frame.payload === 'string'
      ? Buffer.from(frame.payload)
      : (frame.payload ?? Buffer.alloc(0));
  const length = frame.declaredLength ?? payload.length;
  const bits = frame.lengthBits ?? (length < 126 ? 7 : length < 65536 ? 16 : 64);
  const head: number[] = [
    ((frame.fin ?? true) ? 0x80 : 0) | ((frame.rsv ?? 0) << 4) | frame.opcode,
  ];
  const maskBit = frame.mask ? 0x80 : 0;
  if (bits === 7) head.push(maskBit | length);
  else if (bits === 16) head.push(maskBit | 126, (length >> 8) & 0xff, length & 0xff);
  else {
    const big = Buffer.alloc(8);
    big.writeBigUInt64BE(BigInt(length));
    head.push(maskBit | 127, ...big);
  }
  if (!frame.mask) return Buffer.concat([Buffer.from(head), payload]);
  const key = randomBytes(4);
  const masked = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) masked[i] = payload[i]! ^ key[i & 3]!;
  return Buffer.concat([Buffer.from(head), key, masked]);
}

export function closePayload(code: number, reason: Buffer | string = ''): Buffer {
  const reasonBytes = typeof reason === 'string' ? Buffer.from(reason) : reason;
  const out = Buffer.alloc(2 + reasonBytes.length);
  out.writeUInt16BE(code, 0);
  reasonBytes.copy(out, 2);
  return out;
}
