/** Types of reference.mjs, the independent model weft is tested against. */

export declare const TRAILER: Buffer;
export declare const MALFORMED_UTF8: readonly (readonly number[])[];

export declare class Utf8Prefix {
  write(bytes: Uint8Array): boolean;
  end(): boolean;
}

export declare function isUtf8Reference(bytes: Uint8Array): boolean;
export declare function isWireCloseCode(code: number): boolean;
export declare function maskBytes(payload: Uint8Array, key: Uint8Array): Buffer;

export interface FrameSpec {
  fin?: boolean;
  rsv?: number;
  opcode: number;
  payload?: Buffer;
  maskKey?: Uint8Array | null;
  lengthBits?: 7 | 16 | 64;
  declaredLength?: number | bigint;
}
export declare function encodeFrame(spec: FrameSpec): Buffer;
export declare function compressMessage(data: Buffer, windowBits?: number): Buffer;
export declare function compressFragment(data: Buffer, windowBits?: number): Buffer;

export interface ReferenceOptions {
  isServer: boolean;
  maxPayload?: number;
  maxFragments?: number;
  skipUTF8Validation?: boolean;
  deflate?: { windowBits: number; noContextTakeover: boolean } | null;
}

export type ReferenceEvent =
  | { type: 'message'; isBinary: boolean; data: Buffer }
  | { type: 'ping' | 'pong'; data: Buffer }
  | { type: 'close'; code: number; reason: Buffer }
  | { type: 'error'; closeCodes: number[] };

export declare function referenceDecode(
  input: Buffer,
  options: ReferenceOptions,
): { events: ReferenceEvent[]; notes: Set<string>; undefinedFrom: number | undefined };

export declare const NOTE_COMPRESSED_FRAME_AT_LIMIT: string;
export declare const NOTE_DEFLATE_STREAM_ENDED: string;

export declare function validUpgradeRequest(
  method: unknown,
  headers: Record<string, unknown>,
): { key: string; version: number; protocols: string[] } | null;
