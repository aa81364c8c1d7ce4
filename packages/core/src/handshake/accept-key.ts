import { hash } from 'node:crypto';
import { WEBSOCKET_GUID } from '../protocol/constants.js';

/** The Sec-WebSocket-Accept value for a Sec-WebSocket-Key (RFC 6455 §4.2.2 step 5.4). */
export function acceptKey(key: string): string {
  // The one-shot hash skips the Hash object a createHash() chain allocates per handshake.
  return hash('sha1', key + WEBSOCKET_GUID, 'base64');
}
