// Compile-only: the ESM surface is typed exactly (no `any` reaches the user).
import WebSocket, {
  type ClientOptions,
  type RawData,
  type WebSocket as WebSocketClass,
  type WebSocketServer,
} from '@weft/core';

type Equals<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(): T | undefined {
  return undefined;
}

assertType<Equals<typeof WebSocket, typeof WebSocketClass>>();
const server = new WebSocket.Server({ port: 0 });
assertType<Equals<typeof server, WebSocketServer>>();
server.on('connection', (socket, request) => {
  assertType<Equals<typeof socket, WebSocketClass>>();
  assertType<Equals<typeof request.url, string | undefined>>();
  socket.on('message', (data, isBinary) => {
    assertType<Equals<typeof data, RawData>>();
    assertType<Equals<typeof isBinary, boolean>>();
  });
  socket.on('close', (code, reason) => {
    assertType<Equals<typeof code, number>>();
    assertType<Equals<typeof reason, Buffer>>();
  });
  socket.addEventListener('message', (event) => {
    assertType<Equals<typeof event.data, unknown>>();
  });
});
const options: ClientOptions = { followRedirects: true, maxRedirects: 2 };
void options;
server.close();
