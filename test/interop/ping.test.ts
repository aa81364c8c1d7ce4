// Ping / pong between weft and ws, both directions, both sending sides.

import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanup,
  collectEvents,
  DIRECTIONS,
  endpoints,
  nextMessage,
  openPair,
  type Peer,
  type RawData,
  toBuffer,
  waitEvent,
} from './helpers.js';

afterEach(cleanup);

const SIDES = ['client', 'server'] as const;

describe.each(DIRECTIONS)('ping/pong: $name', (dir) => {
  describe.each(SIDES)('%s pings', (sender) => {
    it('the peer gets the ping payload and answers with an automatic pong carrying it', async () => {
      const pair = await openPair(dir);
      const [from, to] = endpoints(pair, sender);
      const ping = waitEvent<[Buffer]>(to, 'ping');
      const pong = waitEvent<[Buffer]>(from, 'pong');
      from.ping(Buffer.from('are you there?'));
      const [pingData] = await ping;
      expect(Buffer.isBuffer(pingData)).toBe(true);
      expect(pingData.toString()).toBe('are you there?');
      const [pongData] = await pong;
      expect(Buffer.isBuffer(pongData)).toBe(true);
      expect(pongData.toString()).toBe('are you there?');
    });

    it('a string payload and a 125-byte payload round-trip', async () => {
      const pair = await openPair(dir);
      const [from, to] = endpoints(pair, sender);
      const big = Buffer.alloc(125, 0x61);
      const pings = collectEvents<[Buffer]>(to, 'ping', 2);
      const pongs = collectEvents<[Buffer]>(from, 'pong', 2);
      from.ping('hi €');
      from.ping(big);
      expect((await pings).map(([data]) => data.toString())).toEqual(['hi €', big.toString()]);
      expect((await pongs).map(([data]) => data.toString())).toEqual(['hi €', big.toString()]);
    });

    it('a ping without payload gets an empty pong', async () => {
      const pair = await openPair(dir);
      const [from, to] = endpoints(pair, sender);
      const ping = waitEvent<[Buffer]>(to, 'ping');
      const pong = waitEvent<[Buffer]>(from, 'pong');
      from.ping();
      const [pingData] = await ping;
      expect(toBuffer(pingData).length).toBe(0);
      const [pongData] = await pong;
      expect(toBuffer(pongData).length).toBe(0);
    });

    it('an unsolicited pong is delivered as a pong event', async () => {
      const pair = await openPair(dir);
      const [from, to] = endpoints(pair, sender);
      const pong = waitEvent<[Buffer]>(to, 'pong');
      from.pong(Buffer.from('heartbeat'));
      const [data] = await pong;
      expect(data.toString()).toBe('heartbeat');
    });

    it('the ping callback fires without an error', async () => {
      const pair = await openPair(dir);
      const [from] = endpoints(pair, sender);
      const err = await new Promise<Error | null | undefined>((resolve) => {
        from.ping(Buffer.from('cb'), undefined, resolve);
      });
      expect(err ?? undefined).toBeUndefined();
    });

    it('autoPong: false on the receiver suppresses the automatic pong', async () => {
      // The side that receives the ping is created with autoPong: false.
      const pair =
        sender === 'client'
          ? await openPair(dir, { server: { autoPong: false } })
          : await openPair(dir, { client: { autoPong: false } });
      const [from, to] = endpoints(pair, sender);

      const seen: string[] = [];
      from.on('pong', (data: Buffer) => seen.push(`pong:${data.toString()}`));
      from.on('message', (data: RawData) => seen.push(`message:${toBuffer(data).toString()}`));

      // The receiver answers 'after-ping' (which arrives after the ping) with a
      // marker message. An automatic pong would have been sent before it.
      const gotPing = waitEvent<[Buffer]>(to, 'ping');
      to.on('message', (data: RawData) => {
        if (toBuffer(data).toString() === 'after-ping') to.send('marker');
      });
      const marker = nextMessage(from);
      from.ping(Buffer.from('no auto pong'));
      from.send('after-ping');

      const [pingData] = await gotPing;
      expect(pingData.toString()).toBe('no auto pong');
      await marker;
      expect(seen).toEqual(['message:marker']);

      // A manual pong still works.
      const manual = waitEvent<[Buffer]>(from, 'pong');
      to.pong(Buffer.from('manual'));
      const [manualData] = await manual;
      expect(manualData.toString()).toBe('manual');
    });

    it('with autoPong on (default) the pong precedes a later reply', async () => {
      // Control for the test above: same sequence, automatic pong enabled.
      const pair = await openPair(dir);
      const [from, to]: [Peer, Peer] = endpoints(pair, sender);
      const seen: string[] = [];
      from.on('pong', (data: Buffer) => seen.push(`pong:${data.toString()}`));
      from.on('message', (data: RawData) => seen.push(`message:${toBuffer(data).toString()}`));
      to.on('message', (data: RawData) => {
        if (toBuffer(data).toString() === 'after-ping') to.send('marker');
      });
      const marker = nextMessage(from);
      from.ping(Buffer.from('auto'));
      from.send('after-ping');
      await marker;
      expect(seen).toEqual(['pong:auto', 'message:marker']);
    });
  });
});
