import { describe, expect, it } from 'vitest';
import { Opcode } from '../src/protocol/constants.js';
import type { WebSocketProtocolError } from '../src/protocol/errors.js';
import { Receiver, type ReceiverOptions } from '../src/protocol/receiver.js';
import { closePayload, type RawFrame, rawFrame } from './frames.js';

type Event =
  | { type: 'message'; data: Buffer; isBinary: boolean; fragments: number }
  | { type: 'ping' | 'pong'; data: Buffer }
  | { type: 'close'; code: number; reason: string }
  | { type: 'error'; closeCode: number; code: string; message: string };

function makeReceiver(options: Partial<ReceiverOptions> = {}) {
  const events: Event[] = [];
  const receiver = new Receiver(
    { isServer: true, maxPayload: 0, skipUTF8Validation: false, ...options },
    {
      onMessage: (fragments, length, isBinary) =>
        events.push({
          type: 'message',
          data: Buffer.concat(Array.isArray(fragments) ? fragments : [fragments], length),
          isBinary,
          fragments: Array.isArray(fragments) ? fragments.length : 1,
        }),
      onPing: (data) => events.push({ type: 'ping', data: Buffer.from(data) }),
      onPong: (data) => events.push({ type: 'pong', data: Buffer.from(data) }),
      onClose: (code, reason) => events.push({ type: 'close', code, reason: reason.toString() }),
      onError: (error: WebSocketProtocolError) =>
        events.push({
          type: 'error',
          closeCode: error.closeCode,
          code: error.code,
          message: error.message,
        }),
    },
  );
  return { receiver, events };
}

/** Client-to-server frames are masked; a server receiver expects that by default. */
function masked(frame: RawFrame): Buffer {
  return rawFrame({ mask: true, ...frame });
}

function feed(
  receiver: Receiver,
  bytes: Buffer,
  split: 'whole' | 'bytewise' | number = 'whole',
): void {
  if (split === 'whole') {
    receiver.write(Buffer.from(bytes));
    return;
  }
  const step = split === 'bytewise' ? 1 : split;
  for (let i = 0; i < bytes.length; i += step)
    receiver.write(Buffer.from(bytes.subarray(i, i + step)));
}

function errorOf(events: Event[]) {
  const error = events.find((event) => event.type === 'error');
  if (error?.type !== 'error') throw new Error(`expected an error, got ${JSON.stringify(events)}`);
  return error;
}

