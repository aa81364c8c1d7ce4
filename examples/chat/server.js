// weft chat demo: one HTTP server that serves the page and, on /chat, a WebSocket chat room.
// Run it with `npm start` at the repository root, or `node examples/chat/server.js`.
//
// Wire protocol (JSON text messages):
//   client -> server  {type:'hello', name}          once, first
//                     {type:'say', text}            any number of times after hello
//   server -> client  {type:'joined'|'left', name, at}
//                     {type:'said', name, text, at}
//                     {type:'presence', count}

import { readFileSync } from 'node:fs';
import http from 'node:http';
import { WebSocket, WebSocketServer } from '@weft/core';

const HOST = process.env.HOST || '127.0.0.1';
const PORT = parsePort(process.env.PORT, 8080);
const MAX_NAME = 32;
const MAX_TEXT = 2000;
// A dead peer (laptop lid closed, cable pulled) never sends a close frame; without pings its
// user would stay "online" until the OS gives up on the TCP connection, hours later.
const HEARTBEAT_MS = 30_000;
// Long enough for a well-behaved client to answer our close frame, short enough that Ctrl-C
// never feels stuck.
const SHUTDOWN_GRACE_MS = 2_000;

// Read once: the page never changes while the server runs, and a missing file should stop
// the server at start rather than surface as a 500 later.
const page = readFileSync(new URL('./index.html', import.meta.url));

const server = http.createServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/chat') {
    // Someone opened the endpoint in a browser tab or with curl: point them at the page.
    reply(req, res, 426, 'text/plain; charset=utf-8', 'WebSocket endpoint; open / instead\n');
    return;
  }
  if (path !== '/' && path !== '/index.html') {
    reply(req, res, 404, 'text/plain; charset=utf-8', 'Not found\n');
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    reply(req, res, 405, 'text/plain; charset=utf-8', 'Method not allowed\n');
    return;
  }
  // The page is self-contained, so everything but its own inline code and same-origin
  // connections can be refused outright.
  res.setHeader(
    'Content-Security-Policy',
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'",
  );
  res.setHeader('X-Content-Type-Options', 'nosniff');
  reply(req, res, 200, 'text/html; charset=utf-8', page);
});

const wss = new WebSocketServer({
  server,
  path: '/chat',
  // Chat lines are tiny; a 64 KiB cap keeps one client from making us buffer megabytes.
  maxPayload: 64 * 1024,
  // Browsers let any site open a WebSocket to any host, cookies or not; only our own page
  // may join. Clients that send no Origin (curl, scripts, tests) are not browsers and may.
  verifyClient: ({ origin, req }) => origin === undefined || sameHost(origin, req.headers.host),
});

/** @type {WeakMap<WebSocket, {name: string | null, alive: boolean}>} */
const sessions = new WeakMap();

wss.on('connection', (ws) => {
  const session = { name: null, alive: true };
  sessions.set(ws, session);
  ws.on('pong', () => {
    session.alive = true;
  });
  // 'close' always follows an error and does the cleanup; with the `ws` package an 'error'
  // without a listener would throw, so keep one for code that may run on either engine.
  ws.on('error', () => {});

  ws.on('message', (data, isBinary) => {
    if (isBinary) {
      closeWith(ws, 1003, 'expected JSON text');
      return;
    }
    let message;
    try {
      message = JSON.parse(data.toString());
    } catch {
      closeWith(ws, 1008, 'invalid JSON');
      return;
    }
    const problem = handle(session, message);
    if (problem !== null) closeWith(ws, 1008, problem);
  });

  ws.on('close', () => {
    // Only people who said hello were announced, so only they are announced leaving.
    if (session.name === null) return;
    broadcast({ type: 'left', name: session.name, at: Date.now() });
    broadcastPresence();
  });
});

