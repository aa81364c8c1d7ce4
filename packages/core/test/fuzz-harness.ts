import { expect } from 'vitest';
import type { ReferenceEvent, ReferenceOptions } from '../fuzz/reference.mjs';
import { isUtf8Reference, isWireCloseCode } from '../fuzz/reference.mjs';
import { type DeflateParams, PerMessageDeflate } from '../src/extensions/permessage-deflate.js';
import { WebSocketProtocolError } from '../src/protocol/errors.js';
import { Receiver } from '../src/protocol/receiver.js';

/** What a Receiver reported, with every buffer copied out of the receiver's hands. */
export type Observed =
  | { type: 'message'; isBinary: boolean; data: Buffer; length: number }
  | { type: 'ping' | 'pong'; data: Buffer }
  | { type: 'close'; code: number; reason: Buffer }
  | { type: 'error'; closeCode: number; code: string; name: string; isProtocolError: boolean };

export interface RunOptions {
  isServer: boolean;
  maxPayload: number;
  /** Most frames a message may span (0 or absent: no limit). */
  maxFragments?: number;
  skipUTF8Validation?: boolean;
  /** The negotiated parameters: the receiver then gets a real PerMessageDeflate. */
  deflate?: DeflateParams;
  /**
   * A listener that, after event n, pauses the receiver when pauses[n % length] holds and
   * resumes it from the next macrotask (as `allowSynchronousEvents: false` does).
   */
  pauses?: readonly boolean[];
}

export interface RunResult {
  events: Observed[];
  /** An exception `write` threw (a crash). */
  thrown?: unknown;
  /** The receiver never finished parsing what it was given (a hang). */
  hung?: boolean;
}

/** Cuts `bytes` at the given offsets (any numbers: they are reduced modulo the length). */
export function splitAt(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  if (bytes.length === 0) return [];
  const points = [...new Set(cuts.map((cut) => cut % bytes.length))]
    .filter((cut) => cut > 0)
    .sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const point of [...points, bytes.length]) {
    chunks.push(Buffer.from(bytes.subarray(start, point)));
    start = point;
  }
  return chunks;
}

/** How the reference model must be configured to play the receiver described by `options`. */
export function referenceOptions(options: RunOptions): ReferenceOptions {
  const params = options.deflate;
  return {
    isServer: options.isServer,
    maxPayload: options.maxPayload,
    maxFragments: options.maxFragments ?? 0,
    skipUTF8Validation: options.skipUTF8Validation ?? false,
    deflate:
      params === undefined
        ? null
        : options.isServer
          ? {
              windowBits: params.clientMaxWindowBits,
              noContextTakeover: params.clientNoContextTakeover,
            }
          : {
              windowBits: params.serverMaxWindowBits,
              noContextTakeover: params.serverNoContextTakeover,
            },
  };
}

/**
 * Feeds `chunks` to a fresh Receiver (yielding to the event loop before the chunks `yields`
 * marks, so inflate callbacks interleave with writes) and resolves once it parsed everything.
 */
export async function runReceiver(
  chunks: readonly Buffer[],
  options: RunOptions,
  yields: readonly boolean[] = [],
  timeoutMs = 5000,
): Promise<RunResult> {
  const events: Observed[] = [];
  let pending = 0;
  let draining = false;
  const maybePause = (): void => {
    const pauses = options.pauses;
    if (draining || pauses === undefined || pauses.length === 0) return;
    if (!pauses[events.length % pauses.length]) return;
    receiver.pause();
    pending++;
    setImmediate(() => {
      pending--;
      receiver.resume();
    });
  };
  const codec =
    options.deflate === undefined
      ? undefined
      : new PerMessageDeflate(options.deflate, options.isServer, { threshold: 0 }, EXTENSION);
  const receiver = new Receiver(
    {
      isServer: options.isServer,
      maxPayload: options.maxPayload,
      maxFragments: options.maxFragments ?? 0,
      skipUTF8Validation: options.skipUTF8Validation ?? false,
      decompressor: codec,
    },
    {
      onMessage: (fragments, length, isBinary) => {
        events.push({
          type: 'message',
          isBinary,
          data: Buffer.concat(Array.isArray(fragments) ? fragments : [fragments]),
          length,
        });
        maybePause();
      },
      onPing: (data) => {
        events.push({ type: 'ping', data: Buffer.from(data) });
        maybePause();
      },
      onPong: (data) => {
        events.push({ type: 'pong', data: Buffer.from(data) });
        maybePause();
      },
      onClose: (code, reason) => events.push({ type: 'close', code, reason: Buffer.from(reason) }),
      onError: (error) =>
        events.push({
          type: 'error',
          closeCode: error.closeCode,
          code: error.code,
          name: error.name,
          isProtocolError: error instanceof WebSocketProtocolError,
        }),
    },
  );
  const result: RunResult = { events };
  try {
    for (const [index, chunk] of chunks.entries()) {
      if (yields[index % Math.max(yields.length, 1)] === true) await nextMacrotask();
      receiver.write(chunk);
    }
  } catch (error) {
    result.thrown = error;
  }
  // Paused parsing resumes by itself; drain() (which ignores pause) only once it has.
  for (let spins = 0; pending > 0 && spins < 100_000; spins++) await nextMacrotask();
  draining = true;
  if (result.thrown === undefined) {
    const drained = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      receiver.drain(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!drained) result.hung = true;
  }
  receiver.stop();
  codec?.close();
  return result;
}