describe('Receiver: valid streams', () => {
  const stream = Buffer.concat([
    masked({ opcode: Opcode.Text, payload: 'héllo wörld' }),
    masked({ opcode: Opcode.Binary, payload: Buffer.from([0, 1, 2, 255]) }),
    masked({ opcode: Opcode.Text, payload: '' }),
    masked({ opcode: Opcode.Binary, payload: Buffer.alloc(70_000, 9) }), // 64-bit length
    masked({ opcode: Opcode.Binary, payload: Buffer.alloc(300, 3) }), // 16-bit length
    masked({ opcode: Opcode.Ping, payload: 'p' }),
    masked({ opcode: Opcode.Pong, payload: '' }),
    masked({ opcode: Opcode.Close, payload: closePayload(1000, 'bye') }),
  ]);

  for (const split of ['whole', 'bytewise', 7, 4096] as const) {
    it(`parses every frame kind when the bytes arrive ${split === 'whole' ? 'at once' : `in pieces of ${split}`}`, () => {
      const { receiver, events } = makeReceiver();
      feed(receiver, stream, split);
      expect(events.map((event) => event.type)).toEqual([
        'message',
        'message',
        'message',
        'message',
        'message',
        'ping',
        'pong',
        'close',
      ]);
      const [text, binary, empty, big, medium, ping, , close] = events;
      expect(text).toMatchObject({ isBinary: false });
      expect(text?.type === 'message' && text.data.toString()).toBe('héllo wörld');
      expect(binary?.type === 'message' && [...binary.data]).toEqual([0, 1, 2, 255]);
      expect(empty?.type === 'message' && empty.data.length).toBe(0);
      expect(big?.type === 'message' && big.data.equals(Buffer.alloc(70_000, 9))).toBe(true);
      expect(medium?.type === 'message' && medium.data.length).toBe(300);
      expect(ping?.type === 'ping' && ping.data.toString()).toBe('p');
      expect(close).toEqual({ type: 'close', code: 1000, reason: 'bye' });
    });
  }

  it('assembles fragmented messages with control frames interleaved', () => {
    const { receiver, events } = makeReceiver();
    feed(
      receiver,
      Buffer.concat([
        masked({ opcode: Opcode.Text, fin: false, payload: 'frag' }),
        masked({ opcode: Opcode.Ping, payload: 'mid' }),
        masked({ opcode: Opcode.Continuation, fin: false, payload: 'men' }),
        masked({ opcode: Opcode.Continuation, fin: true, payload: 'ted' }),
      ]),
      'bytewise',
    );
    expect(events[0]).toEqual({ type: 'ping', data: Buffer.from('mid') });
    expect(events[1]).toMatchObject({ type: 'message', isBinary: false });
    expect(events[1]?.type === 'message' && events[1].data.toString()).toBe('fragmented');
  });

  it('keeps a payload that arrives in one chunk as one fragment, without a copy', () => {
    const { receiver, events } = makeReceiver();
    feed(receiver, masked({ opcode: Opcode.Binary, payload: Buffer.alloc(1000, 1) }));
    expect(events[0]).toMatchObject({ type: 'message', fragments: 1 });
  });

  describe('a payload spanning socket chunks', () => {
    const payload = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 251));
    const frame = masked({ opcode: Opcode.Binary, payload });

    function messageOf(events: Event[]) {
      expect(events).toHaveLength(1);
      const message = events[0];
      if (message?.type !== 'message') throw new Error('expected a message');
      return message;
    }

    it('is collected whole and unmasked into one buffer when its chunks are large', () => {
      const { receiver, events } = makeReceiver();
      feed(receiver, frame, 65_536);
      const message = messageOf(events);
      expect(message.fragments).toBe(1);
      expect(message.data.equals(payload)).toBe(true);
    });

    it('is consumed as it arrives when it trickles in tiny chunks, then collected whole', () => {
      const { receiver, events } = makeReceiver();
      // 40 000 one-byte chunks first (consumed as they come: no Buffer object per byte is
      // kept), then the rest in big chunks, which restart collecting mid-payload with the
      // masking key at another phase.
      const tiny = 40_001;
      feed(receiver, frame.subarray(0, tiny), 1);
      expect(receiver.bufferedBytes).toBeLessThan(1024 * 17);
      feed(receiver, frame.subarray(tiny), 50_000);
      expect(messageOf(events).data.equals(payload)).toBe(true);
    });

    it('keeps text flowing through the UTF-8 check: a bad byte fails before the frame ends', () => {
      const { receiver, events } = makeReceiver();
      const text = masked({ opcode: Opcode.Text, payload: Buffer.alloc(200_000, 0xff) });
      feed(receiver, text.subarray(0, 65_536));
      expect(errorOf(events)).toMatchObject({ closeCode: 1007 });
    });

    it('is collected whole for text when UTF-8 checks are off', () => {
      const { receiver, events } = makeReceiver({ skipUTF8Validation: true });
      const text = 'añb'.repeat(50_000);
      feed(receiver, masked({ opcode: Opcode.Text, payload: text }), 65_536);
      const message = messageOf(events);
      expect(message.fragments).toBe(1);
      expect(message.data.toString()).toBe(text);
    });

    it('is collected whole on the client side (no mask)', () => {
      const { receiver, events } = makeReceiver({ isServer: false });
      feed(receiver, rawFrame({ opcode: Opcode.Binary, payload }), 4096);
      expect(messageOf(events).data.equals(payload)).toBe(true);
    });
  });

  it('packs tiny fragments into blocks: memory follows the payload, not the fragment count', () => {
    const { receiver, events } = makeReceiver();
    const count = 20_000;
    const frames = Array.from({ length: count }, (_, i) =>
      masked({
        opcode: i === 0 ? Opcode.Binary : Opcode.Continuation,
        fin: i === count - 1,
        payload: Buffer.from([i & 0xff]),
      }),
    );
    feed(receiver, Buffer.concat(frames), 4096);
    const message = events[0];
    expect(message?.type).toBe('message');
    if (message?.type !== 'message') return;
    expect(message.data.length).toBe(count);
    expect(message.data.every((byte, i) => byte === (i & 0xff))).toBe(true);
    expect(message.fragments).toBeLessThanOrEqual(3);
  });

  it('accepts a text message whose UTF-8 characters are split across fragments', () => {
    const { receiver, events } = makeReceiver();
    const bytes = Buffer.from('κόσμε 😀');
    const frames = [...bytes].map((byte, i) =>
      masked({
        opcode: i === 0 ? Opcode.Text : Opcode.Continuation,
        fin: i === bytes.length - 1,
        payload: Buffer.from([byte]),
      }),
    );
    feed(receiver, Buffer.concat(frames));
    expect(events).toHaveLength(1);
    expect(events[0]?.type === 'message' && events[0].data.toString()).toBe('κόσμε 😀');
  });

  it('reads unmasked frames on the client side', () => {
    const { receiver, events } = makeReceiver({ isServer: false });
    feed(receiver, rawFrame({ opcode: Opcode.Text, payload: 'from server' }), 3);
    expect(events[0]?.type === 'message' && events[0].data.toString()).toBe('from server');
  });

  it('reports a close frame without a body as 1005 and ignores what follows', () => {
    const { receiver, events } = makeReceiver();
    feed(
      receiver,
      Buffer.concat([
        masked({ opcode: Opcode.Close }),
        masked({ opcode: Opcode.Text, payload: 'late' }),
      ]),
    );
    expect(events).toEqual([{ type: 'close', code: 1005, reason: '' }]);
  });

  it('delivers nothing while paused and everything, in order, on resume', () => {
    const { receiver, events } = makeReceiver();
    receiver.pause();
    feed(
      receiver,
      Buffer.concat([
        masked({ opcode: Opcode.Text, payload: 'a' }),
        masked({ opcode: Opcode.Text, payload: 'b' }),
      ]),
    );
    expect(events).toEqual([]);
    receiver.resume();
    expect(events.map((event) => event.type === 'message' && event.data.toString())).toEqual([
      'a',
      'b',
    ]);
  });
});

