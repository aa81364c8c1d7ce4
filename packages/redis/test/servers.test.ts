// Real WebSocketServers (built @weft/core) with RedisAdapter from src/, in this process: the
// adapter's types and behaviour against the server, without the child-process fixture.

import type { AddressInfo } from 'node:net';
import { WebSocketServer } from '@weft/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { RedisAdapter } from '../src/index.js';
import { nextEvent, waitUntil, within } from './helpers.js';
import { RedisServer, redisServerBinary } from './redis-server.js';

describe.skipIf(redisServerBinary === null)('WebSocketServer({ pubsub: RedisAdapter })', () => {
  let redis: RedisServer;
  const servers: WebSocketServer[] = [];
  const adapters: RedisAdapter[] = [];
  const sockets: WebSocket[] = [];

  beforeAll(async () => {
    redis = await RedisServer.start();
  });

  afterAll(async () => {
    await redis?.destroy();
  });

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.terminate();
    await Promise.all(servers.splice(0).map((wss) => wss.close({ timeout: 1000 })));
    await Promise.all(adapters.splice(0).map((adapter) => adapter.close()));
  });

  async function node(prefix: string): Promise<{ wss: WebSocketServer; url: string }> {
    const adapter = new RedisAdapter({ url: redis.url, prefix });
    adapters.push(adapter);
    const ready = nextEvent(adapter, 'ready');
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', pubsub: adapter });
    servers.push(wss);
    wss.on('connection', (ws) => ws.subscribe('room'));
    await Promise.all([nextEvent(wss, 'listening'), ready]);
    return { wss, url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}` };
  }

  async function client(url: string): Promise<string[]> {
    const socket = new WebSocket(url);
    sockets.push(socket);
    const got: string[] = [];
    socket.on('message', (data) => got.push(String(data)));
    await within(
      new Promise((resolve, reject) => {
        socket.once('open', resolve);
        socket.once('error', reject);
      }),
      'client to open',
    );
    return got;
  }

  it('publish on one server reaches the other server’s subscribers once', async () => {
    const one = await node('srv:');
    const two = await node('srv:');
    const onOne = await client(one.url);
    const onTwo = await client(two.url);
    await waitUntil(
      () => one.wss.subscriberCount('room') === 1 && two.wss.subscriberCount('room') === 1,
      'both subscribed',
    );
    await one.wss.publish('room', 'from one');
    await two.wss.publish('room', 'from two');
    await one.wss.publish('room', 'fence one');
    await two.wss.publish('room', 'fence two');
    await waitUntil(
      () => [onOne, onTwo].every((got) => got.includes('fence one') && got.includes('fence two')),
      'the fences',
    );
    for (const got of [onOne, onTwo]) {
      expect([...got].sort()).toEqual(['fence one', 'fence two', 'from one', 'from two']);
    }
  });
});
