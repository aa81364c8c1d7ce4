// Compile-only (run by `tsc -p packages/express/tsconfig.json`): app.ws and router.ws are
// typed through declaration merging, route parameters reach req.params, and req.session is
// typed for express-session users.

import type { WebSocket } from '@weft/core';
import express from 'express';
import session from 'express-session';
import { type WeftExpress, weft } from '../src/index.js';

declare module 'express-session' {
  interface SessionData {
    userName: string;
  }
}

type Equals<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(): T | undefined {
  return undefined;
}

const app = express();
const w: WeftExpress = weft(app);
app.use(session({ secret: 's', resave: false, saveUninitialized: false }));

const chained = app.ws(
  '/rooms/:room',
  (req, res, next) => {
    assertType<Equals<typeof req.params, { room: string }>>();
    if (req.session.userName === undefined) res.status(401).end();
    else next();
  },
  [(_req, _res, next) => next()],
  (socket, req) => {
    assertType<Equals<typeof socket, WebSocket>>();
    assertType<Equals<typeof req.params.room, string>>();
    assertType<Equals<typeof req.session.userName, string | undefined>>();
    socket.subscribe(`room:${req.params.room}`);
    req.session.save();
  },
);
assertType<Equals<typeof chained, typeof app>>();

const router = express.Router();
const routerChained = router.ws('/feed/:id', async (socket, req) => {
  assertType<Equals<typeof req.params, { id: string }>>();
  socket.send(req.params.id);
});
assertType<Equals<typeof routerChained, typeof router>>();

// @ts-expect-error: a WebSocket route needs a handler after the path.
app.ws('/nothing');

void w.publish('room:1', 'hello');
const count: number = w.broadcast('hi', { route: '/rooms/:room', binary: false });
void count;
void w.close({ code: 1001 });
