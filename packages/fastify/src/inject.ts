import type { ClientRequest, IncomingMessage, OutgoingHttpHeaders, Server } from 'node:http';
import { Server as TlsServer } from 'node:tls';
import { WebSocket } from '@weft/core';
import type { FastifyInstance } from 'fastify';
import { PairedSocket } from './duplex-pair.js';
import type { InjectWSHooks, InjectWSOptions, InjectWSResponseError } from './types.js';

/** What `injectWS` rejects with when the handshake gets an HTTP answer. */
class InjectedResponseError extends Error implements InjectWSResponseError {
  override readonly name = 'InjectWSResponseError';
  readonly statusCode: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;

  constructor(response: IncomingMessage, body: string) {
    super(`Unexpected server response: ${response.statusCode}`);
    this.statusCode = response.statusCode ?? 0;
    this.headers = response.headers;
    this.body = body;
  }
}

/**
 * Builds `app.injectWS`. The client and the server talk over an in-memory socket pair: the
 * server end is handed to the HTTP server the plugin answers upgrades on as a new connection,
 * so Node parses the upgrade request and the request takes the same way as one from the
 * network (the 'upgrade' event, the router, hooks, the handshake). Only TCP (and TLS) is
 * skipped.
 */
export function createInjectWS(
  app: FastifyInstance,
  server: Pick<Server, 'emit'>,
): (path?: string, options?: InjectWSOptions, hooks?: InjectWSHooks) => Promise<WebSocket> {
  // An HTTPS server takes its HTTP connections from 'secureConnection', once TLS is done: the
  // server end goes in there, marked encrypted, so `request.protocol` is 'https' as it would
  // be, and as negotiated for HTTP/1.1, which an HTTP/2 server with `allowHTTP1` then serves.
  const secure = server instanceof TlsServer;
  return async function injectWS(path = '/', options = {}, hooks = {}) {
    // Routes and hooks are only in place once the app is ready, as for `app.inject`.
    await app.ready();
    const headers = injectedHeaders(options);
    const [serverEnd, clientEnd] = PairedSocket.pair();
    if (secure) {
      serverEnd.encrypted = true;
      serverEnd.alpnProtocol = 'http/1.1';
      serverEnd.server = server;
      server.emit('secureConnection', serverEnd);
    } else {
      server.emit('connection', serverEnd);
    }
    const client = new WebSocket(new URL(path, 'ws://localhost'), options.protocols ?? [], {
      ...options.client,
      headers,
      createConnection: (() => clientEnd) as unknown as NonNullable<
        ConstructorParameters<typeof WebSocket>[2]
      >['createConnection'],
    });
    hooks.onInit?.(client);
    return new Promise<WebSocket>((resolve, reject) => {
      const onError = (error: Error): void => {
        cleanup();
        reject(error);
      };
      const onOpen = (): void => {
        cleanup();
        try {
          hooks.onOpen?.(client);
        } catch (error) {
          client.terminate();
          reject(error);
          return;
        }
        resolve(client);
      };
      const onResponse = (_request: ClientRequest, response: IncomingMessage): void => {
        cleanup();
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          reject(new InjectedResponseError(response, Buffer.concat(chunks).toString()));
          // The server ends the connection after a refusal; this makes sure the client end goes too.
          clientEnd.destroy();
        });
      };
      const cleanup = (): void => {
        client.removeListener('open', onOpen);
        client.removeListener('error', onError);
        client.removeListener('unexpected-response', onResponse);
      };
      client.once('open', onOpen);
      client.once('error', onError);
      client.once('unexpected-response', onResponse);
    });
  };
}

/** The request headers: `headers` without its unset entries, plus `cookies` in `cookie`. */
function injectedHeaders(options: InjectWSOptions): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    if (value !== undefined) headers[name.toLowerCase()] = value;
  }
  if (options.cookies !== undefined) {
    const pairs = Object.entries(options.cookies).map(
      ([name, value]) => `${name}=${encodeURIComponent(value)}`,
    );
    const existing = headers.cookie;
    const before = existing === undefined ? [] : [existing].flat().map(String);
    headers.cookie = [...before, ...pairs].join('; ');
  }
  return headers;
}
