// Close paths, readyState transitions and server bookkeeping.

import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CLOSED,
  CLOSING,
  CONNECTING,
  cleanup,
  connect,
  DIRECTIONS,
  endpoints,
  OPEN,
  openPair,
  type Pair,
  type Peer,
  rawFrame,
  startServer,
  WEFT_SERVER,
  waitClose,
  waitEvent,
  waitOpen,
  waitUntil,
} from './helpers.js';

afterEach(cleanup);

const SIDES = ['client', 'server'] as const;

describe.each(DIRECTIONS)('close: $name', (dir) => {
  describe.each(SIDES)('%s closes', (closer) => {
    it('with a code and a reason: both sides see them', async () => {
      const pair = await openPair(dir);
      const [initiator, other] = endpoints(pair, closer);
      const initiatorClosed = waitClose(initiator);
      const otherClosed = waitClose(other);
      initiator.close(4000, `bye from the ${closer} ✓`);
      const a = await initiatorClosed;
      const b = await otherClosed;
      expect(b.code).toBe(4000);
      expect(b.reason).toBe(`bye from the ${closer} ✓`);
      expect(Buffer.isBuffer(b.rawReason)).toBe(true);
      expect(a.code).toBe(4000);
      expect(a.reason).toBe(`bye from the ${closer} ✓`);
      expect(Buffer.isBuffer(a.rawReason)).toBe(true);
      expect(initiator.readyState).toBe(CLOSED);
      expect(other.readyState).toBe(CLOSED);
    });

    it('with 1000 and no reason: both sides see 1000 and an empty reason', async () => {
      const pair = await openPair(dir);
      const [initiator, other] = endpoints(pair, closer);
      const initiatorClosed = waitClose(initiator);
      const otherClosed = waitClose(other);
      initiator.close(1000);
      expect(await otherClosed).toMatchObject({ code: 1000, reason: '' });
      expect(await initiatorClosed).toMatchObject({ code: 1000, reason: '' });
    });

    it('without a code: both sides see 1005', async () => {
      const pair = await openPair(dir);
      const [initiator, other] = endpoints(pair, closer);
      const initiatorClosed = waitClose(initiator);
      const otherClosed = waitClose(other);
      initiator.close();
      expect(await otherClosed).toMatchObject({ code: 1005, reason: '' });
      expect(await initiatorClosed).toMatchObject({ code: 1005, reason: '' });
    });

    it('with terminate(): both sides see 1006', async () => {
      const pair = await openPair(dir);
      const [initiator, other] = endpoints(pair, closer);
      const initiatorClosed = waitClose(initiator);
      const otherClosed = waitClose(other);
      initiator.terminate();
      expect(initiator.readyState).not.toBe(OPEN);
      expect(await otherClosed).toMatchObject({ code: 1006, reason: '' });
      expect(await initiatorClosed).toMatchObject({ code: 1006, reason: '' });
    });

    it('messages sent before close() are delivered before the close', async () => {
      const pair = await openPair(dir);
      const [initiator, other] = endpoints(pair, closer);
      const events: string[] = [];
      other.on('message', (data: Buffer) => events.push(`message:${data.toString()}`));
      const otherClosed = waitClose(other);
      initiator.send('one');
      initiator.send('two');
      initiator.close(4001, 'done');
      const info = await otherClosed;
      events.push(`close:${info.code}`);
      expect(events).toEqual(['message:one', 'message:two', 'close:4001']);
    });

    it('readyState goes OPEN -> CLOSING -> CLOSED', async () => {
      const pair = await openPair(dir);
      const [initiator, other] = endpoints(pair, closer);
      expect(initiator.readyState).toBe(OPEN);
      expect(other.readyState).toBe(OPEN);
      const statesAtClose: number[] = [];
      initiator.on('close', () => statesAtClose.push(initiator.readyState));
      other.on('close', () => statesAtClose.push(other.readyState));
      const initiatorClosed = waitClose(initiator);
      const otherClosed = waitClose(other);
      initiator.close(1000);
      expect(initiator.readyState).toBe(CLOSING);
      await Promise.all([initiatorClosed, otherClosed]);
      expect(statesAtClose).toEqual([CLOSED, CLOSED]);
    });
  });

  it('a client readyState goes CONNECTING -> OPEN -> CLOSING -> CLOSED', async () => {
    const { server, url } = await startServer(dir.server);
    const connection = waitEvent<[Peer]>(server, 'connection');
    const client = connect(dir.client, url);
    const states: Array<[string, number]> = [['created', client.readyState]];
    client.on('open', () => states.push(['open', client.readyState]));
    client.on('close', () => states.push(['close', client.readyState]));
    await waitOpen(client);
    await connection;
    const closed = waitClose(client);
    client.close(1000, 'done');
    states.push(['after close()', client.readyState]);
    await closed;
    expect(states).toEqual([
      ['created', CONNECTING],
      ['open', OPEN],
      ['after close()', CLOSING],
      ['close', CLOSED],
    ]);
  });

  it('the server side TCP socket destroyed without a close frame: both sides see 1006', async () => {
    const pair = await openPair(dir);
    const clientClosed = waitClose(pair.client);
    const serverClosed = waitClose(pair.serverSide);
    pair.req.socket.destroy();
    expect(await clientClosed).toMatchObject({ code: 1006, reason: '' });
    expect(await serverClosed).toMatchObject({ code: 1006, reason: '' });
  });

  it('the client TCP socket destroyed without a close frame: both sides see 1006', async () => {
    const { server, url } = await startServer(dir.server);
    const connection = waitEvent<[Peer]>(server, 'connection');
    const client = connect(dir.client, url);
    const upgrade = waitEvent<[{ socket: Socket }]>(client, 'upgrade');
    await waitOpen(client);
    const [[serverSide], [res]] = await Promise.all([connection, upgrade]);
    const clientClosed = waitClose(client);
    const serverClosed = waitClose(serverSide);
    res.socket.destroy();
    expect(await serverClosed).toMatchObject({ code: 1006, reason: '' });
    expect(await clientClosed).toMatchObject({ code: 1006, reason: '' });
  });

  it('close() while CONNECTING aborts: error then close with 1006', async () => {
    const { url } = await startServer(dir.server);
    const client = connect(dir.client, url);
    const events: string[] = [];
    client.on('error', () => events.push('error'));
    client.on('open', () => events.push('open'));
    const closed = waitClose(client);
    client.close();
    expect(client.readyState).toBe(CLOSING);
    const info = await closed;
    events.push(`close:${info.code}`);
    expect(events).toEqual(['error', 'close:1006']);
    expect(client.readyState).toBe(CLOSED);
  });
});

