// Chat rooms behind a login, on Express 5, express-session and @weft/express.
// Run it with `node examples/express-session-chat/server.js` (PORT=8080 to pick a port; by
// default the OS picks a free one). It prints the URL to open.
//
// - GET /            login form (or a redirect to /chat when logged in)
// - POST /login      creates the session, then redirects to /chat
// - GET /chat        the chat page; its WebSocket is authenticated by the session cookie
// - WS /ws/rooms/:room   one socket per room; refused with 401 without a session
// - POST /logout     ends the session and closes every socket it had open (code 4001)
//
// Wire protocol (JSON text messages):
//   client -> server  {type:'say', text}
//   server -> client  {type:'welcome', user, room, rooms}
//                     {type:'said', room, user, text, at}
//                     {type:'presence', room, users}
//                     {type:'error', message}

import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { WebSocket } from '@weft/core';
import { weft } from '@weft/express';
import express from 'express';
import session from 'express-session';

const HOST = '127.0.0.1';
const PORT = parsePort(process.env.PORT, 0);
const ROOMS = ['lobby', 'random', 'dev'];
const MAX_NAME = 24;
const MAX_TEXT = 500;
/** The close code a page gets when its session logs out: it must not reconnect. */
const LOGGED_OUT = 4001;

const app = express();
const server = http.createServer(app);
// Browsers send cookies with cross-site WebSocket handshakes; weft's default origin policy
// ('same-host') refuses those with 403 before the WebSocket route's middleware runs, so no
// socket ever opens with a visitor's session from another site's page.
const w = weft(app, server, {
  options: { maxPayload: 16 * 1024 },
  // A laptop that sleeps never sends a close frame; pings find it within a minute.
  heartbeat: { interval: 30_000 },
});

app.disable('x-powered-by');
app.use((_req, res, next) => {
  res.setHeader(
    'Content-Security-Policy',
    "default-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  );
  res.setHeader('X-Content-Type-Options', 'nosniff');
  next();
});
app.use(
  session({
    name: 'chat.sid',
    // A random secret per run: restarting the demo logs everyone out, which is fine here.
    secret: process.env.SESSION_SECRET || randomBytes(32).toString('hex'),
    resave: false,
    saveUninitialized: false,
    // SameSite=Lax keeps other sites from posting our forms (logout) with the user's cookie.
    cookie: { httpOnly: true, sameSite: 'lax', maxAge: 8 * 60 * 60 * 1000 },
  }),
);
app.use(express.urlencoded({ extended: false, limit: '2kb' }));
app.use(express.static(fileURLToPath(new URL('./public/', import.meta.url)), { index: false }));

app.get('/', (req, res) => {
  if (req.session.user) {
    res.redirect('/chat');
    return;
  }
  res.type('html').send(loginPage(req.query.error === 'name'));
});

app.post('/login', (req, res, next) => {
  const name = typeof req.body.name === 'string' ? req.body.name.trim() : '';
  if (name === '' || name.length > MAX_NAME || /\p{Cc}/u.test(name)) {
    res.redirect(303, '/?error=name');
    return;
  }
  // A new session id at login, so an id planted before it (session fixation) is worthless.
  req.session.regenerate((error) => {
    if (error) return next(error);
    req.session.user = name;
    req.session.save((saveError) => (saveError ? next(saveError) : res.redirect(303, '/chat')));
  });
});

app.get('/chat', (req, res) => {
  if (!req.session.user) {
    res.redirect('/');
    return;
  }
  res.sendFile(fileURLToPath(new URL('./public/chat.html', import.meta.url)));
});

/** Open sockets per session id, so logging out can close them all (every tab). */
const socketsBySession = new Map();
/** Who is in each room: socket -> user name. */
const members = new Map(ROOMS.map((room) => [room, new Map()]));

app.post('/logout', (req, res, next) => {
  for (const socket of socketsBySession.get(req.sessionID) ?? []) {
    socket.close(LOGGED_OUT, 'Logged out');
  }
  socketsBySession.delete(req.sessionID);
  req.session.destroy((error) => {
    if (error) return next(error);
    res.clearCookie('chat.sid');
    res.redirect(303, '/');
  });
});

/** The WebSocket's login check: an ordinary middleware, answering over HTTP. */
function requireLogin(req, res, next) {
  if (req.session.user) next();
  else res.status(401).type('text').send('Log in first');
}

function knownRoom(req, res, next) {
  if (ROOMS.includes(req.params.room)) next();
  else res.status(404).type('text').send('No such room');
}

app.ws('/ws/rooms/:room', requireLogin, knownRoom, (socket, req) => {
  const { room } = req.params;
  const user = req.session.user;
  const sessionId = req.sessionID;

  const sockets = socketsBySession.get(sessionId) ?? new Set();
  socketsBySession.set(sessionId, sockets);
  sockets.add(socket);
  members.get(room).set(socket, user);
  socket.subscribe(`room:${room}`);

  send(socket, { type: 'welcome', user, room, rooms: ROOMS });
  publishPresence(room);

  socket.on('message', (data, isBinary) => {
    const message = isBinary ? null : parse(data);
    const text = typeof message?.text === 'string' ? message.text.trim() : '';
    if (message?.type !== 'say' || text === '' || text.length > MAX_TEXT) {
      send(socket, { type: 'error', message: `Send {type:'say', text} (1-${MAX_TEXT} chars)` });
      return;
    }
    void w.publish(
      `room:${room}`,
      JSON.stringify({ type: 'said', room, user, text, at: Date.now() }),
    );
  });

  socket.on('close', () => {
    sockets.delete(socket);
    if (sockets.size === 0 && socketsBySession.get(sessionId) === sockets) {
      socketsBySession.delete(sessionId);
    }
    members.get(room).delete(socket);
    publishPresence(room);
  });
  // 'close' follows any error and does the cleanup.
  socket.on('error', () => {});
});

app.use((_req, res) => {
  res.status(404).type('text').send('Not found');
});

function publishPresence(room) {
  const users = [...new Set(members.get(room).values())].sort();
  void w.publish(`room:${room}`, JSON.stringify({ type: 'presence', room, users }));
}

function send(socket, message) {
  if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function parse(data) {
  try {
    return JSON.parse(String(data));
  } catch {
    return null;
  }
}

function escapeHtml(text) {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c],
  );
}

function loginPage(badName) {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>weft chat: log in</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<main class="login">
<h1>weft chat</h1>
<form method="post" action="/login">
<label for="name">Your name</label>
<input id="name" name="name" maxlength="${MAX_NAME}" required autofocus autocomplete="username">
<button id="login" type="submit">Log in</button>
</form>
${badName ? `<p class="error" role="alert">${escapeHtml(`Pick a name of 1 to ${MAX_NAME} characters.`)}</p>` : ''}
</main>
</body>
</html>
`;
}

function parsePort(value, fallback) {
  if (value === undefined || value === '') return fallback;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`PORT must be an integer from 0 to 65535, got ${JSON.stringify(value)}`);
    process.exit(2);
  }
  return port;
}

server.listen(PORT, HOST, () => {
  const { port } = server.address();
  console.log(`weft express-session chat: http://${HOST}:${port}/`);
});

let stopping = false;
async function shutdown() {
  if (stopping) return;
  stopping = true;
  // Every socket gets 1001 (Going Away) and a moment to answer; then the server stops.
  await w.close({ timeout: 2_000 });
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
