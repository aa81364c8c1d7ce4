import { afterEach, describe, expect, it } from 'vitest';
import { MemoryAdapter, WebSocket, WebSocketServer } from '../src/index.js';
import { closeAll, connectRaw, RawClient, startServer, track, waitFor } from './net-helpers.js';

afterEach(closeAll);

/** `count` weft clients connected to `url`, each recording what it receives. */
async function clients(url: string, count: number, options = {}) {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const client = track(new WebSocket(url, options));
      const got: string[] = [];
      client.on('message', (data) => got.push(String(data)));
      await waitFor(client, 'open');
      return { client, got };
    }),
  );
}

async function serverSockets(wss: WebSocketServer, count: number): Promise<WebSocket[]> {
  await expect.poll(() => wss.clients.size).toBe(count);
  return [...wss.clients];
}

describe('broadcast', () => {
  it('reaches every open client, except and filter narrowing it down', async () => {
    const { wss, url } = await startServer();
    const peers = await clients(url, 4);
    const sockets = await serverSockets(wss, 4);
    expect(wss.broadcast('to all')).toBe(4);
    expect(wss.broadcast('not the first', { except: sockets[0] })).toBe(3);
    expect(wss.broadcast('only the last', { filter: (socket) => socket === sockets[3] })).toBe(1);
    await expect.poll(() => peers.map((peer) => peer.got.length)).toEqual([1, 2, 2, 3]);
    expect(peers[0]?.got).toEqual(['to all']);
  });

  it('skips clients that are not open', async () => {
    const { wss, url } = await startServer();
    const peers = await clients(url, 2);
    const sockets = await serverSockets(wss, 2);
    sockets[0]!.close();
    expect(wss.broadcast('x')).toBe(1);
    await expect.poll(() => peers[1]!.got).toEqual(['x']);
  });

  it('sends binary and text as asked, compressed once per window size for no-takeover clients', async () => {
    const { wss, url } = await startServer({
      perMessageDeflate: { threshold: 0, serverNoContextTakeover: true },
    });
    const compressed = await clients(url, 3, { perMessageDeflate: { threshold: 0 } });
    const plain = await clients(url, 2, { perMessageDeflate: false });
    await serverSockets(wss, 5);
    const text = 'compress me '.repeat(200);
    expect(wss.broadcast(text)).toBe(5);
    for (const peer of [...compressed, ...plain]) await expect.poll(() => peer.got).toEqual([text]);
    const binaries: Buffer[] = [];
    compressed[0]!.client.on('message', (data, isBinary) => {
      if (isBinary) binaries.push(data as Buffer);
    });
    wss.broadcast(Buffer.from([1, 2, 3]));
    await expect.poll(() => binaries.length).toBe(1);
    expect(binaries[0]).toEqual(Buffer.from([1, 2, 3]));
  });

  it('keeps per-client compression contexts in order for takeover clients', async () => {
    const { wss, url } = await startServer({ perMessageDeflate: { threshold: 0 } });
    const peers = await clients(url, 3);
    await serverSockets(wss, 3);
    for (let i = 0; i < 20; i++) wss.broadcast(`message ${i} ${'x'.repeat(i * 100)}`);
    for (const peer of peers) {
      await expect.poll(() => peer.got.length).toBe(20);
      expect(peer.got.map((text) => text.split(' ')[1])).toEqual(
        Array.from({ length: 20 }, (_, i) => String(i)),
      );
    }
  });

  for (const perMessageDeflate of [
    false,
    { threshold: 0 },
    { threshold: 0, serverNoContextTakeover: true },
  ]) {
    it(`waits for a fragmented message of the client's own before the broadcast (deflate: ${JSON.stringify(perMessageDeflate)})`, async () => {
      const { wss, url } = await startServer({ perMessageDeflate });
      const [peer] = await clients(url, 1);
      const [socket] = await serverSockets(wss, 1);
      socket!.send('part one, ', { fin: false });
      wss.broadcast('broadcast');
      socket!.send('part two', { fin: true });
      await expect.poll(() => peer!.got).toEqual(['part one, part two', 'broadcast']);
    });
  }

  it('holds the broadcasts of one tick and lets them out together when the tick ends', async () => {
    const { wss, url } = await startServer();
    const [peer] = await clients(url, 1);
    const [socket] = await serverSockets(wss, 1);
    const nextTick = () => new Promise((resolve) => process.nextTick(resolve));
    for (const text of ['one', 'two', 'three']) wss.broadcast(text);
    socket!.send('own'); // the connection's own sends stay in order with them
    // Held: 3 frames of 2 + 3..5 bytes, and the send's 2 + 3.
    expect(socket!.bufferedAmount).toBe(5 + 5 + 7 + 5);
    await nextTick();
    expect(socket!.bufferedAmount).toBe(0);
    await expect.poll(() => peer!.got).toEqual(['one', 'two', 'three', 'own']);
  });

  it('holds no more than about 64 KiB per client in a tick, and never a big frame', async () => {
    const { wss, url } = await startServer();
    const [peer] = await clients(url, 1);
    const [socket] = await serverSockets(wss, 1);
    const most = { held: 0 };
    const small = Buffer.alloc(1000, 7);
    for (let i = 0; i < 200; i++) {
      wss.broadcast(small);
      most.held = Math.max(most.held, socket!.bufferedAmount);
    }
    // Past the limit the held frames go to the kernel, which takes them on loopback.
    expect(most.held).toBeLessThanOrEqual(64 * 1024 + 1004);
    const big = Buffer.alloc(200 * 1024, 9);
    wss.broadcast(big);
    socket!.close(1000, 'done in the same tick');
    const received: number[] = [];
    peer!.client.on('message', (data) => received.push((data as Buffer).length));
    const [code] = await waitFor<[number]>(peer!.client, 'close');
    expect(code).toBe(1000);
    expect(peer!.got).toHaveLength(201);
    expect(received.at(-1)).toBe(big.length);
  });

  it('sends numbers as text, as send does', async () => {
    const { wss, url } = await startServer();
    const [peer] = await clients(url, 1);
    await serverSockets(wss, 1);
    const kinds: boolean[] = [];
    peer!.client.on('message', (_data, isBinary) => kinds.push(isBinary));
    wss.broadcast(42);
    await expect.poll(() => peer!.got).toEqual(['42']);
    expect(kinds).toEqual([false]);
  });

  it('closes a slow consumer with 1013 and keeps the others fed', async () => {
    const { wss } = await startServer({ maxBufferedAmount: 256 * 1024 });
    const reported: WebSocket[] = [];
    const { raw, ws } = await connectRawTo(wss);
    raw.socket.pause(); // never reads
    wss.on('slowConsumer', (socket) => reported.push(socket));
    const closed = waitFor<[number, Buffer]>(ws, 'close', 40_000);
    const chunk = Buffer.alloc(64 * 1024);
    for (let i = 0; i < 400 && ws.readyState === WebSocket.OPEN; i++) {
      wss.broadcast(chunk);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(reported).toContain(ws);
    expect(ws.readyState).not.toBe(WebSocket.OPEN);
    ws.terminate();
    const [code] = await closed;
    expect([1006, 1013]).toContain(code);
  });

  it("skips a slow consumer with slowConsumer: 'skip'", async () => {
    const { wss } = await startServer({ maxBufferedAmount: 256 * 1024, slowConsumer: 'skip' });
    const { raw, ws } = await connectRawTo(wss);
    raw.socket.pause();
    let skipped = 0;
    wss.on('slowConsumer', () => skipped++);
    const chunk = Buffer.alloc(64 * 1024);
    for (let i = 0; i < 200; i++) {
      wss.broadcast(chunk);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(skipped).toBeGreaterThan(0);
    expect(ws.readyState).toBe(WebSocket.OPEN);
    expect(ws.bufferedAmount).toBeLessThan(256 * 1024 + 128 * 1024);
  });
});

/** A raw client upgraded on an existing server. */
async function connectRawTo(wss: WebSocketServer) {
  const address = wss.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const raw = new RawClient(address.port);
  const [[ws]] = await Promise.all([waitFor<[WebSocket]>(wss, 'connection'), raw.upgrade()]);
  return { raw, ws };
}

describe('topics', () => {
  it('delivers to subscribers only, ws.publish skipping the sender, and cleans up on close', async () => {
    const { wss, url } = await startServer();
    wss.on('connection', (socket) => {
      socket.on('message', (data) => {
        const [command, topic, text] = String(data).split(':');
        if (command === 'sub') socket.subscribe(topic!);
        if (command === 'unsub') socket.unsubscribe(topic!);
        if (command === 'pub') void socket.publish(topic!, text!);
      });
    });
    const [a, b, c] = await clients(url, 3);
    a!.client.send('sub:room');
    b!.client.send('sub:room');
    c!.client.send('sub:other');
    await expect.poll(() => wss.subscriberCount('room')).toBe(2);
    a!.client.send('pub:room:hello');
    await expect.poll(() => b!.got).toEqual(['hello']);
    await wss.publish('room', 'from server');
    await expect.poll(() => a!.got).toEqual(['from server']);
    await expect.poll(() => b!.got).toEqual(['hello', 'from server']);
    expect(c!.got).toEqual([]);
    const [socketA] = [...wss.clients].filter((socket) => socket.topics.has('room'));
    expect([...socketA!.topics]).toEqual(['room']);
    b!.client.send('unsub:room');
    await expect.poll(() => wss.subscriberCount('room')).toBe(1);
    a!.client.close();
    await expect.poll(() => wss.subscriberCount('room')).toBe(0);
    expect(socketA!.topics.size).toBe(0);
  });

  it('ws.publish leaves out the sender and whatever except names', async () => {
    const { wss, url } = await startServer();
    wss.on('connection', (socket) => socket.subscribe('t'));
    const peers = await clients(url, 3);
    await expect.poll(() => wss.subscriberCount('t')).toBe(3);
    const [first, second] = [...wss.clients];
    await first!.publish('t', 'hi', { except: second });
    const counts = () => peers.map((peer) => peer.got.length).sort();
    await expect.poll(counts).toEqual([0, 0, 1]);
  });

  it('refuses topics on client-side connections', async () => {
    const { url } = await startServer();
    const [peer] = await clients(url, 1);
    expect(() => peer!.client.subscribe('x')).toThrow(/server-side/);
  });

  it('shares topics between servers through one MemoryAdapter, exactly once each', async () => {
    const bus = new MemoryAdapter();
    const one = await startServer({ pubsub: bus });
    const two = await startServer({ pubsub: bus });
    for (const { wss } of [one, two]) wss.on('connection', (socket) => socket.subscribe('news'));
    const [onOne] = await clients(one.url, 1);
    const [onTwo] = await clients(two.url, 1);
    await expect
      .poll(() => one.wss.subscriberCount('news') + two.wss.subscriberCount('news'))
      .toBe(2);
    await one.wss.publish('news', 'extra');
    await expect.poll(() => onTwo!.got).toEqual(['extra']);
    expect(onOne!.got).toEqual(['extra']);
  });

  it('rejects the publish promise and emits error when the adapter fails', async () => {
    const failing = new MemoryAdapter();
    failing.publish = () => {
      throw new Error('adapter down');
    };
    const { wss } = await startServer({ pubsub: failing });
    const errors: Error[] = [];
    wss.on('error', (error) => errors.push(error));
    await expect(wss.publish('t', 'x')).rejects.toThrow('adapter down');
    expect(errors.map((error) => error.message)).toEqual(['adapter down']);
    // Ignored promises do not become unhandled rejections.
    void wss.publish('t', 'y');
  });
});

describe('liveness', () => {
  it('terminates a peer that stops answering pings, emitting timeout', async () => {
    const { wss } = await startServer({ heartbeat: { interval: 100, timeout: 80 } });
    const { raw, ws } = await connectRawTo(wss);
    raw.socket.pause(); // reads nothing, answers nothing
    const [socket, reason] = await waitFor<[WebSocket, string]>(wss, 'timeout', 5000);
    expect(socket).toBe(ws);
    expect(reason).toBe('heartbeat');
    const [code] = await waitFor<[number]>(ws, 'close');
    expect(code).toBe(1006);
  });

  it('keeps a peer that answers pings', async () => {
    const { wss, url } = await startServer({ heartbeat: { interval: 50 } });
    const [peer] = await clients(url, 1);
    let timeouts = 0;
    wss.on('timeout', () => timeouts++);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(timeouts).toBe(0);
    expect(peer!.client.readyState).toBe(WebSocket.OPEN);
  });

  it('closes an idle connection with 1001 and keeps a busy one', async () => {
    const { wss, url } = await startServer({ idleTimeout: 200 });
    const [idle, busy] = await clients(url, 2);
    const timer = setInterval(() => busy!.client.send('still here'), 40);
    const [code, reason] = await waitFor<[number, Buffer]>(idle!.client, 'close', 5000);
    clearInterval(timer);
    expect(code).toBe(1001);
    expect(reason.toString()).toBe('Idle timeout');
    expect(busy!.client.readyState).toBe(WebSocket.OPEN);
    void wss;
  });

  it('closes a connection that only answers heartbeats: pongs are not traffic for idleTimeout', async () => {
    const { url } = await startServer({ heartbeat: { interval: 50 }, idleTimeout: 300 });
    const [peer] = await clients(url, 1);
    const [code] = await waitFor<[number]>(peer!.client, 'close', 5000);
    expect(code).toBe(1001);
  });

  it('refuses a heartbeat timeout longer than its interval', () => {
    expect(
      () => new WebSocketServer({ noServer: true, heartbeat: { interval: 100, timeout: 200 } }),
    ).toThrow(RangeError);
  });
});

describe('backpressure and shutdown', () => {
  it("returns false from send when the socket is full and emits 'drain' once it empties", async () => {
    const { raw, ws } = await connectRaw();
    raw.socket.pause();
    let flowing = true;
    for (let i = 0; i < 200 && flowing; i++) flowing = ws.send(Buffer.alloc(256 * 1024));
    expect(flowing).toBe(false);
    const drained = waitFor(ws, 'drain', 10_000);
    raw.socket.resume();
    await drained;
    expect(ws.bufferedAmount).toBe(0);
  });

  it("emits 'drain' after a compressed send that returned false", async () => {
    const { wss, url } = await startServer({ perMessageDeflate: { threshold: 0 } });
    await clients(url, 1);
    const [socket] = await serverSockets(wss, 1);
    // Over 32 KiB: compressed on the thread pool, so the send waits for it.
    const flowing = socket!.send('compress me '.repeat(6000));
    expect(flowing).toBe(false);
    await waitFor(socket!, 'drain', 5000);
  });

  it('iterates messages with for await, ending at close', async () => {
    const { wss, url } = await startServer();
    const received: string[] = [];
    const done = new Promise<void>((resolve) => {
      wss.on('connection', async (socket) => {
        for await (const { data, isBinary } of socket) {
          received.push(`${isBinary ? 'b' : 't'}:${String(data)}`);
        }
        resolve();
      });
    });
    const [peer] = await clients(url, 1);
    for (let i = 0; i < 200; i++) peer!.client.send(String(i));
    peer!.client.send(Buffer.from('end'));
    peer!.client.close();
    await done;
    expect(received).toHaveLength(201);
    expect(received[0]).toBe('t:0');
    expect(received[200]).toBe('b:end');
  });

  it('shuts down gracefully: 1001 to every client, then terminates the ones that do not answer', async () => {
    const { wss, url, port } = await startServer();
    const peers = await clients(url, 3);
    const silent = new RawClient(port);
    await silent.upgrade();
    silent.socket.pause(); // will never answer the close frame
    await expect.poll(() => wss.clients.size).toBe(4);
    const codes = peers.map(({ client }) => waitFor<[number, Buffer]>(client, 'close'));
    await wss.close({ timeout: 300 });
    for (const closed of codes) {
      const [code, reason] = await closed;
      expect(code).toBe(1001);
      expect(reason.toString()).toBe('Server shutting down');
    }
    expect(wss.clients.size).toBe(0);
  });
});
