// Compile-only (run by `tsc -p packages/express/tsconfig.json`): app.ws and router.ws are
// typed through declaration merging, route parameters reach req.params, and req.session is
// typed for express-session users.

import http from 'node:http';
import type { WebSocket } from '@weft/core';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { ParamsDictionary } from 'express-serve-static-core';
import session from 'express-session';
import { OriginNotAllowedError, type OriginOption, type WeftExpress, weft } from '../src/index.js';

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
// @ts-expect-error: the path comes first.
app.ws((socket: WebSocket) => socket.close());

// Regular expressions and arrays, as app.get() takes them; params are a plain dictionary.
app.ws(/^\/items\/(\d+)$/, (socket, req) => {
  assertType<Equals<typeof req.params, ParamsDictionary>>();
  socket.send(req.params[0] ?? '');
});
app.ws(
  ['/a', /^\/b$/],
  (_req, _res, next) => next(),
  (socket) => socket.close(),
);
router.ws(
  '/typed/:id',
  (_req: Request<{ id: string }>, _res: Response, next: NextFunction) => next(),
  (error: Error, _req: Request<{ id: string }>, res: Response, _next: NextFunction) => {
    res.status(500).send(error.message);
  },
  (socket, req) => socket.send(req.params.id),
);

// The origin policy function gets the Express request, session typed.
const policy: OriginOption = (origin, req) => {
  assertType<Equals<typeof req.session.userName, string | undefined>>();
  return origin === 'https://app.example' && req.session.userName !== undefined;
};
weft(express(), http.createServer(), {
  origins: policy,
  onError: (error, context) => {
    if (context.phase === 'handler') context.socket.close();
    if (context.phase === 'middleware' && error instanceof OriginNotAllowedError) {
      const code: 'WEFT_ERR_ORIGIN_NOT_ALLOWED' = error.code;
      void [code, error.origin, context.req.originalUrl];
    }
  },
});
w.applyTo(express.Router());
const sockets: ReadonlySet<WebSocket> = w.clients(/^\/items\/(\d+)$/);
void sockets;

void w.publish('room:1', 'hello');
const count: number = w.broadcast('hi', { route: '/rooms/:room', binary: false });
void count;
void w.close({ code: 1001 });
