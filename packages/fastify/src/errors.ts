import { CloseCode, type WebSocket } from '@weft/core';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { InvalidMessageError } from './messages.js';
import type { WebSocketErrorHandler } from './options.js';

/** A close reason may take 123 bytes: 125 of control frame payload minus the code (RFC 6455 §5.5). */
const MAX_CLOSE_REASON_BYTES = 123;

/**
 * The default WebSocket error handler: an invalid message closes with its close code (1007,
 * or 1003 for binary) and says why, since the client sent it and can fix it; any other error
 * is the server's, so it is logged and the client only learns 1011.
 */
export const defaultErrorHandler: WebSocketErrorHandler = (error, socket, request) => {
  if (error instanceof InvalidMessageError) {
    request.log.info({ err: error }, 'WebSocket message refused by its schema');
    socket.close(error.closeCode, closeReason(error.message));
    return;
  }
  request.log.error({ err: error }, 'WebSocket handler failed');
  socket.close(CloseCode.InternalError, 'Internal server error');
};

/**
 * Hands an error of an open socket to its error handler. If the handler fails too, the socket
 * is terminated: nothing else is left that could close it.
 */
export function reportError(
  handler: WebSocketErrorHandler,
  instance: FastifyInstance,
  error: unknown,
  socket: WebSocket,
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  const lastResort = (failure: unknown): void => {
    request.log.error({ err: failure }, 'The WebSocket error handler failed');
    socket.terminate();
  };
  try {
    const result = handler.call(
      instance,
      error instanceof Error ? error : new Error(String(error)),
      socket,
      request,
      reply,
    );
    if (result !== undefined && typeof result.then === 'function') {
      result.then(undefined, lastResort);
    }
  } catch (failure) {
    lastResort(failure);
  }
}

/** `text` cut to fit a close frame, on a character boundary. */
export function closeReason(text: string): string {
  const bytes = Buffer.from(text);
  if (bytes.length <= MAX_CLOSE_REASON_BYTES) return text;
  let end = MAX_CLOSE_REASON_BYTES - 3;
  // Back up over UTF-8 continuation bytes (10xxxxxx) so no character is split.
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
  return `${bytes.subarray(0, end).toString()}...`;
}
