// Unit tests of the small pieces: the internal URL marker, the in-memory socket pair behind
// inject(), and the built package's ESM and CommonJS entry points.

import { once } from 'node:events';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import {
  fromInternalUrl,
  internalRoutePath,
  normalizeRoutePath,
  toInternalUrl,
  trailingSlashes,
} from '../src/internal-url.js';
import { SocketEnd } from '../src/socket-pair.js';
import { within } from './helpers.js';

describe('internal URL marker', () => {
  it('goes before the query string, without trailing slashes', () => {
    expect(toInternalUrl('/chat')).toBe('/chat/.websocket');
    expect(toInternalUrl('/chat/?a=1&b=/x/')).toBe('/chat/.websocket?a=1&b=/x/');
    expect(toInternalUrl('/')).toBe('/.websocket');
    expect(toInternalUrl('/?q')).toBe('/.websocket?q');
    expect(internalRoutePath('/rooms/:room/')).toBe('/rooms/:room/.websocket');
    expect(internalRoutePath('/')).toBe('/.websocket');
  });

  it('comes off again with the trailing slashes the client sent', () => {
    for (const url of ['/chat', '/chat/', '/', '/a/b?x=1', '/a/?x=/y/', '//']) {
      expect(fromInternalUrl(toInternalUrl(url), trailingSlashes(url))).toBe(url);
    }
    // Inside a router mounted at the requested path, the router's URL is the marker alone.
    expect(fromInternalUrl('/.websocket?x=1')).toBe('/?x=1');
    expect(fromInternalUrl('/no-marker?x=1')).toBe('/no-marker?x=1');
  });

  it('names routes without query or trailing slash', () => {
    expect(normalizeRoutePath('/chat/')).toBe('/chat');
    expect(normalizeRoutePath('/chat?x=1')).toBe('/chat');
    expect(normalizeRoutePath('/')).toBe('/');
    expect(normalizeRoutePath('')).toBe('/');
  });
});

describe('SocketEnd pair', () => {
  it('carries bytes both ways, in order', async () => {
    const [a, b] = SocketEnd.pair();
    const received: string[] = [];
    b.on('data', (chunk: Buffer) => received.push(String(chunk)));
    a.resume();
    // Without half-open support, the peer ends its side at end-of-stream and both close.
    const bothClosed = within(Promise.all([once(a, 'close'), once(b, 'close')]), 'both to close');
    a.write('one');
    a.write('two');
    a.end('three');
    await bothClosed;
    expect(received.join('')).toBe('onetwothree');
  });

  it('applies backpressure when the reader does not read', async () => {
    const [a, b] = SocketEnd.pair();
    const big = Buffer.alloc(64 * 1024);
    let writes = 0;
    while (a.write(big) && writes < 1000) writes++;
    expect(writes).toBeLessThan(1000);
    const drained = within(once(a, 'drain'), 'drain once the reader reads');
    b.resume();
    await drained;
    a.destroy();
    await within(once(b, 'close'), 'the reader to close');
  });

  it('gives the peer end-of-stream when one end is destroyed, and EPIPE to late writes', async () => {
    const [a, b] = SocketEnd.pair();
    const ended = within(once(b, 'end'), 'end of stream on the peer');
    b.resume();
    a.destroy();
    await ended;

    const [writer, reader] = SocketEnd.pair();
    reader.destroy();
    const failed = within(once(writer, 'error'), 'EPIPE');
    writer.write('too late');
    const [error] = (await failed) as [NodeJS.ErrnoException];
    expect(error.code).toBe('EPIPE');
  });

  it('answers the socket calls HTTP code makes', () => {
    const [a] = SocketEnd.pair();
    expect(a.remoteAddress).toBe('127.0.0.1');
    expect(a.setNoDelay()).toBe(a);
    expect(a.setTimeout()).toBe(a);
    expect(a.setKeepAlive()).toBe(a);
    a.destroy();
  });
});

describe('built package', () => {
  const require = createRequire(import.meta.url);

  it('loads as ESM and as CommonJS with the same API', async () => {
    // By name, so this checks the package's exports map and built files; typed from the
    // sources, so typechecking never depends on a build.
    const name = '@weft/express';
    const esm = (await import(name)) as typeof import('../src/index.js');
    const cjs = require(name) as typeof esm;
    for (const api of [esm, cjs]) {
      expect(typeof api.weft).toBe('function');
      expect(typeof api.isWebSocketRequest).toBe('function');
      expect(api.WEBSOCKET_SUFFIX).toBe('/.websocket');
      expect(typeof api.InjectRefusedError).toBe('function');
    }
    expect(esm.default).toBe(esm.weft);
  });
});
