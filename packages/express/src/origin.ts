/**
 * What the origin policy passes to `next()` for a refused handshake: a 403, through the app's
 * error handlers like any other error (the same name and code as in @weft/fastify). With no
 * error handler answering it, the client gets 403 and its message.
 */
export class OriginNotAllowedError extends Error {
  override readonly name = 'OriginNotAllowedError';
  readonly code = 'WEFT_ERR_ORIGIN_NOT_ALLOWED';
  /** The HTTP status, under both names `http-errors` uses. */
  readonly status = 403;
  readonly statusCode = 403;
  /** Its message may be shown to the client (the origin is the client's own). */
  readonly expose = true;
  /** The refused `Origin`. */
  readonly origin: string;

  constructor(origin: string) {
    super(`Origin not allowed: ${origin}`);
    this.origin = origin;
  }
}
