import type {
  ClientRequest,
  IncomingHttpHeaders,
  IncomingMessage,
  OutgoingHttpHeaders,
  Server,
} from 'node:http';
import type { Socket } from 'node:net';
import { type ClientOptions, WebSocket } from '@weft/core';
import { SocketEnd } from './socket-pair.js';

/** Options of `inject(path, options)`. */
export interface InjectOptions {
  /** Request headers (`Origin`, `Authorization`...). */
  headers?: OutgoingHttpHeaders;
  /**
   * Cookies to send, by name. Values go out as given, so pass them as a `Set-Cookie` header
   * carries them (already encoded: a signed `express-session` id stays `s%3A...`).
   */
  cookies?: Readonly<Record<string, string>>;
  /** Subprotocols to offer. */
  protocols?: string | readonly string[];
  /** Other client options: `perMessageDeflate`, `maxPayload`, `handshakeTimeout`... */
  client?: Omit<ClientOptions, 'headers' | 'createConnection' | 'agent' | 'origin'>;
}

/** The HTTP answer a refused `inject()` got instead of a WebSocket. */
export class InjectRefusedError extends Error {
  override readonly name = 'InjectRefusedError';
  /** The response status: 401, 403, 404, 302... */
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  /** The response body, as text. */
  readonly body: string;

  constructor(statusCode: number, headers: IncomingHttpHeaders, body: string) {
    super(`WebSocket upgrade refused with HTTP ${statusCode}`);
    this.statusCode = statusCode;
    this.headers = headers;
    this.body = body;
  }
}

function cookieHeader(
  existing: OutgoingHttpHeaders[string],
  cookies: Readonly<Record<string, string>>,
): string {
  const pairs = Object.entries(cookies).map(([name, value]) => `${name}=${value}`);
  const before = Array.isArray(existing) ? existing.join('; ') : existing;
  return [before, ...pairs].filter((part) => part !== undefined && part !== '').join('; ');
}

/**
 * Opens a weft client on an in-memory connection to `server` (which need not listen): the
 * server end is handed to Node's HTTP parser as a new connection, the client end to the
 * client's `createConnection`. Resolves with the open client, or rejects with
 * `InjectRefusedError` when the server answers over HTTP.
 */
export function injectClient(
  server: Server,
  path: string,
  options: InjectOptions,
): Promise<WebSocket> {
  if (typeof path !== 'string' || !path.startsWith('/')) {
    throw new TypeError("inject(path) takes a path starting with '/'");
  }
  const headers: OutgoingHttpHeaders = { ...options.headers };
  if (options.cookies !== undefined) {
    const name = Object.keys(headers).find((key) => key.toLowerCase() === 'cookie') ?? 'cookie';
    headers[name] = cookieHeader(headers[name], options.cookies);
  }
  const [clientEnd, serverEnd] = SocketEnd.pair();
  server.emit('connection', serverEnd);
  const protocols = options.protocols === undefined ? [] : options.protocols;
  const client = new WebSocket(`ws://localhost${path}`, protocols, {
    ...options.client,
    headers,
    createConnection: () => clientEnd as unknown as Socket,
  });
  return new Promise<WebSocket>((resolve, reject) => {
    const done = (): void => {
      client.removeListener('open', onOpen);
      client.removeListener('error', onError);
      client.removeListener('close', onClose);
      client.removeListener('unexpected-response', onResponse);
    };
    const onOpen = (): void => {
      done();
      resolve(client);
    };
    const onError = (error: Error): void => {
      done();
      reject(error);
    };
    const onClose = (): void => {
      done();
      reject(new Error('The connection closed before the WebSocket opened'));
    };
    const onResponse = (_request: ClientRequest, res: IncomingMessage): void => {
      done();
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('error', reject);
      res.once('end', () => {
        reject(
          new InjectRefusedError(
            res.statusCode ?? 0,
            res.headers,
            Buffer.concat(chunks).toString('utf8'),
          ),
        );
        // The server closes its end after a refusal; this makes sure the client's goes too.
        res.destroy();
      });
    };
    client.on('open', onOpen);
    client.on('error', onError);
    client.on('close', onClose);
    client.on('unexpected-response', onResponse);
  });
}
