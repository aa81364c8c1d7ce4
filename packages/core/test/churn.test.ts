/**
 * Churn: thousands of connect / message / close cycles against one weft server, then
 * everything must be back where it started: no connection in `clients`, no zlib stream, no
 * socket or timer (`process.getActiveResourcesInfo()`), and the heap after a full GC close to
 * its size before. The numbers are printed on one line (they go into the issue).
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { type ClientOptions, PerMessageDeflate, WebSocket } from '../src/index.js';
import { closeAll, startServer, waitFor } from './net-helpers.js';

afterEach(closeAll);

const PLAIN_CYCLES = 2000;
const DEFLATE_CYCLES = 1000;
/** Connections in flight at once: enough to overlap handshakes, easy on a 2-core machine. */
const BATCH = 100;

// ---- measuring -------------------------------------------------------------------------------

const WATCHED = ['TCPSocketWrap', 'TCPConnectWrap', 'TCPServerWrap', 'Timeout'] as const;
type Counts = Record<(typeof WATCHED)[number], number>;

function resourceCounts(): Counts {
  const counts: Counts = { TCPSocketWrap: 0, TCPConnectWrap: 0, TCPServerWrap: 0, Timeout: 0 };
  for (const name of process.getActiveResourcesInfo()) {
    if (name in counts) counts[name as keyof Counts]++;
  }
  return counts;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The lowest count of each resource seen while sampling for up to `ms`, stopping early once
 * all are within `target`. Sampling rather than one look: vitest's runner keeps a Timeout
 * for up to 100 ms after each task update, and expect.poll would add one of its own.
 */
async function quietCounts(target: Counts | null, ms: number): Promise<Counts> {
  const deadline = Date.now() + ms;
  const lowest = resourceCounts();
  const within = (): boolean =>
    target !== null && WATCHED.every((name) => lowest[name] <= target[name]);
  while (!within() && Date.now() < deadline) {
    await sleep(10);
    const counts = resourceCounts();
    for (const name of WATCHED) lowest[name] = Math.min(lowest[name], counts[name]);
  }
  return lowest;
}

/** A gc function: the one --expose-gc gives, or one fetched through V8 flags and a new context. */
function getGc(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === 'function') return exposed;
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

/** Heap in use after full collections (a few, with turns of the event loop between them). */
async function settledHeap(gc: () => void): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  gc();
  return process.memoryUsage().heapUsed;
}

const MB = 1024 * 1024;
const mb = (bytes: number): string => (bytes / MB).toFixed(1);

/** Most zlib streams alive at once, seen after an echo: proves the deflate cycles used zlib. */
let peakStreams = 0;

// ---- one cycle -------------------------------------------------------------------------------

/** How a cycle ends: the closing handshake, or the client dropping TCP at once. */
type Ending = 'close' | 'terminate';

/** Connects, sends one message, waits for its echo, ends the connection and waits for 'close'. */
async function cycle(
  url: string,
  options: ClientOptions,
  n: number,
  ending: Ending,
): Promise<void> {
  const client = new WebSocket(url, options);
  try {
    await waitFor(client, 'open', 10_000);
    const text = `message ${n} ${'abcdefgh'.repeat(16 + (n % 64))}`;
    const echoed = waitFor<[Buffer]>(client, 'message', 10_000);
    client.send(text);
    const [data] = await echoed;
    if (data.toString() !== text) throw new Error(`echo ${n} differs`);
    if (options.perMessageDeflate && !client.extensions.startsWith('permessage-deflate'))
      throw new Error(`cycle ${n}: permessage-deflate was not negotiated`);
    peakStreams = Math.max(peakStreams, PerMessageDeflate.openStreams);
    const closed = waitFor<[number]>(client, 'close', 10_000);
    if (ending === 'close') client.close(1000, 'done');
    else client.terminate();
    const [code] = await closed;
    const expected = ending === 'close' ? 1000 : 1006;
    if (code !== expected) throw new Error(`cycle ${n} closed with ${code}, not ${expected}`);
  } finally {
    client.terminate(); // a no-op once closed; frees the socket when a step failed
  }
}

