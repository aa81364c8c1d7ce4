import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, connect, createApp, listen, nextMessage, refused } from './helpers.js';

afterEach(cleanup);

declare module 'fastify' {
  interface Session {
    userId?: string;
  }
}

const SECRET = 'a secret of at least thirty-two characters';

/** An app with cookie sessions, a login route and a chat route that needs a login. */
async function sessionApp(): Promise<FastifyInstance> {
  const app = await createApp();
  await app.register(fastifyCookie);
  await app.register(fastifySession, {
    secret: SECRET,
    cookieName: 'sid',
    cookie: { secure: false, httpOnly: true, sameSite: 'lax' },
    saveUninitialized: false,
  });
  app.post<{ Body: { user: string } }>('/login', async (request) => {
    request.session.userId = request.body.user;
    return { ok: true };
  });
  const requireLogin = async (request: FastifyRequest, reply: FastifyReply) => {
    if (request.session.userId === undefined) return reply.code(401).send('login first');
  };
  app.get('/chat', { websocket: true, preHandler: requireLogin }, (socket, request) => {
    // Typed through the Session declaration merging above: no cast.
    const user: string | undefined = request.session.userId;
    socket.send(`welcome ${user} (session ${request.session.sessionId.length > 0})`);
  });
  return app;
}

describe('@fastify/cookie + @fastify/session', () => {
  it('puts the session an HTTP login created on the socket request', async () => {
    const app = await sessionApp();
    const url = await listen(app);
    const login = await fetch(`${url.replace('ws:', 'http:')}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'ada' }),
    });
    expect(login.status).toBe(200);
    const setCookie = login.headers.get('set-cookie');
    expect(setCookie).toMatch(/^sid=/);
    const cookie = setCookie!.split(';')[0]!;

    const client = await connect(`${url}/chat`, { headers: { cookie } });
    expect(await nextMessage(client)).toBe('welcome ada (session true)');
  });

  it('refuses the handshake with 401 without a session, and with a forged cookie', async () => {
    const app = await sessionApp();
    const url = await listen(app);
    expect((await refused(`${url}/chat`)).status).toBe(401);
    const forged = await refused(`${url}/chat`, { headers: { cookie: 'sid=forged.value' } });
    expect(forged.status).toBe(401);
  });

  it('works the same through injectWS with the cookies of an inject() login', async () => {
    const app = await sessionApp();
    const login = await app.inject({ method: 'POST', url: '/login', payload: { user: 'grace' } });
    const sid = login.cookies.find((cookie) => cookie.name === 'sid');
    expect(sid).toBeDefined();
    const client = await app.injectWS('/chat', { cookies: { sid: sid!.value } });
    const message = new Promise<string>((resolve) =>
      client.once('message', (data) => resolve(String(data))),
    );
    expect(await message).toBe('welcome grace (session true)');
    client.terminate();
    await expect(app.injectWS('/chat')).rejects.toMatchObject({ statusCode: 401 });
  });
});
