import { ReadyState } from './protocol/constants.js';
import type { WebSocket } from './websocket.js';

/** Ping every `interval` ms; a peer that sends nothing back within `timeout` ms is terminated. */
export interface HeartbeatOptions {
  interval: number;
  /** At most `interval`; default `interval`. */
  timeout?: number;
}

/** Why a connection was cut by the liveness checks. */
export type TimeoutReason = 'heartbeat' | 'idle';

/** Sweeps per idle timeout: a connection is closed after 4 to 5 quarters of it without traffic. */
const IDLE_SWEEPS = 4;

/**
 * Heartbeat and idle checks for a set of connections, on at most three timers per set (not
 * one per connection). Each check compares frame counters between rounds, so a live
 * connection costs one increment per frame and nothing else.
 */
export class LivenessMonitor {
  readonly #sockets: () => Iterable<WebSocket>;
  readonly #onTimeout: (socket: WebSocket, reason: TimeoutReason) => void;
  #heartbeatTimer: NodeJS.Timeout | null = null;
  #verdictTimer: NodeJS.Timeout | null = null;
  #idleTimer: NodeJS.Timeout | null = null;
  /** Per connection: its activity at the last sweep and how many sweeps it has been quiet. */
  #quiet = new Map<WebSocket, { activity: number; sweeps: number }>();

  constructor(
    sockets: () => Iterable<WebSocket>,
    onTimeout: (socket: WebSocket, reason: TimeoutReason) => void,
  ) {
    this.#sockets = sockets;
    this.#onTimeout = onTimeout;
  }

  startHeartbeat(options: HeartbeatOptions): void {
    const { interval, timeout } = checkHeartbeat(options);
    this.#heartbeatTimer = setInterval(() => this.#heartbeatRound(timeout), interval);
    this.#heartbeatTimer.unref();
  }

  startIdleTimeout(idleTimeout: number): void {
    const period = Math.max(1, Math.floor(positive(idleTimeout, 'idleTimeout') / IDLE_SWEEPS));
    this.#idleTimer = setInterval(() => this.#idleSweep(), period);
    this.#idleTimer.unref();
  }

  stop(): void {
    for (const timer of [this.#heartbeatTimer, this.#verdictTimer, this.#idleTimer]) {
      if (timer !== null) clearTimeout(timer);
    }
    this.#heartbeatTimer = null;
    this.#verdictTimer = null;
    this.#idleTimer = null;
    this.#quiet.clear();
  }

  #heartbeatRound(timeout: number): void {
    // Ping everyone at once, then judge everyone at once: one extra timer per round.
    const pinged = new Map<WebSocket, number>();
    for (const socket of this.#sockets()) {
      if (socket.readyState !== ReadyState.OPEN) continue;
      pinged.set(socket, socket.framesReceived);
      socket.ping();
    }
    if (pinged.size === 0) return;
    this.#verdictTimer = setTimeout(() => {
      this.#verdictTimer = null;
      for (const [socket, received] of pinged) {
        if (socket.readyState === ReadyState.OPEN && socket.framesReceived === received) {
          this.#onTimeout(socket, 'heartbeat');
        }
      }
    }, timeout);
    this.#verdictTimer.unref();
  }

  #idleSweep(): void {
    const next = new Map<WebSocket, { activity: number; sweeps: number }>();
    for (const socket of this.#sockets()) {
      if (socket.readyState !== ReadyState.OPEN) continue;
      const before = this.#quiet.get(socket);
      const activity = socket.activity;
      const sweeps = before !== undefined && before.activity === activity ? before.sweeps + 1 : 0;
      if (sweeps >= IDLE_SWEEPS) {
        this.#onTimeout(socket, 'idle');
        continue;
      }
      next.set(socket, { activity, sweeps });
    }
    this.#quiet = next;
  }
}

/** Checks heartbeat options, with errors naming the option; returns the effective values. */
export function checkHeartbeat(options: HeartbeatOptions): { interval: number; timeout: number } {
  const interval = positive(options.interval, 'heartbeat.interval');
  const timeout = positive(options.timeout ?? interval, 'heartbeat.timeout');
  if (timeout > interval)
    throw new RangeError('heartbeat.timeout must not exceed heartbeat.interval');
  return { interval, timeout };
}

function positive(value: number, name: string): number {
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
    throw new RangeError(`${name} must be a positive number of milliseconds`);
  }
  return value;
}
