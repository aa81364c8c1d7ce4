/** RFC 7230 §3.2.6 token characters. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Strips HTTP optional whitespace (RFC 9110 §5.6.3: spaces and tabs only, unlike String.trim). */
export function trimOws(value: string): string {
  return value.replace(/^[ \t]+|[ \t]+$/g, '');
}

export function isToken(value: string): boolean {
  return TOKEN.test(value);
}

/**
 * Parses a Sec-WebSocket-Protocol header: comma-separated tokens, no duplicates
 * (RFC 6455 §4.1). Returns null when the header is malformed.
 */
export function parseSubprotocols(header: string): Set<string> | null {
  const protocols = new Set<string>();
  for (const part of header.split(',')) {
    const protocol = trimOws(part);
    if (!isToken(protocol) || protocols.has(protocol)) return null;
    protocols.add(protocol);
  }
  return protocols;
}
