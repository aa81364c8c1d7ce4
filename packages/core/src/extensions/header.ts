/** One element of a Sec-WebSocket-Extensions header: a name and its parameters, in order. */
export interface ExtensionOffer {
  readonly name: string;
  /** Parameters as written; `true` for a parameter without a value. Duplicates are kept. */
  readonly params: ReadonlyArray<readonly [string, string | true]>;
}

const TOKEN_CHAR = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Parses a Sec-WebSocket-Extensions header (RFC 6455 §9.1, with RFC 7230's list, OWS and
 * quoted-string rules). A quoted value must still be a token once unquoted (§9.1).
 * Throws a SyntaxError naming the position of the first malformed character.
 */
export function parseExtensions(header: string): ExtensionOffer[] {
  const offers: ExtensionOffer[] = [];
  let i = 0;
  const length = header.length;

  const fail = (what: string): never => {
    throw new SyntaxError(`${what} at index ${i}`);
  };
  const skipSpace = (): void => {
    while (i < length && (header[i] === ' ' || header[i] === '\t')) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < length && TOKEN_CHAR.test(header[i]!)) i++;
    if (i === start) fail('expected a token');
    return header.slice(start, i);
  };
  const readQuoted = (): string => {
    i++; // opening quote
    let value = '';
    while (i < length && header[i] !== '"') {
      if (header[i] === '\\') i++;
      if (i >= length) break;
      value += header[i];
      i++;
    }
    if (i >= length) fail('unterminated quoted string');
    i++; // closing quote
    if (!TOKEN.test(value)) fail('a quoted value that is not a token');
    return value;
  };

  for (;;) {
    skipSpace();
    // Empty list elements (",,") are allowed by RFC 7230 §7; skip them.
    if (i < length && header[i] === ',') {
      i++;
      continue;
    }
    if (i >= length) break;
    const name = readToken();
    const params: Array<[string, string | true]> = [];
    skipSpace();
    while (i < length && header[i] === ';') {
      i++;
      skipSpace();
      const key = readToken();
      skipSpace();
      let value: string | true = true;
      if (i < length && header[i] === '=') {
        i++;
        skipSpace();
        value = header[i] === '"' ? readQuoted() : readToken();
        skipSpace();
      }
      params.push([key, value]);
    }
    offers.push({ name, params });
    skipSpace();
    if (i < length) {
      if (header[i] !== ',') fail('unexpected character');
      i++;
    }
  }
  if (offers.length === 0) fail('no extension');
  return offers;
}

/** Formats one extension element: `name; a; b=10`. */
export function formatExtension(offer: ExtensionOffer): string {
  return [
    offer.name,
    ...offer.params.map(([key, value]) => (value === true ? key : `${key}=${value}`)),
  ].join('; ');
}
