import type {} from '@fastify/session';
import type { RawData, WebSocket, WebSocketServer } from '@weft/core';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { describe, expectTypeOf, it } from 'vitest';
import weft, {
  type InvalidMessageError,
  type WebSocketHandler,
  type WebSocketRoute,
  type WebsocketHandler,
  type WebsocketPluginOptions,
  type WeftHelpers,
  type WeftPluginOptions,
} from '../src/index.js';

// A session shape, as an app declares it for @fastify/session (session.test.ts adds the same).
declare module 'fastify' {
  interface Session {
    userId?: string;
  }
}

// These checks run in `tsc` (the package typecheck); at run time they only register routes.
describe('types', () => {
  it('types WebSocket routes, their sockets and requests', async () => {
    const app = Fastify();
    await app.register(weft, { origins: ['https://app.example'] });

    app.get('/plain', { websocket: true }, function (socket, request) {
      expectTypeOf(socket).toEqualTypeOf<WebSocket>();
      expectTypeOf(request).toMatchTypeOf<FastifyRequest>();
      expectTypeOf(request.ws).toEqualTypeOf<boolean>();
      expectTypeOf(request.wsRoute).toEqualTypeOf<WebSocketRoute | null>();
      expectTypeOf(this.weft).toEqualTypeOf<WeftHelpers>();
      socket.on('message', (data, isBinary) => {
        expectTypeOf(data).toEqualTypeOf<RawData>();
        expectTypeOf(isBinary).toEqualTypeOf<boolean>();
      });
    });

    app.get<{ Params: { room: string }; Querystring: { nick?: string } }>(
      '/rooms/:room',
      { websocket: true },
      async (socket, request) => {
        expectTypeOf(request.params.room).toEqualTypeOf<string>();
        expectTypeOf(request.query.nick).toEqualTypeOf<string | undefined>();
        socket.subscribe(`room:${request.params.room}`);
      },
    );

    app.get<{ Message: { text: string } }>(
      '/typed',
      { websocket: true, schema: { message: { type: 'object' } } },
      (socket) => {
        expectTypeOf(socket).toMatchTypeOf<WebSocket>();
        socket.on('message', (data, isBinary, message) => {
          expectTypeOf(data).toEqualTypeOf<RawData>();
          expectTypeOf(isBinary).toEqualTypeOf<boolean>();
          expectTypeOf(message).toEqualTypeOf<{ text: string }>();
        });
        socket.on('close', (code) => expectTypeOf(code).toEqualTypeOf<number>());
      },
    );

    app.get('/untyped', { websocket: true, schema: { message: { type: 'object' } } }, (socket) => {
      socket.on('message', (_data, _isBinary, message) => {
        expectTypeOf(message).toEqualTypeOf<unknown>();
      });
    });

    app.route({
      method: 'GET',
      url: '/route',
      websocket: true,
      handler: (socket, request) => {
        expectTypeOf(socket).toEqualTypeOf<WebSocket>();
        expectTypeOf(request.raw.url).toEqualTypeOf<string | undefined>();
      },
    });

    app.route({
      method: 'GET',
      url: '/both',
      handler: async (_request, reply) => reply.send('http'),
      wsHandler: (socket) => {
        expectTypeOf(socket).toEqualTypeOf<WebSocket>();
      },
    });

    // HTTP routes keep their own types.
    app.get<{ Querystring: { q: string } }>('/http', async (request, reply) => {
      expectTypeOf(request.query.q).toEqualTypeOf<string>();
      return reply.send({ q: request.query.q });
    });
    app.get('/http-opts', { schema: { querystring: { type: 'object' } } }, async () => 'ok');

    app.get<{ Params: { id: string } }>('/session/:id', { websocket: true }, (socket, request) => {
      // Through @fastify/session's declaration merging and the app's own Session interface.
      expectTypeOf(request.session.userId).toEqualTypeOf<string | undefined>();
      expectTypeOf(request.params.id).toEqualTypeOf<string>();
      // @ts-expect-error: the route's params are typed, an undeclared one is an error
      request.params.other;
      socket.send(`${request.session.userId}`);
    });

    // The plugin options, with @fastify/websocket's shapes of errorHandler and preClose.
    const options: WeftPluginOptions = {
      errorHandler(error, socket, request, reply) {
        expectTypeOf(this).toEqualTypeOf<FastifyInstance>();
        expectTypeOf(error).toEqualTypeOf<Error>();
        expectTypeOf(socket).toEqualTypeOf<WebSocket>();
        expectTypeOf(request).toEqualTypeOf<FastifyRequest>();
        expectTypeOf(reply).toEqualTypeOf<FastifyReply>();
        if ((error as InvalidMessageError).code === 'WEFT_ERR_INVALID_MESSAGE') socket.close(1007);
      },
      preClose(done) {
        expectTypeOf(this.websocketServer).toEqualTypeOf<WebSocketServer>();
        done();
      },
    };
    const asyncPreClose: WeftPluginOptions = {
      async preClose() {
        for (const socket of this.websocketServer.clients) socket.close(1001);
      },
    };
    expectTypeOf<WebsocketPluginOptions>().toEqualTypeOf<WeftPluginOptions>();
    expectTypeOf<WebsocketHandler>().toEqualTypeOf<WebSocketHandler>();
    void options;
    void asyncPreClose;

    // injectWS with @fastify/websocket's third argument.
    expectTypeOf(app.injectWS)
      .parameter(2)
      .toEqualTypeOf<
        { onInit?: (client: WebSocket) => void; onOpen?: (client: WebSocket) => void } | undefined
      >();

    expectTypeOf(app.websocketServer).toEqualTypeOf<WebSocketServer>();
    expectTypeOf(app.weft.broadcast).returns.toEqualTypeOf<number>();
    expectTypeOf(app.weft.publish).returns.toEqualTypeOf<Promise<void>>();
    expectTypeOf(app.injectWS).returns.resolves.toEqualTypeOf<WebSocket>();
    await app.close();
  });
});