describe('Receiver: protocol violations carry their close code', () => {
  const cases: Array<{
    name: string;
    bytes: () => Buffer;
    closeCode: number;
    code: string;
    options?: Partial<ReceiverOptions>;
  }> = [
    {
      name: 'an unmasked frame from a client',
      bytes: () => rawFrame({ opcode: Opcode.Text, payload: 'x' }),
      closeCode: 1002,
      code: 'WS_ERR_EXPECTED_MASK',
    },
    {
      name: 'a masked frame from a server',
      bytes: () => masked({ opcode: Opcode.Text, payload: 'x' }),
      closeCode: 1002,
      code: 'WS_ERR_UNEXPECTED_MASK',
      options: { isServer: false },
    },
    {
      name: 'RSV1 without an extension',
      bytes: () => masked({ opcode: Opcode.Text, rsv: 4, payload: 'x' }),
      closeCode: 1002,
      code: 'WS_ERR_UNEXPECTED_RSV_1',
    },
    {
      name: 'RSV2',
      bytes: () => masked({ opcode: Opcode.Text, rsv: 2, payload: 'x' }),
      closeCode: 1002,
      code: 'WS_ERR_UNEXPECTED_RSV_2_3',
    },
    {
      name: 'RSV3',
      bytes: () => masked({ opcode: Opcode.Binary, rsv: 1 }),
      closeCode: 1002,
      code: 'WS_ERR_UNEXPECTED_RSV_2_3',
    },
    ...[3, 4, 5, 6, 7, 11, 12, 13, 14, 15].map((opcode) => ({
      name: `reserved opcode ${opcode}`,
      bytes: () => masked({ opcode }),
      closeCode: 1002,
      code: 'WS_ERR_INVALID_OPCODE',
    })),
    {
      name: 'a continuation with no message started',
      bytes: () => masked({ opcode: Opcode.Continuation, payload: 'x' }),
      closeCode: 1002,
      code: 'WS_ERR_INVALID_OPCODE',
    },
    {
      name: 'a new message inside a fragmented one',
      bytes: () =>
        Buffer.concat([
          masked({ opcode: Opcode.Text, fin: false, payload: 'a' }),
          masked({ opcode: Opcode.Text, payload: 'b' }),
        ]),
      closeCode: 1002,
      code: 'WS_ERR_INVALID_OPCODE',
    },
    {
      name: 'a fragmented ping',
      bytes: () => masked({ opcode: Opcode.Ping, fin: false }),
      closeCode: 1002,
      code: 'WS_ERR_EXPECTED_FIN',
    },
    {
      name: 'a ping over 125 bytes',
      bytes: () => masked({ opcode: Opcode.Ping, payload: Buffer.alloc(126) }),
      closeCode: 1002,
      code: 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH',
    },
    {
      name: 'a control frame with RSV1',
      bytes: () => masked({ opcode: Opcode.Close, rsv: 4 }),
      closeCode: 1002,
      code: 'WS_ERR_UNEXPECTED_RSV_1',
    },
    {
      name: 'a close frame with a 1-byte body',
      bytes: () => masked({ opcode: Opcode.Close, payload: Buffer.from([3]) }),
      closeCode: 1002,
      code: 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH',
    },
    ...[0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535].map((code) => ({
      name: `close code ${code}`,
      bytes: () => masked({ opcode: Opcode.Close, payload: closePayload(code) }),
      closeCode: 1002,
      code: 'WS_ERR_INVALID_CLOSE_CODE',
    })),
    {
      name: 'a close reason that is not UTF-8',
      bytes: () =>
        masked({
          opcode: Opcode.Close,
          payload: closePayload(1000, Buffer.from([0xce, 0xba, 0xe1, 0xbd])),
        }),
      closeCode: 1007,
      code: 'WS_ERR_INVALID_UTF8',
    },
    {
      name: 'invalid UTF-8 text',
      bytes: () => masked({ opcode: Opcode.Text, payload: Buffer.from([0x68, 0xff, 0x69]) }),
      closeCode: 1007,
      code: 'WS_ERR_INVALID_UTF8',
    },
    {
      name: 'a UTF-16 surrogate in text',
      bytes: () => masked({ opcode: Opcode.Text, payload: Buffer.from([0xed, 0xa0, 0x80]) }),
      closeCode: 1007,
      code: 'WS_ERR_INVALID_UTF8',
    },
    {
      name: 'an overlong encoding in text',
      bytes: () => masked({ opcode: Opcode.Text, payload: Buffer.from([0xc0, 0xaf]) }),
      closeCode: 1007,
      code: 'WS_ERR_INVALID_UTF8',
    },
    {
      name: 'text ending inside a character',
      bytes: () => masked({ opcode: Opcode.Text, payload: Buffer.from([0x61, 0xe2, 0x82]) }),
      closeCode: 1007,
      code: 'WS_ERR_INVALID_UTF8',
    },
    {
      name: 'invalid UTF-8 split across fragments',
      bytes: () =>
        Buffer.concat([
          masked({ opcode: Opcode.Text, fin: false, payload: Buffer.from([0xf4]) }),
          masked({ opcode: Opcode.Continuation, payload: Buffer.from([0x90, 0x80, 0x80]) }),
        ]),
      closeCode: 1007,
      code: 'WS_ERR_INVALID_UTF8',
    },
    {
      name: 'a 64-bit length with the top bit set',
      bytes: () => masked({ opcode: Opcode.Binary, lengthBits: 64, declaredLength: 2 ** 63 }),
      closeCode: 1002,
      code: 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH',
    },
    {
      name: 'a 64-bit length above 2^53 - 1',
      bytes: () => masked({ opcode: Opcode.Binary, lengthBits: 64, declaredLength: 2 ** 60 }),
      closeCode: 1009,
      code: 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH',
    },
    {
      name: 'a message over maxPayload',
      bytes: () => masked({ opcode: Opcode.Binary, payload: Buffer.alloc(101) }),
      closeCode: 1009,
      code: 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH',
      options: { maxPayload: 100 },
    },
    {
      name: 'fragments adding up to more than maxPayload',
      bytes: () =>
        Buffer.concat([
          masked({ opcode: Opcode.Binary, fin: false, payload: Buffer.alloc(60) }),
          masked({ opcode: Opcode.Continuation, payload: Buffer.alloc(60) }),
        ]),
      closeCode: 1009,
      code: 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH',
      options: { maxPayload: 100 },
    },
  ];

  for (const testCase of cases) {
    for (const split of ['whole', 'bytewise'] as const) {
      it(`${testCase.name} -> ${testCase.closeCode} (${split})`, () => {
        const { receiver, events } = makeReceiver(testCase.options);
        feed(receiver, testCase.bytes(), split);
        const error = errorOf(events);
        expect(error.closeCode).toBe(testCase.closeCode);
        expect(error.code).toBe(testCase.code);
        expect(events.filter((event) => event.type === 'message')).toEqual([]);
        expect(receiver.stopped).toBe(true);
      });
    }
  }

  it('refuses a message spanning more frames than maxFragments with 1009', () => {
    const { receiver, events } = makeReceiver({ maxFragments: 3 });
    const frames = [0, 1, 2, 3].map((i) =>
      masked({ opcode: i === 0 ? Opcode.Text : Opcode.Continuation, fin: i === 3, payload: 'x' }),
    );
    feed(receiver, Buffer.concat(frames.slice(0, 3)));
    expect(events).toEqual([]);
    feed(receiver, frames[3]!);
    expect(errorOf(events)).toMatchObject({ closeCode: 1009, code: 'WS_ERR_TOO_MANY_FRAGMENTS' });
  });

  it('counts fragments per message, not per connection', () => {
    const { receiver, events } = makeReceiver({ maxFragments: 2 });
    for (let i = 0; i < 5; i++) {
      feed(
        receiver,
        Buffer.concat([
          masked({ opcode: Opcode.Text, fin: false, payload: 'a' }),
          masked({ opcode: Opcode.Continuation, payload: 'b' }),
        ]),
      );
    }
    expect(events.filter((event) => event.type === 'message')).toHaveLength(5);
  });

  it('refuses an oversized message from its header, before its payload arrives', () => {
    const { receiver, events } = makeReceiver({ maxPayload: 1024 });
    // Only the header of a 1 GiB frame: the limit must trigger without the bytes.
    receiver.write(
      masked({ opcode: Opcode.Binary, lengthBits: 64, declaredLength: 2 ** 30 }).subarray(0, 14),
    );
    expect(errorOf(events).closeCode).toBe(1009);
    expect(receiver.bufferedBytes).toBe(0);
  });

  it('fails invalid UTF-8 at the first bad fragment, before the message ends', () => {
    const { receiver, events } = makeReceiver();
    receiver.write(masked({ opcode: Opcode.Text, fin: false, payload: 'valid start ' }));
    expect(events).toEqual([]);
    receiver.write(
      masked({ opcode: Opcode.Continuation, fin: false, payload: Buffer.from([0xce, 0xba, 0xff]) }),
    );
    expect(errorOf(events).closeCode).toBe(1007);
  });

  it('fails invalid UTF-8 in the middle of a frame whose rest has not arrived', () => {
    const { receiver, events } = makeReceiver();
    const frame = masked({
      opcode: Opcode.Text,
      payload: Buffer.concat([Buffer.from('ok '), Buffer.from([0xc0]), Buffer.alloc(1000, 0x61)]),
    });
    receiver.write(frame.subarray(0, 20));
    expect(errorOf(events).closeCode).toBe(1007);
  });

  it('accepts invalid UTF-8 when validation is skipped', () => {
    const { receiver, events } = makeReceiver({ skipUTF8Validation: true });
    feed(receiver, masked({ opcode: Opcode.Text, payload: Buffer.from([0xff]) }));
    expect(events[0]).toMatchObject({ type: 'message' });
  });

  it('ignores bytes after an error', () => {
    const { receiver, events } = makeReceiver();
    feed(receiver, rawFrame({ opcode: Opcode.Text, payload: 'unmasked' }));
    feed(receiver, masked({ opcode: Opcode.Text, payload: 'after' }));
    expect(events).toHaveLength(1);
  });
});
