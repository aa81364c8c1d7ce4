import type { Duplex } from 'node:stream';
import { rejectHandshake } from '@weft/core';

/**
 * Writes a complete HTTP error response straight to an upgrade socket and closes it once
 * written (core's `rejectHandshake`). Used where no `ServerResponse` is (or may still be)
 * bound to the socket: before the request enters Express, and when the upgrade times out
 * while middleware still holds the response object (a late `res.send()` then writes to
 * nothing instead of throwing).
 */
export const writeRawResponse = rejectHandshake;

/**
 * Destroys the socket once everything written to it is flushed: the client reads the whole
 * answer, and a client that never closes its side cannot keep the socket half-open.
 */
export function closeAfterWrite(socket: Duplex): void {
  if (socket.writableFinished) {
    socket.destroy();
    return;
  }
  socket.once('finish', () => socket.destroy());
}
