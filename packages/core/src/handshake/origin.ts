import type { IncomingMessage } from 'node:http';

/**
 * Which browser origins may open a WebSocket:
 * - `'*'`: any;
 * - a list of origins (`'https://app.example'`), where `'https://*.example.com'` matches
 *   every subdomain of example.com (not example.com itself), and `'null'` the opaque origin;
 * - a function deciding per request (it may be async);
 * - `'same-host'`: the Origin's host must be the request's Host header.
 *
 * A request without an Origin header (a non-browser client) is always allowed: the check
 * exists because browsers attach cookies to cross-site WebSocket handshakes, which lets any
 * page a logged-in user visits open a socket as that user (cross-site WebSocket hijacking).
 */
export type OriginPolicy =
  | '*'
  | 'same-host'
  | readonly string[]
  | ((origin: string, request: IncomingMessage) => boolean | Promise<boolean>);

/** The origin a handshake claims: Origin, or Sec-WebSocket-Origin for protocol version 8. */
export function requestOrigin(request: IncomingMessage): string | undefined {
  const header =
    request.headers['sec-websocket-version'] === '8'
      ? request.headers['sec-websocket-origin']
      : request.headers.origin;
  return Array.isArray(header) ? header[0] : header;
}

const DEFAULT_PORTS: Record<string, string> = {
  'http:': '80',
  'https:': '443',
  'ws:': '80',
  'wss:': '443',
};

interface ParsedOrigin {
  readonly scheme: string;
  readonly hostname: string;
  readonly port: string;
}

function parseOrigin(origin: string): ParsedOrigin | null {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return null;
  }
  return {
    scheme: url.protocol,
    hostname: url.hostname,
    port: url.port || (DEFAULT_PORTS[url.protocol] ?? ''),
  };
}

function matchesEntry(origin: ParsedOrigin, entry: string): boolean {
  const wildcard = entry.includes('://*.');
  const pattern = parseOrigin(wildcard ? entry.replace('://*.', '://') : entry);
  if (pattern === null || pattern.scheme !== origin.scheme || pattern.port !== origin.port)
    return false;
  if (!wildcard) return pattern.hostname === origin.hostname;
  return origin.hostname.endsWith(`.${pattern.hostname}`);
}

function sameHost(origin: ParsedOrigin, request: IncomingMessage): boolean {
  const host = request.headers.host;
  if (host === undefined) return false;
  const target = parseOrigin(`${origin.scheme}//${host}`);
  return target !== null && target.hostname === origin.hostname && target.port === origin.port;
}

/**
 * Applies an origin policy to a handshake: true allows it. Used by `WebSocketServer`'s
 * `origins` option and by the framework plugins, so every entry point decides the same way.
 */
export function checkOrigin(
  request: IncomingMessage,
  policy: OriginPolicy,
): boolean | Promise<boolean> {
  const origin = requestOrigin(request);
  if (origin === undefined || policy === '*') return true;
  if (typeof policy === 'function') return policy(origin, request);
  if (origin === 'null') return policy !== 'same-host' && policy.includes('null');
  const parsed = parseOrigin(origin);
  if (parsed === null) return false;
  if (policy === 'same-host') return sameHost(parsed, request);
  return policy.some((entry) => matchesEntry(parsed, entry));
}
