import zlib from 'node:zlib';
import { Opcode, ReadyState } from '../protocol/constants.js';
import { buildFrame } from '../protocol/frame.js';
import type { PrebuiltFrame } from '../protocol/sender.js';
import type { WebSocket } from '../websocket.js';
import { isExcepted, type PublishOptions } from './topics.js';

/** What to do with a client whose send buffer is over the limit when a broadcast reaches it. */
export interface SlowConsumerPolicy {
  /** Bytes a client may have waiting (`bufferedAmount`) and still get broadcasts; 0 for no limit. */
  readonly maxBufferedAmount: number;
  /** Called for each client over the limit; the client does not get this message. */
  readonly onSlow: (socket: WebSocket) => void;
}

export interface FanOutOptions extends PublishOptions {
  /** Only clients for which this returns true. */
  filter?: (socket: WebSocket) => boolean;
}

/**
 * Sends one message to many clients, building its frame once: the same bytes go to every
 * socket that can take them. Clients that negotiated permessage-deflate without server context
 * takeover share one compressed frame per window size; clients with context takeover keep
 * their own compression context, so they are sent to one by one. Returns how many got it.
 */
export function fanOut(
  targets: Iterable<WebSocket>,
  payload: Buffer,
  binary: boolean,
  options: FanOutOptions,
  policy: SlowConsumerPolicy,
): number {
  const opcode = binary ? Opcode.Binary : Opcode.Text;
  const compress = options.compress ?? true;
  let plain: PrebuiltFrame | undefined;
  let compressed: Map<number, PrebuiltFrame> | undefined;
  let delivered = 0;
  for (const socket of targets) {
    if (socket.readyState !== ReadyState.OPEN || isExcepted(socket, options.except)) continue;
    if (options.filter !== undefined && !options.filter(socket)) continue;
    if (policy.maxBufferedAmount > 0 && socket.bufferedAmount > policy.maxBufferedAmount) {
      policy.onSlow(socket);
      continue;
    }
    const deflate = socket.perMessageDeflate;
    let taken: boolean;
    if (compress && deflate !== undefined && payload.length >= deflate.threshold) {
      if (!deflate.params.serverNoContextTakeover) {
        // Its own compression context: compressed per connection, in order with its sends.
        if (socket.sendWhole(payload, binary)) delivered++;
        continue;
      }
      const bits = deflate.params.serverMaxWindowBits;
      compressed ??= new Map();
      let frame = compressed.get(bits);
      if (frame === undefined) {
        const out = zlib.deflateRawSync(payload, {
          ...deflate.zlibDeflateOptions,
          windowBits: bits,
          finishFlush: zlib.constants.Z_SYNC_FLUSH,
        });
        frame = buildFrame(out.subarray(0, out.length - 4), {
          opcode,
          fin: true,
          rsv1: true,
          mask: false,
        });
        compressed.set(bits, frame);
      }
      taken = socket.sendFrame(frame);
    } else {
      plain ??= buildFrame(payload, { opcode, fin: true, rsv1: false, mask: false });
      taken = socket.sendFrame(plain);
    }
    if (taken) delivered++;
  }
  return delivered;
}
