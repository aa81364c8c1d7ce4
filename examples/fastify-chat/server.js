// weft Fastify chat: log in over HTTP (a cookie session), then chat over WebSocket in rooms.
// Run it with `node examples/fastify-chat/server.js` (after `npm run build`).
//
// HTTP
//   GET  /                 the page
//   GET  /api/me           { name } of the session, or 401
//   POST /api/login        { name } -> starts a session with that name
//   POST /api/logout       ends it
// WebSocket  /rooms/:room  (needs a session; room: 1-32 of a-z, 0-9, '-')
//   client -> server  { text }                         JSON text, checked by schema.message
//   server -> client  { type: 'said', name, text, at }
//                     { type: 'joined' | 'left', name, at }
//                     { type: 'presence', room, count }

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import weft from '@weft/fastify';
import Fastify from 'fastify';

const HOST = process.env.HOST || '127.0.0.1';
const PORT = parsePort(process.env.PORT, 0);
// A fixed secret keeps sessions across restarts; a random one is fine for a demo and never
// ships a known secret.
const SESSION_SECRET = process.env.SESSION_SECRET || randomBytes(32).toString('hex');

// Read once: a missing page should stop the server at start, not turn into a 500 later.
const page = readFileSync(new URL('./index.html', import.meta.url));

const app = Fastify({ logger: { level: process.env.LOG_LEVEL || 'warn' } });

await app.register(fastifyCookie);
await app.register(fastifySession, {
  secret: SESSION_SECRET,
  cookieName: 'sid',
  // `secure: 'auto'` sends the cookie over HTTPS only when the request came over HTTPS, so
  // the demo works on http://127.0.0.1 and stays safe behind TLS.
  cookie: { secure: 'auto', httpOnly: true, sameSite: 'lax', path: '/' },
  saveUninitialized: false,
});
await app.register(weft, {
  // Chat lines are small: one client must not make the server buffer megabytes.
  options: { maxPayload: 16 * 1024 },
  // The default origin policy ('same-host') already refuses other sites' pages: the session
  // cookie would otherwise let any page its user visits join the chat as them.
  // A laptop lid closed never sends a close frame; pings find such peers.
  heartbeat: { interval: 30_000 },
  // Long enough for a browser to answer the close frame, short enough that Ctrl-C never hangs.
  shutdown: { timeout: 2_000 },
});

// Names are shown to everyone: no control characters (fake line breaks, terminal escapes).
const nameSchema = {
  type: 'string',
  minLength: 1,
  maxLength: 32,
  pattern: '^[^\\u0000-\\u001f\\u007f]+$',
};

app.get('/', (_request, reply) => {
  // The page is self-contained: everything but its inline code and same-origin requests is refused.
  reply
    .header(
      'content-security-policy',
      "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'",
    )
    .type('text/html; charset=utf-8')
    .send(page);
});

app.get('/api/me', async (request, reply) => {
  const name = request.session.get('name');
  if (name === undefined) return reply.code(401).send({ error: 'not logged in' });
  return { name };
});

app.post(
  '/api/login',
  {
    schema: {
      body: { type: 'object', required: ['name'], properties: { name: nameSchema } },
    },
  },
  async (request, reply) => {
    const name = request.body.name.trim();
    if (name === '') return reply.code(400).send({ error: 'the name is blank' });
    // A fresh session id at login: an id planted before it (session fixation) is worthless.
    await request.session.regenerate();
    request.session.set('name', name);
    return { name };
  },
);

app.post('/api/logout', async (request) => {
  await request.session.destroy();
  return { ok: true };
});

/** Refuses the handshake of a visitor who has not logged in: the browser sees a failed connection. */
async function requireLogin(request, reply) {
  if (request.session.get('name') === undefined) {
    return reply.code(401).send({ error: 'log in first' });
  }
}

app.get(
  '/rooms/:room',
  {
    websocket: true,
    preHandler: requireLogin,
    schema: {
      params: {
        type: 'object',
        properties: { room: { type: 'string', pattern: '^[a-z0-9-]{1,32}$' } },
      },
      // Checked before any listener sees a message; a bad one closes the socket with 1007.
      message: {
        type: 'object',
        required: ['text'],
        properties: { text: { type: 'string', minLength: 1, maxLength: 2000 } },
        additionalProperties: false,
      },
    },
  },
  (socket, request) => {
    const name = request.session.get('name');
    const room = request.params.room;
    const topic = `room:${room}`;
    const publish = (message) => app.weft.publish(topic, JSON.stringify(message));
    const presence = () =>
      publish({ type: 'presence', room, count: app.weft.subscriberCount(topic) });

    socket.subscribe(topic);
    publish({ type: 'joined', name, at: Date.now() });
    presence();

    socket.on('message', (_data, _isBinary, message) => {
      const text = message.text.trim();
      if (text !== '') publish({ type: 'said', name, text, at: Date.now() });
    });
    socket.on('close', () => {
      // The socket has left the topic by now, so the count is the people still there.
      publish({ type: 'left', name, at: Date.now() });
      presence();
    });
  },
);

let closing = false;
async function shutdown() {
  if (closing) process.exit(1); // a second Ctrl-C means now
  closing = true;
  // Every socket gets 1001 and a moment to answer; then the HTTP server closes.
  await app.close();
  process.exit(0);
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);

try {
  await app.listen({ host: HOST, port: PORT });
} catch (error) {
  console.error(`weft fastify chat: cannot listen on ${HOST}:${PORT}: ${error.message}`);
  process.exit(1);
}
// The port actually bound: with PORT=0 (the default) the OS chose it, and tests read this line.
const { port } = app.server.address();
const host = HOST.includes(':') ? `[${HOST}]` : HOST;
console.log(`weft fastify chat: http://${host}:${port}/`);

function parsePort(value, fallback) {
  if (value === undefined || value === '') return fallback;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`weft fastify chat: PORT must be an integer from 0 to 65535, got "${value}"`);
    process.exit(1);
  }
  return port;
}