const EXTENSION = 'permessage-deflate';

function nextMacrotask(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Error codes and the close codes they go with. */
const CLOSE_CODE_OF: Record<string, number[]> = {
  WS_ERR_INVALID_UTF8: [1007],
  WS_ERR_INVALID_COMPRESSED_DATA: [1007],
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: [1009],
  WS_ERR_TOO_MANY_FRAGMENTS: [1009],
  WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH: [1002, 1009],
};

/** What must hold of any run, whatever the input. */
export function checkInvariants(result: RunResult, options: RunOptions): void {
  expect(result.thrown, 'Receiver.write threw').toBeUndefined();
  expect(result.hung, 'Receiver never finished parsing').toBeUndefined();
  const { events } = result;
  const terminal = events.findIndex((event) => event.type === 'close' || event.type === 'error');
  if (terminal !== -1) expect(terminal, 'events after a close or an error').toBe(events.length - 1);
  const validate = !(options.skipUTF8Validation ?? false);
  for (const event of events) {
    switch (event.type) {
      case 'message':
        expect(event.data.length, 'onMessage length argument').toBe(event.length);
        if (!event.isBinary && validate) expect(isUtf8Reference(event.data)).toBe(true);
        if (options.maxPayload > 0)
          expect(event.data.length).toBeLessThanOrEqual(options.maxPayload);
        break;
      case 'ping':
      case 'pong':
        expect(event.data.length).toBeLessThanOrEqual(125);
        break;
      case 'close':
        expect(event.code === 1005 || isWireCloseCode(event.code)).toBe(true);
        if (validate) expect(isUtf8Reference(event.reason)).toBe(true);
        break;
      case 'error':
        expect(event.isProtocolError, 'error is a WebSocketProtocolError').toBe(true);
        expect([1002, 1007, 1009]).toContain(event.closeCode);
        expect(event.code).toMatch(/^WS_ERR_[A-Z0-9_]+$/);
        expect(CLOSE_CODE_OF[event.code] ?? [1002]).toContain(event.closeCode);
        break;
    }
  }
}

/**
 * weft's events, in the reference's shape: equal exactly when weft decoded as the model did.
 * From `undefinedFrom` on (behaviour the RFCs leave open) only a prefix is compared.
 */
export function expectSameAsReference(
  observed: Observed[],
  expected: ReferenceEvent[],
  undefinedFrom?: number,
): void {
  const exact = undefinedFrom === undefined ? observed : observed.slice(0, undefinedFrom);
  expect(exact.map(comparable)).toEqual(
    expected.slice(0, undefinedFrom ?? expected.length).map((event, index) => {
      if (event.type !== 'error') return comparable(event);
      // Where the model allows two codes, accept the one weft chose if it is among them.
      const actual = observed[index];
      const code =
        actual?.type === 'error' && event.closeCodes.includes(actual.closeCode)
          ? actual.closeCode
          : event.closeCodes[0];
      return `error ${code}`;
    }),
  );
}

function comparable(event: Observed | ReferenceEvent): string {
  switch (event.type) {
    case 'message':
      return `${event.isBinary ? 'binary' : 'text'} ${event.data.toString('hex')}`;
    case 'ping':
    case 'pong':
      return `${event.type} ${event.data.toString('hex')}`;
    case 'close':
      return `close ${event.code} ${event.reason.toString('hex')}`;
    case 'error':
      return 'closeCode' in event ? `error ${event.closeCode}` : `error ${event.closeCodes[0]}`;
  }
}
