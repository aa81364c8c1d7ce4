/** Where and how a client connects, read from its address. */
export interface ClientTarget {
  /** The address as the WebSocket reports it (`ws.url`): http(s) already mapped to ws(s). */
  readonly url: URL;
  readonly secure: boolean;
  /** The Unix domain socket for `ws+unix:` addresses. */
  readonly socketPath?: string;
  readonly hostname: string;
  readonly port: number;
  /** Request target: path and query. */
  readonly path: string;
}

/**
 * Parses a client address. Malformed addresses throw a SyntaxError at once, as the browser
 * WebSocket constructor does (WHATWG WebSockets §3.1).
 */
export function parseClientUrl(address: string | URL): ClientTarget {
  let url: URL;
  try {
    url = new URL(address.toString());
  } catch {
    throw new SyntaxError(`Invalid URL: ${address.toString()}`);
  }
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';

  if (url.protocol !== 'ws:' && url.protocol !== 'wss:' && url.protocol !== 'ws+unix:') {
    throw new SyntaxError(
      `The URL's protocol must be one of "ws:", "wss:", "http:", "https:", or "ws+unix:" (got "${url.protocol}")`,
    );
  }
  if (url.hash !== '') {
    throw new SyntaxError('The URL contains a fragment identifier');
  }
  const secure = url.protocol === 'wss:';
  if (url.protocol === 'ws+unix:') {
    // ws+unix:/path/to/socket:/request/path: the request path follows the first ':'.
    const [socketPath, requestPath] = splitUnixPath(url.pathname);
    if (socketPath === '') throw new SyntaxError("The URL's pathname is empty");
    return {
      url,
      secure: false,
      socketPath,
      hostname: 'localhost',
      port: 0,
      path: requestPath + url.search,
    };
  }
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? (secure ? 443 : 80) : Number(url.port);
  return { url, secure, hostname, port, path: (url.pathname || '/') + url.search };
}

function splitUnixPath(pathname: string): [string, string] {
  const colon = pathname.indexOf(':');
  if (colon === -1) return [decodeURIComponent(pathname), '/'];
  return [decodeURIComponent(pathname.slice(0, colon)), pathname.slice(colon + 1) || '/'];
}
