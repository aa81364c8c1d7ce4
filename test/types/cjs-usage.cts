// Compile-only: a CommonJS TypeScript user of `ws` switches by changing the require string.
import WebSocket = require('@weft/core');

const wss: WebSocket.WebSocketServer = new WebSocket.Server({ noServer: true });
wss.on('connection', (socket: WebSocket, request) => {
  socket.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
    socket.send(data, { binary: isBinary });
  });
  void request.url;
});
const options: WebSocket.ClientOptions = { handshakeTimeout: 1000 };
const client = new WebSocket('ws://127.0.0.1:1', options);
client.on('close', (code: number, reason: Buffer) => void [code, reason]);
const state: 0 | 1 | 2 | 3 = client.readyState;
void state;
void WebSocket.createWebSocketStream;
