import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanup,
  connect,
  createApp,
  listen,
  nextMessage,
  type Refusal,
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

/** How a refusing hook refuses, and what the client must see for it. */
interface Refusing {
  readonly name: string;
  /** Callback style (`done`) or async style: both are common in auth code. */
  readonly style: 'callback' | 'async';
  act(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): unknown;
  readonly status: number;
  readonly check?: (refusal: Refusal) => void;
}

const REFUSALS: Refusing[] = [
  {
    name: 'replies 401',
    style: 'callback',
    act: (_request, reply) => reply.code(401).send({ error: 'login first' }),
    status: 401,
    check: (refusal) => expect(JSON.parse(refusal.body)).toEqual({ error: 'login first' }),
  },
  {
    name: 'replies 403',
    style: 'async',
    act: (_request, reply) => reply.code(403).send('forbidden'),
    status: 403,
    check: (refusal) => expect(refusal.body).toBe('forbidden'),
  },
  {
    name: 'redirects',
    style: 'callback',
    act: (_request, reply) => reply.redirect('/login', 302),
    status: 302,
    check: (refusal) => expect(refusal.headers.location).toBe('/login'),
  },
  {
    name: 'passes an error with a statusCode to done',
    style: 'callback',
    act: (_request, _reply, done) =>
      done(Object.assign(new Error('short and stout'), { statusCode: 418 })),
    status: 418,
    check: (refusal) =>
      expect(JSON.parse(refusal.body)).toMatchObject({
        statusCode: 418,
        message: 'short and stout',
      }),
  },
  {
    name: 'rejects with a statusCode',
    style: 'async',
    act: () => {
      throw Object.assign(new Error('slow down'), { statusCode: 429 });
    },
    status: 429,
    check: (refusal) => expect(JSON.parse(refusal.body)).toMatchObject({ message: 'slow down' }),
  },
  {
    name: 'throws synchronously',
    style: 'callback',
    act: () => {
      throw new Error('hook bug');
    },
    status: 500,
  },
];

/** `refusing` as a hook of kind `hook` (preParsing hooks also get the payload). */
function refusingHook(hook: Hook, refusing: Refusing) {
  if (refusing.style === 'async') {
    const run = async (request: FastifyRequest, reply: FastifyReply) => {
      await refusing.act(request, reply, () => {});
    };
    return hook === 'preParsing'
      ? async (request: FastifyRequest, reply: FastifyReply, _payload: unknown) =>
          run(request, reply)
      : run;
  }
  return hookThat(hook, (request, reply, done) => {
    refusing.act(request, reply, done);
  });
}

describe('hooks before the handshake', () => {
  const cases = (['route', 'app'] as const).flatMap((level) =>
    HOOKS.flatMap((hook) =>
      REFUSALS.map((refusing) => [level, hook, refusing.name, refusing] as const),
    ),
  );

  it.each(cases)(
    '%s-level %s hook that %s: the ws client gets that HTTP answer, no socket opens',
    async (level, hook, _name, refusing) => {
      const app = await createApp();
      let opened = false;
      const handler = () => {
        opened = true;
      };
      if (level === 'app') {
        app.addHook(hook, refusingHook(hook, refusing) as never);
        app.get('/guarded', { websocket: true }, handler);
      } else {
        app.get('/guarded', { websocket: true, [hook]: refusingHook(hook, refusing) }, handler);
      }
      const sockets = watchUpgradeSockets(app);
      const url = await listen(app);
      const refusal = await refused(`${url}/guarded`);
      expect(refusal.status).toBe(refusing.status);
      expect(refusal.headers.connection).toBe('close');
      refusing.check?.(refusal);
      await sockets.allClosed();
      expect(opened).toBe(false);
      expect(app.websocketServer.clients.size).toBe(0);
    },
  );

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
  it.each(HOOKS)(
    "a plugin's own %s hook and error handler apply to its routes only",
    async (hook) => {
      const app = await createApp();
      app.get('/root/ws', { websocket: true }, (socket) => socket.send('root'));
      await app.register(async (admin) => {
        admin.setErrorHandler((error, _request, reply) => {
          reply.code((error as { statusCode?: number }).statusCode ?? 500).send({
            scoped: (error as Error).message,
          });
        });
        admin.addHook(
          hook,
          hookThat(hook, (request, _reply, done) => {
            if (request.headers['x-role'] === 'admin') done();
            else done(Object.assign(new Error('admins only'), { statusCode: 403 }));
          }) as never,
        );
        admin.get('/admin/ws', { websocket: true }, (socket) => socket.send('admin'));
      });
      await app.register(async (sibling) => {
        sibling.get('/public/ws', { websocket: true }, (socket) => socket.send('public'));
      });
      // Registered after the plugins, at the root: still not under the admin hook.
      app.get('/late/ws', { websocket: true }, (socket) => socket.send('late'));
      const url = await listen(app);

      const refusal = await refused(`${url}/admin/ws`);
      expect(refusal.status).toBe(403);
      expect(JSON.parse(refusal.body)).toEqual({ scoped: 'admins only' });
      const admin = await connect(`${url}/admin/ws`, { headers: { 'x-role': 'admin' } });
      expect(await nextMessage(admin)).toBe('admin');
      for (const path of ['root', 'public', 'late']) {
        expect(await nextMessage(await connect(`${url}/${path}/ws`))).toBe(path);
      }
    },
  );

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
