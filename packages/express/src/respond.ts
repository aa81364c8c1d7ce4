import { type OutgoingHttpHeaders, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * Writes a complete HTTP error response straight to an upgrade socket and closes it once
 * written. Used where no `ServerResponse` is (or may still be) bound to the socket: before
 * the request enters Express, and when the upgrade times out while middleware still holds
 * the response object (a late `res.send()` then writes to nothing instead of throwing).
 */
export function writeRawResponse(
  socket: Duplex,
  status: number,
  message?: string,
  headers?: OutgoingHttpHeaders,
): void {
  if (socket.destroyed) return;
  const body = message ?? STATUS_CODES[status] ?? '';
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    'Connection: close',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
  ];
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${item}`);
  }
  closeAfterWrite(socket);
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
}

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
