import { Duplex, type DuplexOptions } from 'node:stream';
import { ReadyState } from './protocol/constants.js';
import type { WebSocket } from './websocket.js';

/**
 * Wraps a WebSocket in a Duplex stream: each message is a chunk to read, each written
 * chunk a message. A full read buffer pauses the socket, so a slow reader slows the peer.
 */
export function createWebSocketStream(ws: WebSocket, options: DuplexOptions = {}): Duplex {
  let errorFromSocket = false;

  const whenOpen = (action: () => void): void => {
    if (ws.readyState === ReadyState.CONNECTING) ws.once('open', action);
    else action();
  };

  const duplex = new Duplex({
    ...options,
    autoDestroy: false,
    emitClose: false,
    objectMode: false,
    writableObjectMode: false,
    read() {
      if (ws.isPaused) ws.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      whenOpen(() => ws.send(chunk, callback));
    },
    final(callback) {
      whenOpen(() => {
        if (ws.readyState === ReadyState.CLOSED) {
          callback();
          return;
        }
        ws.once('close', () => callback());
        ws.close();
      });
    },
    destroy(error, callback) {
      if (ws.readyState === ReadyState.CLOSED) {
        callback(error);
        process.nextTick(() => duplex.emit('close'));
        return;
      }
      ws.once('close', () => {
        callback(error);
        process.nextTick(() => duplex.emit('close'));
      });
      if (!errorFromSocket) ws.terminate();
    },
  });

  ws.on('message', (data, isBinary) => {
    const chunk = !isBinary && duplex.readableObjectMode ? data.toString() : data;
    if (!duplex.push(chunk)) ws.pause();
  });
  ws.once('error', (error) => {
    if (duplex.destroyed) return;
    errorFromSocket = true;
    duplex.destroy(error);
  });
  ws.once('close', () => {
    if (!duplex.destroyed) duplex.push(null);
  });
  duplex.on('end', () => {
    if (duplex.writableFinished || !duplex.writable) duplex.destroy();
  });
  duplex.on('finish', () => {
    if (duplex.readableEnded) duplex.destroy();
  });
  return duplex;
}
