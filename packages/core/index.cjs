'use strict';
// CommonJS entry. As with `ws`, require('@weft/core') is the WebSocket class itself, with
// WebSocketServer, Server, createWebSocketStream and every other export hung on it, so
// `const WebSocket = require('ws')` becomes `const WebSocket = require('@weft/core')`.
const core = require('./dist/index.cjs');

const WebSocket = core.WebSocket;
for (const [name, value] of Object.entries(core)) {
  if (!Object.hasOwn(WebSocket, name)) {
    Object.defineProperty(WebSocket, name, { value, enumerable: true });
  }
}
module.exports = WebSocket;
