import type { OutgoingHttpHeaders } from 'node:http';
import type {
  BroadcastOptions,
  ClientOptions,
  PublishOptions,
  RawData,
  SendableData,
  WebSocket,
  WebSocketServer,
} from '@weft/core';
import type {
  ContextConfigDefault,
  FastifyBaseLogger,
  FastifyInstance,
  FastifyRequest,
  FastifySchema,
  FastifyTypeProvider,
  FastifyTypeProviderDefault,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerBase,
  RawServerDefault,
  RouteGenericInterface,
} from 'fastify';
import type { WebSocketErrorHandler, WeftPluginOptions } from './options.js';

/** A 'message' listener of a route with `schema.message`: the validated value comes third. */
export type ValidatedMessageListener<M> = (data: RawData, isBinary: boolean, message: M) => void;

/**
 * The socket of a route with `schema.message`: a `@weft/core` WebSocket whose 'message'
 * listeners also receive the parsed, validated message (typed by the route's `Message`
 * generic, `unknown` without it).
 */
export type MessageSocket<M> = WebSocket & {
  on(event: 'message', listener: ValidatedMessageListener<M>): MessageSocket<M>;
  once(event: 'message', listener: ValidatedMessageListener<M>): MessageSocket<M>;
  addListener(event: 'message', listener: ValidatedMessageListener<M>): MessageSocket<M>;
  prependListener(event: 'message', listener: ValidatedMessageListener<M>): MessageSocket<M>;
  prependOnceListener(event: 'message', listener: ValidatedMessageListener<M>): MessageSocket<M>;
  off(event: 'message', listener: ValidatedMessageListener<M>): MessageSocket<M>;
  removeListener(event: 'message', listener: ValidatedMessageListener<M>): MessageSocket<M>;
};

/** The socket a handler gets: a `MessageSocket` when the route validates messages. */
export type RouteSocket<RouteGeneric, SchemaCompiler> = RouteGeneric extends {
  Message: infer M;
}
  ? MessageSocket<M>
  : SchemaCompiler extends { message: unknown }
    ? MessageSocket<unknown>
    : WebSocket;

/**
 * A WebSocket route handler: called once the handshake is done, with the open socket and the
 * Fastify request the hooks ran on (params, query, session, decorators, `log`). `this` is the
 * route's Fastify instance. It may be async; a throw or rejection goes to the error handler, and
 * any other value it returns is ignored.
 */
export type WebSocketHandler<
  RawServer extends RawServerBase = RawServerDefault,
  RawRequest extends
    RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
  RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>,
  RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
  ContextConfig = ContextConfigDefault,
  SchemaCompiler extends FastifySchema = FastifySchema,
  TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault,
  Logger extends FastifyBaseLogger = FastifyBaseLogger,
> = (
  this: FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider>,
  socket: RouteSocket<RouteGeneric, SchemaCompiler>,
  request: FastifyRequest<
    RouteGeneric,
    RawServer,
    RawRequest,
    SchemaCompiler,
    TypeProvider,
    ContextConfig,
    Logger
  >,
) => unknown;

/** `@fastify/websocket`'s name for {@link WebSocketHandler}, for code moving over from it. */
export type WebsocketHandler<
  RawServer extends RawServerBase = RawServerDefault,
  RawRequest extends
    RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
  RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
  ContextConfig = ContextConfigDefault,
  SchemaCompiler extends FastifySchema = FastifySchema,
  TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault,
  Logger extends FastifyBaseLogger = FastifyBaseLogger,
> = WebSocketHandler<
  RawServer,
  RawRequest,
  RawReplyDefaultExpression<RawServer>,
  RouteGeneric,
  ContextConfig,
  SchemaCompiler,
  TypeProvider,
  Logger
>;

/** `@fastify/websocket`'s name for {@link WeftPluginOptions}, for code moving over from it. */
export type WebsocketPluginOptions = WeftPluginOptions;

/** The open sockets of one WebSocket route (one URL pattern), and a broadcast to them only. */
export interface WebSocketRoute {
  /** The route's URL pattern, prefix included (`/rooms/:room`). */
  readonly url: string;
  /** The route's open sockets. */
  readonly clients: ReadonlySet<WebSocket>;
  /**
   * Sends one message to every open socket of this route (the frame is built once); `except`
   * and `filter` narrow it down. Returns how many sockets it was sent to.
   */
  broadcast(data: SendableData, options?: BroadcastOptions): number;
}

/** `app.weft`: the server-wide helpers of the core, and the routes' client sets. */
export interface WeftHelpers {
  /** The `@weft/core` server behind every route (also `app.websocketServer`). */
  readonly server: WebSocketServer;
  /** Every open socket, on every route. */
  readonly clients: ReadonlySet<WebSocket>;
  /** Sends one message to every open socket (frame built once). Returns how many got it. */
  broadcast(data: SendableData, options?: BroadcastOptions): number;
  /**
   * Sends to every subscriber of `topic` (`socket.subscribe(topic)`), on every process that
   * shares the `pubsub` adapter. Settles when the adapter took it.
   */
  publish(topic: string, data: SendableData, options?: PublishOptions): Promise<void>;
  /** How many sockets of this process are subscribed to `topic`. */
  subscriberCount(topic: string): number;
  /** The WebSocket route declared with this URL pattern (prefix included), if any. */
  route(url: string): WebSocketRoute | undefined;
}

