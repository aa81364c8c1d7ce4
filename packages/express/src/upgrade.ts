import {
  type IncomingMessage,
  type OutgoingHttpHeaders,
  ServerResponse,
  STATUS_CODES,
} from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { requestOrigin, type WebSocket, type WebSocketServer } from '@weft/core';
import type { Request } from 'express';
import type { WeftErrorContext } from './options.js';
import { OriginNotAllowedError } from './origin.js';
import { closeAfterWrite, writeRawResponse } from './respond.js';
import { isThenable } from './util.js';

/**
 * Marks a request as a WebSocket upgrade in flight. `Symbol.for`, so the ESM and CommonJS
 * builds loaded in one process (a dual-package setup) still recognise each other's requests.
 */
const kUpgrade: unique symbol = Symbol.for('weft.express.upgrade') as never;

/** What a pending upgrade needs from the integration that received it. */
export interface UpgradeOwner {
  readonly wss: WebSocketServer;
  /**
   * The upgrade is still pending once the synchronous dispatch returned: a shutdown must end
   * it (an upgrade settled during the dispatch is never tracked).
   */
  track(upgrade: PendingUpgrade): void;
  /** The upgrade left the pending state (answered, upgraded, timed out or abandoned). */
  settled(upgrade: PendingUpgrade): void;
  report(error: unknown, context: WeftErrorContext): void;
  /** The origin policy's verdict on `req` (an Express request by then); true allows. */
  checkOrigin(req: IncomingMessage): boolean | PromiseLike<boolean>;
}

/** The callable part of an Express app (4 and 5): `app(req, res, done)`. */
export type DispatchTarget = (
  req: IncomingMessage,
  res: ServerResponse,
  done: (error?: unknown) => void,
) => void;

type State = 'checking' | 'routing' | 'answered' | 'upgrading' | 'gone';

interface MarkedRequest extends IncomingMessage {
  [kUpgrade]?: PendingUpgrade;
}

/** The upgrade a request is part of, when it is one (and still routed by Express). */
export function upgradeOf(req: IncomingMessage): PendingUpgrade | undefined {
  return (req as MarkedRequest)[kUpgrade];
}

/**
 * Whether `req` is a WebSocket upgrade being routed through Express. App-level middleware
 * can use it to skip work that only makes sense for plain HTTP (body parsing, CSRF tokens,
 * access logs that wait for 'finish').
 */
export function isWebSocketRequest(req: IncomingMessage): boolean {
  return upgradeOf(req) !== undefined;
}

/** Shared by every upgrade: a listener per socket, not a closure per upgrade. */
function destroySocket(this: Duplex): void {
  this.destroy();
}

/**
 * One upgrade request, from the `'upgrade'` event to its end: an HTTP answer (from a
 * middleware, the final handler, or a refusal), a handshake handed to the core server, or
 * the client leaving. Every way out closes or hands on the socket, and a timer bounds the
 * time spent before one is taken.
 *
 * Most upgrades go through Express synchronously, straight to the core's handshake. The
 * socket's and the response's listeners and the timer only matter once the event loop turns,
 * since none of their events can fire while the dispatch runs, so they are attached when the
 * dispatch returns and only if the upgrade is still ours: the common upgrade never pays for
 * them (express-ws pays for none of them either).
 */
export class PendingUpgrade {
  readonly request: IncomingMessage;
  readonly socket: Duplex;
  readonly head: Buffer;
  readonly owner: UpgradeOwner;
  readonly #timeout: number;
  /**
   * The Origin the handshake claims, read before Express gives the request its own
   * prototype (after that every read on it is a slow one).
   */
  readonly #origin: string | undefined;
  #originAllowed = false;
  /** A WebSocket route took the request: what its middleware answers is deliberate. */
  #reachedRoute = false;
  #state: State = 'checking';
  #response: ServerResponse | null = null;
  #timer: NodeJS.Timeout | null = null;
  /** Our `'error'` listener is on the socket (it stays after an HTTP answer). */
  #guarded = false;
  #onSocketClose: (() => void) | null = null;
  #onResponseFinish: (() => void) | null = null;

  constructor(
    owner: UpgradeOwner,
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    timeout: number,
  ) {
    this.owner = owner;
    this.request = request;
    this.socket = socket;
    this.head = head;
    this.#timeout = timeout;
    this.#origin = requestOrigin(request);
  }

  /** Still deciding: no answer sent, not handed to the WebSocket server. */
  get pending(): boolean {
    return this.#state === 'checking' || this.#state === 'routing';
  }

  /**
   * Refuses the upgrade with an HTTP status written straight to the socket (the response
   * object, if any, is unbound first). If a middleware already started an answer, a second
   * one cannot follow: the socket is ended after what was written.
   */
  refuse(status: number, message?: string, headers?: OutgoingHttpHeaders): void {
    if (!this.pending) return;
    const started = this.#response?.headersSent === true;
    this.#guard();
    this.#leave('answered');
    this.#detachResponse();
    if (started) this.#endSocket();
    else writeRawResponse(this.socket, status, message, headers);
  }

