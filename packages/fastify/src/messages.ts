import { CloseCode, type RawData, type WebSocket } from '@weft/core';

/** Why a message was refused, as `InvalidMessageError.reason` says it. */
export type InvalidMessageReason = 'binary' | 'json' | 'schema';

/** A validation error as Ajv (Fastify's default validator) reports it. */
export interface MessageValidationIssue {
  readonly instancePath?: string;
  readonly message?: string;
  readonly [key: string]: unknown;
}

/**
 * A message refused by its route's `schema.message`. It goes to the route's WebSocket error
 * handler; the default one closes the connection with `closeCode` and `message` as the reason.
 */
export class InvalidMessageError extends Error {
  override readonly name = 'InvalidMessageError';
  readonly code = 'WEFT_ERR_INVALID_MESSAGE';
  /** 1003 for a binary message (the route takes JSON text), 1007 for the rest (RFC 6455 §7.4.1). */
  readonly closeCode: number;
  readonly reason: InvalidMessageReason;
  /** The validator's errors, for `reason: 'schema'`. */
  readonly validation: readonly MessageValidationIssue[] | undefined;

  constructor(
    reason: InvalidMessageReason,
    message: string,
    validation?: readonly MessageValidationIssue[],
  ) {
    super(message);
    this.reason = reason;
    this.closeCode = reason === 'binary' ? CloseCode.UnsupportedData : CloseCode.InvalidPayload;
    this.validation = validation;
  }
}

/** What `request.compileValidationSchema` gives: Ajv's shape, or a custom compiler's result. */
export interface MessageValidator {
  (value: unknown): unknown;
  errors?: readonly MessageValidationIssue[] | null;
}

/**
 * Puts a route's message validation in front of every 'message' listener of `socket`. Each
 * text message is parsed as JSON and validated; a valid one reaches the listeners as usual,
 * `(data, isBinary)`, with the validated value as a third argument (with the validator's
 * defaults and coercions applied, so a listener need not parse it again). An invalid one
 * reaches no listener and goes to `onInvalid`.
 *
 * It wraps `emit` rather than listening, because a listener of ours would count as the first
 * 'message' listener: the core would hand it the messages held for an async handler and the
 * handler's own listener would never see them. Every reader of messages (`on`, `once`,
 * `onmessage`, `addEventListener`, `for await`, `createWebSocketStream`, a 'connection'
 * listener) is a 'message' listener, and the core delivers live and held messages alike
 * through `emit`, so none of them can see an unchecked message. Held messages are checked when
 * released.
 *
 * Once a message was refused and the error handler closed the socket, what the client sent
 * behind it reaches no listener: a client cut off for an invalid message gets no further say.
 */
export function validateMessages(
  socket: WebSocket,
  validate: MessageValidator,
  onInvalid: (error: InvalidMessageError | Error) => void,
): void {
  const emit = socket.emit;
  let refused = false;
  const gated = function (this: WebSocket, event: string | symbol, ...args: unknown[]): boolean {
    if (event !== 'message') return Reflect.apply(emit, this, [event, ...args]);
    if (refused && this.readyState !== this.OPEN) return false;
    const outcome = check(args[0] as RawData, args[1] === true, validate);
    if (outcome instanceof Error) {
      refused = true;
      onInvalid(outcome);
      return true;
    }
    return Reflect.apply(emit, this, ['message', args[0], false, outcome.value]);
  };
  socket.emit = gated as WebSocket['emit'];
}

function check(
  data: RawData,
  isBinary: boolean,
  validate: MessageValidator,
): { value: unknown } | Error {
  if (isBinary) {
    return new InvalidMessageError('binary', 'Binary messages are not accepted: send JSON text');
  }
  let value: unknown;
  try {
    value = JSON.parse(String(data));
  } catch {
    return new InvalidMessageError('json', 'Message is not valid JSON');
  }
  const result = validate(value);
  if (result === true) return { value };
  if (result === false) {
    const issues = validate.errors ?? [];
    return new InvalidMessageError('schema', formatIssues(issues), issues);
  }
  // Custom compilers (Joi, TypeBox adapters...) answer { error } or { value }, as Fastify allows.
  if (typeof result === 'object' && result !== null) {
    if (typeof (result as PromiseLike<unknown>).then === 'function') {
      // A later answer would reorder messages; the route's validator must decide at once.
      return new TypeError('Asynchronous message validators are not supported');
    }
    const { error, value: coerced } = result as { error?: unknown; value?: unknown };
    if (error !== undefined) {
      const issues = Array.isArray(error) ? (error as MessageValidationIssue[]) : undefined;
      const text = issues ? formatIssues(issues) : error instanceof Error ? error.message : '';
      return new InvalidMessageError('schema', text || 'Message is invalid', issues);
    }
    return { value: coerced === undefined ? value : coerced };
  }
  return { value };
}

/** The same wording as Fastify's 400s: `message/text must be string`. */
function formatIssues(issues: readonly MessageValidationIssue[]): string {
  if (issues.length === 0) return 'Message is invalid';
  return issues
    .map((issue) => `message${issue.instancePath ?? ''} ${issue.message ?? 'is invalid'}`)
    .join(', ');
}
