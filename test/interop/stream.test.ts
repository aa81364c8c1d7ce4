// createWebSocketStream() over weft sockets talking to ws.

import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { createWebSocketStream, WebSocket } from '@weft/core';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanup,
  collectMessages,
  connect,
  DEFAULT_TIMEOUT,
  deferred,
  onCleanup,
  type Peer,
  type RawData,
  sha256,
  startServer,
  toBuffer,
  track,
  WEFT_CLIENT,
  WEFT_SERVER,
  waitEvent,
  waitOpen,
} from './helpers.js';

afterEach(cleanup);

/** Read a stream to its end; reject on error or after a timeout. */
function readAll(stream: Duplex, timeout = DEFAULT_TIMEOUT): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      unregister();
      reject(new Error(`timed out after ${timeout} ms: read ${chunks.length} chunks, no 'end'`));
    }, timeout);
    const unregister = onCleanup(() => clearTimeout(timer));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('end', () => {
      clearTimeout(timer);
      unregister();
      resolve(Buffer.concat(chunks));
    });
    stream.once('error', (err) => {
      clearTimeout(timer);
      unregister();
      reject(err);
    });
  });
}

/** A ws server that echoes every message back with the same type. */
async function startEchoServer(): Promise<string> {
  const { server, url } = await startServer(WEFT_CLIENT.server);
  server.on('connection', (ws: Peer) => {
    ws.on('message', (data: RawData, isBinary: boolean) =>
      ws.send(toBuffer(data), { binary: isBinary }),
    );
  });
  return url;
}

describe('createWebSocketStream: weft client <-> ws echo server', () => {
  it('data written to the stream comes back through it', async () => {
    const url = await startEchoServer();
    const client = track(new WebSocket(url));
    // Created while CONNECTING: writes wait for 'open'.
    const duplex = createWebSocketStream(client);
    duplex.on('error', () => {});
    const chunks = Array.from({ length: 50 }, (_, i) => randomBytes(1 + i * 997));
    const expected = Buffer.concat(chunks);
    const readBack = readAll(duplex, 10_000);
    for (const chunk of chunks) duplex.write(chunk);
    duplex.end();
    const got = await readBack;
    expect(got.length).toBe(expected.length);
    expect(sha256(got)).toBe(sha256(expected));
  });

  it('each write is one binary message on the wire', async () => {
    const { server, url } = await startServer(WEFT_CLIENT.server);
    const connection = waitEvent<[Peer]>(server, 'connection');
    const client = track(new WebSocket(url));
    const duplex = createWebSocketStream(client);
    duplex.on('error', () => {});
    const [serverSide] = await connection;
    const received = collectMessages(serverSide, 3);
    duplex.write(Buffer.from('one'));
    duplex.write(Buffer.from('two'));
    duplex.write('three');
    const messages = await received;
    expect(messages.map((m) => toBuffer(m.data).toString())).toEqual(['one', 'two', 'three']);
    expect(messages.every((m) => m.isBinary)).toBe(true);
  });

  it('the readable side ends when the server closes', async () => {
    const { server, url } = await startServer(WEFT_CLIENT.server);
    const connection = waitEvent<[Peer]>(server, 'connection');
    const client = track(new WebSocket(url));
    const duplex = createWebSocketStream(client);
    duplex.on('error', () => {});
    const readBack = readAll(duplex);
    const [serverSide] = await connection;
    serverSide.send('last words');
    serverSide.close(1000);
    expect((await readBack).toString()).toBe('last words');
  });
});

describe('createWebSocketStream: ws client <-> weft server piping the stream to itself', () => {
  it('echoes what the ws client sends', async () => {
    const { server, url } = await startServer(WEFT_SERVER.server);
    server.on('connection', (ws: WebSocket) => {
      const duplex = createWebSocketStream(ws);
      duplex.on('error', () => {});
      duplex.pipe(duplex);
    });
    const client = connect(WEFT_SERVER.client, url);
    await waitOpen(client);
    const payloads = Array.from({ length: 20 }, (_, i) => randomBytes(10 + i * 5_000));
    const total = payloads.reduce((n, p) => n + p.length, 0);
    const chunks: Buffer[] = [];
    const types: boolean[] = [];
    let length = 0;
    const done = deferred<void>('the echo to complete', 10_000);
    client.on('message', (data: RawData, isBinary: boolean) => {
      const chunk = toBuffer(data);
      chunks.push(chunk);
      types.push(isBinary);
      length += chunk.length;
      if (length >= total) done.settle();
    });
    for (const p of payloads) client.send(p);
    await done.promise;
    expect(types.every((isBinary) => isBinary)).toBe(true);
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(Buffer.concat(payloads)));
  });
});
