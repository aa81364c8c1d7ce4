import { type IncomingMessage, type OutgoingHttpHeaders, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { parseSubprotocols, trimOws } from './subprotocols.js';

/** A handshake the server refuses: the HTTP status, a short reason, and extra headers. */
export interface HandshakeRejection {
  readonly ok: false;
  readonly status: number;
  readonly message: string;
  readonly headers?: OutgoingHttpHeaders;
}

/** A valid opening handshake, reduced to what the server needs to answer it. */
export interface HandshakeRequest {
  readonly ok: true;
  readonly key: string;
  readonly version: 8 | 13;
  /** The offered subprotocols, in the client's order of preference. */
  readonly protocols: ReadonlySet<string>;
}

/** 16 random bytes, base64-encoded: 22 characters and '==' (RFC 6455 §4.1). */
const KEY = /^[+/0-9A-Za-z]{22}==$/;

function reject(
  status: number,
  message: string,
  headers?: OutgoingHttpHeaders,
): HandshakeRejection {
  return headers === undefined
    ? { ok: false, status, message }
    : { ok: false, status, message, headers };
}

/** Whether a comma-separated header lists `token` (case-insensitive, OWS around items). */
function listsToken(value: string | undefined, token: string): boolean {
  if (value === undefined) return false;
  // The common header is exactly the token: no split, no array.
  if (value.length === token.length) return value.toLowerCase() === token;
  return value.split(',').some((item) => trimOws(item).toLowerCase() === token);
}

/** Handshakes with no Sec-WebSocket-Protocol share this (nothing reads it but `size`). */
const NO_PROTOCOLS: ReadonlySet<string> = new Set<string>();

/** Checks an upgrade request against RFC 6455 §4.2.1. */
export function checkUpgradeRequest(
  request: IncomingMessage,
): HandshakeRequest | HandshakeRejection {
  if (request.method !== 'GET') {
    return reject(405, 'Invalid HTTP method: a WebSocket handshake uses GET', { Allow: 'GET' });
  }
  // Read once: behind a framework that re-prototypes the request (Express), each read of
  // `request.headers` is a slow lookup.
  const headers = request.headers;
  const upgrade = headers.upgrade;
  if (upgrade === undefined || upgrade.toLowerCase() !== 'websocket') {
    return reject(400, 'Missing or invalid Upgrade header: expected "websocket"');
  }
  if (!listsToken(headers.connection, 'upgrade')) {
    return reject(400, 'Missing or invalid Connection header: expected "Upgrade"');
  }
  const key = headers['sec-websocket-key'];
  if (key === undefined || !KEY.test(trimOws(key))) {
    return reject(400, 'Missing or invalid Sec-WebSocket-Key header');
  }
  const versionHeader = headers['sec-websocket-version'];
  if (versionHeader === undefined) {
    return reject(400, 'Missing Sec-WebSocket-Version header', {
      'Sec-WebSocket-Version': '13, 8',
    });
  }
  const version = trimOws(versionHeader);
  if (version !== '13' && version !== '8') {
    return reject(426, 'Unsupported WebSocket version', { 'Sec-WebSocket-Version': '13, 8' });
  }
  const protocolHeader = headers['sec-websocket-protocol'];
  let protocols = NO_PROTOCOLS;
  if (protocolHeader !== undefined) {
    const parsed = parseSubprotocols(protocolHeader);
    if (parsed === null) return reject(400, 'Invalid Sec-WebSocket-Protocol header');
    protocols = parsed;
  }
  return { ok: true, key: trimOws(key), version: version === '13' ? 13 : 8, protocols };
}

/**
 * Answers an upgrade with an HTTP error and closes the socket once the answer is written,
 * so the client always learns why (never a silently dropped socket).
 */
export function rejectHandshake(
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
  socket.once('finish', () => socket.destroy());
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
}
