import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, closed, connect, nextMessage, refused, within } from './helpers.js';

// The example runs the built package, as a user would: `npm run build` comes first.
const SERVER = fileURLToPath(new URL('../../../examples/fastify-chat/server.js', import.meta.url));

let child: ChildProcess | null = null;
afterEach(async () => {
  await cleanup();
  if (child !== null && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  child = null;
});

/** Starts the example on a free port; resolves with its printed base URL. */
function startExample(): Promise<string> {
  const started = spawn(process.execPath, [SERVER], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child = started;
  return within(
    new Promise((resolve, reject) => {
      let output = '';
      started.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const match = /weft fastify chat: (http:\/\/\S+)/.exec(output);
        if (match?.[1] !== undefined) resolve(match[1]);
      });
      started.stderr?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
      });
      started.once('exit', (code) => reject(new Error(`the example exited (${code}): ${output}`)));
    }),
    'the example to print its URL',
  );
}

describe('examples/fastify-chat', () => {
  it('logs in over HTTP, chats in a room over WebSocket, and shuts down cleanly', async () => {
    const base = await startExample();
    const wsBase = base.replace('http:', 'ws:');

    expect((await fetch(base)).headers.get('content-type')).toMatch(/text\/html/);
    expect((await refused(`${wsBase}rooms/lobby`)).status).toBe(401);

    const login = await fetch(`${base}api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'ada' }),
    });
    expect(await login.json()).toEqual({ name: 'ada' });
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;

    const crossSite = await refused(`${wsBase}rooms/lobby`, {
      headers: { cookie },
      origin: 'https://evil.example',
    });
    expect(crossSite.status).toBe(403);

    const client = await connect(`${wsBase}rooms/lobby`, {
      headers: { cookie },
      origin: base.slice(0, -1),
    });
    expect(JSON.parse(await nextMessage(client))).toMatchObject({ type: 'joined', name: 'ada' });
    expect(JSON.parse(await nextMessage(client))).toEqual({
      type: 'presence',
      room: 'lobby',
      count: 1,
    });
    client.send(JSON.stringify({ text: 'hello' }));
    expect(JSON.parse(await nextMessage(client))).toMatchObject({
      type: 'said',
      name: 'ada',
      text: 'hello',
    });

    // The room name is checked by schema.params before the handshake.
    expect((await refused(`${wsBase}rooms/Not%20A%20Room`, { headers: { cookie } })).status).toBe(
      400,
    );

    // A second user in the room hears ada; someone in another room does not.
    const graceLogin = await fetch(`${base}api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'grace' }),
    });
    const graceCookie = graceLogin.headers.get('set-cookie')!.split(';')[0]!;
    const grace = await connect(`${wsBase}rooms/lobby`, { headers: { cookie: graceCookie } });
    const elsewhere = await connect(`${wsBase}rooms/dev`, { headers: { cookie: graceCookie } });
    expect(JSON.parse(await nextMessage(grace))).toMatchObject({ type: 'joined', name: 'grace' });
    expect(JSON.parse(await nextMessage(grace))).toMatchObject({ type: 'presence', count: 2 });
    expect(JSON.parse(await nextMessage(client))).toMatchObject({ type: 'joined', name: 'grace' });
    expect(JSON.parse(await nextMessage(client))).toMatchObject({ type: 'presence', count: 2 });
    expect(JSON.parse(await nextMessage(elsewhere))).toMatchObject({
      type: 'joined',
      name: 'grace',
    });
    expect(JSON.parse(await nextMessage(elsewhere))).toMatchObject({
      type: 'presence',
      room: 'dev',
    });
    client.send(JSON.stringify({ text: 'hi grace' }));
    for (const reader of [client, grace]) {
      expect(JSON.parse(await nextMessage(reader))).toMatchObject({
        type: 'said',
        name: 'ada',
        text: 'hi grace',
      });
    }
    // Had the lobby's line reached the dev room, it would come before this one.
    elsewhere.send(JSON.stringify({ text: 'dev only' }));
    expect(JSON.parse(await nextMessage(elsewhere))).toMatchObject({ text: 'dev only' });
    elsewhere.close();
    grace.close();
    expect(JSON.parse(await nextMessage(client))).toMatchObject({ type: 'left', name: 'grace' });
    expect(JSON.parse(await nextMessage(client))).toMatchObject({ type: 'presence', count: 1 });

    const closing = closed(client);
    const exited = new Promise<number | null>((resolve) => child?.once('exit', resolve));
    child?.kill('SIGTERM');
    expect(await closing).toEqual({ code: 1001, reason: 'Server shutting down' });
    expect(await within(exited, 'the example to exit')).toBe(0);
  });

  it('closes a socket with 1007 when a message breaks the schema', async () => {
    const base = await startExample();
    const login = await fetch(`${base}api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'grace' }),
    });
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const client = await connect(`${base.replace('http:', 'ws:')}rooms/dev`, {
      headers: { cookie },
    });
    client.send(JSON.stringify({ message: 'hi' }));
    expect(await closed(client)).toEqual({
      code: 1007,
      reason: "message must have required property 'text'",
    });
  });
});
