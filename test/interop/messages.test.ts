// Data messages between weft and ws, both directions, both sending sides.

import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type BinaryType,
  bytesOf,
  cleanup,
  collectMessages,
  connect,
  DIRECTIONS,
  endpoints,
  type Message,
  nextMessage,
  openPair,
  type Peer,
  type RawData,
  type SendData,
  sha256,
  startServer,
  toBuffer,
  waitEvent,
  waitOpen,
} from './helpers.js';

afterEach(cleanup);

const SIDES = ['client', 'server'] as const;

interface Case {
  name: string;
  make: () => SendData;
  isBinary: boolean;
}

function viewBacking(): ArrayBuffer {
  // 0xee marks bytes outside the view: they must not be sent.
  const backing = new ArrayBuffer(10);
  new Uint8Array(backing).set([0xee, 0xee, 1, 2, 3, 250, 0, 0xee, 0xee, 0xee]);
  return backing;
}

const UNICODE = 'héllo wörld — 你好, Здравствуйте, مرحبا 🌍👋🏽 \u{1F600}';

const CASES: Case[] = [
  { name: 'text', make: () => 'hello weft', isBinary: false },
  { name: 'unicode text', make: () => UNICODE, isBinary: false },
  { name: 'empty text', make: () => '', isBinary: false },
  { name: 'Buffer', make: () => Buffer.from([0, 1, 2, 253, 254, 255]), isBinary: true },
  { name: 'empty Buffer', make: () => Buffer.alloc(0), isBinary: true },
  {
    name: 'ArrayBuffer',
    make: () => new Uint8Array([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]).buffer,
    isBinary: true,
  },
  { name: 'empty ArrayBuffer', make: () => new ArrayBuffer(0), isBinary: true },
  {
    name: 'Uint8Array view with an offset',
    make: () => new Uint8Array(viewBacking(), 2, 5),
    isBinary: true,
  },
  {
    name: 'DataView with an offset',
    make: () => new DataView(viewBacking(), 2, 5),
    isBinary: true,
  },
  { name: 'Float64Array', make: () => new Float64Array([Math.PI, -0, 1e300]), isBinary: true },
];

function expectPayload(message: Message, sent: SendData, isBinary: boolean): void {
  expect(message.isBinary).toBe(isBinary);
  expect(Buffer.isBuffer(message.data)).toBe(true); // default binaryType 'nodebuffer'
  const got = toBuffer(message.data);
  if (typeof sent === 'string') {
    expect(got.toString('utf8')).toBe(sent);
  } else {
    expect(got.equals(bytesOf(sent))).toBe(true);
  }
}

