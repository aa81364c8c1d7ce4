import { type IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';

/** Where an upgrade request is on its way through Fastify. */
type UpgradeState =
  /** Fastify is running the route's hooks. */
  | 'routing'
  /** A WebSocket route handler took the socket for the handshake. */
  | 'taken'
  /** An HTTP answer (hook reply, error, 404, timeout) went out on the socket. */
  | 'answered'
  /** The client left, or the app shut down, before either. */
  | 'gone';

/**
 * One upgrade request. The listeners and the timer that watch it are only made when it is
 * still in Fastify's hands once the synchronous routing returned (see `handle`): none of their
 * events can fire while it runs, and most upgrades are taken before it returns.
 */
class Upgrade {
  /** Whether the client asks for a WebSocket; other protocols (`h2c`) get a plain HTTP answer. */
  readonly websocket: boolean;
  readonly socket: Duplex;
  /** The bytes after the request: Node's `head`, plus what arrives while the hooks run. */
  head: Buffer;
  readonly response: ServerResponse;
  state: UpgradeState = 'routing';
  /** The socket and response listeners of `watch`, once attached. */
  watchers: Watchers | null = null;
  timer: NodeJS.Timeout | null = null;

  constructor(websocket: boolean, socket: Duplex, head: Buffer, response: ServerResponse) {
    this.websocket = websocket;
    this.socket = socket;
    this.head = head;
    this.response = response;
  }
}

interface Watchers {
  readonly onData: (chunk: Buffer) => void;
  readonly onEnd: () => void;
  readonly onClose: () => void;
}

/** The socket of an upgrade, handed to the route that will run the WebSocket handshake. */
export interface TakenUpgrade {
  readonly socket: Duplex;
  readonly head: Buffer;
}

const HANDSHAKE_TIMED_OUT = 'WebSocket handshake timed out';
/**
 * Bytes a client may send before its handshake is answered. A client must wait for the 101
 * before sending frames (RFC 6455 §4.1), so this only bounds what a misbehaving one can park.
 */
const MAX_EARLY_BYTES = 64 * 1024;

/**
 * Runs each upgrade request through Fastify's router as if it were a plain request, with a
 * `ServerResponse` written straight onto the upgrade socket. That is what lets every hook,
 * error handler and 404 handler answer a refused handshake with a real HTTP response, while a
 * WebSocket route takes the socket over instead (`take`). Whatever happens, the socket ends:
 * after an HTTP answer, when the handshake takes too long, or at shutdown.
 */
export class UpgradeDispatcher {
  readonly #upgrades = new WeakMap<IncomingMessage, Upgrade>();
  /** Upgrades still in Fastify's hands, so a shutdown can end them. */
  readonly #routing = new Set<Upgrade>();
  readonly #route: (request: IncomingMessage, response: ServerResponse) => void;
  readonly #timeout: number;
  readonly #log: FastifyBaseLogger;

  /**
   * @param route - Fastify's request entry point (`fastify.routing`).
   * @param timeout - Milliseconds the hooks may take before the client gets 408; 0 for none.
   */
  constructor(
    route: (request: IncomingMessage, response: ServerResponse) => void,
    timeout: number,
    log: FastifyBaseLogger,
  ) {
    this.#route = route;
    this.#timeout = timeout;
    this.#log = log;
  }

  /** The HTTP server's 'upgrade' listener. */
  readonly handle = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const response = new ServerResponse(request);
    // The socket left the HTTP parser for this request, so it can carry no second one.
    response.shouldKeepAlive = false;
    response.assignSocket(socket as Socket);
    const upgrade = new Upgrade(asksForWebSocket(request), socket, head, response);
    this.#upgrades.set(request, upgrade);
    try {
      this.#route(request, response);
    } catch (error) {
      this.#log.error({ err: error }, 'Routing a WebSocket upgrade request failed');
      this.#settle(upgrade, 'gone');
      // Node hands over the socket with no error listener: one reset must not crash the process.
      socket.on('error', destroyOnError);
      socket.destroy();
      return;
    }
    // With synchronous hooks the route has taken the socket by now: the common upgrade needs
    // no listener and no timer.
    if (upgrade.state === 'routing') this.#watch(upgrade);
  };

  /**
   * Watches an upgrade that is still in its hooks once the synchronous routing returned: the
   * client leaving, early bytes, the HTTP answer being written, the timeout, shutdown. The
   * timer counts from the loop time the upgrade arrived in, as if armed before the routing:
   * Node starts timers at the loop's cached time, and no turn has passed.
   */
  #watch(upgrade: Upgrade): void {
    const { socket, response } = upgrade;
    socket.on('error', destroyOnError);
    const watchers: Watchers = {
      // Reading while the hooks run is how a client that leaves is noticed (its FIN arrives
      // as 'end' only once the data before it is read), and what makes the socket close
      // cleanly after an HTTP answer (unread data would turn the close into a reset).
      onData: (chunk) => {
        if (upgrade.state !== 'routing') return;
        upgrade.head = upgrade.head.length === 0 ? chunk : Buffer.concat([upgrade.head, chunk]);
        if (upgrade.head.length > MAX_EARLY_BYTES && this.#settle(upgrade, 'gone')) {
          socket.destroy();
        }
      },
      // An HTTP client that ends its side has given up on the answer: as Node's HTTP server
      // does, the request is dropped rather than served to nobody.
      onEnd: () => {
        if (this.#settle(upgrade, 'gone')) socket.destroy();
      },
      onClose: () => {
        this.#settle(upgrade, 'gone');
      },
    };
    upgrade.watchers = watchers;
    this.#routing.add(upgrade);
    socket.on('data', watchers.onData);
    socket.once('end', watchers.onEnd);
    socket.once('close', watchers.onClose);
    // 'finish' comes from a write callback, never during the routing, so none was missed.
    response.once('finish', () => {
      this.#settle(upgrade, 'answered');
      endSocket(socket);
    });
    if (this.#timeout > 0) {
      upgrade.timer = setTimeout(() => this.#timedOut(upgrade), this.#timeout);
    }
  }

  /**
   * Whether `request` came in as a WebSocket upgrade. An upgrade to another protocol (a
   * client offering `h2c`, as `curl --http2` does) is not one: the server may ignore the offer
   * (RFC 9110 §7.8), so its route serves it as a plain request, on the same socket.
   */
  isUpgrade(request: IncomingMessage): boolean {
    return this.#upgrades.get(request)?.websocket === true;
  }

  /**
   * Takes the socket of an upgrade for the handshake: no HTTP response will be written on it.
   * Null when it is no longer available (the client left, or it was answered meanwhile).
   */
  take(request: IncomingMessage): TakenUpgrade | null {
    const upgrade = this.#upgrades.get(request);
    if (upgrade === undefined || !upgrade.websocket || !this.#settle(upgrade, 'taken')) return null;
    const { socket, response, watchers } = upgrade;
    response.detachSocket(socket as Socket);
    if (watchers !== null) {
      upgrade.watchers = null;
      socket.removeListener('data', watchers.onData);
      socket.removeListener('end', watchers.onEnd);
      socket.removeListener('close', watchers.onClose);
      // Back to "not flowing yet", as Node leaves a socket before 'upgrade': what comes next
      // waits in the socket until the WebSocket starts reading, instead of being emitted to
      // nobody.
      (socket as { readableFlowing: boolean | null }).readableFlowing = null;
      // The handshake installs its own error handling at once; ours would outlive it.
      socket.removeListener('error', destroyOnError);
    }
    return upgrade;
  }

  /** Ends every upgrade still waiting on its hooks (the app is shutting down). */
  abort(): void {
    for (const upgrade of this.#routing) {
      if (this.#settle(upgrade, 'gone')) upgrade.socket.destroy();
    }
  }

  #settle(upgrade: Upgrade, state: Exclude<UpgradeState, 'routing'>): boolean {
    if (upgrade.state !== 'routing') return false;
    upgrade.state = state;
    if (upgrade.timer !== null) clearTimeout(upgrade.timer);
    upgrade.timer = null;
    this.#routing.delete(upgrade);
    return true;
  }

  #timedOut(upgrade: Upgrade): void {
    if (!this.#settle(upgrade, 'answered')) return;
    const { response, socket } = upgrade;
    this.#log.info('A WebSocket upgrade request timed out in its hooks');
    if (response.headersSent) {
      socket.destroy();
      return;
    }
    // Fastify may still finish the hooks and try to reply: it finds the reply sent and logs it.
    response.writeHead(408, {
      'Content-Type': 'text/plain; charset=utf-8',
      'Content-Length': Buffer.byteLength(HANDSHAKE_TIMED_OUT),
    });
    response.end(HANDSHAKE_TIMED_OUT);
  }
}

/** Whether the `Upgrade` header lists the `websocket` protocol (RFC 6455 §4.2.1). */
function asksForWebSocket(request: IncomingMessage): boolean {
  const offered = request.headers.upgrade;
  if (offered === undefined) return false;
  // What every WebSocket client sends: no list to split.
  if (offered === 'websocket') return true;
  return offered.split(',').some((protocol) => protocol.trim().toLowerCase() === 'websocket');
}

function destroyOnError(this: Duplex): void {
  this.destroy();
}

/** Closes a socket once what was written on it is flushed (destroying at once could cut it off). */
function endSocket(socket: Duplex): void {
  if (socket.destroyed) return;
  if (socket.writableFinished) {
    socket.destroy();
    return;
  }
  socket.once('finish', () => socket.destroy());
  socket.end();
}