describe('WebSocketServer bookkeeping (weft server, ws clients)', () => {
  it('address() returns the bound port on 127.0.0.1', async () => {
    const { server, port } = await startServer(WEFT_SERVER.server);
    const address = server.address();
    expect(address).not.toBeNull();
    expect(typeof address).toBe('object');
    expect(address).toMatchObject({ address: '127.0.0.1', port });
    expect(port).toBeGreaterThan(0);
  });

  it('clients grows on connection and shrinks on close', async () => {
    const { server, url } = await startServer(WEFT_SERVER.server);
    expect(server.clients.size).toBe(0);

    const first = waitEvent<[Peer]>(server, 'connection');
    const a = connect(WEFT_SERVER.client, url);
    await waitOpen(a);
    const [aServer] = await first;
    expect(server.clients.size).toBe(1);
    expect(server.clients.has(aServer)).toBe(true);

    const second = waitEvent<[Peer]>(server, 'connection');
    const b = connect(WEFT_SERVER.client, url);
    await waitOpen(b);
    const [bServer] = await second;
    expect(server.clients.size).toBe(2);
    expect(server.clients.has(bServer)).toBe(true);

    const aClosed = waitClose(aServer);
    a.close(1000);
    await aClosed;
    await waitUntil(() => server.clients.size === 1, 'clients.size is 1');
    expect(server.clients.has(aServer)).toBe(false);
    expect(server.clients.has(bServer)).toBe(true);

    const bClosed = waitClose(bServer);
    b.terminate();
    await bClosed;
    await waitUntil(() => server.clients.size === 0, 'clients.size is 0');
  });

  it('close(cb) calls back and the port stops accepting connections', async () => {
    const { server, url } = await startServer(WEFT_SERVER.server);
    const connection = waitEvent<[Peer]>(server, 'connection');
    const client = connect(WEFT_SERVER.client, url);
    await waitOpen(client);
    const [serverSide] = await connection;
    const serverSideClosed = waitClose(serverSide);
    client.close(1000);
    await serverSideClosed;

    const closeEvent = waitEvent(server, 'close');
    const err = await new Promise<Error | undefined>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('close(cb) did not call back')), 5_000);
      server.close((e) => {
        clearTimeout(timer);
        resolve(e);
      });
    });
    expect(err ?? undefined).toBeUndefined();
    await closeEvent;

    const late = connect(WEFT_SERVER.client, url);
    const errored = waitEvent<[Error]>(late, 'error');
    const lateClosed = waitClose(late);
    const [lateErr] = await errored;
    expect(lateErr).toBeInstanceOf(Error);
    expect((await lateClosed).code).toBe(1006);
  });

  // weft-specific: ws leaves `clients` undefined; weft keeps an empty Set so `wss.clients.size`
  // never throws, and code testing `if (wss.clients)` iterates nothing either way.
  it('[weft-specific] clientTracking: false keeps clients empty', async () => {
    const { server, url } = await startServer(WEFT_SERVER.server, { clientTracking: false });
    const connection = waitEvent<[Peer]>(server, 'connection');
    const client = connect(WEFT_SERVER.client, url);
    await waitOpen(client);
    const [serverSide] = await connection;
    expect(server.clients?.size ?? 0).toBe(0);
    const closed = waitClose(serverSide);
    serverSide.close(1000);
    await closed;
  });
});

