import { randomBytes } from 'node:crypto';
import http, {
  type ClientRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
} from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { parseExtensions } from '../extensions/header.js';
import {
  acceptResponse,
  clientOffer,
  PerMessageDeflate,
  type PerMessageDeflateOptions,
} from '../extensions/permessage-deflate.js';
import { acceptKey } from './accept-key.js';
import { type ClientTarget, parseClientUrl } from './client-url.js';

/** What the client handshake needs from its caller's options. */
export interface ClientHandshakeOptions extends Omit<https.RequestOptions, 'timeout'> {
  readonly protocolVersion: 8 | 13;
  readonly handshakeTimeout: number | undefined;
  readonly followRedirects: boolean;
  readonly maxRedirects: number;
  readonly origin: string | undefined;
  /** Offer permessage-deflate with these options; undefined offers nothing. */
  readonly perMessageDeflate: PerMessageDeflateOptions | undefined;
  /**
   * Reads a plain TCP connection through Node's `onread` (see `connectReadingInto`), called with
   * the socket as `this`. Not used on TLS, nor when the caller brings an agent or a socket.
   */
  readonly socketRead: SocketRead;
}

/** An `onread` callback: `length` bytes are in `buffer`, until it returns. */
export type SocketRead = (this: Duplex, length: number, buffer: Buffer) => boolean;

/**
 * One read buffer serves every client socket: Node reads into it and runs the socket's
 * `onread` callback at once, which copies the bytes out before any other socket reads.
 */
const READ_BUFFER_SIZE = 64 * 1024;
let readBuffer: Buffer | null = null;

/**
 * A `createConnection` for plain TCP whose socket hands each read to `read` instead of
 * Node's stream machinery: no Buffer per read, no push and 'data' event on the hot path.
 */
function connectReadingInto(read: SocketRead): (options: http.ClientRequestArgs) => net.Socket {
  return (options) => {
    readBuffer ??= Buffer.allocUnsafeSlow(READ_BUFFER_SIZE);
    return net.connect({
      ...(options as net.NetConnectOpts),
      onread: {
        buffer: readBuffer,
        callback: read as (length: number, buffer: Uint8Array) => boolean,
      },
    });
  };
}

/** How the handshake reports back to the WebSocket that started it. */
export interface ClientHandshakeEvents {
  /** Whether the WebSocket still wants the connection (it may be closed meanwhile). */
  isConnecting(): boolean;
  /** Called once a request is created; returns after the request is ended. */
  finishRequest(request: ClientRequest): void;
  upgrade(response: IncomingMessage): void;
  redirect(url: string, request: ClientRequest): void;
  /** A non-101 answer; returns true when the user took it over ('unexpected-response'). */
  unexpectedResponse(request: ClientRequest, response: IncomingMessage): boolean;
  open(
    socket: Duplex,
    head: Buffer,
    protocol: string,
    deflate: PerMessageDeflate | undefined,
  ): void;
  fail(error: Error): void;
}

/** Headers a redirect to another host must not carry along. */
const CREDENTIAL_HEADERS = ['authorization', 'cookie', 'host'];

/**
 * The client's opening handshake (RFC 6455 §4.1): sends the upgrade request, follows
 * redirects when allowed, and checks the server's answer before handing over the socket.
 */
export class ClientHandshake {
  readonly #options: ClientHandshakeOptions;
  readonly #protocols: readonly string[];
  readonly #events: ClientHandshakeEvents;
  #request: ClientRequest | null = null;
  #timer: NodeJS.Timeout | null = null;
  #redirects = 0;
  #done = false;

