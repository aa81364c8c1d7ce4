import type { IncomingMessage } from 'node:http';
import type { HeartbeatOptions, PubSubAdapter, ServerOptions, WebSocket } from '@weft/core';
import type { Request } from 'express';

/**
 * Options of the core `WebSocketServer` that serves every `app.ws()` route: `maxPayload`,
 * `perMessageDeflate`, `handleProtocols`, `verifyClient`, `idleTimeout`, `slowConsumer`...
 * The ones the integration owns are left out: it always runs in `noServer` mode, routes by
 * Express paths, and takes `origins`, `heartbeat` and `pubsub` as options of its own.
 */
export type WebSocketServerOptions = Omit<
  ServerOptions,
  'port' | 'host' | 'backlog' | 'server' | 'noServer' | 'path' | 'origins' | 'heartbeat' | 'pubsub'
>;

/**
 * Which browser origins may open a WebSocket (cross-site WebSocket hijacking protection), as
 * in @weft/fastify and the core's `OriginPolicy`:
 * - `'same-host'` (the default): the Origin's host and port must be the request's `Host`;
 * - `'*'`: any origin;
 * - a list of origins such as `'https://app.example'` (`'https://*.example.com'` matches the
 *   subdomains, `'null'` the opaque origin);
 * - a function, given the origin and the Express request (with `req.session`, `req.user` and
 *   whatever the app-level middleware set), returning or resolving to `true` to allow.
 *
 * A handshake without an Origin header (not from a browser) is always allowed.
 */
export type OriginOption =
  | '*'
  | 'same-host'
  | readonly string[]
  | ((origin: string, req: Request) => boolean | Promise<boolean>);

/**
 * Where an error reported to `onError` came from:
 * - `'handler'`: a WebSocket route handler threw or rejected (the socket was closed with 1011);
 * - `'middleware'`: an error passed to `next(err)` (a refused origin, a failed `origins`
 *   function included) reached the end of the app with no error handler answering it (the
 *   client got its status, or 500), or a middleware answered an upgrade with a success status
 *   before it reached a WebSocket route (a page or a static file for a WebSocket client);
 * - `'server'`: the core WebSocketServer reported one (a `verifyClient` that threw, a pub/sub
 *   adapter failure).
 */
export type WeftErrorContext =
  | { readonly phase: 'handler'; readonly req: Request; readonly socket: WebSocket }
  | { readonly phase: 'middleware'; readonly req: Request }
  | { readonly phase: 'server'; readonly error: unknown };

/** Options of `weft(app, server?, options?)`. */
export interface WeftExpressOptions {
  /** Options of the core WebSocketServer behind every route (see `WebSocketServerOptions`). */
  options?: WebSocketServerOptions;
  /**
   * Browser origins allowed to open a WebSocket (see `OriginOption`). The check is the
   * WebSocket route's first step, after the app-level middleware and before the route's own;
   * a refused origin is passed to `next()` as an `OriginNotAllowedError` (403). Default
   * `'same-host'`: the Origin must match the Host header. A request without an Origin (a
   * non-browser client) is always allowed. `'*'` turns the check off.
   */
  origins?: OriginOption;
  /** Ping every client every `interval` ms and terminate those that stay silent (core heartbeat). */
  heartbeat?: HeartbeatOptions;
  /** Carries `publish()` to other processes (for example `@weft/redis`); in-memory by default. */
  pubsub?: PubSubAdapter;
  /**
   * Milliseconds an upgrade may spend before its handshake starts: the origin check and every
   * middleware on the way to the WebSocket route. A middleware that neither answers nor calls
   * `next()` in time leaves the client with 408 and the socket closed. Default 10 000 (the core's
   * `handshakeTimeout`, which then bounds the handshake itself); 0 turns it off.
   */
  upgradeTimeout?: number;
  /**
   * Called with errors no one else answers (see `WeftErrorContext`). It must not throw. Default:
   * `console.error`, except when the app's `env` setting is `'test'` (as Express does).
   */
  onError?: (error: unknown, context: WeftErrorContext) => void;
  /**
   * Which upgrade requests are this integration's. Default: every `Upgrade: websocket`
   * request. Narrow it when another `'upgrade'` listener on the same server (a second
   * WebSocket server, a dev-server's hot reload) owns some paths.
   */
  shouldHandle?: (req: IncomingMessage) => boolean;
}

/** Options of `close()`. */
export interface WeftCloseOptions {
  /** Close code sent to every client (default 1001, Going Away). */
  code?: number;
  /** Close reason sent to every client (default 'Server shutting down'). */
  reason?: string;
  /** Milliseconds to wait for closing handshakes before terminating the rest (default 5 000). */
  timeout?: number;
}

export const DEFAULT_UPGRADE_TIMEOUT = 10_000;

const OWNED = [
  'port',
  'host',
  'backlog',
  'server',
  'noServer',
  'path',
  'origins',
  'heartbeat',
  'pubsub',
];

/** Checks options at `weft()` time, so a typo fails at start-up rather than on a handshake. */
export function validateOptions(options: WeftExpressOptions): void {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('weft(app, server?, options?): options must be an object');
  }
  const server = options.options ?? {};
  for (const name of OWNED) {
    if (Object.hasOwn(server, name)) {
      throw new TypeError(
        `options.options.${name} is not supported: ${
          ['origins', 'heartbeat', 'pubsub'].includes(name)
            ? `pass it as weft(app, server, { ${name} })`
            : 'the integration attaches to the app and its server itself'
        }`,
      );
    }
  }
  const origins = options.origins;
  const validOrigins =
    origins === undefined ||
    origins === '*' ||
    origins === 'same-host' ||
    typeof origins === 'function' ||
    (Array.isArray(origins) && origins.every((entry) => typeof entry === 'string'));
  if (!validOrigins) {
    throw new TypeError(
      "origins must be '*', 'same-host', an array of origin strings, or a function",
    );
  }
  const timeout = options.upgradeTimeout;
  if (
    timeout !== undefined &&
    !(typeof timeout === 'number' && timeout >= 0 && timeout < 2 ** 31)
  ) {
    throw new RangeError('upgradeTimeout must be a number of milliseconds (0 for no limit)');
  }
  for (const name of ['onError', 'shouldHandle'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') {
      throw new TypeError(`${name} must be a function`);
    }
  }
}
