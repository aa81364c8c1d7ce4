import { CloseCode } from './close-codes.js';

/** Machine-readable error codes; the names match `ws`'s so existing handlers keep working. */
export type WebSocketErrorCode =
  | 'WS_ERR_INVALID_OPCODE'
  | 'WS_ERR_UNEXPECTED_RSV_1'
  | 'WS_ERR_UNEXPECTED_RSV_2_3'
  | 'WS_ERR_EXPECTED_FIN'
  | 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH'
  | 'WS_ERR_EXPECTED_MASK'
  | 'WS_ERR_UNEXPECTED_MASK'
  | 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH'
  | 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'
  | 'WS_ERR_INVALID_UTF8'
  | 'WS_ERR_INVALID_COMPRESSED_DATA'
  | 'WS_ERR_TOO_MANY_FRAGMENTS'
  | 'WS_ERR_INVALID_CLOSE_CODE';

/**
 * A violation by the peer. It carries the close code the connection is failed with, so the
 * connection code never has to guess (RFC 6455 §7.1.7 "Fail the WebSocket Connection").
 */
export class WebSocketProtocolError extends RangeError {
  override readonly name = 'WebSocketProtocolError';
  /** The close code sent to the peer. */
  readonly closeCode: CloseCode;
  /** A stable identifier of the violation. */
  readonly code: WebSocketErrorCode;

  constructor(message: string, code: WebSocketErrorCode, closeCode: CloseCode) {
    super(message);
    this.code = code;
    this.closeCode = closeCode;
  }
}

export function protocolError(message: string, code: WebSocketErrorCode): WebSocketProtocolError {
  return new WebSocketProtocolError(message, code, CloseCode.ProtocolError);
}

/** A message over `maxPayload` (counted after inflating): the connection fails with 1009. */
export function messageTooBig(): WebSocketProtocolError {
  return new WebSocketProtocolError(
    'Max payload size exceeded',
    'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH',
    CloseCode.MessageTooBig,
  );
}