  constructor(
    target: ClientTarget,
    protocols: readonly string[],
    options: ClientHandshakeOptions,
    events: ClientHandshakeEvents,
  ) {
    this.#options = options;
    this.#protocols = protocols;
    this.#events = events;
    if (options.handshakeTimeout !== undefined && options.handshakeTimeout > 0) {
      this.#timer = setTimeout(
        () => this.#fail(new Error('Opening handshake has timed out')),
        options.handshakeTimeout,
      );
    }
    this.#send(target, { ...normalizeHeaders(options.headers) });
  }

  /** Gives up: the request is destroyed and nothing more is reported. */
  abort(): void {
    this.#finish();
  }

  #send(target: ClientTarget, headers: OutgoingHttpHeaders): void {
    const options = this.#options;
    const key = randomBytes(16).toString('base64');
    const requestHeaders: OutgoingHttpHeaders = {
      ...headers,
      'Sec-WebSocket-Version': String(options.protocolVersion),
      'Sec-WebSocket-Key': key,
      Connection: 'Upgrade',
      Upgrade: 'websocket',
    };
    if (this.#protocols.length > 0)
      requestHeaders['Sec-WebSocket-Protocol'] = this.#protocols.join(',');
    if (options.perMessageDeflate !== undefined) {
      requestHeaders['Sec-WebSocket-Extensions'] = clientOffer(options.perMessageDeflate);
    }
    if (options.origin !== undefined) {
      requestHeaders[options.protocolVersion === 13 ? 'Origin' : 'Sec-WebSocket-Origin'] =
        options.origin;
    }
    const {
      headers: _ignored,
      handshakeTimeout: _t,
      followRedirects: _f,
      maxRedirects: _m,
      origin: _o,
      protocolVersion: _v,
      perMessageDeflate: _d,
      socketRead,
      ...passThrough
    } = options;
    const requestOptions: https.RequestOptions = {
      ...passThrough,
      method: 'GET',
      headers: requestHeaders,
      path: target.path,
    };
    if (!target.secure && passThrough.agent == null && passThrough.createConnection === undefined) {
      requestOptions.createConnection = connectReadingInto(socketRead);
    }
    if (target.socketPath !== undefined) {
      requestOptions.socketPath = target.socketPath;
    } else {
      requestOptions.host = target.hostname;
      requestOptions.port = target.port;
      if (target.secure && requestOptions.servername === undefined && !isIp(target.hostname)) {
        requestOptions.servername = target.hostname;
      }
    }
    if (target.url.username !== '' || target.url.password !== '') {
      requestOptions.auth = `${decodeURIComponent(target.url.username)}:${decodeURIComponent(target.url.password)}`;
    }

    const request = (target.secure ? https.request : http.request)(requestOptions);
    this.#request = request;

    request.on('error', (error) => {
      if (this.#request === request) this.#fail(error);
    });
    request.on('response', (response) => {
      if (this.#request !== request) return;
      const location = response.headers.location;
      const status = response.statusCode ?? 0;
      if (location !== undefined && options.followRedirects && status >= 300 && status < 400) {
        response.resume();
        this.#redirect(target, location, headers);
        return;
      }
      this.#request = null;
      if (this.#events.unexpectedResponse(request, response)) {
        this.#finish(false);
        return;
      }
      response.resume();
      this.#fail(new Error(`Unexpected server response: ${status}`));
    });
    request.on('upgrade', (response, socket, head) => {
      if (this.#request !== request) {
        socket.destroy();
        return;
      }
      this.#request = null;
      this.#events.upgrade(response);
      if (!this.#events.isConnecting()) {
        socket.destroy();
        return;
      }
      const problem = this.#checkResponse(response, key);
      let deflate: PerMessageDeflate | undefined;
      try {
        if (problem !== undefined) throw new Error(problem);
        deflate = this.#acceptExtensions(response.headers['sec-websocket-extensions']);
      } catch (error) {
        socket.destroy();
        this.#fail(error as Error);
        return;
      }
      this.#finish(false);
      this.#events.open(socket, head, response.headers['sec-websocket-protocol'] ?? '', deflate);
    });

    if (this.#redirects > 0) this.#events.redirect(target.url.href, request);
    this.#events.finishRequest(request);
  }

  #redirect(from: ClientTarget, location: string, headers: OutgoingHttpHeaders): void {
    const previous = this.#request;
    this.#request = null;
    previous?.destroy();
    if (++this.#redirects > this.#options.maxRedirects) {
      this.#fail(new Error('Maximum redirects exceeded'));
      return;
    }
    let target: ClientTarget;
    try {
      target = parseClientUrl(new URL(location, from.url.href.replace(/^ws/, 'http')));
    } catch (error) {
      this.#fail(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    const sameHost = target.url.host === from.url.host && target.socketPath === from.socketPath;
    const downgrade = from.secure && !target.secure;
    const nextHeaders: OutgoingHttpHeaders = { ...headers };
    if (!sameHost || downgrade) {
      for (const name of Object.keys(nextHeaders)) {
        if (CREDENTIAL_HEADERS.includes(name.toLowerCase())) delete nextHeaders[name];
      }
    }
    this.#send(target, nextHeaders);
  }

  /** The answer's problem, or undefined when it is a valid acceptance (RFC 6455 §4.1). */
  #checkResponse(response: IncomingMessage, key: string): string | undefined {
    const upgrade = response.headers.upgrade;
    if (upgrade === undefined || upgrade.toLowerCase() !== 'websocket')
      return 'Invalid Upgrade header';
    if (response.headers['sec-websocket-accept'] !== acceptKey(key))
      return 'Invalid Sec-WebSocket-Accept header';
    const protocol = response.headers['sec-websocket-protocol'];
    if (protocol !== undefined) {
      if (this.#protocols.length === 0) return 'Server sent a subprotocol but none was requested';
      if (!this.#protocols.includes(protocol)) return 'Server sent an invalid subprotocol';
    } else if (this.#protocols.length > 0) {
      return 'Server sent no subprotocol';
    }
    return undefined;
  }

  /** The codec for the extensions the server accepted; throws when it accepted badly (RFC 7692 §5). */
  #acceptExtensions(header: string | undefined): PerMessageDeflate | undefined {
    if (header === undefined) return undefined;
    const options = this.#options.perMessageDeflate;
    if (options === undefined) {
      throw new Error(
        'Server sent a Sec-WebSocket-Extensions header but no extension was requested',
      );
    }
    try {
      return new PerMessageDeflate(
        acceptResponse(parseExtensions(header), options),
        false,
        options,
        header,
      );
    } catch (error) {
      throw new Error(`Invalid Sec-WebSocket-Extensions header: ${(error as Error).message}`);
    }
  }

  #fail(error: Error): void {
    if (this.#done) return;
    this.#finish();
    this.#events.fail(error);
  }

  #finish(destroyRequest = true): void {
    this.#done = true;
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    const request = this.#request;
    this.#request = null;
    if (destroyRequest && request !== null) request.destroy();
  }
}

function normalizeHeaders(headers: https.RequestOptions['headers']): OutgoingHttpHeaders {
  if (headers === undefined) return {};
  if (!Array.isArray(headers)) return headers as OutgoingHttpHeaders;
  const result: OutgoingHttpHeaders = {};
  for (let i = 0; i + 1 < headers.length; i += 2) result[headers[i] as string] = headers[i + 1];
  return result;
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
