// The EventTarget-style API (onopen/onmessage/onclose/onerror,
// addEventListener/removeEventListener) on a weft client talking to ws.

import { WebSocket } from '@weft/core';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CLOSED,
  cleanup,
  deferred,
  OPEN,
  type Peer,
  startServer,
  track,
  unusedPort,
  WEFT_CLIENT,
  waitEvent,
} from './helpers.js';

afterEach(cleanup);

function expectCall<T>(what: string): { promise: Promise<T>; settle: (value: T) => void } {
  return deferred<T>(what);
}

/** A ws server and a weft client whose 'open' was observed through onopen. */
async function openWithOnopen(): Promise<{ client: WebSocket; serverSide: Peer }> {
  const { server, url } = await startServer(WEFT_CLIENT.server);
  const connection = waitEvent<[Peer]>(server, 'connection');
  const client = new WebSocket(url);
  track(client);
  const opened = expectCall<{ type: string; target: unknown; state: number }>('onopen');
  client.onopen = (event) => {
    opened.settle({ type: event.type, target: event.target, state: client.readyState });
  };
  const open = await opened.promise;
  expect(open).toEqual({ type: 'open', target: client, state: OPEN });
  const [serverSide] = await connection;
  return { client, serverSide };
}

describe('EventTarget API: weft client <-> ws server', () => {
  it('onopen fires with an open event', async () => {
    const { client } = await openWithOnopen();
    expect(typeof client.onopen).toBe('function');
  });

  it('onmessage gets a string for text and a Buffer for binary', async () => {
    const { client, serverSide } = await openWithOnopen();
    const received: Array<{ type: string; data: unknown }> = [];
    const done = expectCall<void>('two messages through onmessage');
    client.onmessage = (event) => {
      received.push({ type: event.type, data: event.data });
      if (received.length === 2) done.settle();
    };
    serverSide.send('text ✓');
    serverSide.send(Buffer.from([7, 8, 9]));
    await done.promise;
    expect(received[0]).toEqual({ type: 'message', data: 'text ✓' });
    expect(typeof received[0]!.data).toBe('string');
    expect(received[1]!.type).toBe('message');
    const binary = received[1]!.data;
    expect(Buffer.isBuffer(binary)).toBe(true);
    expect([...(binary as Buffer)]).toEqual([7, 8, 9]);
  });

  it("onmessage gets an ArrayBuffer with binaryType 'arraybuffer'", async () => {
    const { client, serverSide } = await openWithOnopen();
    client.binaryType = 'arraybuffer';
    const got = expectCall<unknown>('onmessage');
    client.onmessage = (event) => got.settle(event.data);
    serverSide.send(Buffer.from([1, 2]));
    const data = await got.promise;
    expect(data).toBeInstanceOf(ArrayBuffer);
    expect([...new Uint8Array(data as ArrayBuffer)]).toEqual([1, 2]);
  });

  it('onclose gets code, reason and wasClean: true on a clean close', async () => {
    const { client, serverSide } = await openWithOnopen();
    const closed = expectCall<{ code: number; reason: string; wasClean: boolean; type: string }>(
      'onclose',
    );
    client.onclose = (event) => {
      closed.settle({
        code: event.code,
        reason: event.reason,
        wasClean: event.wasClean,
        type: event.type,
      });
    };
    serverSide.close(4321, 'server says bye');
    expect(await closed.promise).toEqual({
      code: 4321,
      reason: 'server says bye',
      wasClean: true,
      type: 'close',
    });
    expect(client.readyState).toBe(CLOSED);
  });

  it('onclose gets 1006 and wasClean: false when the server terminates', async () => {
    const { client, serverSide } = await openWithOnopen();
    const closed = expectCall<{ code: number; reason: string; wasClean: boolean }>('onclose');
    client.onclose = (event) => {
      closed.settle({ code: event.code, reason: event.reason, wasClean: event.wasClean });
    };
    serverSide.terminate();
    expect(await closed.promise).toEqual({ code: 1006, reason: '', wasClean: false });
  });

  it('onerror then onclose when nothing is listening', async () => {
    const port = await unusedPort();
    const client = track(new WebSocket(`ws://127.0.0.1:${port}`));
    const events: string[] = [];
    const closed = expectCall<number>('onclose');
    client.onerror = (event) => {
      events.push(event.type);
    };
    client.onclose = (event) => {
      events.push(event.type);
      closed.settle(event.code);
    };
    expect(await closed.promise).toBe(1006);
    expect(events).toEqual(['error', 'close']);
  });

  it('setting onmessage to null stops delivery to it', async () => {
    const { client, serverSide } = await openWithOnopen();
    const viaHandler: unknown[] = [];
    client.onmessage = (event) => viaHandler.push(event.data);
    expect(client.onmessage).not.toBeNull();
    client.onmessage = null;
    expect(client.onmessage).toBeNull();
    const arrived = waitEvent(client, 'message');
    serverSide.send('ignored');
    await arrived;
    expect(viaHandler).toEqual([]);
  });

  it("addEventListener('message', fn, { once: true }) runs fn only once", async () => {
    const { client, serverSide } = await openWithOnopen();
    const once: unknown[] = [];
    const always: unknown[] = [];
    const done = expectCall<void>('two messages');
    client.addEventListener('message', (event) => once.push(event.data), { once: true });
    client.addEventListener('message', (event) => {
      always.push(event.data);
      if (always.length === 2) done.settle();
    });
    serverSide.send('first');
    serverSide.send('second');
    await done.promise;
    expect(once).toEqual(['first']);
    expect(always).toEqual(['first', 'second']);
  });

  it('removeEventListener removes a listener', async () => {
    const { client, serverSide } = await openWithOnopen();
    const removed: unknown[] = [];
    const kept: unknown[] = [];
    const done = expectCall<void>('one message');
    const listener = (event: { data: unknown }): void => {
      removed.push(event.data);
    };
    client.addEventListener('message', listener);
    client.addEventListener('message', (event) => {
      kept.push(event.data);
      done.settle();
    });
    client.removeEventListener('message', listener);
    serverSide.send('only to the kept listener');
    await done.promise;
    expect(removed).toEqual([]);
    expect(kept).toEqual(['only to the kept listener']);
  });

  it("addEventListener accepts a { handleEvent } object and 'close' events", async () => {
    const { client, serverSide } = await openWithOnopen();
    const closed = expectCall<{ code: number; reason: string }>('close listener');
    client.addEventListener('close', {
      handleEvent(event) {
        closed.settle({ code: event.code, reason: event.reason });
      },
    });
    serverSide.close(4000, 'object listener');
    expect(await closed.promise).toEqual({ code: 4000, reason: 'object listener' });
  });

  it("onmessage and on('message') both receive the same message", async () => {
    const { client, serverSide } = await openWithOnopen();
    const viaHandler = expectCall<unknown>('onmessage');
    client.onmessage = (event) => viaHandler.settle(event.data);
    const viaEmitter = waitEvent<[Buffer, boolean]>(client, 'message');
    serverSide.send('both');
    expect(await viaHandler.promise).toBe('both');
    const [data, isBinary] = await viaEmitter;
    expect(data.toString()).toBe('both');
    expect(isBinary).toBe(false);
  });
});