/** Options of `app.injectWS(path, options)`. */
export interface InjectWSOptions {
  /** Request headers (`authorization`, `origin`, `cookie`...); unset entries are left out. */
  headers?: OutgoingHttpHeaders;
  /** Cookies to send, merged into the `cookie` header (values are sent as given, URI-encoded). */
  cookies?: Record<string, string>;
  /** Subprotocols to offer. */
  protocols?: string | string[];
  /** Other options of the `@weft/core` client (`perMessageDeflate`, `maxPayload`...). */
  client?: Omit<ClientOptions, 'createConnection' | 'headers'>;
}

/**
 * The third argument of `app.injectWS`, as in `@fastify/websocket`. Listeners need no early
 * start here (the client holds messages until one is attached), but tests written for it
 * keep working.
 */
export interface InjectWSHooks {
  /** Called with the client as soon as it is created, before the handshake. */
  onInit?: (client: WebSocket) => void;
  /** Called with the client once it is open, before the promise resolves. */
  onOpen?: (client: WebSocket) => void;
}

/** How `injectWS` rejects when the server answers the handshake with an HTTP response. */
export interface InjectWSResponseError extends Error {
  readonly statusCode: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

declare module 'fastify' {
  interface RequestGenericInterface {
    /** The type of the validated messages of a route with `schema.message`. */
    Message?: unknown;
  }

  interface FastifySchema {
    /** JSON schema of the route's incoming WebSocket messages (JSON text). */
    message?: unknown;
  }

  interface RouteShorthandOptions<
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends
      RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
    RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>,
    RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
    ContextConfig = ContextConfigDefault,
    SchemaCompiler extends FastifySchema = FastifySchema,
    TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault,
    Logger extends FastifyBaseLogger = FastifyBaseLogger,
  > {
    /** The route's handler is a WebSocket handler: `(socket, request) => {}`. */
    websocket?: boolean;
    /** Handles this route's WebSocket errors instead of the plugin's `errorHandler`. */
    wsErrorHandler?: WebSocketErrorHandler;
  }

  interface RouteOptions<
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends
      RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
    RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>,
    RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
    ContextConfig = ContextConfigDefault,
    SchemaCompiler extends FastifySchema = FastifySchema,
    TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault,
    Logger extends FastifyBaseLogger = FastifyBaseLogger,
  > {
    /** Serves the WebSocket upgrade of this route, while `handler` serves its plain GETs. */
    wsHandler?: WebSocketHandler<
      RawServer,
      RawRequest,
      RawReply,
      RouteGeneric,
      ContextConfig,
      SchemaCompiler,
      TypeProvider,
      Logger
    >;
  }

  interface RouteShorthandMethod<
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends
      RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
    RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>,
    TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault,
    Logger extends FastifyBaseLogger = FastifyBaseLogger,
  > {
    /** A WebSocket route: `app.get(path, { websocket: true }, (socket, request) => {})`. */
    // biome-ignore lint/style/useShorthandFunctionType: an interface, to merge with Fastify's overloads
    <
      RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
      ContextConfig = ContextConfigDefault,
      const SchemaCompiler extends FastifySchema = FastifySchema,
    >(
      path: string,
      opts: RouteShorthandOptions<
        RawServer,
        RawRequest,
        RawReply,
        RouteGeneric,
        ContextConfig,
        SchemaCompiler,
        TypeProvider,
        Logger
      > & { websocket: true },
      handler: WebSocketHandler<
        RawServer,
        RawRequest,
        RawReply,
        RouteGeneric,
        ContextConfig,
        SchemaCompiler,
        TypeProvider,
        Logger
      >,
    ): FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider>;
  }

  interface FastifyInstance<
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends
      RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
    RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>,
    Logger extends FastifyBaseLogger = FastifyBaseLogger,
    TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault,
  > {
    /** A WebSocket route: `app.route({ method: 'GET', url, websocket: true, handler })`. */
    route<
      RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
      ContextConfig = ContextConfigDefault,
      const SchemaCompiler extends FastifySchema = FastifySchema,
    >(
      opts: Omit<
        RouteOptions<
          RawServer,
          RawRequest,
          RawReply,
          RouteGeneric,
          ContextConfig,
          SchemaCompiler,
          TypeProvider,
          Logger
        >,
        'handler' | 'websocket' | 'wsHandler'
      > & {
        websocket: true;
        handler: WebSocketHandler<
          RawServer,
          RawRequest,
          RawReply,
          RouteGeneric,
          ContextConfig,
          SchemaCompiler,
          TypeProvider,
          Logger
        >;
      },
    ): FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider>;

    /** The `@weft/core` WebSocketServer (noServer mode) that runs the handshakes. */
    readonly websocketServer: WebSocketServer;
    /** Broadcast, publish and the routes' client sets. */
    readonly weft: WeftHelpers;
    /**
     * Opens a WebSocket to `path` with no network port: the request goes through the routes
     * and hooks like a real one. Resolves with the open client; rejects with an
     * `InjectWSResponseError` (its `statusCode`, `headers`, `body`) when the handshake is
     * answered with HTTP. `hooks` are `@fastify/websocket`'s `onInit` / `onOpen`. Close the
     * client when done.
     */
    injectWS(path?: string, options?: InjectWSOptions, hooks?: InjectWSHooks): Promise<WebSocket>;
  }

  interface FastifyRequest {
    /**
     * Whether this request is a WebSocket upgrade (for hooks that treat them apart). False for
     * an upgrade to another protocol (`h2c`), which is served as a plain request.
     */
    readonly ws: boolean;
    /** The WebSocket route this request was routed to, or null for other routes. */
    readonly wsRoute: WebSocketRoute | null;
  }
}
