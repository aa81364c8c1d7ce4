// What the rest of an Express app sees of an upgrade request, on Express 4 and 5: the URL the
// client asked for (in logging middleware, path-mounted guards, routers), HTTP routes on the
// same path as a WebSocket route serving plain GETs in any order of declaration, guards
// declared with app.all() applying to WebSockets, and express.static next to WebSocket routes.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { describe, expect, it, vi } from 'vitest';
import { isWebSocketRequest, type WeftErrorContext, weft } from '../src/index.js';
import {
  closed,
  deferred,
  EXPRESS_VERSIONS,
  listen,
  nextMessage,
  onCleanup,
  open,
  refused,
  serverFor,
  within,
} from './helpers.js';

/** What morgan logs with: a dependency of Express itself, so always installed next to it. */
const onFinished = createRequire(import.meta.url)('on-finished') as (
  res: ServerResponse,
  listener: (error: Error | null) => void,
) => void;

interface Seen {
  method: string;
  url: string;
  originalUrl: string;
  path: string;
  baseUrl: string;
  upgrade: boolean;
}

function record(into: Seen[]): RequestHandler {
  return (req, _res, next) => {
    into.push({
      method: req.method,
      url: req.url,
      originalUrl: req.originalUrl,
      path: req.path,
      baseUrl: req.baseUrl,
      upgrade: isWebSocketRequest(req),
    });
    next();
  };
}

