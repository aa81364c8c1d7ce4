import type { RawData, WebSocket, WebSocketServer } from '@weft/core';
import Fastify, { type FastifyRequest } from 'fastify';
import { describe, expectTypeOf, it } from 'vitest';
import weft, { type WebSocketRoute, type WeftHelpers } from '../src/index.js';

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

    expectTypeOf(app.websocketServer).toEqualTypeOf<WebSocketServer>();
    expectTypeOf(app.weft.broadcast).returns.toEqualTypeOf<number>();
    expectTypeOf(app.weft.publish).returns.toEqualTypeOf<Promise<void>>();
    expectTypeOf(app.injectWS).returns.resolves.toEqualTypeOf<WebSocket>();
    await app.close();
  });
});
