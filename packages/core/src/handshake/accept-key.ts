import { createHash } from 'node:crypto';
import { WEBSOCKET_GUID } from '../protocol/constants.js';

/** The Sec-WebSocket-Accept value for a Sec-WebSocket-Key (RFC 6455 §4.2.2 step 5.4). */
export function acceptKey(key: string): string {
  return createHash('sha1')
    .update(key + WEBSOCKET_GUID)
    .digest('base64');
}
