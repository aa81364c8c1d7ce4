// Unit tests of the small pieces: route names, the in-memory socket pair behind
// inject(), and the built package's ESM and CommonJS entry points.

import { once } from 'node:events';
import { createRequire } from 'node:module';
import { describe, expect, it, vi } from 'vitest';
import { markWebSocketRoute, patchLayerClass } from '../src/layers.js';
import { flattenPaths, normalizeRoutePath, routeName } from '../src/route-name.js';
import { SocketEnd } from '../src/socket-pair.js';
import { within } from './helpers.js';

describe('route names', () => {
  it('drop the query string and trailing slashes of a path', () => {
    expect(normalizeRoutePath('/chat/')).toBe('/chat');
    expect(normalizeRoutePath('/chat?x=1')).toBe('/chat');
    expect(normalizeRoutePath('/')).toBe('/');
    expect(normalizeRoutePath('')).toBe('/');
  });

  it('put the mount path before the declared path', () => {
    expect(routeName('', '/chat/')).toBe('/chat');
    expect(routeName('/api', '/feed')).toBe('/api/feed');
    expect(routeName('/api', '/')).toBe('/api');
    expect(routeName('', '/')).toBe('/');
  });

  it('keep a regular expression as written, after the mount path', () => {
    expect(routeName('', /^\/chat\/?$/i)).toBe('/^\\/chat\\/?$/i');
    expect(routeName('/api', /^\/x$/)).toBe('/api/^\\/x$/');
  });

  it('flatten nested path arrays', () => {
    const re = /x/;
    expect(flattenPaths(['/a', ['/b', [re]]])).toEqual(['/a', '/b', re]);
    expect(flattenPaths('/a')).toEqual(['/a']);
  });
});

describe('router Layer patch', () => {
  /** A stand-in for Express 5's Layer class, recording which handlers it was asked to run. */
  function layerClass() {
    const ran: string[] = [];
    class Layer {
      constructor(
        readonly handle: (...args: unknown[]) => void,
        readonly method?: string,
      ) {}
      handleRequest(_req: unknown, _res: unknown, _next: () => void): void {
        ran.push(`request ${this.handle.name}`);
      }
      handleError(_error: unknown, _req: unknown, _res: unknown, _next: () => void): void {
        ran.push(`error ${this.handle.name}`);
      }
    }
    return { Layer, ran };
  }
  // A request marked as an upgrade, as PendingUpgrade.dispatch marks it.
  const upgrade = Object.defineProperty({}, Symbol.for('weft.express.upgrade'), { value: {} });

  it('skips GET route handlers for upgrades only, and only once patched', () => {
    const { Layer, ran } = layerClass();
    patchLayerClass(Layer.prototype);
    patchLayerClass(Layer.prototype);
    const next = vi.fn();
    const page = new Layer(function page() {}, 'get');
    const middleware = new Layer(function middleware() {});
    const socketRoute = new Layer(
      markWebSocketRoute(function socketRoute() {}),
      'get',
    );
    for (const layer of [page, middleware, socketRoute]) {
      layer.handleRequest(upgrade, {}, next);
      layer.handleRequest({}, {}, next);
    }
    page.handleError(new Error('x'), upgrade, {}, next);
    expect(ran).toEqual([
      'request page',
      'request middleware',
      'request middleware',
      'request socketRoute',
      'request socketRoute',
    ]);
    expect(next.mock.calls).toEqual([[], [expect.any(Error)]]);
  });

  it('refuses a Layer class it does not know', () => {
    expect(() => patchLayerClass({ dispatch() {} })).toThrow(/unsupported Express router/);
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
      expect(typeof api.OriginNotAllowedError).toBe('function');
      expect(typeof api.InjectRefusedError).toBe('function');
    }
    expect(esm.default).toBe(esm.weft);
  });
});
