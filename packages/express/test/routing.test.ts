// Routing of upgrade requests through Express 4 and 5: app.ws, mounted routers, params,
// query, regular-expression and array paths, the 404 for unknown paths, and plain HTTP left
// untouched next to WebSocket routes.

import { describe, expect, it } from 'vitest';
import { weft } from '../src/index.js';
import {
  EXPRESS_VERSIONS,
  listen,
  nextMessage,
  open,
  rawExchange,
  refused,
  serverFor,
} from './helpers.js';

describe.each(EXPRESS_VERSIONS)('routing (%s)', (_name, express) => {
  async function start(setup: (app: ReturnType<typeof express>) => void) {
    const app = express();
    const server = serverFor(app);
    const w = weft(app, server);
    setup(app);
    const host = await listen(server, w);
    return { app, server, w, host };
  }

  it('opens a WebSocket on an app.ws route and echoes', async () => {
    const { host } = await start((app) => {
      app.ws('/echo', (socket) => {
        socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
      });
    });
    const client = await open(`ws://${host}/echo`);
    client.send('hello');
    expect(await nextMessage(client)).toBe('hello');
  });

  it('gives the handler req.query, req.originalUrl and a clean req.url', async () => {
    const { host } = await start((app) => {
      app.ws('/info', (socket, req) => {
        socket.send(
          JSON.stringify({ url: req.url, originalUrl: req.originalUrl, query: req.query }),
        );
      });
    });
    const client = await open(`ws://${host}/info?room=blue&n=2`);
    expect(JSON.parse(await nextMessage(client))).toEqual({
      url: '/info?room=blue&n=2',
      originalUrl: '/info?room=blue&n=2',
      query: { room: 'blue', n: '2' },
    });
  });

  it('matches a trailing slash and keeps it in req.url', async () => {
    const { host } = await start((app) => {
      app.ws('/slash', (socket, req) => socket.send(req.url));
    });
    expect(await nextMessage(await open(`ws://${host}/slash/`))).toBe('/slash/');
    expect(await nextMessage(await open(`ws://${host}/slash`))).toBe('/slash');
  });

  it('serves the root path', async () => {
    const { host } = await start((app) => {
      app.ws('/', (socket, req) => socket.send(`root ${req.url}`));
    });
    expect(await nextMessage(await open(`ws://${host}/`))).toBe('root /');
  });

  it('routes path parameters into req.params', async () => {
    const { host } = await start((app) => {
      app.ws('/rooms/:room/users/:user', (socket, req) => socket.send(JSON.stringify(req.params)));
    });
    const client = await open(`ws://${host}/rooms/r1/users/ann`);
    expect(JSON.parse(await nextMessage(client))).toEqual({ room: 'r1', user: 'ann' });
  });

  it('supports router.ws on a mounted router, with params and baseUrl', async () => {
    const { host } = await start((app) => {
      const router = express.Router();
      router.ws('/feed/:id', (socket, req) =>
        socket.send(JSON.stringify({ id: req.params.id, baseUrl: req.baseUrl, url: req.url })),
      );
      app.use('/api', router);
    });
    const client = await open(`ws://${host}/api/feed/7?x=1`);
    expect(JSON.parse(await nextMessage(client))).toEqual({
      id: '7',
      baseUrl: '/api',
      url: '/feed/7?x=1',
    });
  });

  it('merges params of nested routers mounted with parameters', async () => {
    const { host } = await start((app) => {
      const inner = express.Router({ mergeParams: true });
      inner.ws('/live', (socket, req) => socket.send(JSON.stringify(req.params)));
      const outer = express.Router({ mergeParams: true });
      outer.use('/teams/:team', inner);
      app.use('/orgs/:org', outer);
    });
    const client = await open(`ws://${host}/orgs/acme/teams/red/live`);
    expect(JSON.parse(await nextMessage(client))).toEqual({ org: 'acme', team: 'red' });
  });

  it('gives router.ws to routers created before weft(app)', async () => {
    const app = express();
    const early = express.Router();
    const server = serverFor(app);
    const w = weft(app, server);
    early.ws('/early', (socket) => socket.send('early'));
    app.use('/r', early);
    const host = await listen(server, w);
    expect(await nextMessage(await open(`ws://${host}/r/early`))).toBe('early');
  });

  it('runs route middleware in order before the handler, with the clean URL', async () => {
    const { host } = await start((app) => {
      app.ws(
        '/steps',
        (req, res, next) => {
          res.locals.steps = [`a:${req.url}`];
          next();
        },
        [
          (_req, res, next) => {
            res.locals.steps.push('b');
            next();
          },
        ],
        (socket, req) => socket.send(JSON.stringify([...req.res!.locals.steps, 'handler'])),
      );
    });
    expect(JSON.parse(await nextMessage(await open(`ws://${host}/steps?q=1`)))).toEqual([
      'a:/steps?q=1',
      'b',
      'handler',
    ]);
  });

  it('runs app-level middleware on the upgrade request', async () => {
    const { host } = await start((app) => {
      app.use((req, _res, next) => {
        (req as unknown as { stamp: string }).stamp = 'from app.use';
        next();
      });
      app.ws('/stamp', (socket, req) => socket.send((req as unknown as { stamp: string }).stamp));
    });
    expect(await nextMessage(await open(`ws://${host}/stamp`))).toBe('from app.use');
  });

  it('answers an unknown path with a clean 404 and closes the socket', async () => {
    const { host } = await start((app) => {
      app.ws('/known', (socket) => socket.send('x'));
    });
    const answer = await refused(`ws://${host}/unknown`);
    expect(answer.status).toBe(404);
    expect(answer.headers.connection).toBe('close');
    expect(answer.body).toBe('No WebSocket endpoint at this path');
    const raw = await rawExchange(host, `GET /unknown HTTP/1.1\r\n${upgradeLines(host)}\r\n\r\n`);
    expect(raw).toMatch(/^HTTP\/1\.1 404 /);
  });

  it('answers 404 on an app with no routes at all', async () => {
    const { host } = await start(() => {});
    expect((await refused(`ws://${host}/`)).status).toBe(404);
  });

  it('keeps plain HTTP routes on the same path apart from the WebSocket route', async () => {
    const { host } = await start((app) => {
      app.get('/chat', (_req, res) => {
        res.send('the chat page');
      });
      app.ws('/chat', (socket) => socket.send('the chat socket'));
    });
    const page = await fetch(`http://${host}/chat`);
    expect(await page.text()).toBe('the chat page');
    expect(await nextMessage(await open(`ws://${host}/chat`))).toBe('the chat socket');
  });

  it('answers a plain GET of a WebSocket-only path with 404', async () => {
    const { host } = await start((app) => {
      app.ws('/only-ws', (socket) => socket.send('x'));
    });
    expect((await fetch(`http://${host}/only-ws`)).status).toBe(404);
    expect((await fetch(`http://${host}/only-ws`, { method: 'HEAD' })).status).toBe(404);
  });

  it('lets a route fall through with next("route") to the next WebSocket route', async () => {
    const { host } = await start((app) => {
      app.ws(
        '/pick',
        (req, _res, next) => (req.query.second ? next('route') : next()),
        (socket) => socket.send('first'),
      );
      app.ws('/pick', (socket) => socket.send('second'));
    });
    expect(await nextMessage(await open(`ws://${host}/pick`))).toBe('first');
    expect(await nextMessage(await open(`ws://${host}/pick?second=1`))).toBe('second');
  });

  it('hands an upgrade to another protocol (h2c) to the app as a plain request', async () => {
    const { host } = await start((app) => {
      app.get('/page', (_req, res) => {
        res.send('plain page');
      });
    });
    const raw = await rawExchange(
      host,
      `GET /page HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`,
    );
    expect(raw).toMatch(/^HTTP\/1\.1 200 /);
    expect(raw).toMatch(/plain page$/);
  });

  it('answers an upgrade to another protocol that carries a body with 501', async () => {
    const { host } = await start(() => {});
    const raw = await rawExchange(
      host,
      `POST /page HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 2\r\n\r\nhi`,
    );
    expect(raw).toMatch(/^HTTP\/1\.1 501 /);
  });

  it("serves a mounted sub-app's WebSocket routes through the parent's integration", async () => {
    const sub = express();
    weft(sub);
    sub.ws('/live', (socket, req) => socket.send(`sub ${req.baseUrl}`));
    const { w, host } = await start((app) => {
      app.use('/sub', sub);
    });
    expect(await nextMessage(await open(`ws://${host}/sub/live`))).toBe('sub /sub');
    expect(w.clients().size).toBe(1);
  });

  it('honours strict routing set after weft(app)', async () => {
    const app = express();
    const server = serverFor(app);
    const w = weft(app, server);
    app.set('strict routing', true);
    app.ws('/strict/', (socket) => socket.send('strict'));
    app.get('/page/', (_req, res) => {
      res.send('slash');
    });
    const host = await listen(server, w);
    expect((await fetch(`http://${host}/page`)).status).toBe(404);
    expect((await fetch(`http://${host}/page/`)).status).toBe(200);
    expect(await nextMessage(await open(`ws://${host}/strict/`))).toBe('strict');
    expect((await refused(`ws://${host}/strict`)).status).toBe(404);
  });

  it('honours case sensitive routing', async () => {
    const app = express();
    app.set('case sensitive routing', true);
    const server = serverFor(app);
    const w = weft(app, server);
    app.ws('/Chat', (socket) => socket.send('exact case'));
    const host = await listen(server, w);
    expect(await nextMessage(await open(`ws://${host}/Chat`))).toBe('exact case');
    expect((await refused(`ws://${host}/chat`)).status).toBe(404);
  });

  it('routes a regular-expression path, with its capture groups in req.params', async () => {
    const { host, w } = await start((app) => {
      app.ws(/^\/items\/(\d+)\/?$/, (socket, req) => socket.send(JSON.stringify(req.params)));
    });
    const client = await open(`ws://${host}/items/42`);
    expect(JSON.parse(await nextMessage(client))).toEqual({ 0: '42' });
    expect(w.clients(/^\/items\/(\d+)\/?$/).size).toBe(1);
    expect((await refused(`ws://${host}/items/abc`)).status).toBe(404);
  });

  it('routes an array of paths, strings and regular expressions mixed', async () => {
    const { host, w } = await start((app) => {
      app.ws(['/one', /^\/t(w)o$/, '/three/:n'], (socket, req) => socket.send(req.path));
    });
    for (const path of ['/one', '/two', '/three/3']) {
      expect(await nextMessage(await open(`ws://${host}${path}`))).toBe(path);
    }
    expect((await refused(`ws://${host}/four`)).status).toBe(404);
    // One route declared with several paths is listed under each of them.
    expect(w.clients('/one').size).toBe(3);
    expect(w.clients(/^\/t(w)o$/).size).toBe(3);
    expect(w.clients('/three/:n').size).toBe(3);
  });

  it('routes a regular expression on a mounted router, named after the mount path', async () => {
    const { host, w } = await start((app) => {
      const router = express.Router();
      router.ws(/^\/live$/, (socket, req) => socket.send(`${req.baseUrl} ${req.url}`));
      app.use('/api', router);
    });
    expect(await nextMessage(await open(`ws://${host}/api/live`))).toBe('/api /live');
    expect(w.clients(`/api${/^\/live$/}`).size).toBe(1);
  });

  it("accepts this Express major's wildcard syntax", async () => {
    const wildcard = _name === 'express 5' ? '/files/*path' : '/files/*';
    const { host } = await start((app) => {
      app.ws(wildcard, (socket, req) => socket.send(JSON.stringify(req.params)));
    });
    const params = JSON.parse(await nextMessage(await open(`ws://${host}/files/a/b.txt`)));
    expect(params).toEqual(_name === 'express 5' ? { path: ['a', 'b.txt'] } : { 0: 'a/b.txt' });
  });

  it('refuses a missing path or handler at declaration time', () => {
    const app = express();
    weft(app);
    expect(() => app.ws(42 as unknown as string, () => {})).toThrow(TypeError);
    expect(() => app.ws([] as unknown as string, () => {})).toThrow(TypeError);
    expect(() => (app.ws as unknown as (path: string) => unknown)('/x')).toThrow(TypeError);
    expect(() => app.ws('/x', 'nope' as never)).toThrow(TypeError);
  });

  it('adds ws() to a router given to applyTo(), as express-ws does', async () => {
    const { host, w } = await start(() => {});
    // A router whose prototype weft() did not reach: ws() removed from this one object.
    const router = express.Router();
    Object.defineProperty(router, 'ws', { value: undefined, configurable: true, writable: true });
    w.applyTo(router);
    router.ws('/applied', (socket) => socket.send('applied'));
    w.app.use(router);
    expect(await nextMessage(await open(`ws://${host}/applied`))).toBe('applied');
    expect(() => w.applyTo({})).toThrow(TypeError);
  });
});

function upgradeLines(host: string): string {
  return [
    `Host: ${host}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
  ].join('\r\n');
}
