import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { buildFrame } from '@weft/core';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { weft } from '../src/index.js';
import {
  cleanup,
  closed,
  connect,
  createApp,
  deferred,
  listen,
  refused,
  watchUpgradeSockets,
  within,
} from './helpers.js';

const rawSockets: net.Socket[] = [];
afterEach(async () => {
  for (const socket of rawSockets.splice(0)) socket.destroy();
  await cleanup();
});

/**
 * A client that completes the handshake over plain TCP and then ignores everything, close
 * frames included: the kind of peer a shutdown must not wait for forever.
 */
async function deafClient(url: string, path: string): Promise<net.Socket> {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  rawSockets.push(socket);
  await within(new Promise((resolve) => socket.once('connect', resolve)), 'the TCP connection');
  socket.write(
    [
      `GET ${path} HTTP/1.1`,
      `Host: ${hostname}:${port}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
      'Sec-WebSocket-Version: 13',
      '',
      '',
    ].join('\r\n'),
  );
  await within(
    new Promise<void>((resolve) => {
      let received = '';
      const onData = (chunk: Buffer): void => {
        received += chunk.toString('latin1');
        if (!received.includes('\r\n\r\n')) return;
        socket.removeListener('data', onData);
        // Reading on keeps TCP flowing; the bytes are dropped, as a deaf peer would.
        socket.resume();
        resolve();
      };
      socket.on('data', onData);
    }),
    'the 101 answer',
  );
  return socket;
}

describe('app.close()', () => {
  it('closes every socket with 1001 and resolves once they are closed', async () => {
    const app = Fastify();
    await app.register(weft);
    app.get('/a', { websocket: true }, () => {});
    app.get('/b', { websocket: true }, () => {});
    const sockets = watchUpgradeSockets(app);
    const url = await listen(app);
    const clients = await Promise.all([
      connect(`${url}/a`),
      connect(`${url}/a`),
      connect(`${url}/b`),
    ]);
    const closings = clients.map((client) => closed(client));
    const serverClosed: boolean[] = [];
    app.websocketServer.on('connection', () => {});
    for (const socket of app.websocketServer.clients) {
      socket.once('close', () => serverClosed.push(true));
    }
    await within(app.close(), 'app.close()');
    expect(serverClosed).toHaveLength(3);
    for (const closing of closings) {
      expect(await closing).toEqual({ code: 1001, reason: 'Server shutting down' });
    }
    await sockets.allClosed();
    // Only the test's own watcher is left.
    expect(app.server.listenerCount('upgrade')).toBe(1);
  });

  it('uses the shutdown code and reason, and terminates peers that never answer', async () => {
    const app = await createApp({ shutdown: { code: 1012, reason: 'restarting', timeout: 100 } });
    app.get('/ws', { websocket: true }, () => {});
    const sockets = watchUpgradeSockets(app);
    const url = await listen(app);
    const polite = await connect(`${url}/ws`);
    const politeClosed = closed(polite);
    await deafClient(url, '/ws');
    await within(app.close(), 'app.close()');
    expect(await politeClosed).toEqual({ code: 1012, reason: 'restarting' });
    await sockets.allClosed();
  });

  it('runs an async preClose instead of the default close, then still waits for the sockets', async () => {
    const calls: string[] = [];
    const app = await createApp({
      async preClose() {
        const server = this.websocketServer;
        calls.push(
          `preClose with ${server.clients.size} clients, this is the app: ${this === app}`,
        );
        for (const socket of server.clients) socket.close(4001, 'custom goodbye');
      },
    });
    app.get('/ws', { websocket: true }, () => {});
    const url = await listen(app);
    const client = await connect(`${url}/ws`);
    const closing = closed(client);
    await within(app.close(), 'app.close()');
    expect(await closing).toEqual({ code: 4001, reason: 'custom goodbye' });
    expect(calls).toEqual(['preClose with 1 clients, this is the app: true']);
  });

  it('runs a callback-style preClose (done), as @fastify/websocket takes it, until done is called', async () => {
    const steps: string[] = [];
    const app = await createApp({
      preClose(done) {
        steps.push('preClose');
        for (const socket of this.websocketServer.clients) socket.close(4002, 'callback goodbye');
        // The idiom of @fastify/websocket's README: close the server, finish in its callback.
        this.websocketServer.close((error) => {
          steps.push(`server closed${error ? ` (${error.message})` : ''}`);
          setTimeout(() => done(), 20);
        });
      },
    });
    app.addHook('onClose', (_instance, done) => {
      steps.push('onClose');
      done();
    });
    app.get('/ws', { websocket: true }, () => {});
    const url = await listen(app);
    const closing = closed(await connect(`${url}/ws`));
    await within(app.close(), 'app.close()');
    expect(await closing).toEqual({ code: 4002, reason: 'callback goodbye' });
    expect(steps).toEqual(['preClose', 'server closed', 'onClose']);
  });

  it('still closes the sockets when preClose passes an error to done', async () => {
    const app = await createApp({
      preClose(done) {
        done(new Error('preClose failed'));
      },
    });
    app.get('/ws', { websocket: true }, () => {});
    const url = await listen(app);
    const closing = closed(await connect(`${url}/ws`));
    await within(app.close(), 'app.close()');
    expect((await closing).code).toBe(1001);
  });

  it('still closes the sockets when preClose fails', async () => {
    const app = await createApp({
      preClose() {
        throw new Error('preClose bug');
      },
    });
    app.get('/ws', { websocket: true }, () => {});
    const url = await listen(app);
    const closing = closed(await connect(`${url}/ws`));
    await within(app.close(), 'app.close()');
    expect((await closing).code).toBe(1001);
  });

  it('ends an upgrade still waiting in its hooks, so close does not hang', async () => {
    const app = await createApp();
    const inHook = deferred();
    const never = new Promise<void>(() => {});
    app.get(
      '/stuck',
      {
        websocket: true,
        preHandler: async () => {
          inHook.resolve();
          await never;
        },
      },
      () => {},
    );
    const sockets = watchUpgradeSockets(app);
    const url = await listen(app);
    const client = new WebSocket(`${url}/stuck`);
    client.on('error', () => {});
    const clientClosed = closed(client);
    await within(inHook.promise, 'the hook to run');
    await within(app.close(), 'app.close()');
    expect((await clientClosed).code).toBe(1006);
    await sockets.allClosed();
  });
});

describe('handshake bounds', () => {
  it('answers 408 when the hooks take longer than handshakeTimeout', async () => {
    const app = await createApp({ options: { handshakeTimeout: 100 } });
    const release = deferred();
    let handlerRan = false;
    app.get(
      '/slow',
      {
        websocket: true,
        onRequest: async () => {
          await release.promise;
        },
      },
      () => {
        handlerRan = true;
      },
    );
    const sockets = watchUpgradeSockets(app);
    const url = await listen(app);
    const refusal = await refused(`${url}/slow`);
    expect(refusal.status).toBe(408);
    await sockets.allClosed();
    // The hook finishing late finds the socket gone: no handshake, no crash.
    release.resolve();
    await app.inject('/slow');
    expect(handlerRan).toBe(false);
  });

  it('does not open a socket for a client that left while its hooks ran', async () => {
    const app = await createApp();
    const inHook = deferred();
    const release = deferred();
    let handlerRan = false;
    app.get(
      '/leaving',
      {
        websocket: true,
        preValidation: async () => {
          inHook.resolve();
          await release.promise;
        },
      },
      () => {
        handlerRan = true;
      },
    );
    const sockets = watchUpgradeSockets(app);
    const url = await listen(app);
    const client = new WebSocket(`${url}/leaving`);
    client.on('error', () => {});
    await within(inHook.promise, 'the hook to run');
    client.terminate();
    await sockets.allClosed();
    release.resolve();
    // A plain request through the same route proves the late hook finished without harm.
    expect((await app.inject('/leaving')).statusCode).toBe(426);
    expect(handlerRan).toBe(false);
    expect(app.websocketServer.clients.size).toBe(0);
  });

  describe('bytes a client sends before the 101', () => {
    /** A raw client: writes the upgrade request (and `extra` right behind it). */
    async function rawUpgrade(url: string, path: string, extra?: Buffer) {
      const { hostname, port } = new URL(url);
      const socket = net.connect(Number(port), hostname);
      rawSockets.push(socket);
      let received = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
      });
      const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      await within(new Promise((resolve) => socket.once('connect', resolve)), 'the TCP connection');
      const request = Buffer.from(
        [
          `GET ${path} HTTP/1.1`,
          `Host: ${hostname}:${port}`,
          'Upgrade: websocket',
          'Connection: Upgrade',
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
          'Sec-WebSocket-Version: 13',
          '',
          '',
        ].join('\r\n'),
      );
      socket.write(extra === undefined ? request : Buffer.concat([request, extra]));
      /** The payload of the first (small, unmasked) text frame after the 101, once it is in. */
      const firstFrame = () =>
        within(
          (async () => {
            for (;;) {
              const end = received.indexOf('\r\n\r\n');
              if (end !== -1 && received.length >= end + 6) {
                const frame = received.subarray(end + 4);
                const length = frame[1]! & 0x7f;
                if (frame.length >= 2 + length) {
                  return {
                    status: received.subarray(0, 12).toString(),
                    text: frame.subarray(2, 2 + length).toString(),
                  };
                }
              }
              await new Promise((resolve) => setImmediate(resolve));
            }
          })(),
          'the first frame',
        );
      return { socket, firstFrame, ended: within(ended, 'the connection to close') };
    }

    const hello = () =>
      buildFrame(Buffer.from('early'), { opcode: 1, fin: true, rsv1: false, mask: true });

    it('keeps frames sent with or after the request for the WebSocket', async () => {
      const app = await createApp();
      const inHook = deferred();
      const release = deferred();
      app.get(
        '/early',
        {
          websocket: true,
          onRequest: async () => {
            inHook.resolve();
            await release.promise;
          },
        },
        (socket) => {
          socket.on('message', (data) => socket.send(`got ${data}`));
        },
      );
      // The test's own look at the server socket, to release the hook only once the second
      // half of the frame has reached the server.
      const secondHalfIn = deferred();
      app.server.on('upgrade', (_request, socket: Duplex) => {
        socket.once('data', () => secondHalfIn.resolve());
      });
      const url = await listen(app);
      const frame = hello();
      const bytes = Buffer.isBuffer(frame) ? frame : Buffer.concat(frame);
      // Part of the frame with the request (Node's `head`), the rest while the hook waits.
      const client = await rawUpgrade(url, '/early', bytes.subarray(0, 3));
      await within(inHook.promise, 'the hook to run');
      client.socket.write(bytes.subarray(3));
      await within(secondHalfIn.promise, 'the second half to reach the server');
      release.resolve();
      expect(await client.firstFrame()).toEqual({ status: 'HTTP/1.1 101', text: 'got early' });
    });

    it('drops a client that sends more than 64 KiB before its handshake is answered', async () => {
      const app = await createApp();
      const inHook = deferred();
      const never = new Promise<void>(() => {});
      app.get(
        '/flood',
        {
          websocket: true,
          onRequest: async () => {
            inHook.resolve();
            await never;
          },
        },
        () => {},
      );
      const sockets = watchUpgradeSockets(app);
      const url = await listen(app);
      const client = await rawUpgrade(url, '/flood');
      await within(inHook.promise, 'the hook to run');
      client.socket.write(Buffer.alloc(65 * 1024));
      await sockets.allClosed();
      await client.ended;
    });
  });
});

describe('heartbeat', () => {
  it('terminates a peer that stops answering pings', async () => {
    const app = await createApp({ heartbeat: { interval: 50, timeout: 50 } });
    app.get('/ws', { websocket: true }, () => {});
    const url = await listen(app);
    const timedOut = new Promise<string>((resolve) =>
      app.websocketServer.once('timeout', (_socket, reason) => resolve(reason)),
    );
    const deaf = await deafClient(url, '/ws');
    const deafClosed = new Promise<void>((resolve) => deaf.once('close', () => resolve()));
    expect(await within(timedOut, 'the heartbeat timeout')).toBe('heartbeat');
    await within(deafClosed, 'the deaf client to be cut off');
  });
});
