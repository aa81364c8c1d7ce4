import { createWebSocketStream, type WebSocket as WeftSocket } from '@weft/core';
import { afterEach, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { InvalidMessageError } from '../src/index.js';
import {
  cleanup,
  closed,
  connect,
  createApp,
  deferred,
  listen,
  nextMessage,
  refused,
  within,
} from './helpers.js';

afterEach(cleanup);

interface ChatMessage {
  text: string;
  room: string;
}

const chatMessage = {
  type: 'object',
  required: ['text'],
  properties: {
    text: { type: 'string', minLength: 1 },
    room: { type: 'string', default: 'lobby' },
  },
  additionalProperties: false,
} as const;

/** An app whose /chat route validates messages and echoes the validated value. */
async function chatApp(options: Parameters<typeof createApp>[0] = {}) {
  const app = await createApp(options);
  app.get<{ Message: ChatMessage }>(
    '/chat',
    { websocket: true, schema: { message: chatMessage } },
    (socket) => {
      socket.on('message', (data, isBinary, message) => {
        socket.send(JSON.stringify({ raw: String(data), isBinary, message }));
      });
    },
  );
  return { app, url: await listen(app) };
}

describe('schema.message', () => {
  it('delivers a valid message with the validated value (defaults applied) as third argument', async () => {
    const { url } = await chatApp();
    const client = await connect(`${url}/chat`);
    client.send(JSON.stringify({ text: 'hi' }));
    expect(JSON.parse(await nextMessage(client))).toEqual({
      raw: '{"text":"hi"}',
      isBinary: false,
      message: { text: 'hi', room: 'lobby' },
    });
  });

  it('closes with 1007 and the validation message when a message fails the schema', async () => {
    const { url } = await chatApp();
    const client = await connect(`${url}/chat`);
    client.send(JSON.stringify({ text: '' }));
    expect(await closed(client)).toEqual({
      code: 1007,
      reason: 'message/text must NOT have fewer than 1 characters',
    });
  });

  it('closes with 1007 on text that is not JSON, and 1003 on a binary message', async () => {
    const { url } = await chatApp();
    const notJson = await connect(`${url}/chat`);
    notJson.send('{oops');
    expect(await closed(notJson)).toEqual({ code: 1007, reason: 'Message is not valid JSON' });
    const binary = await connect(`${url}/chat`);
    binary.send(Buffer.from('{"text":"hi"}'));
    expect((await closed(binary)).code).toBe(1003);
  });

  it('hands an invalid message to a custom error handler, which may keep the socket open', async () => {
    const errors: InvalidMessageError[] = [];
    const { url } = await chatApp({
      errorHandler(error, socket) {
        if (error instanceof InvalidMessageError) {
          errors.push(error);
          socket.send(`invalid: ${error.reason}`);
          return;
        }
        socket.close(1011);
      },
    });
    const client = await connect(`${url}/chat`);
    client.send(JSON.stringify({ nope: true }));
    expect(await nextMessage(client)).toBe('invalid: schema');
    client.send(JSON.stringify({ text: 'still here' }));
    expect(JSON.parse(await nextMessage(client)).message.text).toBe('still here');
    expect(errors[0]?.code).toBe('WEFT_ERR_INVALID_MESSAGE');
    expect(errors[0]?.closeCode).toBe(1007);
    expect(errors[0]?.validation?.[0]).toMatchObject({ instancePath: '' });
  });

  it('checks the messages held for an async handler when they are released', async () => {
    const app = await createApp();
    const ready = deferred();
    app.get('/later', { websocket: true, schema: { message: chatMessage } }, async (socket) => {
      await ready.promise;
      socket.on('message', (_data, _isBinary, message) => socket.send(JSON.stringify(message)));
    });
    const url = await listen(app);
    const client = await connect(`${url}/later`);
    client.send(JSON.stringify({ text: 'early', room: 'a' }));
    client.send(JSON.stringify({ text: '' }));
    const pong = deferred();
    client.once('pong', () => pong.resolve());
    client.ping();
    await within(pong.promise, 'the pong');
    ready.resolve();
    expect(JSON.parse(await nextMessage(client))).toEqual({ text: 'early', room: 'a' });
    expect((await closed(client)).code).toBe(1007);
  });

  it('uses schemas shared with addSchema through $ref', async () => {
    const app = await createApp();
    app.addSchema({
      $id: 'ping',
      type: 'object',
      required: ['seq'],
      properties: { seq: { type: 'integer' } },
    });
    app.get('/ping', { websocket: true, schema: { message: { $ref: 'ping#' } } }, (socket) => {
      socket.on('message', (_data, _isBinary, message) => socket.send(JSON.stringify(message)));
    });
    const url = await listen(app);
    const client = await connect(`${url}/ping`);
    client.send('{"seq":1}');
    expect(await nextMessage(client)).toBe('{"seq":1}');
    client.send('{"seq":"x"}');
    expect((await closed(client)).code).toBe(1007);
  });

  it('uses the route validatorCompiler (a custom one answering { error } / { value })', async () => {
    const app = await createApp();
    app.get(
      '/custom',
      {
        websocket: true,
        schema: { message: { kind: 'upper' } },
        validatorCompiler: () => (value: unknown) =>
          typeof value === 'string'
            ? { value: value.toUpperCase() }
            : { error: new Error('expected a JSON string') },
      },
      (socket) => {
        socket.on('message', (_data, _isBinary, message) => socket.send(String(message)));
      },
    );
    const url = await listen(app);
    const client = await connect(`${url}/custom`);
    client.send('"shout"');
    expect(await nextMessage(client)).toBe('SHOUT');
    client.send('42');
    expect(await closed(client)).toEqual({ code: 1007, reason: 'expected a JSON string' });
  });

  it('answers 500 before the handshake when the message schema does not compile', async () => {
    const app = await createApp();
    app.get('/broken', { websocket: true, schema: { message: { type: 'not-a-type' } } }, () => {});
    const url = await listen(app);
    expect((await refused(`${url}/broken`)).status).toBe(500);
  });

  it('leaves messages alone on routes without schema.message', async () => {
    const app = await createApp();
    const gotThird = deferred<unknown[]>();
    app.get('/raw', { websocket: true }, (socket) => {
      socket.on('message', (...args: unknown[]) => gotThird.resolve(args));
    });
    const url = await listen(app);
    const client = await connect(`${url}/raw`);
    client.send(Buffer.from([1, 2, 3]));
    const args = await within(gotThird.promise, 'the message');
    expect(args).toHaveLength(2);
    expect(args[1]).toBe(true);
  });
});

/** Waits until the server has read everything `client` sent so far (it answers pings in order). */
async function serverCaughtUp(client: WebSocket): Promise<void> {
  const pong = deferred();
  client.once('pong', () => pong.resolve());
  client.ping();
  await within(pong.promise, 'the pong');
}

/**
 * Ways a handler reads messages. Each one echoes what it reads as `got <text>`; it must see
 * the valid messages only, whatever its way of listening and whenever it starts.
 */
const READERS: Array<[string, (socket: WeftSocket) => void | Promise<void>]> = [
  ['on', (socket) => void socket.on('message', (data) => socket.send(`got ${data}`))],
  [
    'once, re-armed',
    (socket) => {
      const next = (): void => {
        socket.once('message', (data) => {
          socket.send(`got ${data}`);
          next();
        });
      };
      next();
    },
  ],
  [
    'onmessage',
    (socket) => {
      socket.onmessage = (event) => socket.send(`got ${String(event.data)}`);
    },
  ],
  [
    'addEventListener',
    (socket) => socket.addEventListener('message', (event) => socket.send(`got ${event.data}`)),
  ],
  [
    'for await',
    async (socket) => {
      for await (const { data } of socket) socket.send(`got ${data}`);
    },
  ],
  [
    'createWebSocketStream',
    (socket) => {
      const stream = createWebSocketStream(socket);
      stream.on('error', () => {});
      stream.on('data', (chunk: Buffer) => socket.send(`got ${chunk}`));
    },
  ],
  [
    'a listener added later, from a timer',
    (socket) => {
      setTimeout(() => socket.on('message', (data) => socket.send(`got ${data}`)), 30);
    },
  ],
];

describe('schema.message, whatever reads the messages', () => {
  it.each(READERS)('%s sees valid messages only', async (_name, read) => {
    const app = await createApp();
    app.get('/read', { websocket: true, schema: { message: chatMessage } }, (socket) =>
      read(socket),
    );
    const url = await listen(app);
    const client = await connect(`${url}/read`);
    client.send('{"text":"one"}');
    client.send('{"text":"two"}');
    expect(await nextMessage(client)).toBe('got {"text":"one"}');
    expect(await nextMessage(client)).toBe('got {"text":"two"}');
    client.send('{"text":""}');
    client.send('{"text":"after the bad one"}');
    expect(await closed(client)).toEqual({
      code: 1007,
      reason: 'message/text must NOT have fewer than 1 characters',
    });
  });

  it("gates a 'connection' listener of app.websocketServer too, with the validated value", async () => {
    const app = await createApp();
    app.websocketServer.on('connection', (socket) => {
      socket.on('message', (...args: unknown[]) => socket.send(JSON.stringify(args[2])));
    });
    app.get('/c', { websocket: true, schema: { message: chatMessage } }, () => {});
    const url = await listen(app);
    const client = await connect(`${url}/c`);
    client.send('{"text":"hi"}');
    expect(JSON.parse(await nextMessage(client))).toEqual({ text: 'hi', room: 'lobby' });
    client.send('[]');
    expect((await closed(client)).code).toBe(1007);
  });

  it('hears nothing the client sent behind a message that got it closed', async () => {
    const app = await createApp();
    const ready = deferred();
    const heard: string[] = [];
    app.get('/later', { websocket: true, schema: { message: chatMessage } }, async (socket) => {
      await ready.promise;
      socket.on('message', (data) => heard.push(String(data)));
    });
    const url = await listen(app);
    const client = await connect(`${url}/later`);
    client.send('{"text":"before"}');
    client.send('{"text":""}');
    client.send('{"text":"behind the bad one"}');
    await serverCaughtUp(client);
    ready.resolve();
    expect((await closed(client)).code).toBe(1007);
    expect(heard).toEqual(['{"text":"before"}']);
  });

  it('keeps held messages for the next listener when a once listener took the first', async () => {
    const app = await createApp();
    const ready = deferred();
    app.get('/handoff', { websocket: true }, async (socket) => {
      await ready.promise;
      socket.once('message', async (data) => {
        socket.send(`first ${data}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
        socket.on('message', (more) => socket.send(`then ${more}`));
      });
    });
    const url = await listen(app);
    const client = await connect(`${url}/handoff`);
    client.send('a');
    client.send('b');
    await serverCaughtUp(client);
    ready.resolve();
    expect(await nextMessage(client)).toBe('first a');
    client.send('c');
    expect(await nextMessage(client)).toBe('then b');
  });
});