describe.each(EXPRESS_VERSIONS)('what middleware sees (%s)', (name, express) => {
  const isExpress5 = name === 'express 5';
  /** A path matching everything, in this major's syntax. */
  const everything = isExpress5 ? '/*splat' : '*';

  async function start(setup: (app: ReturnType<typeof express>) => void) {
    const app = express();
    const errors: Array<{ error: unknown; context: WeftErrorContext }> = [];
    const server = serverFor(app);
    const w = weft(app, server, { onError: (error, context) => errors.push({ error, context }) });
    setup(app);
    const host = await listen(server, w);
    return { app, w, host, errors };
  }

  it('shows logging middleware the real url, originalUrl and path', async () => {
    const seen: Seen[] = [];
    const { host } = await start((app) => {
      app.use(record(seen));
      app.ws('/rooms/:room', (socket) => socket.send('in'));
    });
    await nextMessage(await open(`ws://${host}/rooms/blue/?since=5`));
    await fetch(`http://${host}/rooms/blue/?since=5`);
    const upgrade: Seen = {
      method: 'GET',
      url: '/rooms/blue/?since=5',
      originalUrl: '/rooms/blue/?since=5',
      path: '/rooms/blue/',
      baseUrl: '',
      upgrade: true,
    };
    // The same request over plain HTTP looks the same, but for isWebSocketRequest().
    expect(seen).toEqual([upgrade, { ...upgrade, upgrade: false }]);
  });

  it('lets an access logger on on-finished log the upgrade, with 101, when it ends', async () => {
    const lines: string[] = [];
    const logged = deferred();
    const { host } = await start((app) => {
      app.use((req, res, next) => {
        onFinished(res, () => {
          lines.push(`${req.method} ${req.originalUrl} ${res.statusCode}`);
          logged.resolve();
        });
        next();
      });
      app.ws('/chat', (socket) => socket.send('hello'));
    });
    const client = await open(`ws://${host}/chat?room=1`);
    await nextMessage(client);
    expect(lines).toEqual([]);
    const end = closed(client);
    client.close();
    await end;
    await within(logged.promise, 'the access log line');
    expect(lines).toEqual(['GET /chat?room=1 101']);
  });

  it('shows router-level middleware the URL relative to its mount path', async () => {
    const seen: Seen[] = [];
    const { host } = await start((app) => {
      const api = express.Router();
      api.use(record(seen));
      api.ws('/feed', (socket, req) => socket.send(JSON.stringify([req.url, req.path])));
      app.use('/api', api);
    });
    const client = await open(`ws://${host}/api/feed?x=1`);
    expect(JSON.parse(await nextMessage(client))).toEqual(['/feed?x=1', '/feed']);
    expect(seen).toEqual([
      {
        method: 'GET',
        url: '/feed?x=1',
        originalUrl: '/api/feed?x=1',
        path: '/feed',
        baseUrl: '/api',
        upgrade: true,
      },
    ]);
  });

  it("applies app.use('/prefix', guard) to the WebSocket routes under the prefix", async () => {
    const guarded = vi.fn();
    const { host } = await start((app) => {
      app.use('/admin', (req, res, next) => {
        guarded(req.baseUrl, req.path);
        if (req.headers.authorization === 'Bearer admin') next();
        else res.status(401).send('admins only');
      });
      app.ws('/admin/live', (socket) => socket.send('admin live'));
      const router = express.Router();
      router.ws('/feed', (socket) => socket.send('admin feed'));
      app.use('/admin', router);
      app.ws('/public', (socket) => socket.send('public'));
    });
    const live = await refused(`ws://${host}/admin/live`);
    expect(live.status).toBe(401);
    expect(live.body).toBe('admins only');
    expect((await refused(`ws://${host}/admin/feed`)).status).toBe(401);
    const auth = { headers: { authorization: 'Bearer admin' } };
    expect(await nextMessage(await open(`ws://${host}/admin/live`, auth))).toBe('admin live');
    expect(await nextMessage(await open(`ws://${host}/admin/feed`, auth))).toBe('admin feed');
    expect(await nextMessage(await open(`ws://${host}/public`))).toBe('public');
    expect(guarded.mock.calls).toEqual([
      ['/admin', '/live'],
      ['/admin', '/feed'],
      ['/admin', '/live'],
      ['/admin', '/feed'],
    ]);
  });

  it('lets an app-level guard decide on req.path', async () => {
    const { host } = await start((app) => {
      app.use((req, res, next) => {
        if (req.path.startsWith('/private/') && req.query.key !== 'k') {
          res.status(403).send(`no access to ${req.path}`);
          return;
        }
        next();
      });
      app.ws('/private/:doc', (socket, req) => socket.send(req.params.doc));
    });
    const answer = await refused(`ws://${host}/private/plan`);
    expect([answer.status, answer.body]).toEqual([403, 'no access to /private/plan']);
    expect(await nextMessage(await open(`ws://${host}/private/plan?key=k`))).toBe('plan');
  });

  it('serves plain GETs from an HTTP route on the same path, declared before or after', async () => {
    const { host } = await start((app) => {
      app.get('/before', (_req, res) => {
        res.send('page before');
      });
      app.ws('/before', (socket) => socket.send('socket before'));
      app.ws('/after', (socket) => socket.send('socket after'));
      app.route('/after').get((_req, res) => {
        res.send('page after');
      });
    });
    for (const path of ['before', 'after']) {
      expect(await (await fetch(`http://${host}/${path}`)).text()).toBe(`page ${path}`);
      expect(await nextMessage(await open(`ws://${host}/${path}`))).toBe(`socket ${path}`);
      expect(await (await fetch(`http://${host}/${path}`)).text()).toBe(`page ${path}`);
    }
  });

  it('passes upgrades over catch-all and parameterised pages declared first', async () => {
    const { host } = await start((app) => {
      app.get('/:page', (req, res) => {
        res.send(`page ${req.params.page}`);
      });
      app.get('/rooms/:room', (req, res) => {
        res.send(`room page ${req.params.room}`);
      });
      app.get(everything, (_req, res) => {
        res.send('single-page app');
      });
      app.ws('/', (socket) => socket.send('root socket'));
      app.ws('/rooms', (socket) => socket.send('rooms socket'));
      app.ws('/rooms/:room', (socket, req) => socket.send(`room socket ${req.params.room}`));
    });
    expect(await nextMessage(await open(`ws://${host}/`))).toBe('root socket');
    expect(await nextMessage(await open(`ws://${host}/rooms`))).toBe('rooms socket');
    expect(await nextMessage(await open(`ws://${host}/rooms/7`))).toBe('room socket 7');
    expect(await (await fetch(`http://${host}/rooms`)).text()).toBe('page rooms');
    expect(await (await fetch(`http://${host}/rooms/7`)).text()).toBe('room page 7');
    expect(await (await fetch(`http://${host}/app/settings`)).text()).toBe('single-page app');
    // An upgrade no WebSocket route matches is not served a page either.
    expect((await refused(`ws://${host}/elsewhere/deep`)).status).toBe(404);
  });

  it('applies guards declared with app.all(), route.all() or for several methods', async () => {
    const pages = vi.fn();
    const { host } = await start((app) => {
      app.all(everything, (req, res, next) => {
        if (req.headers.authorization === 'Bearer ok') next();
        else res.status(401).send('log in');
      });
      const noDrafts: RequestHandler = (req, res, next) => {
        if (req.query.draft === '1') res.status(409).send('no drafts');
        else next();
      };
      app
        .route('/chat')
        .get(noDrafts, (_req, res) => {
          pages();
          res.send('chat page');
        })
        .post(noDrafts, (_req, res) => {
          res.send('posted');
        });
      app.route('/chat').all((req, res, next) => {
        if (req.query.banned === '1') res.status(403).send('banned');
        else next();
      });
      app.ws('/chat', (socket) => socket.send('chat socket'));
    });
    expect((await refused(`ws://${host}/chat`)).status).toBe(401);
    const auth = { headers: { authorization: 'Bearer ok' } };
    expect((await refused(`ws://${host}/chat?banned=1`, auth)).status).toBe(403);
    expect((await refused(`ws://${host}/chat?draft=1`, auth)).status).toBe(409);
    expect(await nextMessage(await open(`ws://${host}/chat`, auth))).toBe('chat socket');
    expect(pages).not.toHaveBeenCalled();
    const page = await fetch(`http://${host}/chat`, { headers: auth.headers });
    expect(await page.text()).toBe('chat page');
  });

  it('runs app.param() callbacks for the parameters of a WebSocket route', async () => {
    const { host } = await start((app) => {
      app.param('room', (req, res, next, room: string) => {
        if (room === 'gone') {
          res.status(410).send('room closed');
          return;
        }
        (req as Request & { roomTitle?: string }).roomTitle = room.toUpperCase();
        next();
      });
      app.get('/rooms/:room', (_req, res) => {
        res.send('page');
      });
      app.ws('/rooms/:room', (socket, req) =>
        socket.send(String((req as Request & { roomTitle?: string }).roomTitle)),
      );
    });
    expect(await nextMessage(await open(`ws://${host}/rooms/red`))).toBe('RED');
    expect((await refused(`ws://${host}/rooms/gone`)).status).toBe(410);
  });

  it("passes an HTTP route's GET error handlers over too", async () => {
    const { host } = await start((app) => {
      app
        .route('/x')
        .all((_req, _res, next) => next(new Error('from route.all()')))
        .get(((error: Error, _req: Request, res: Response, _next: NextFunction) => {
          res.status(200).send(`page error handler: ${error.message}`);
        }) as unknown as RequestHandler);
      app.ws('/x', (socket) => socket.send('never'));
      app.use((error: Error, _req: Request, res: Response, _next: NextFunction) => {
        res.status(502).send(`app error handler: ${error.message}`);
      });
    });
    const answer = await refused(`ws://${host}/x`);
    expect([answer.status, answer.body]).toEqual([502, 'app error handler: from route.all()']);
    const page = await fetch(`http://${host}/x`);
    expect(await page.text()).toBe('page error handler: from route.all()');
  });

  describe('express.static', () => {
    function staticRoot(): string {
      const root = mkdtempSync(join(tmpdir(), 'weft-static-'));
      onCleanup(() => rmSync(root, { recursive: true, force: true }));
      writeFileSync(join(root, 'index.html'), 'static index');
      return root;
    }

    it('calls next() for WebSocket paths it has no file for', async () => {
      const root = staticRoot();
      const { host } = await start((app) => {
        app.use(express.static(root));
        app.ws('/live', (socket) => socket.send('live'));
      });
      expect(await (await fetch(`http://${host}/`)).text()).toBe('static index');
      expect(await nextMessage(await open(`ws://${host}/live`))).toBe('live');
    });

    it('leaves a path it serves to a WebSocket route declared before it', async () => {
      const root = staticRoot();
      const { host } = await start((app) => {
        app.ws('/', (socket) => socket.send('socket at /'));
        app.use(express.static(root));
      });
      expect(await (await fetch(`http://${host}/`)).text()).toBe('static index');
      expect(await nextMessage(await open(`ws://${host}/`))).toBe('socket at /');
    });

    it('leaves upgrades alone when it skips them with isWebSocketRequest()', async () => {
      const root = staticRoot();
      const { host } = await start((app) => {
        const files = express.static(root);
        app.use((req, res, next) => (isWebSocketRequest(req) ? next() : files(req, res, next)));
        app.ws('/', (socket) => socket.send('socket at /'));
      });
      expect(await (await fetch(`http://${host}/`)).text()).toBe('static index');
      expect(await nextMessage(await open(`ws://${host}/`))).toBe('socket at /');
    });

    it('answers an upgrade of a file it serves, declared first, and the mistake is reported', async () => {
      const root = staticRoot();
      const { host, errors } = await start((app) => {
        app.use(express.static(root));
        app.ws('/', (socket) => socket.send('never'));
      });
      const answer = await refused(`ws://${host}/`);
      expect(answer.status).toBe(200);
      expect(answer.body).toBe('static index');
      expect(errors).toHaveLength(1);
      expect(errors[0]?.context.phase).toBe('middleware');
      expect(String(errors[0]?.error)).toMatch(
        /answered the WebSocket upgrade of \/ with 200.*declare the app\.ws\(\) route before/,
      );
    });
  });
});
