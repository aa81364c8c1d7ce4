import type { RawData, WebSocket } from './websocket.js';

/** One message, as `for await (const message of ws)` yields it. */
export interface WebSocketMessage {
  readonly data: RawData;
  readonly isBinary: boolean;
}

/** Messages buffered before reading pauses; reading resumes below half of it. */
const HIGH_WATER = 64;

/**
 * Async iteration over a connection's messages with backpressure: when the loop body is
 * slower than the peer, reading from the socket pauses (TCP pushes back on the peer) and
 * resumes as the loop catches up. Ends when the connection closes; throws the connection's
 * error, if it had one, after the messages received before it.
 */
export function iterateMessages(socket: WebSocket): AsyncIterableIterator<WebSocketMessage> {
  const queue: WebSocketMessage[] = [];
  let waiting: ((result: IteratorResult<WebSocketMessage>) => void) | null = null;
  let failWaiting: ((error: Error) => void) | null = null;
  let ended = socket.readyState === socket.CLOSED;
  let failure: Error | null = null;
  let pausedByUs = false;

  const onMessage = (data: RawData, isBinary: boolean): void => {
    if (waiting !== null) {
      const resolve = waiting;
      waiting = null;
      failWaiting = null;
      resolve({ value: { data, isBinary }, done: false });
      return;
    }
    queue.push({ data, isBinary });
    if (queue.length >= HIGH_WATER && !socket.isPaused) {
      socket.pause();
      pausedByUs = true;
    }
  };
  const onError = (error: Error): void => {
    failure ??= error;
  };
  const onClose = (): void => {
    ended = true;
    detach();
    if (waiting === null) return;
    const resolve = waiting;
    const reject = failWaiting!;
    waiting = null;
    failWaiting = null;
    if (failure !== null) reject(failure);
    else resolve({ value: undefined, done: true });
  };
  const detach = (): void => {
    socket.removeListener('message', onMessage);
    socket.removeListener('error', onError);
    socket.removeListener('close', onClose);
    if (pausedByUs) socket.resume();
  };
  socket.on('message', onMessage);
  socket.on('error', onError);
  socket.on('close', onClose);

  const iterator: AsyncIterableIterator<WebSocketMessage> = {
    next() {
      const message = queue.shift();
      if (message !== undefined) {
        if (pausedByUs && queue.length < HIGH_WATER / 2) {
          pausedByUs = false;
          socket.resume();
        }
        return Promise.resolve({ value: message, done: false });
      }
      if (ended) {
        if (failure !== null) {
          const error = failure;
          failure = null;
          return Promise.reject(error);
        }
        return Promise.resolve({ value: undefined, done: true });
      }
      return new Promise((resolve, reject) => {
        waiting = resolve;
        failWaiting = reject;
      });
    },
    return() {
      ended = true;
      queue.length = 0;
      detach();
      return Promise.resolve({ value: undefined, done: true });
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