describe.each(DIRECTIONS)('messages: $name', (dir) => {
  describe.each(SIDES)('%s sends', (sender) => {
    it.each(CASES)('$name arrives intact with the right isBinary flag', async (c) => {
      const pair = await openPair(dir);
      const [from, to] = endpoints(pair, sender);
      const received = nextMessage(to);
      const data = c.make();
      from.send(data);
      expectPayload(await received, data, c.isBinary);
    });

    it('sends a Buffer as text when binary: false, and a string as binary when binary: true', async () => {
      const pair = await openPair(dir);
      const [from, to] = endpoints(pair, sender);
      const received = collectMessages(to, 2);
      from.send(Buffer.from('as text'), { binary: false });
      from.send('as binary', { binary: true });
      const [a, b] = await received;
      expect(a!.isBinary).toBe(false);
      expect(toBuffer(a!.data).toString()).toBe('as text');
      expect(b!.isBinary).toBe(true);
      expect(toBuffer(b!.data).toString()).toBe('as binary');
    });

    it('calls the send callback without an error', async () => {
      const pair = await openPair(dir);
      const [from, to] = endpoints(pair, sender);
      const received = nextMessage(to);
      const err = await new Promise<Error | null | undefined>((resolve) => {
        from.send('with callback', {}, resolve);
      });
      expect(err ?? undefined).toBeUndefined();
      expect(toBuffer((await received).data).toString()).toBe('with callback');
    });

    describe('fragmented messages', () => {
      function sendFragments(from: Peer, fragments: SendData[], binary: boolean | undefined): void {
        fragments.forEach((fragment, i) => {
          const fin = i === fragments.length - 1;
          from.send(fragment, binary === undefined ? { fin } : { fin, binary });
        });
      }

      it('text fragments are received as one text message', async () => {
        const pair = await openPair(dir);
        const [from, to] = endpoints(pair, sender);
        const received = collectMessages(to, 2);
        sendFragments(from, ['Hel', 'lo, ', 'wo', 'rld'], undefined);
        from.send('next'); // a following unfragmented message stays separate
        const [whole, next] = await received;
        expect(whole!.isBinary).toBe(false);
        expect(toBuffer(whole!.data).toString()).toBe('Hello, world');
        expect(next!.isBinary).toBe(false);
        expect(toBuffer(next!.data).toString()).toBe('next');
      });

      it('binary fragments are received as one binary message', async () => {
        const pair = await openPair(dir);
        const [from, to] = endpoints(pair, sender);
        const parts = [randomBytes(100), randomBytes(1), randomBytes(70_000), randomBytes(3)];
        const received = nextMessage(to);
        sendFragments(from, parts, true);
        const message = await received;
        expect(message.isBinary).toBe(true);
        expect(toBuffer(message.data).equals(Buffer.concat(parts))).toBe(true);
      });

      it('a UTF-8 character split across fragments is decoded whole', async () => {
        const pair = await openPair(dir);
        const [from, to] = endpoints(pair, sender);
        const text = 'price: 5€ 🌍';
        const bytes = Buffer.from(text, 'utf8');
        // Cut inside the 3-byte '€' and inside the 4-byte '🌍'.
        const euro = bytes.indexOf(Buffer.from('€'));
        const globe = bytes.indexOf(Buffer.from('🌍'));
        const parts = [
          bytes.subarray(0, euro + 1),
          bytes.subarray(euro + 1, globe + 2),
          bytes.subarray(globe + 2),
        ];
        const received = nextMessage(to);
        sendFragments(from, parts, false);
        const message = await received;
        expect(message.isBinary).toBe(false);
        expect(toBuffer(message.data).toString('utf8')).toBe(text);
      });

      it('an empty final fragment completes the message', async () => {
        const pair = await openPair(dir);
        const [from, to] = endpoints(pair, sender);
        const received = nextMessage(to);
        sendFragments(from, ['abc', 'def', ''], undefined);
        const message = await received;
        expect(message.isBinary).toBe(false);
        expect(toBuffer(message.data).toString()).toBe('abcdef');
      });

      it('a ping between fragments is answered and does not break the message', async () => {
        const pair = await openPair(dir);
        const [from, to] = endpoints(pair, sender);
        const received = nextMessage(to);
        const pong = waitEvent<[Buffer]>(from, 'pong');
        const ping = waitEvent<[Buffer]>(to, 'ping');
        from.send(Buffer.from('first-'), { fin: false });
        from.ping(Buffer.from('in the middle'));
        from.send(Buffer.from('second'), { fin: true });
        const message = await received;
        expect(message.isBinary).toBe(true);
        expect(toBuffer(message.data).toString()).toBe('first-second');
        const [pingData] = await ping;
        expect(pingData.toString()).toBe('in the middle');
        const [pongData] = await pong;
        expect(pongData.toString()).toBe('in the middle');
      });
    });

    it('a 16 MiB binary message arrives intact', async () => {
      const pair = await openPair(dir);
      const [from, to] = endpoints(pair, sender);
      const payload = randomBytes(16 * 1024 * 1024);
      const received = nextMessage(to, 15_000);
      from.send(payload);
      const message = await received;
      expect(message.isBinary).toBe(true);
      const got = toBuffer(message.data);
      expect(got.length).toBe(payload.length);
      expect(sha256(got)).toBe(sha256(payload));
    });

    it('a 4 MiB text message arrives intact', async () => {
      const pair = await openPair(dir);
      const [from, to] = endpoints(pair, sender);
      const text = 'ab€🌍'.repeat((4 * 1024 * 1024) / 9);
      const received = nextMessage(to, 15_000);
      from.send(text);
      const message = await received;
      expect(message.isBinary).toBe(false);
      expect(sha256(toBuffer(message.data))).toBe(sha256(Buffer.from(text)));
    });

    it('1000 small messages of mixed types keep their order', async () => {
      const pair = await openPair(dir);
      const [from, to] = endpoints(pair, sender);
      const count = 1000;
      const received = collectMessages(to, count, 15_000);
      for (let i = 0; i < count; i++) {
        if (i % 3 === 0) from.send(Buffer.from(`bin-${i}`));
        else from.send(`txt-${i}`);
      }
      const messages = await received;
      const mismatches: string[] = [];
      messages.forEach((m, i) => {
        const expected = i % 3 === 0 ? `bin-${i}` : `txt-${i}`;
        const got = toBuffer(m.data).toString();
        if (got !== expected || m.isBinary !== (i % 3 === 0)) {
          mismatches.push(`#${i}: expected ${expected}, got ${got} (isBinary ${m.isBinary})`);
        }
      });
      expect(mismatches).toEqual([]);
    });

    describe('binaryType on the receiver', () => {
      async function receiveAs(
        binaryType: BinaryType | undefined,
        send: (from: Peer) => void,
      ): Promise<{ message: Message; to: Peer }> {
        const pair = await openPair(dir);
        const [from, to] = endpoints(pair, sender);
        if (binaryType !== undefined) to.binaryType = binaryType;
        const received = nextMessage(to);
        send(from);
        return { message: await received, to };
      }

      it("defaults to 'nodebuffer' (Buffer)", async () => {
        const { message, to } = await receiveAs(undefined, (from) => from.send(Buffer.from('xyz')));
        expect(to.binaryType).toBe('nodebuffer');
        expect(Buffer.isBuffer(message.data)).toBe(true);
        expect(toBuffer(message.data).toString()).toBe('xyz');
      });

      it("'nodebuffer' gives a Buffer", async () => {
        const { message } = await receiveAs('nodebuffer', (from) => from.send(Buffer.from('xyz')));
        expect(Buffer.isBuffer(message.data)).toBe(true);
        expect(toBuffer(message.data).toString()).toBe('xyz');
      });

      it("'arraybuffer' gives an ArrayBuffer", async () => {
        const { message, to } = await receiveAs('arraybuffer', (from) =>
          from.send(Buffer.from([1, 2, 3, 4])),
        );
        expect(to.binaryType).toBe('arraybuffer');
        expect(message.data).toBeInstanceOf(ArrayBuffer);
        expect([...new Uint8Array(message.data as ArrayBuffer)]).toEqual([1, 2, 3, 4]);
      });

      it("'arraybuffer' gives an ArrayBuffer for a fragmented message", async () => {
        const { message } = await receiveAs('arraybuffer', (from) => {
          from.send(Buffer.from([1, 2]), { fin: false });
          from.send(Buffer.from([3, 4, 5]), { fin: true });
        });
        expect(message.data).toBeInstanceOf(ArrayBuffer);
        expect([...new Uint8Array(message.data as ArrayBuffer)]).toEqual([1, 2, 3, 4, 5]);
      });

      it("'fragments' gives an array of Buffers", async () => {
        const { message, to } = await receiveAs('fragments', (from) =>
          from.send(Buffer.from('one frame')),
        );
        expect(to.binaryType).toBe('fragments');
        const data: RawData = message.data;
        expect(Array.isArray(data)).toBe(true);
        const fragments = data as Buffer[];
        expect(fragments.every((f) => Buffer.isBuffer(f))).toBe(true);
        expect(Buffer.concat(fragments).toString()).toBe('one frame');
      });

      it("'fragments' gives the parts of a fragmented message", async () => {
        const { message } = await receiveAs('fragments', (from) => {
          from.send(Buffer.from('aa'), { fin: false });
          from.send(Buffer.from('bbb'), { fin: false });
          from.send(Buffer.from('c'), { fin: true });
        });
        expect(Array.isArray(message.data)).toBe(true);
        const fragments = message.data as Buffer[];
        expect(fragments.length).toBeGreaterThanOrEqual(1);
        expect(fragments.every((f) => Buffer.isBuffer(f))).toBe(true);
        expect(Buffer.concat(fragments).toString()).toBe('aabbbc');
      });
    });
  });
});

describe('message queueing on the weft server', () => {
  // weft-specific: weft queues messages that arrive before a 'message'
  // listener is attached; ws drops them, so this test fails against ws.
  it('[weft-specific] a connection handler that attaches its message listener late still gets the first message', async () => {
    const { server, url } = await startServer('weft');
    const gotMessage = new Promise<Message>((resolve) => {
      server.on('connection', async (ws: Peer, _req: IncomingMessage) => {
        await delay(50);
        ws.on('message', (data: RawData, isBinary: boolean) => resolve({ data, isBinary }));
      });
    });
    const client = connect('ws', url);
    client.on('open', () => client.send('sent immediately on open'));
    await waitOpen(client);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('the early message was never delivered')), 5_000);
    });
    try {
      const message = await Promise.race([gotMessage, timeout]);
      expect(message.isBinary).toBe(false);
      expect(toBuffer(message.data).toString()).toBe('sent immediately on open');
    } finally {
      clearTimeout(timer);
    }
  });
});
