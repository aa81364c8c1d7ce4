import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanup,
  connect,
  createApp,
  listen,
  nextMessage,
  refused,
  watchUpgradeSockets,
} from './helpers.js';

afterEach(cleanup);

type Hook = 'onRequest' | 'preParsing' | 'preValidation' | 'preHandler';
const HOOKS: Hook[] = ['onRequest', 'preParsing', 'preValidation', 'preHandler'];

/** A callback-style hook of any of the four kinds (preParsing also gets the payload). */
function hookThat(
  hook: Hook,
  act: (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void,
) {
  if (hook === 'preParsing') {
    return (
      request: FastifyRequest,
      reply: FastifyReply,
      _payload: unknown,
      done: HookHandlerDoneFunction,
    ) => act(request, reply, done);
  }
  return act;
}

describe('hooks before the handshake', () => {
  it.each(HOOKS)(
    'a route-level %s hook that replies 401 sends it and opens nothing',
    async (hook) => {
      const app = await createApp();
      let opened = false;
      app.get(
        '/guarded',
        {
          websocket: true,
          [hook]: hookThat(hook, (_request, reply) => {
            reply.code(401).send({ error: 'login first' });
          }),
        },
        () => {
          opened = true;
        },
      );
      const sockets = watchUpgradeSockets(app);
      const url = await listen(app);
      const refusal = await refused(`${url}/guarded`);
      expect(refusal.status).toBe(401);
      expect(JSON.parse(refusal.body)).toEqual({ error: 'login first' });
      await sockets.allClosed();
      expect(opened).toBe(false);
    },
  );

  it.each(HOOKS)('an app-level async %s hook that replies 403 sends it', async (hook) => {
    const app = await createApp();
    const refuse = async (_request: FastifyRequest, reply: FastifyReply) =>
      reply.code(403).send('forbidden');
    app.addHook(hook, hook === 'preParsing' ? async (r, s, _payload) => refuse(r, s) : refuse);
    app.get('/guarded', { websocket: true }, () => {});
    const sockets = watchUpgradeSockets(app);
    const url = await listen(app);
    const refusal = await refused(`${url}/guarded`);
    expect(refusal.status).toBe(403);
    expect(refusal.body).toBe('forbidden');
    await sockets.allClosed();
  });

  it.each(HOOKS)('a %s hook that redirects sends the redirect', async (hook) => {
    const app = await createApp();
    app.get(
      '/old',
      {
        websocket: true,
        [hook]: hookThat(hook, (_request, reply) => {
          reply.redirect('/new', 302);
        }),
      },
      () => {},
    );
    const url = await listen(app);
    const refusal = await refused(`${url}/old`);
    expect(refusal.status).toBe(302);
    expect(refusal.headers.location).toBe('/new');
  });

  it.each(HOOKS)(
    "an error from a %s hook goes through Fastify's error handler to the client",
    async (hook) => {
      const app = await createApp();
      app.get(
        '/teapot',
        {
          websocket: true,
          [hook]: hookThat(hook, (_request, _reply, done) => {
            done(Object.assign(new Error('short and stout'), { statusCode: 418 }));
          }),
        },
        () => {},
      );
      const sockets = watchUpgradeSockets(app);
      const url = await listen(app);
      const refusal = await refused(`${url}/teapot`);
      expect(refusal.status).toBe(418);
      expect(JSON.parse(refusal.body)).toMatchObject({
        statusCode: 418,
        message: 'short and stout',
      });
      await sockets.allClosed();
    },
  );

  it('a hook that throws synchronously answers 500; one that rejects answers its status', async () => {
    const app = await createApp();
    app.get(
      '/sync',
      {
        websocket: true,
        onRequest: () => {
          throw new Error('hook bug');
        },
      },
      () => {},
    );
    app.get(
      '/async',
      {
        websocket: true,
        preHandler: async () => {
          throw Object.assign(new Error('slow down'), { statusCode: 429 });
        },
      },
      () => {},
    );
    const sockets = watchUpgradeSockets(app);
    const url = await listen(app);
    expect((await refused(`${url}/sync`)).status).toBe(500);
    expect((await refused(`${url}/async`)).status).toBe(429);
    await sockets.allClosed();
  });

  it('uses the encapsulated setErrorHandler of the route', async () => {
    const app = await createApp();
    await app.register(async (child) => {
      child.setErrorHandler((error, _request, reply) => {
        reply.code(409).send({ mapped: (error as Error).message });
      });
      child.get(
        '/mapped',
        {
          websocket: true,
          preValidation: async () => {
            throw new Error('conflict');
          },
        },
        () => {},
      );
    });
    const url = await listen(app);
    const refusal = await refused(`${url}/mapped`);
    expect(refusal.status).toBe(409);
    expect(JSON.parse(refusal.body)).toEqual({ mapped: 'conflict' });
  });

  it('a hook that replies twice leaves no socket hanging', async () => {
    const app = await createApp();
    app.get(
      '/twice',
      {
        websocket: true,
        onRequest: (_request, reply, done) => {
          reply.code(401).send('first');
          reply.code(402).send('second');
          done();
        },
      },
      () => {},
    );
    const sockets = watchUpgradeSockets(app);
    const url = await listen(app);
    const refusal = await refused(`${url}/twice`);
    expect(refusal.status).toBe(401);
    expect(refusal.body).toBe('first');
    await sockets.allClosed();
  });

  it('a hook that hijacks the reply and answers on the raw response closes the connection', async () => {
    const app = await createApp();
    app.get(
      '/raw',
      {
        websocket: true,
        onRequest: (_request, reply, _done) => {
          reply.hijack();
          reply.raw.writeHead(401, { 'content-type': 'text/plain' });
          reply.raw.end('raw answer');
        },
      },
      () => {},
    );
    const sockets = watchUpgradeSockets(app);
    const url = await listen(app);
    const refusal = await refused(`${url}/raw`);
    expect(refusal.status).toBe(401);
    expect(refusal.body).toBe('raw answer');
    await sockets.allClosed();
  });

  it('lets the hooks of a request that passes run, then opens the socket', async () => {
    const app = await createApp();
    const ran: string[] = [];
    for (const hook of HOOKS) {
      app.addHook(hook, async (request: FastifyRequest) => {
        ran.push(`${hook}:${request.ws}`);
      });
    }
    app.get('/ok', { websocket: true }, (socket) => {
      socket.send(ran.join(' '));
    });
    const url = await listen(app);
    expect(await nextMessage(await connect(`${url}/ok`))).toBe(
      'onRequest:true preParsing:true preValidation:true preHandler:true',
    );
  });

  it('does not run response hooks (onSend, preSerialization) for an opened socket', async () => {
    const app = await createApp();
    const ran: string[] = [];
    app.addHook('onSend', async (_request, _reply, payload) => {
      ran.push('onSend');
      return payload;
    });
    app.addHook('preSerialization', async (_request, _reply, payload) => {
      ran.push('preSerialization');
      return payload;
    });
    app.get('/ok', { websocket: true }, (socket) => socket.send('open'));
    const url = await listen(app);
    expect(await nextMessage(await connect(`${url}/ok`))).toBe('open');
    expect(ran).toEqual([]);
  });
});

describe('encapsulation', () => {
  it("applies a plugin's hooks to its own WebSocket routes only", async () => {
    const app = await createApp();
    const rootSeen: string[] = [];
    app.addHook('onRequest', async (request) => {
      rootSeen.push(request.url);
    });
    await app.register(async (admin) => {
      admin.addHook('preHandler', async (request, reply) => {
        if (request.headers['x-role'] !== 'admin') return reply.code(401).send('admins only');
      });
      admin.get('/admin/ws', { websocket: true }, (socket) => socket.send('hello admin'));
    });
    await app.register(async (open) => {
      open.get('/public/ws', { websocket: true }, (socket) => socket.send('hello anyone'));
    });
    const url = await listen(app);

    expect(await nextMessage(await connect(`${url}/public/ws`))).toBe('hello anyone');
    const refusal = await refused(`${url}/admin/ws`);
    expect(refusal.status).toBe(401);
    expect(refusal.body).toBe('admins only');
    const admin = await connect(`${url}/admin/ws`, { headers: { 'x-role': 'admin' } });
    expect(await nextMessage(admin)).toBe('hello admin');
    expect(rootSeen).toEqual(['/public/ws', '/admin/ws', '/admin/ws']);
  });

  it('runs an auth decorator used as a route hook, as auth plugins do', async () => {
    const app = await createApp();
    app.decorate('authenticate', async (request: FastifyRequest, reply: FastifyReply) => {
      const token = request.headers.authorization;
      if (token !== 'Bearer good') {
        return reply.code(401).header('www-authenticate', 'Bearer').send('bad token');
      }
      request.user = { name: 'ada' };
    });
    app.decorateRequest('user', null);
    app.after(() => {
      app.get(
        '/me',
        {
          websocket: true,
          onRequest: (
            app as unknown as {
              authenticate: (r: FastifyRequest, s: FastifyReply) => Promise<void>;
            }
          ).authenticate,
        },
        (socket, request) => socket.send(`hello ${request.user?.name}`),
      );
    });
    const url = await listen(app);
    const refusal = await refused(`${url}/me`, { headers: { authorization: 'Bearer bad' } });
    expect(refusal.status).toBe(401);
    expect(refusal.headers['www-authenticate']).toBe('Bearer');
    const client = await connect(`${url}/me`, { headers: { authorization: 'Bearer good' } });
    expect(await nextMessage(client)).toBe('hello ada');
  });
});

declare module 'fastify' {
  interface FastifyRequest {
    user: { name: string } | null;
  }
}
