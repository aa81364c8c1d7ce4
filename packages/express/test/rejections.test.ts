// Every way an upgrade can end without a WebSocket, on Express 4 and 5: a middleware that
// answers, errors passed to next(), the origin policy, timeouts, malformed handshakes and a
// closing integration. Each one must give the client an HTTP status and close the socket.

import net from 'node:net';
import type { NextFunction, Request, Response } from 'express';
import { describe, expect, it, vi } from 'vitest';
import {
  OriginNotAllowedError,
  type WeftErrorContext,
  type WeftExpressOptions,
  weft,
} from '../src/index.js';
import {
  deferred,
  EXPRESS_VERSIONS,
  listen,
  nextMessage,
  open,
  rawExchange,
  refused,
  serverFor,
  upgradeHeaders,
  within,
} from './helpers.js';

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly expose = status < 500,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

describe.each(EXPRESS_VERSIONS)('rejections (%s)', (_name, express) => {
  async function start(
    setup: (app: ReturnType<typeof express>) => void,
    options: WeftExpressOptions = {},
  ) {
    const app = express();
    const errors: Array<{ error: unknown; context: WeftErrorContext }> = [];
    const server = serverFor(app);
    const w = weft(app, server, {
      onError: (error, context) => errors.push({ error, context }),
      ...options,
    });
    setup(app);
    const host = await listen(server, w);
    return { app, w, host, errors };
  }

  it('sends the 401 of an app-level middleware and opens no WebSocket', async () => {
    const handler = vi.fn();
    const { host } = await start((app) => {
      app.use((req, res, next) => {
        if (req.headers.authorization === 'Bearer ok') next();
        else res.status(401).set('WWW-Authenticate', 'Bearer').send('login required');
      });
      app.ws('/private', handler);
    });
    const answer = await refused(`ws://${host}/private`);
    expect(answer.status).toBe(401);
    expect(answer.body).toBe('login required');
    expect(answer.headers['www-authenticate']).toBe('Bearer');
    expect(answer.headers.connection).toBe('close');
    expect(handler).not.toHaveBeenCalled();
    await open(`ws://${host}/private`, { headers: { authorization: 'Bearer ok' } });
    expect(handler).toHaveBeenCalledTimes(1);
  });

  it("sends a route middleware's 403 and redirect", async () => {
    const { host } = await start((app) => {
      app.ws(
        '/guarded',
        (req, res, next) => {
          if (req.query.as === 'guest') {
            res.redirect('/login');
            return;
          }
          if (req.query.as !== 'admin') {
            res.status(403).json({ error: 'forbidden' });
            return;
          }
          next();
        },
        (socket) => socket.send('admin'),
      );
    });
    const forbidden = await refused(`ws://${host}/guarded`);
    expect(forbidden.status).toBe(403);
    expect(JSON.parse(forbidden.body)).toEqual({ error: 'forbidden' });
    const redirect = await refused(`ws://${host}/guarded?as=guest`);
    expect(redirect.status).toBe(302);
    expect(redirect.headers.location).toBe('/login');
    expect(await nextMessage(await open(`ws://${host}/guarded?as=admin`))).toBe('admin');
  });

  it("lets next(err) reach the app's error handler, whose status the client gets", async () => {
    const { host, errors } = await start((app) => {
      app.ws(
        '/teapot',
        (_req, _res, next) => next(new HttpError(418, 'short and stout')),
        (socket) => socket.send('never'),
      );
      app.use((error: HttpError, _req: Request, res: Response, _next: NextFunction) => {
        res.status(error.status).send(`handled: ${error.message}`);
      });
    });
    const answer = await refused(`ws://${host}/teapot`);
    expect(answer.status).toBe(418);
    expect(answer.body).toBe('handled: short and stout');
    expect(errors).toEqual([]);
  });

  it('answers an unhandled error with its status (or 500) and reports it', async () => {
    const { host, errors } = await start((app) => {
      app.ws(
        '/http-error',
        (_req, _res, next) => next(new HttpError(429, 'slow down', true, { 'Retry-After': '5' })),
        (socket) => socket.send('never'),
      );
      app.ws(
        '/crash',
        () => {
          throw new Error('secret detail');
        },
        (socket) => socket.send('never'),
      );
    });
    const limited = await refused(`ws://${host}/http-error`);
    expect(limited.status).toBe(429);
    expect(limited.body).toBe('slow down');
    expect(limited.headers['retry-after']).toBe('5');
    const crashed = await refused(`ws://${host}/crash`);
    expect(crashed.status).toBe(500);
    expect(crashed.body).toBe('Internal Server Error');
    expect(errors.map((entry) => entry.context.phase)).toEqual(['middleware', 'middleware']);
    expect(errors[1]?.error).toMatchObject({ message: 'secret detail' });
  });

  it('turns a rejected async middleware into next(err)', async () => {
    const { host } = await start((app) => {
      app.ws(
        '/async',
        async () => {
          await Promise.resolve();
          throw new HttpError(409, 'conflict');
        },
        (socket) => socket.send('never'),
      );
    });
    expect((await refused(`ws://${host}/async`)).status).toBe(409);
  });

  it('runs error-handling middleware declared on the WebSocket route', async () => {
    const { host } = await start((app) => {
      app.ws(
        '/recover',
        // With an error-handling middleware in the list, plain ones are typed by hand too.
        (_req: Request, _res: Response, next: NextFunction) => next(new Error('recoverable')),
        (error: Error, req: Request, _res: Response, next: NextFunction) => {
          (req as Request & { recovered?: string }).recovered = error.message;
          next();
        },
        (socket, req) =>
          socket.send(`recovered ${(req as Request & { recovered?: string }).recovered}`),
      );
    });
    expect(await nextMessage(await open(`ws://${host}/recover`))).toBe('recovered recoverable');
  });

  it('answers 408 when a middleware neither answers nor calls next in time', async () => {
    const handler = vi.fn();
    const { host } = await start(
      (app) => {
        app.ws('/stuck', () => {}, handler);
      },
      { upgradeTimeout: 100 },
    );
    const answer = await refused(`ws://${host}/stuck`);
    expect(answer.status).toBe(408);
    expect(handler).not.toHaveBeenCalled();
  });

  it('ignores a late next() or res.send() after the timeout answered', async () => {
    const late = deferred<{ req: Request; res: Response; next: NextFunction }>();
    const handler = vi.fn();
    const { host } = await start(
      (app) => {
        app.ws('/late', (req, res, next) => late.resolve({ req, res, next }), handler);
      },
      { upgradeTimeout: 100 },
    );
    expect((await refused(`ws://${host}/late`)).status).toBe(408);
    const { res, next } = await within(late.promise, 'the middleware to run');
    expect(() => res.status(200).send('too late')).not.toThrow();
    next();
    expect(handler).not.toHaveBeenCalled();
  });

  it('closes the socket when a middleware started an answer and still called next', async () => {
    const handler = vi.fn();
    const { host } = await start((app) => {
      app.ws(
        '/half',
        (_req, res, next) => {
          res.writeHead(200, { 'Content-Type': 'text/plain' });
          res.write('partial');
          next();
        },
        handler,
      );
    });
    const raw = await rawExchange(host, `GET /half HTTP/1.1\r\n${upgradeHeaders(host)}\r\n\r\n`);
    expect(raw).toMatch(/^HTTP\/1\.1 200 /);
    expect(handler).not.toHaveBeenCalled();
  });

  describe('origin policy', () => {
    it("refuses a cross-site handshake with 403 by default ('same-host'), before the route's middleware", async () => {
      const appLevel = vi.fn();
      const routeLevel = vi.fn();
      const { host, errors } = await start((app) => {
        app.use((_req, _res, next) => {
          appLevel();
          next();
        });
        app.ws(
          '/chat',
          (_req, _res, next) => {
            routeLevel();
            next();
          },
          (socket) => socket.send('ok'),
        );
      });
      const answer = await refused(`ws://${host}/chat`, { origin: 'https://evil.example' });
      expect(answer.status).toBe(403);
      expect(answer.body).toBe('Origin not allowed: https://evil.example');
      // As in @weft/fastify: the app-level middleware ran (a policy function may read the
      // session it loads), the route's own did not.
      expect(appLevel).toHaveBeenCalledTimes(1);
      expect(routeLevel).not.toHaveBeenCalled();
      expect(errors.map((entry) => entry.error)).toEqual([expect.any(OriginNotAllowedError)]);
      await open(`ws://${host}/chat`, { origin: `http://${host}` });
      await open(`ws://${host}/chat`);
      expect(routeLevel).toHaveBeenCalledTimes(2);
    });

    it("passes the refusal to the app's error handlers, as an OriginNotAllowedError", async () => {
      const { host, errors } = await start((app) => {
        app.ws('/chat', (socket) => socket.send('ok'));
        app.use(
          (error: OriginNotAllowedError, _req: Request, res: Response, _next: NextFunction) => {
            res.status(error.statusCode).json({ code: error.code, origin: error.origin });
          },
        );
      });
      const answer = await refused(`ws://${host}/chat`, { origin: 'https://evil.example' });
      expect(answer.status).toBe(403);
      expect(JSON.parse(answer.body)).toEqual({
        code: 'WEFT_ERR_ORIGIN_NOT_ALLOWED',
        origin: 'https://evil.example',
      });
      expect(errors).toEqual([]);
    });

    it('lets an unknown path answer 404 whatever the origin', async () => {
      const { host } = await start((app) => {
        app.ws('/chat', (socket) => socket.send('ok'));
      });
      expect((await refused(`ws://${host}/other`, { origin: 'https://evil.example' })).status).toBe(
        404,
      );
    });

    it('refuses the opaque origin "null" under same-host', async () => {
      const { host } = await start((app) => {
        app.ws('/chat', (socket) => socket.send('ok'));
      });
      expect((await refused(`ws://${host}/chat`, { origin: 'null' })).status).toBe(403);
    });

    it('accepts listed origins only, subdomain wildcards included', async () => {
      const { host } = await start(
        (app) => {
          app.ws('/chat', (socket) => socket.send('ok'));
        },
        { origins: ['https://app.example', 'https://*.corp.example'] },
      );
      await open(`ws://${host}/chat`, { origin: 'https://app.example' });
      await open(`ws://${host}/chat`, { origin: 'https://eu.corp.example' });
      expect((await refused(`ws://${host}/chat`, { origin: 'https://corp.example' })).status).toBe(
        403,
      );
      expect((await refused(`ws://${host}/chat`, { origin: `http://${host}` })).status).toBe(403);
    });

    it("accepts every origin with '*'", async () => {
      const { host } = await start(
        (app) => {
          app.ws('/chat', (socket) => socket.send('ok'));
        },
        { origins: '*' },
      );
      await open(`ws://${host}/chat`, { origin: 'https://anywhere.example' });
    });

    it('gives a policy function the Express request, after the app-level middleware', async () => {
      const seen: Array<{ origin: string; tenant: unknown; url: string }> = [];
      const { host } = await start(
        (app) => {
          app.use((req, _res, next) => {
            (req as Request & { tenant?: string }).tenant = String(req.query.tenant ?? '');
            next();
          });
          app.ws('/chat', (socket) => socket.send('ok'));
        },
        {
          origins: (origin, req) => {
            const tenant = (req as Request & { tenant?: string }).tenant;
            seen.push({ origin, tenant, url: req.originalUrl });
            return origin === `https://${tenant}.example`;
          },
        },
      );
      await open(`ws://${host}/chat?tenant=acme`, { origin: 'https://acme.example' });
      expect(
        (await refused(`ws://${host}/chat?tenant=acme`, { origin: 'https://other.example' }))
          .status,
      ).toBe(403);
      await open(`ws://${host}/chat`);
      expect(seen).toEqual([
        { origin: 'https://acme.example', tenant: 'acme', url: '/chat?tenant=acme' },
        { origin: 'https://other.example', tenant: 'acme', url: '/chat?tenant=acme' },
      ]);
    });

    it('answers 500 and reports when an origin function fails; only a literal true allows', async () => {
      const { host, errors } = await start(
        (app) => {
          app.ws('/chat', (socket) => socket.send('ok'));
        },
        {
          origins: async (origin) => {
            if (origin === 'https://boom.example') throw new Error('lookup failed');
            if (origin === 'https://truthy.example') return 'yes' as unknown as boolean;
            return origin === 'https://ok.example';
          },
        },
      );
      await open(`ws://${host}/chat`, { origin: 'https://ok.example' });
      expect((await refused(`ws://${host}/chat`, { origin: 'https://no.example' })).status).toBe(
        403,
      );
      expect(
        (await refused(`ws://${host}/chat`, { origin: 'https://truthy.example' })).status,
      ).toBe(403);
      const failed = await refused(`ws://${host}/chat`, { origin: 'https://boom.example' });
      expect(failed.status).toBe(500);
      expect(failed.body).toBe('Internal Server Error');
      expect(errors.map(({ error, context }) => [context.phase, (error as Error).message])).toEqual(
        [
          ['middleware', 'Origin not allowed: https://no.example'],
          ['middleware', 'Origin not allowed: https://truthy.example'],
          ['middleware', 'lookup failed'],
        ],
      );
    });

    it('asks the policy once when next("route") moves to another WebSocket route', async () => {
      const policy = vi.fn(async () => true);
      const { host } = await start(
        (app) => {
          app.ws(
            '/pick',
            (_req, _res, next) => next('route'),
            () => {},
          );
          app.ws('/pick', (socket) => socket.send('second'));
        },
        { origins: policy },
      );
      expect(
        await nextMessage(await open(`ws://${host}/pick`, { origin: 'https://a.example' })),
      ).toBe('second');
      expect(policy).toHaveBeenCalledTimes(1);
    });
  });

  it('refuses a non-GET upgrade with 405', async () => {
    const { host } = await start((app) => {
      app.ws('/chat', (socket) => socket.send('ok'));
    });
    const raw = await rawExchange(
      host,
      `POST /chat HTTP/1.1\r\n${upgradeHeaders(host)}\r\nContent-Length: 0\r\n\r\n`,
    );
    expect(raw).toMatch(/^HTTP\/1\.1 405 /);
    expect(raw).toMatch(/\r\nAllow: GET\r\n/);
  });

  it('answers a malformed handshake on a valid route with 400 from the core', async () => {
    const { host } = await start((app) => {
      app.ws('/chat', (socket) => socket.send('ok'));
    });
    const raw = await rawExchange(
      host,
      `GET /chat HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    expect(raw).toMatch(/^HTTP\/1\.1 400 /);
  });

  it("sends the core's verifyClient refusal after the middleware ran", async () => {
    const { host } = await start(
      (app) => {
        app.ws('/verified', (socket) => socket.send('ok'));
      },
      {
        options: {
          verifyClient: (info, callback) =>
            callback(info.req.headers['x-token'] === 'yes', 403, 'Bad token'),
        },
      },
    );
    const answer = await refused(`ws://${host}/verified`);
    expect(answer.status).toBe(403);
    expect(answer.body).toBe('Bad token');
    await open(`ws://${host}/verified`, { headers: { 'x-token': 'yes' } });
  });

  it('answers 503 to upgrades after close(), and to those still in the middleware', async () => {
    const entered = deferred();
    const release = deferred();
    const { host, w } = await start((app) => {
      app.ws(
        '/slow',
        async (_req, _res, next) => {
          entered.resolve();
          await release.promise;
          next();
        },
        (socket) => socket.send('never'),
      );
      app.ws('/chat', (socket) => socket.send('ok'));
    });
    const pending = refused(`ws://${host}/slow`);
    await within(entered.promise, 'the slow middleware');
    await w.close();
    expect((await pending).status).toBe(503);
    release.resolve();
    expect((await refused(`ws://${host}/chat`)).status).toBe(503);
  });

  it('drops an upgrade whose client left while the middleware ran', async () => {
    const entered = deferred();
    const release = deferred();
    const passed = deferred<boolean>();
    const handler = vi.fn();
    const { host } = await start((app) => {
      app.ws(
        '/slow',
        async (req, _res, next) => {
          entered.resolve();
          await release.promise;
          passed.resolve(req.socket.destroyed);
          next();
        },
        handler,
      );
    });
    const [hostname, port] = host.split(':') as [string, string];
    const client = net.connect(Number(port), hostname);
    client.on('error', () => {});
    client.write(`GET /slow HTTP/1.1\r\n${upgradeHeaders(host)}\r\n\r\n`);
    await within(entered.promise, 'the slow middleware');
    const gone = within(
      new Promise((resolve) => client.once('close', resolve)),
      'the client socket to close',
    );
    client.destroy();
    await gone;
    // The server notices the reset on its next read or write; give it a round trip.
    await within(
      new Promise<void>((resolve) => {
        const probe = net.connect(Number(port), hostname, () => {
          probe.destroy();
          resolve();
        });
      }),
      'a probe connection',
    );
    release.resolve();
    await within(passed.promise, 'the middleware to call next');
    expect(handler).not.toHaveBeenCalled();
  });
});