interface Violation {
  name: string;
  /** The frame, given whether the injecting side must mask (it is the client). */
  frame: (mask: boolean) => Buffer;
  code: number;
}

const VIOLATIONS: Violation[] = [
  {
    name: 'a frame with the wrong masking',
    frame: (mask) => rawFrame(0x1, Buffer.from('hi'), !mask),
    code: 1002,
  },
  {
    name: 'invalid UTF-8 in a text message',
    frame: (mask) => rawFrame(0x1, Buffer.from([0x61, 0xff, 0xfe]), mask),
    code: 1007,
  },
  { name: 'an unknown opcode', frame: (mask) => rawFrame(0x3, Buffer.from('x'), mask), code: 1002 },
  {
    name: 'a continuation frame with nothing to continue',
    frame: (mask) => rawFrame(0x0, Buffer.from('x'), mask),
    code: 1002,
  },
  {
    name: 'a fragmented ping',
    frame: (mask) => rawFrame(0x9, Buffer.from('x'), mask, false),
    code: 1002,
  },
  {
    name: 'a close frame with the invalid code 999',
    frame: (mask) => rawFrame(0x8, Buffer.from([0x03, 0xe7]), mask),
    code: 1002,
  },
  {
    name: 'a close frame with a 1-byte payload',
    frame: (mask) => rawFrame(0x8, Buffer.from([0x03]), mask),
    code: 1002,
  },
];

// The ws side writes a bad frame straight onto its TCP socket; the weft side
// must fail the connection with the right close code.
describe.each(DIRECTIONS)('protocol errors from ws: $name', (dir) => {
  const weftIsClient = dir.client === 'weft';

  function sides(pair: Pair): { weft: Peer; ws: Peer; wsSocket: Socket } {
    const wsSocket = weftIsClient ? pair.req.socket : pair.clientSocket;
    if (wsSocket === undefined) throw new Error("the ws client emitted no 'upgrade' event");
    return weftIsClient
      ? { weft: pair.client, ws: pair.serverSide, wsSocket }
      : { weft: pair.serverSide, ws: pair.client, wsSocket };
  }

  it.each(VIOLATIONS)('$name: the weft side fails the connection with $code', async (v) => {
    const pair = await openPair(dir);
    const { weft, ws, wsSocket } = sides(pair);
    const errored = waitEvent<[Error]>(weft, 'error');
    const weftClosed = waitClose(weft);
    const wsClosed = waitClose(ws);
    wsSocket.write(v.frame(!weftIsClient));
    const [error] = await errored;
    expect(error).toBeInstanceOf(Error);
    await weftClosed;
    expect((await wsClosed).code).toBe(v.code);
    expect(weft.readyState).toBe(CLOSED);
  });

  // weft-specific: a ws socket throws an unhandled 'error' here.
  it("[weft-specific] without an 'error' listener the weft side still closes and nothing is thrown", async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown): void => {
      uncaught.push(err);
    };
    process.on('uncaughtException', onUncaught);
    try {
      const pair = await openPair(dir);
      const { weft, ws, wsSocket } = sides(pair);
      const weftClosed = waitClose(weft);
      const wsClosed = waitClose(ws);
      wsSocket.write(VIOLATIONS[0]!.frame(!weftIsClient));
      await weftClosed;
      expect((await wsClosed).code).toBe(1002);
      expect(uncaught).toEqual([]);
    } finally {
      process.removeListener('uncaughtException', onUncaught);
    }
  });
});

// The receiver enforces maxPayload: it fails the connection and the sender
// gets a close frame with 1009.
describe.each(DIRECTIONS)('maxPayload: $name', (dir) => {
  it.each(SIDES)(
    'a message over the %s maxPayload closes the connection with 1009',
    async (enforcer) => {
      const pair =
        enforcer === 'server'
          ? await openPair(dir, { server: { maxPayload: 1024 } })
          : await openPair(dir, { client: { maxPayload: 1024 } });
      const [receiver, sender] = endpoints(pair, enforcer);
      const received: number[] = [];
      receiver.on('message', (data: Buffer) => received.push(data.length));
      const errored = waitEvent<[Error]>(receiver, 'error');
      const receiverClosed = waitClose(receiver);
      const senderClosed = waitClose(sender);
      sender.send(Buffer.alloc(1024, 1)); // exactly the limit: accepted
      sender.send(Buffer.alloc(1025, 2));
      const [error] = await errored;
      expect(error).toBeInstanceOf(Error);
      expect((await senderClosed).code).toBe(1009);
      await receiverClosed;
      expect(received).toEqual([1024]);
    },
  );
});
