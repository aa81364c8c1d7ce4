// express-session on the upgrade request, on Express 4 and 5: a session created by an HTTP
// login authenticates the WebSocket, changes made in the WebSocket handler can be saved, and
// a custom store works like the memory store.

import session, { MemoryStore, type SessionData, type Store } from 'express-session';
import { describe, expect, it } from 'vitest';
import { weft } from '../src/index.js';
import {
  closed,
  EXPRESS_VERSIONS,
  listen,
  login,
  nextMessage,
  open,
  refused,
  serverFor,
  within,
} from './helpers.js';

declare module 'express-session' {
  interface SessionData {
    user: string;
    messages: number;
  }
}

/** A store of its own (not the memory store), to show any store works. */
class MapStore extends session.Store {
  readonly sessions = new Map<string, string>();
  override get(sid: string, callback: (error: unknown, session?: SessionData | null) => void) {
    const raw = this.sessions.get(sid);
    setImmediate(() => callback(null, raw === undefined ? null : JSON.parse(raw)));
  }
  override set(sid: string, data: SessionData, callback?: (error?: unknown) => void) {
    this.sessions.set(sid, JSON.stringify(data));
    setImmediate(() => callback?.());
  }
  override destroy(sid: string, callback?: (error?: unknown) => void) {
    this.sessions.delete(sid);
    setImmediate(() => callback?.());
  }
}

describe.each(EXPRESS_VERSIONS)('express-session (%s)', (_name, express) => {
  async function start(store: Store) {
    const app = express();
    const server = serverFor(app);
    const w = weft(app, server);
    app.use(express.urlencoded({ extended: false }));
    app.use(session({ secret: 'test secret', resave: false, saveUninitialized: false, store }));
    app.post('/login', (req, res) => {
      req.session.user = String(req.body.user);
      res.redirect('/');
    });
    app.get('/me', (req, res) => {
      res.json({ user: req.session.user ?? null, messages: req.session.messages ?? 0 });
    });
    app.post('/logout', (req, res, next) => {
      req.session.destroy((error) => (error ? next(error) : res.redirect('/')));
    });
    app.ws(
      '/chat',
      (req, res, next) => {
        if (req.session.user === undefined) res.status(401).send('log in first');
        else next();
      },
      (socket, req) => {
        socket.send(`hello ${req.session.user}`);
        socket.on('message', () => {
          req.session.messages = (req.session.messages ?? 0) + 1;
          req.session.save((error) => socket.send(error ? 'not saved' : 'saved'));
        });
      },
    );
    const host = await listen(server, w);
    return { host, w };
  }

  for (const [storeName, makeStore] of [
    ['memory store', () => new MemoryStore()],
    ['custom store', () => new MapStore()],
  ] as const) {
    describe(storeName, () => {
      it('authenticates the WebSocket with the session of an HTTP login', async () => {
        const { host } = await start(makeStore());
        const cookie = await login(host, 'ann');
        const client = await open(`ws://${host}/chat`, { headers: { cookie } });
        expect(await nextMessage(client)).toBe('hello ann');
      });

      it('refuses a handshake without a session with the middleware status', async () => {
        const { host } = await start(makeStore());
        const answer = await refused(`ws://${host}/chat`);
        expect(answer.status).toBe(401);
        expect(answer.body).toBe('log in first');
        const forged = await refused(`ws://${host}/chat`, {
          headers: { cookie: 'connect.sid=s%3Aforged.signature' },
        });
        expect(forged.status).toBe(401);
      });

      it('saves session changes made in the WebSocket handler', async () => {
        const { host } = await start(makeStore());
        const cookie = await login(host, 'bob');
        const client = await open(`ws://${host}/chat`, { headers: { cookie } });
        expect(await nextMessage(client)).toBe('hello bob');
        client.send('one');
        expect(await nextMessage(client)).toBe('saved');
        client.send('two');
        expect(await nextMessage(client)).toBe('saved');
        const me = await within(
          fetch(`http://${host}/me`, { headers: { cookie } }).then((r) => r.json()),
          'GET /me',
        );
        expect(me).toEqual({ user: 'bob', messages: 2 });
      });

      it('keeps two users apart', async () => {
        const { host } = await start(makeStore());
        const [ann, bob] = await Promise.all([login(host, 'ann'), login(host, 'bob')]);
        const a = await open(`ws://${host}/chat`, { headers: { cookie: ann } });
        const b = await open(`ws://${host}/chat`, { headers: { cookie: bob } });
        expect(await nextMessage(a)).toBe('hello ann');
        expect(await nextMessage(b)).toBe('hello bob');
      });

      it('works through inject() with the cookie of a login', async () => {
        const { host, w } = await start(makeStore());
        const cookie = await login(host, 'cy');
        const [name, value] = cookie.split('=') as [string, string];
        const client = await w.inject('/chat', { cookies: { [name]: value } });
        const greeting = await within(
          new Promise<string>((resolve) => client.once('message', (data) => resolve(String(data)))),
          'the greeting',
        );
        expect(greeting).toBe('hello cy');
        const done = within(
          new Promise((resolve) => client.once('close', resolve)),
          'the injected client to close',
        );
        client.close();
        await done;
      });
    });
  }

  it('refuses the socket of a session that logged out', async () => {
    const { host } = await start(new MemoryStore());
    const cookie = await login(host, 'dee');
    const client = await open(`ws://${host}/chat`, { headers: { cookie } });
    expect(await nextMessage(client)).toBe('hello dee');
    const bye = closed(client);
    client.close();
    await bye;
    await within(
      fetch(`http://${host}/logout`, { method: 'POST', headers: { cookie }, redirect: 'manual' }),
      'POST /logout',
    );
    expect((await refused(`ws://${host}/chat`, { headers: { cookie } })).status).toBe(401);
  });
});