/** Applies one client message; returns why it is refused, or null. */
function handle(session, message) {
  if (typeof message !== 'object' || message === null || Array.isArray(message)) {
    return 'expected a JSON object';
  }
  if (message.type === 'hello') {
    if (session.name !== null) return 'hello sent twice';
    const name = typeof message.name === 'string' ? message.name.trim() : '';
    const problem = checkText(name, MAX_NAME, 'name');
    if (problem !== null) return problem;
    session.name = name;
    broadcast({ type: 'joined', name, at: Date.now() });
    broadcastPresence();
    return null;
  }
  if (message.type === 'say') {
    if (session.name === null) return 'say before hello';
    const text = typeof message.text === 'string' ? message.text.trim() : '';
    const problem = checkText(text, MAX_TEXT, 'text');
    if (problem !== null) return problem;
    broadcast({ type: 'said', name: session.name, text, at: Date.now() });
    return null;
  }
  return 'unknown message type';
}

function checkText(value, max, what) {
  if (value === '') return `${what} missing`;
  // Count code points, not UTF-16 units, so an emoji costs one character, as users expect.
  if ([...value].length > max) return `${what} longer than ${max} characters`;
  // Control characters could fake line breaks or terminal escapes in other people's views.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
  if (what === 'name' && /[\u0000-\u001f\u007f]/.test(value)) return 'name has control characters';
  return null;
}

function broadcast(message) {
  // Serialize once, not once per client.
  const json = JSON.stringify(message);
  for (const client of wss.clients) {
    if (client.readyState === WebSocket.OPEN) client.send(json);
  }
}

function broadcastPresence() {
  let count = 0;
  for (const client of wss.clients) {
    if (client.readyState === WebSocket.OPEN && sessions.get(client)?.name) count += 1;
  }
  broadcast({ type: 'presence', count });
}

function closeWith(ws, code, reason) {
  try {
    ws.close(code, reason);
  } catch {
    // close() throws for codes it refuses to send; dropping the connection is the next best
    // answer and, unlike an uncaught exception, does not take everyone else down with it.
    ws.terminate();
  }
}

const heartbeat = setInterval(() => {
  for (const client of wss.clients) {
    const session = sessions.get(client);
    if (session === undefined) continue;
    if (!session.alive) {
      client.terminate();
      continue;
    }
    session.alive = false;
    client.ping();
  }
}, HEARTBEAT_MS);
// The heartbeat alone must never keep the process alive.
heartbeat.unref();

// The WebSocketServer re-emits the HTTP server's errors; an 'error' nobody listens to throws.
wss.on('error', () => {});
server.on('error', (error) => {
  // Exiting beats silently moving to another port: a newcomer following the README would
  // be looking at the wrong URL, or at someone else's server still holding the port.
  if (error.code === 'EADDRINUSE') {
    console.error(
      `weft chat demo: port ${PORT} on ${HOST} is already in use. Stop whatever holds it, or pick another port: PORT=8081 npm start (PORT=0 picks a free one).`,
    );
  } else {
    console.error(`weft chat demo: cannot listen on ${HOST}:${PORT}: ${error.message}`);
  }
  process.exit(1);
});

server.listen(PORT, HOST, () => {
  // Print the port actually bound: with PORT=0 the OS chose it, and tests read this line.
  const { port } = server.address();
  const host = HOST.includes(':') ? `[${HOST}]` : HOST;
  console.log(`weft chat demo: http://${host}:${port}/`);
});

let shuttingDown = false;
function shutdown() {
  if (shuttingDown) {
    // A second Ctrl-C means "now": skip the polite closing handshakes.
    process.exit(1);
  }
  shuttingDown = true;
  clearInterval(heartbeat);
  server.close(() => process.exit(0));
  wss.close();
  for (const client of wss.clients) closeWith(client, 1001, 'server shutting down');
  // Idle keep-alive HTTP connections would hold server.close() open.
  server.closeIdleConnections();
  // A client that never answers our close frame must not hold the exit hostage.
  setTimeout(() => {
    for (const client of wss.clients) client.terminate();
    server.closeAllConnections();
  }, SHUTDOWN_GRACE_MS).unref();
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);

function reply(req, res, status, type, body) {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function sameHost(origin, host) {
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}

function parsePort(value, fallback) {
  if (value === undefined || value === '') return fallback;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`weft chat demo: PORT must be an integer from 0 to 65535, got "${value}"`);
    process.exit(1);
  }
  return port;
}