  /**
   * Runs the request through the Express app, with a `ServerResponse` bound to the socket
   * so any middleware may answer it over HTTP.
   */
  dispatch(app: DispatchTarget): void {
    if (this.#state !== 'checking') return;
    this.#state = 'routing';
    const req = this.request as MarkedRequest;
    const res = new ServerResponse(req);
    // One answer per upgrade socket: `Connection: close`, then the socket is ended.
    res.shouldKeepAlive = false;
    res.assignSocket(this.socket as Socket);
    this.#response = res;
    Object.defineProperty(req, kUpgrade, { value: this, configurable: true });
    try {
      app(req, res, (error) => this.#finalHandler(error));
    } catch (error) {
      this.#finalHandler(error);
    }
    this.#watch();
  }

  /**
   * After the synchronous part of the dispatch: an upgrade that is not with the core yet
   * (still in the middleware, or answered over HTTP) gets its listeners and its timer.
   */
  #watch(): void {
    if (this.#state === 'upgrading') return;
    // The socket stays ours while an answer is written: an error then must not go unheard.
    this.#guard();
    if (!this.pending) return;
    this.owner.track(this);
    if (!this.pending) return;
    this.#onSocketClose = () => {
      this.#leave('gone');
    };
    this.socket.once('close', this.#onSocketClose);
    const res = this.#response;
    if (res !== null) {
      // A middleware (or the final handler) answered over HTTP: no WebSocket, and the socket
      // must not stay open waiting for a second request that will never be read. 'finish'
      // comes from a write callback, never during the dispatch, so it is not missed here.
      this.#onResponseFinish = () => {
        const status = this.#response?.statusCode ?? 0;
        if (!this.#reachedRoute && (status < 300 || status === 304)) {
          this.#reportPageAnswer(status);
        }
        this.#leave('answered');
        this.#detachResponse();
        this.#endSocket();
      };
      res.once('finish', this.#onResponseFinish);
    }
    // The timer counts from the loop time the upgrade arrived in, as if armed before the
    // dispatch: Node starts timers at the loop's cached time, and no turn has passed.
    if (this.#timeout > 0) this.#timer = setTimeout(() => this.#timedOut(), this.#timeout);
  }

  #guard(): void {
    if (this.#guarded) return;
    this.#guarded = true;
    this.socket.on('error', destroySocket);
  }

  /**
   * Applies the origin policy, as the WebSocket route's first step: after the app-level
   * middleware (a policy function can read `req.session`), before the route's own (a refused
   * page costs no auth lookup), as in @weft/fastify. `done()` to go on, `done(error)` with an
   * `OriginNotAllowedError` (403) or the policy's own failure, for Express's error handlers.
   * A `next('route')` to another WebSocket route does not ask twice.
   */
  checkOrigin(req: IncomingMessage, done: (error?: unknown) => void): void {
    this.#reachedRoute = true;
    // A handshake without an Origin (not from a browser) is always allowed, as in the core's
    // checkOrigin: the policy is not asked.
    if (this.#originAllowed || this.#origin === undefined) {
      done();
      return;
    }
    let verdict: boolean | PromiseLike<boolean>;
    try {
      verdict = this.owner.checkOrigin(req);
    } catch (error) {
      done(error ?? new Error('The origin policy threw a nullish value'));
      return;
    }
    if (isThenable(verdict)) {
      verdict.then(
        (allowed) => this.#decide(allowed, done),
        (error: unknown) => {
          if (this.pending) done(error ?? new Error('The origin policy rejected'));
        },
      );
    } else {
      this.#decide(verdict, done);
    }
  }

  #decide(allowed: unknown, done: (error?: unknown) => void): void {
    if (!this.pending) return;
    // Only a literal true allows: a policy returning something else by mistake refuses.
    if (allowed === true) {
      this.#originAllowed = true;
      done();
    } else {
      done(new OriginNotAllowedError(this.#origin ?? ''));
    }
  }

  /**
   * The WebSocket route's last step: hands the socket to the core server's handshake.
   * `open(socket, req, upgrade, context)` runs once the connection is open. Returns false when the upgrade was already answered, timed
   * out or abandoned, so there is nothing to hand on.
   */
  handOff<Req extends IncomingMessage>(
    req: Req,
    open: (socket: WebSocket, req: Req, upgrade: PendingUpgrade, context: unknown) => void,
    context: unknown,
  ): boolean {
    if (this.#state !== 'routing') return false;
    if (this.#response?.headersSent === true) {
      // A middleware started an HTTP answer and still called next(): neither a WebSocket
      // nor a well-formed HTTP answer can follow.
      this.#leave('answered');
      this.#detachResponse();
      this.#endSocket();
      return false;
    }
    const res = this.#response;
    this.#leave('upgrading');
    this.#detachResponse();
    if (this.#guarded) {
      this.#guarded = false;
      this.socket.removeListener('error', destroySocket);
    }
    try {
      // A closure rather than finding the upgrade again from the request: once Express set
      // the request's prototype, every property read on it is a slow, megamorphic one.
      this.owner.wss.handleUpgrade(req, this.socket, this.head, (socket) => {
        // What the socket was answered, for access loggers that log when the connection ends
        // (on-finished sees its close) and read the status from the response.
        if (res !== null) res.statusCode = 101;
        open(socket, req, this, context);
      });
    } catch (error) {
      this.socket.destroy();
      this.owner.report(error, { phase: 'server', error });
    }
    return true;
  }

  /** Where Express ends up when no route answered: 404, or the status of an unhandled error. */
  #finalHandler(error: unknown): void {
    if (this.#state !== 'routing') return;
    const res = this.#response;
    const failed = error !== undefined && error !== null && error !== false && error !== '';
    if (failed) this.owner.report(error, { phase: 'middleware', req: this.request as Request });
    if (res === null || res.headersSent) {
      this.#leave('answered');
      this.#detachResponse();
      this.#endSocket();
      return;
    }
    const answer = failed
      ? describeError(error)
      : { status: 404, message: 'No WebSocket endpoint at this path', headers: {} };
    // As Express's own final handler does: content headers of a half-built answer go, and
    // the error page may not be sniffed or run as anything but text.
    for (const name of res.getHeaderNames()) {
      if (name.startsWith('content-')) res.removeHeader(name);
    }
    for (const [name, value] of Object.entries(answer.headers)) {
      if (value !== undefined) res.setHeader(name, value);
    }
    res.statusCode = answer.status;
    res.setHeader('Content-Security-Policy', "default-src 'none'");
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.setHeader('Content-Length', Buffer.byteLength(answer.message));
    res.end(answer.message);
  }

  /**
   * A success status answering an upgrade is never what the app meant: a WebSocket client
   * fails on anything but 101. It comes from middleware that serves GET requests and ran
   * before the WebSocket route (express.static finding an index.html, a catch-all page).
   */
  #reportPageAnswer(status: number): void {
    const req = this.request as Request;
    this.owner.report(
      new Error(
        `A middleware answered the WebSocket upgrade of ${req.originalUrl ?? req.url} with ${status}, so it never reached a WebSocket route: declare the app.ws() route before that middleware (express.static with an index file, a catch-all page), or have it skip upgrades with isWebSocketRequest(req)`,
      ),
      { phase: 'middleware', req },
    );
  }

  #timedOut(): void {
    this.#timer = null;
    this.refuse(408, 'WebSocket upgrade timed out');
  }

  #leave(state: State): void {
    if (!this.pending) {
      if (state === 'gone') this.#state = 'gone';
      return;
    }
    this.#state = state;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#onSocketClose !== null) this.socket.removeListener('close', this.#onSocketClose);
    this.owner.settled(this);
  }

  /**
   * Ends the socket after what was written reaches it: a half-sent answer still arrives (its
   * missing end tells the client it is cut short), and the socket closes.
   */
  #endSocket(): void {
    closeAfterWrite(this.socket);
    this.socket.end();
  }

  /** Unbinds the response: a late `res.send()` from a slow middleware then writes nowhere. */
  #detachResponse(): void {
    const res = this.#response;
    if (res === null) return;
    this.#response = null;
    if (this.#onResponseFinish !== null) res.removeListener('finish', this.#onResponseFinish);
    if (res.socket === this.socket) res.detachSocket(this.socket as Socket);
  }
}

interface HttpErrorLike {
  status?: unknown;
  statusCode?: unknown;
  expose?: unknown;
  message?: unknown;
  headers?: unknown;
}

/** An error's answer, by the conventions of `http-errors` and Express's final handler. */
function describeError(error: unknown): {
  status: number;
  message: string;
  headers: OutgoingHttpHeaders;
} {
  const like: HttpErrorLike = typeof error === 'object' && error !== null ? error : {};
  const candidate = like.status ?? like.statusCode;
  const valid =
    typeof candidate === 'number' &&
    Number.isInteger(candidate) &&
    candidate >= 400 &&
    candidate <= 599;
  const status = valid ? candidate : 500;
  const headers =
    valid && typeof like.headers === 'object' && like.headers !== null
      ? (like.headers as OutgoingHttpHeaders)
      : {};
  const exposed = like.expose === true && typeof like.message === 'string' && like.message !== '';
  const message = exposed ? (like.message as string) : (STATUS_CODES[status] ?? 'Error');
  return { status, message, headers };
}
