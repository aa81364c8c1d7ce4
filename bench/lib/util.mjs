/** Small helpers shared by the orchestrator, the server and the load generator. */

export const HOST = '127.0.0.1';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function median(values) {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** The q-quantile (0..1) of already sorted numbers, nearest rank. */
export function quantile(sorted, q) {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank];
}

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32). */
export function prng(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `count` distinct JSON documents of exactly `size` bytes (ASCII), made of order-like records
 * with random numbers and words: compressible like real API payloads, but not identical to
 * each other (a repeated message would deflate to almost nothing with context takeover).
 */
export function jsonDocuments(count, size, seed = 1) {
  const random = prng(seed);
  const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel'];
  const pick = () => words[Math.floor(random() * words.length)];
  const documents = [];
  for (let d = 0; d < count; d++) {
    const doc = { id: d, generated: 1_700_000_000_000 + d, items: [], pad: '' };
    while (JSON.stringify(doc).length < size - 160) {
      doc.items.push({
        sku: `${pick()}-${Math.floor(random() * 1e6)}`,
        qty: Math.floor(random() * 100),
        price: Math.round(random() * 1e5) / 100,
        tags: [pick(), pick()],
        ok: random() < 0.5,
      });
    }
    const short = size - JSON.stringify(doc).length;
    let pad = '';
    while (pad.length < short) pad += pick();
    doc.pad = pad.slice(0, short);
    const text = JSON.stringify(doc);
    if (text.length !== size) throw new Error(`json document of ${text.length} bytes`);
    documents.push(Buffer.from(text));
  }
  return documents;
}

/**
 * Opens `count` connections with at most `concurrency` handshakes in flight, spreading them
 * over the `sources` addresses (127.0.0.1, .2, ...) when there is more than one.
 */
export async function openMany(connect, count, { concurrency = 100, sources = 1, options = {} }) {
  const sockets = new Array(count);
  let next = 0;
  async function worker() {
    while (next < count) {
      const index = next++;
      const localAddress = sources > 1 ? `127.0.0.${1 + (index % sources)}` : undefined;
      sockets[index] = await connect({ ...options, localAddress });
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return sockets;
}

/** Closes a socket (closing handshake) and resolves when it is closed, or after `timeoutMs`. */
export function closeAndWait(socket, timeoutMs = 2000) {
  return new Promise((resolve) => {
    if (socket.readyState === 3) {
      resolve();
      return;
    }
    const timer = setTimeout(() => {
      socket.terminate();
      resolve();
    }, timeoutMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.close();
  });
}

/** Resolves once `predicate()` holds (polled every 5 ms), or after `timeoutMs`. */
export async function until(predicate, timeoutMs) {
  const end = Date.now() + timeoutMs;
  while (!predicate() && Date.now() < end) await sleep(5);
  return predicate();
}