async function churn(url: string, options: ClientOptions, cycles: number, ending: Ending) {
  for (let start = 0; start < cycles; start += BATCH) {
    const batch: Array<Promise<void>> = [];
    for (let n = start; n < Math.min(start + BATCH, cycles); n++)
      batch.push(cycle(url, options, n, ending));
    await Promise.all(batch);
  }
}

/**
 * Runs the cycles against a plain and a permessage-deflate server, prints the before/after
 * numbers on one line and checks them.
 */
async function measureChurn(plainCycles: number, deflateCycles: number, ending: Ending) {
  const gc = getGc();
  const clean = await quietCounts(null, 150);
  const streamsBefore = PerMessageDeflate.openStreams;
  peakStreams = streamsBefore;

  const plain = await startServer();
  const deflate = await startServer({ perMessageDeflate: { threshold: 0 } });
  const serverCloses = new Map<number, number>();
  for (const { wss } of [plain, deflate]) {
    wss.on('connection', (ws) => {
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      ws.on('close', (code) => serverCloses.set(code, (serverCloses.get(code) ?? 0) + 1));
    });
  }
  const clients = (): number => plain.wss.clients.size + deflate.wss.clients.size;
  const plainOptions: ClientOptions = { perMessageDeflate: false };
  const deflateOptions: ClientOptions = { perMessageDeflate: { threshold: 0 } };

  // Warm-up: the first connections pay for lazy setup (JIT, the zlib job limiter...).
  await churn(plain.url, plainOptions, BATCH, ending);
  await churn(deflate.url, deflateOptions, BATCH, ending);
  await expect.poll(clients, { timeout: 10_000 }).toBe(0);
  const heapBefore = await settledHeap(gc);
  const rssBefore = process.memoryUsage().rss;

  const started = performance.now();
  await churn(plain.url, plainOptions, plainCycles, ending);
  await churn(deflate.url, deflateOptions, deflateCycles, ending);
  const seconds = (performance.now() - started) / 1000;

  await expect.poll(clients, { timeout: 10_000 }).toBe(0);
  const streamsAfter = PerMessageDeflate.openStreams;
  await closeAll(); // both servers
  const after = await quietCounts(clean, 5000);
  const heapAfter = await settledHeap(gc);
  const rssAfter = process.memoryUsage().rss;

  const total = 2 * BATCH + plainCycles + deflateCycles;
  const heapDelta = heapAfter - heapBefore;
  console.log(
    `churn (${ending}): ${plainCycles} plain + ${deflateCycles} deflate cycles (+${2 * BATCH} warm-up), ` +
      `batches of ${BATCH}, ${seconds.toFixed(1)} s | server closes ${JSON.stringify(Object.fromEntries(serverCloses))} | ` +
      `clients ${clients()} | zlib streams ${streamsBefore} -> ${streamsAfter} (peak ${peakStreams}) | ` +
      WATCHED.map((name) => `${name} ${clean[name]} -> ${after[name]}`).join(', ') +
      ` | heap after gc ${mb(heapBefore)} -> ${mb(heapAfter)} MB (${heapDelta >= 0 ? '+' : ''}${mb(heapDelta)})` +
      ` | rss ${mb(rssBefore)} -> ${mb(rssAfter)} MB`,
  );

  expect(Object.fromEntries(serverCloses)).toEqual({ [ending === 'close' ? 1000 : 1006]: total });
  expect(clients()).toBe(0);
  expect(peakStreams).toBeGreaterThan(streamsBefore);
  expect(streamsAfter).toBe(streamsBefore);
  for (const name of WATCHED) expect(after[name], name).toBeLessThanOrEqual(clean[name]);
  // Generous: a leak of a few KB per connection over thousands would be well past it.
  expect(heapDelta).toBeLessThan(8 * MB);
}

describe('connection churn', () => {
  it(`${PLAIN_CYCLES} plain and ${DEFLATE_CYCLES} permessage-deflate cycles with the closing handshake leave nothing behind`, async () => {
    await measureChurn(PLAIN_CYCLES, DEFLATE_CYCLES, 'close');
  }, 90_000);

  it('500 plain and 500 permessage-deflate cycles ended by terminate() leave nothing behind', async () => {
    await measureChurn(500, 500, 'terminate');
  }, 60_000);
});
