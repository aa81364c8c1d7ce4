import { once } from 'node:events';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type * as core from '@weft/core';
import { describe, expect, it } from 'vitest';

// A CommonJS `ws` user writes `const WebSocket = require('ws')`; the same line with
// '@weft/core' must give the class, with the rest of the API hung on it.
const require = createRequire(import.meta.url);

describe('require("@weft/core")', () => {
  it('is the WebSocket class with Server, WebSocketServer and createWebSocketStream on it', async () => {
    const WebSocket = require('@weft/core') as typeof core.WebSocket & typeof core;
    expect(typeof WebSocket).toBe('function');
    expect(WebSocket.Server).toBe(WebSocket.WebSocketServer);
    expect(typeof WebSocket.createWebSocketStream).toBe('function');
    expect(WebSocket.OPEN).toBe(1);
    const wss = new WebSocket.Server({ port: 0, host: '127.0.0.1' });
    await once(wss, 'listening');
    wss.on('connection', (socket) => socket.send('from cjs'));
    const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
    const [data] = (await once(client, 'message')) as [Buffer];
    expect(data.toString()).toBe('from cjs');
    client.close();
    await once(client, 'close');
    await new Promise((resolve) => wss.close(resolve));
  });
});
