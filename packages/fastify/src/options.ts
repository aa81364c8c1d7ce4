import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type {
  HeartbeatOptions,
  PubSubAdapter,
  ServerOptions,
  ShutdownOptions,
  WebSocket,
} from '@weft/core';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/**
 * `@weft/core` server options the plugin passes on. The plugin owns the HTTP side (it answers
 * upgrades and routes them through Fastify itself), so the options that open a server or
 * filter paths are not here, and origins, heartbeat and pub/sub are plugin options.
 */
export type WebSocketServerOptions = Omit<
  ServerOptions,
  | 'port'
  | 'host'
  | 'backlog'
  | 'server'
  | 'noServer'
  | 'path'
  | 'origins'
  | 'heartbeat'
  | 'pubsub'
  | 'clientTracking'
> & {
  /**
   * Another HTTP(S) server whose upgrade requests the plugin answers instead of Fastify's own
   * (as in `@fastify/websocket`). They still go through the Fastify routes and hooks. The
   * plugin neither starts nor closes that server.
   */
  server?: HttpServer | HttpsServer;
};

/**
 * Which browser origins may open a WebSocket (cross-site WebSocket hijacking protection):
 * - `'same-host'` (the default): the Origin's host and port must be the request's Host;
 * - `'*'`: any origin;
 * - a list of origins such as `'https://app.example'` (`'https://*.example.com'` matches the
 *   subdomains, `'null'` the opaque origin);
 * - a function, given the origin and the Fastify request (with its session, params,
 *   decorators), returning or resolving to true to allow.
 *
 * A handshake without an Origin header (not from a browser) is always allowed.
 */
export type OriginOption =
  | '*'
  | 'same-host'
  | readonly string[]
  | ((origin: string, request: FastifyRequest) => boolean | Promise<boolean>);

/**
 * Handles an error of an open WebSocket: a handler that threw or rejected, or a message its
 * route's `schema.message` refused (an `InvalidMessageError`). `this` is the route's Fastify
 * instance. The default logs handler errors and closes with 1011, and closes invalid messages
 * with their `closeCode` (1007 or 1003) and the validation message as the reason.
 *
 * `reply` is the route's reply, hijacked when the handshake began: nothing can be sent with
 * it. It is passed so that handlers written for `@fastify/websocket` keep working.
 */
export type WebSocketErrorHandler = (
  this: FastifyInstance,
  error: Error,
  socket: WebSocket,
  request: FastifyRequest,
  reply: FastifyReply,
) => void | Promise<void>;

/**
 * Replaces the first step of `app.close()` (closing every WebSocket with the `shutdown` code).
 * It has the shape of a Fastify `preClose` hook, as in `@fastify/websocket`: `this` is the
 * app (the server is `this.websocketServer`); a function that declares `done` is finished when
 * it calls it, any other when the promise it returns settles.
 */
export type WebSocketPreClose = (
  this: FastifyInstance,
  done: (error?: Error | null) => void,
  // biome-ignore lint/suspicious/noConfusingVoidType: a callback-style preClose returns nothing; an async one may resolve to anything, as Fastify's preClose hooks may
) => void | Promise<unknown>;

/** Options of `app.register(weft, options)`. */
export interface WeftPluginOptions {
  /** Options of the `@weft/core` WebSocketServer behind the routes (`maxPayload`, `perMessageDeflate`...). */
  options?: WebSocketServerOptions;
  /** Handles errors of open WebSockets on every route without its own `wsErrorHandler`. */
  errorHandler?: WebSocketErrorHandler;
  /**
   * Replaces the default first step of `app.close()`, which closes every WebSocket with 1001
   * (Going Away). Whatever it does, the plugin then closes the sockets still open and waits
   * for them (up to `shutdown.timeout`, then terminates the rest), so `app.close()` never
   * leaves one open.
   */
  preClose?: WebSocketPreClose;
  /** Browser origins allowed to connect; others get 403. Default `'same-host'`. */
  origins?: OriginOption;
  /** Ping every client and terminate the ones that stop answering (off by default). */
  heartbeat?: HeartbeatOptions;
  /** Carries `publish` across processes (default: in-memory, this process only). */
  pubsub?: PubSubAdapter;
  /** How `app.close()` closes the WebSockets: code (1001), reason, timeout in ms (5 000). */
  shutdown?: ShutdownOptions;
}

/** Options that would take the upgrade away from Fastify's router, and why they are refused. */
const REFUSED_SERVER_OPTIONS: Readonly<Record<string, string>> = {
  port: "the plugin serves WebSockets on Fastify's server (or `options.server`)",
  host: "the plugin serves WebSockets on Fastify's server (or `options.server`)",
  backlog: "the plugin serves WebSockets on Fastify's server (or `options.server`)",
  noServer: 'the plugin always runs the server in noServer mode',
  path: 'routes choose the paths: declare a route with { websocket: true }',
  origins: 'use the plugin option `origins`',
};

/** Checks the options at register time, so a mistake fails the boot rather than a handshake. */
export function validatePluginOptions(options: WeftPluginOptions): void {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('@weft/fastify: the options must be an object');
  }
  const server = options.options;
  if (server !== undefined) {
    if (typeof server !== 'object' || server === null) {
      throw new TypeError(
        '@weft/fastify: `options` must be an object of @weft/core server options',
      );
    }
    const listenOn: unknown = server.server;
    if (
      listenOn !== undefined &&
      (typeof listenOn !== 'object' ||
        listenOn === null ||
        typeof (listenOn as { on?: unknown }).on !== 'function')
    ) {
      throw new TypeError('@weft/fastify: `options.server` must be an HTTP or HTTPS server');
    }
    for (const [name, why] of Object.entries(REFUSED_SERVER_OPTIONS)) {
      if (name in server && (server as Record<string, unknown>)[name] !== undefined) {
        throw new TypeError(`@weft/fastify: \`options.${name}\` is not supported: ${why}`);
      }
    }
    if ((server as ServerOptions).clientTracking === false) {
      throw new TypeError(
        '@weft/fastify: `options.clientTracking: false` is not supported: app.close() closes the tracked clients',
      );
    }
  }
  for (const name of ['errorHandler', 'preClose'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') {
      throw new TypeError(`@weft/fastify: \`${name}\` must be a function`);
    }
  }
  const origins = options.origins;
  if (
    origins !== undefined &&
    origins !== '*' &&
    origins !== 'same-host' &&
    typeof origins !== 'function' &&
    !(Array.isArray(origins) && origins.every((origin) => typeof origin === 'string'))
  ) {
    throw new TypeError(
      "@weft/fastify: `origins` must be '*', 'same-host', an array of origins or a function",
    );
  }
}
