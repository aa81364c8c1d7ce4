import type { IncomingMessage } from 'node:http';
import { checkOrigin, requestOrigin } from '@weft/core';
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import type { OriginOption } from './options.js';

/** The 403 a handshake from a refused origin gets, through Fastify's error handler. */
export class OriginNotAllowedError extends Error {
  override readonly name = 'OriginNotAllowedError';
  readonly code = 'WEFT_ERR_ORIGIN_NOT_ALLOWED';
  readonly statusCode = 403;

  constructor(origin: string) {
    super(`Origin not allowed: ${origin}`);
  }
}

/**
 * The `onRequest` hook that applies the origin policy to the upgrades of a WebSocket route.
 * It is the route's first own hook: the app's hooks (a session plugin's, say) have run, so a
 * policy function can look at the session; the route's auth hooks have not, so a refused page
 * costs no lookup. Browsers attach cookies to cross-site handshakes and the WebSocket API has
 * no CORS, so without this check any page a logged-in user visits could open a socket as them.
 */
export function originHook(
  policy: OriginOption,
  isUpgrade: (request: IncomingMessage) => boolean,
): (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void {
  return function checkWebSocketOrigin(request, _reply, done) {
    if (!isUpgrade(request.raw)) {
      done();
      return;
    }
    const origin = requestOrigin(request.raw);
    // A handshake without an Origin (not from a browser) is always allowed, as in the core's
    // checkOrigin: the common non-browser handshake makes no closure here.
    if (origin === undefined) {
      done();
      return;
    }
    // Written with `done` so the usual synchronous decision costs no promise per handshake.
    const decide = (allowed: boolean): void => {
      done(allowed ? undefined : new OriginNotAllowedError(origin));
    };
    let allowed: boolean | PromiseLike<boolean>;
    try {
      allowed =
        typeof policy === 'function' ? policy(origin, request) : checkOrigin(request.raw, policy);
    } catch (error) {
      done(error as Error);
      return;
    }
    // Only a literal true allows: a policy returning something else by mistake refuses.
    if (typeof allowed === 'object' && allowed !== null && typeof allowed.then === 'function') {
      allowed.then((result) => decide(result === true), done);
    } else {
      decide(allowed === true);
    }
  };
}
