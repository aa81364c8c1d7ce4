/** The GUID every server appends to the client's key (RFC 6455 §1.3). */
export const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Frame opcodes (RFC 6455 §5.2). */
export const Opcode = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
} as const;
export type Opcode = (typeof Opcode)[keyof typeof Opcode];

/** Connection states, the same numbers as the browser WebSocket and `ws`. */
export const ReadyState = {
  CONNECTING: 0,
  OPEN: 1,
  CLOSING: 2,
  CLOSED: 3,
} as const;
export type ReadyState = (typeof ReadyState)[keyof typeof ReadyState];

export const READY_STATE_NAMES = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'] as const;

/** Protocol versions a server accepts; 13 is RFC 6455, 8 is the hybi-08 draft browsers once sent. */
export const SUPPORTED_VERSIONS = [13, 8] as const;

/** Control frame payloads are at most 125 bytes (RFC 6455 §5.5). */
export const MAX_CONTROL_PAYLOAD = 125;

/** A close reason fits in a control frame after the 2-byte code. */
export const MAX_CLOSE_REASON_BYTES = MAX_CONTROL_PAYLOAD - 2;

/** `ws`'s default maxPayload: 100 MiB. */
export const DEFAULT_MAX_PAYLOAD = 100 * 1024 * 1024;

/** Frames one message may arrive in, by default: far above any real sender, far below abuse. */
export const DEFAULT_MAX_FRAGMENTS = 1024 * 1024;

/** How long a closing handshake may take before the socket is destroyed. */
export const DEFAULT_CLOSE_TIMEOUT = 30_000;

export const EMPTY_BUFFER: Buffer = Buffer.alloc(0);
