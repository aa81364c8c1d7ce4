/**
 * The event objects of the browser-style API (`onmessage`, `addEventListener`), for code
 * shared between browsers and Node.
 */

/** Base event: a type and the WebSocket it happened on. */
export class WebSocketEvent<Target = unknown> {
  readonly type: string;
  target: Target | null = null;

  constructor(type: string) {
    this.type = type;
  }
}

export interface MessageEventInit {
  /** A string for text messages; for binary ones, what `binaryType` asks for. */
  readonly data: unknown;
}

/** A message: `data` is a string for text, the `binaryType` form for binary. */
export class MessageEvent<Target = unknown> extends WebSocketEvent<Target> {
  readonly data: unknown;

  constructor(type: string, init: MessageEventInit) {
    super(type);
    this.data = init.data;
  }
}

export interface CloseEventInit {
  readonly code?: number;
  readonly reason?: string;
  readonly wasClean?: boolean;
}

/** The connection closed: `code` and `reason` from the close frame, 1006 when none came. */
export class CloseEvent<Target = unknown> extends WebSocketEvent<Target> {
  readonly code: number;
  readonly reason: string;
  /** Whether the closing handshake completed (a close frame was received). */
  readonly wasClean: boolean;

  constructor(type: string, init: CloseEventInit = {}) {
    super(type);
    this.code = init.code ?? 0;
    this.reason = init.reason ?? '';
    this.wasClean = init.wasClean ?? false;
  }
}

export interface ErrorEventInit {
  readonly error?: unknown;
  readonly message?: string;
}

/** Something went wrong; `error` is the Error the 'error' event carried. */
export class ErrorEvent<Target = unknown> extends WebSocketEvent<Target> {
  readonly error: unknown;
  readonly message: string;

  constructor(type: string, init: ErrorEventInit = {}) {
    super(type);
    this.error = init.error ?? null;
    this.message = init.message ?? '';
  }
}

/** `open` carries no data. */
export class OpenEvent<Target = unknown> extends WebSocketEvent<Target> {}
