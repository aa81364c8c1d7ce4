import type { ClientRequest, IncomingMessage } from 'node:http';
import { WebSocket } from '@weft/core';
import type { FastifyInstance } from 'fastify';
import { PairedSocket } from './duplex-pair.js';
import type { InjectWSOptions, InjectWSResponseError } from './types.js';

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
 * server end is handed to Fastify's HTTP server as a new connection, so Node parses the
 * upgrade request and the request takes the same way as one from the network (the 'upgrade'
 * event, the router, hooks, the handshake). Only the TCP part is skipped.
 */
export function createInjectWS(
  app: FastifyInstance,
): (path?: string, options?: InjectWSOptions) => Promise<WebSocket> {
  return async function injectWS(path = '/', options = {}) {
    // Routes and hooks are only in place once the app is ready, as for `app.inject`.
    await app.ready();
    const headers: Record<string, string | string[]> = { ...options.headers };
    if (options.cookies !== undefined) {
      const pairs = Object.entries(options.cookies).map(
        ([name, value]) => `${name}=${encodeURIComponent(value)}`,
      );
      const existing = headers.cookie;
      headers.cookie = [...(existing === undefined ? [] : [existing].flat()), ...pairs].join('; ');
    }
    const [serverEnd, clientEnd] = PairedSocket.pair();
    app.server.emit('connection', serverEnd);
    const client = new WebSocket(new URL(path, 'ws://localhost'), options.protocols ?? [], {
      ...options.client,
      headers,
      createConnection: (() => clientEnd) as unknown as NonNullable<
        ConstructorParameters<typeof WebSocket>[2]
      >['createConnection'],
    });
    return new Promise<WebSocket>((resolve, reject) => {
      const onError = (error: Error): void => {
        cleanup();
        reject(error);
      };
      const onOpen = (): void => {
        cleanup();
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
