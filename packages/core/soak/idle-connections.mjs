#!/usr/bin/env node
/**
 * Soak: many idle WebSocket connections against one weft server.
 *
 *   npm run build -w @weft/core
 *   node packages/core/soak/idle-connections.mjs [--connections 10000] [--hold 15] [--sources n]
 *
 * A weft server runs in this process; a child process opens `--connections` idle weft clients
 * to it over 127.0.0.1, holds them for `--hold` seconds (past the server's 10 s handshake
 * timeout, so a timer that wrongly reached upgraded sockets would show), then closes them all
 * with the closing handshake. Reported: RSS and heap per connection on both sides (after a
 * full GC). Exits 0 when every connection opened, stayed open and closed with 1000.
 *
 * File descriptors: each process holds one socket per connection, so the limit must allow
 * about the connection count plus a margin in each process: `ulimit -n` must allow ~2x the
 * connection count overall. Node raises its own soft limit to the hard limit at startup (the
 * most any unprivileged process can do), so the hard limit (`ulimit -Hn`) is what counts; the
 * script reads the effective limit from /proc/self/limits (or `ulimit` through /bin/sh) and,
 * when it is too low, stops with exit code 2 and says what to run. Ephemeral ports: each connection takes one on the client side; when the
 * range (/proc/sys/net/ipv4/ip_local_port_range) is short, source addresses 127.0.0.2, .3 ...
 * are used as well (Linux routes all of 127/8 to loopback); `--sources n` forces n of them.
 */
import { execFileSync, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';

const SCRIPT = fileURLToPath(import.meta.url);
const FD_MARGIN = 512;

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  if (at === -1) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`--${name} needs a positive number`);
    process.exit(2);
  }
  return value;
}

const CONNECTIONS = Math.floor(option('connections', 10_000));
const HOLD_SECONDS = option('hold', 15);
/** Handshakes in flight at once: keeps the listen backlog from overflowing. */
const CONCURRENCY = 250;

async function loadWeft() {
  try {
    return await import('@weft/core');
  } catch (error) {
    console.error(
      `Cannot load the built @weft/core (${error.message}).\nBuild it first: npm run build -w @weft/core`,
    );
    process.exit(2);
  }
}

/** A gc function: the one --expose-gc gives, or one fetched through V8 flags. */
function getGc() {
  if (typeof globalThis.gc === 'function') return globalThis.gc;
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc');
}

async function memory() {
  const gc = getGc();
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  const { rss, heapUsed, external } = process.memoryUsage();
  return { rss, heapUsed, external };
}

const mb = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const kb = (bytes) => `${(bytes / 1024).toFixed(2)} KB`;

// ---- file descriptor limit --------------------------------------------------------------------

/** [soft, hard] of RLIMIT_NOFILE, from /proc or from the shell's ulimit. */
function fdLimits() {
  const parse = (value) => (value === 'unlimited' ? Number.POSITIVE_INFINITY : Number(value));
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const [soft, hard] = line.trim().split(/\s+/).slice(3, 5);
    return [parse(soft), parse(hard)];
  } catch {
    const soft = execFileSync('/bin/sh', ['-c', 'ulimit -Sn'], { encoding: 'utf8' }).trim();
    const hard = execFileSync('/bin/sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim();
    return [parse(soft), parse(hard)];
  }
}

/**
 * Makes sure this process may open enough sockets. Node itself raises its soft RLIMIT_NOFILE
 * to the hard limit at startup (so `ulimit -Sn` does not matter, `ulimit -Hn` does); what
 * /proc/self/limits shows here is already the raised value. A process cannot go past its hard
 * limit without privileges, so when that is too low the script stops and says what to run.
 */
function ensureFdLimit() {
  const needed = CONNECTIONS + FD_MARGIN;
  const [soft, hard] = fdLimits();
  if (soft >= needed) return `open files limit ${soft} (needs ${needed} per process)`;
  console.error(
    `File descriptor limit too low: this process may open ${soft} files (hard limit ${hard}), and ` +
      `${CONNECTIONS} connections need about ${needed} in each of the two processes ` +
      `(~${2 * CONNECTIONS + FD_MARGIN} if both ends shared one).\n` +
      'Raise the hard limit and run again, e.g. as root:\n' +
      `  ulimit -Hn ${2 * CONNECTIONS + FD_MARGIN} && ulimit -n ${2 * CONNECTIONS + FD_MARGIN} && node ${process.argv[1]} ...\n` +
      '(for a normal user: "nofile" in /etc/security/limits.conf, or LimitNOFILE= in a systemd unit, then log in again)\n' +
      `or run fewer: --connections ${Math.max(100, Math.floor((soft - FD_MARGIN) / 100) * 100)}`,
  );
  process.exit(2);
}

/** Source addresses so that no address needs more than half the ephemeral port range. */
function sourceAddresses() {
  let range = 28_232; // Linux default 32768-60999
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    range = high - low + 1;
  } catch {
    // not Linux: keep the default
  }
  const count = Math.min(
    254,
    option('sources', Math.max(1, Math.ceil(CONNECTIONS / Math.floor(range / 2)))),
  );
  if (count > 1 && process.platform !== 'linux') {
    console.error(
      `${CONNECTIONS} connections need ${count} source addresses (ephemeral port range ${range}); ` +
        'only Linux routes all of 127/8 to loopback. Run fewer connections.',
    );
    process.exit(2);
  }
  return { range, addresses: Array.from({ length: count }, (_, i) => `127.0.0.${i + 1}`) };
}

// ---- the client process -------------------------------------------------------------------------

async function clientProcess() {
  const { WebSocket } = await loadWeft();
  const clients = [];
  const closeCodes = new Map();
  let unexpectedCloses = 0;
  let holding = true;

  process.on('message', async (message) => {
    if (message.cmd === 'open') {
      const before = await memory();
      const { port, addresses, count } = message;
      const started = performance.now();
      let failed = 0;
      let firstError = '';
      for (let start = 0; start < count; start += CONCURRENCY) {
        const batch = [];
        for (let i = start; i < Math.min(start + CONCURRENCY, count); i++) {
          batch.push(
            new Promise((resolve) => {
              const ws = new WebSocket(`ws://127.0.0.1:${port}`, {
                perMessageDeflate: false,
                localAddress: addresses[i % addresses.length],
              });
              ws.on('error', (error) => {
                firstError ||= error.message;
              });
              let wasOpen = false;
              ws.once('open', () => {
                wasOpen = true;
                clients.push(ws);
                resolve();
              });
              ws.once('close', (code) => {
                closeCodes.set(code, (closeCodes.get(code) ?? 0) + 1);
                if (wasOpen) {
                  if (holding) unexpectedCloses++;
                  return;
                }
                failed++;
                resolve();
              });
            }),
          );
        }
        await Promise.all(batch);
        if ((start + CONCURRENCY) % 2000 === 0)
          process.send({
            type: 'progress',
            opened: clients.length,
            seconds: (performance.now() - started) / 1000,
          });
      }
      const after = await memory();
      process.send({ type: 'opened', opened: clients.length, failed, firstError, before, after });
    } else if (message.cmd === 'status') {
      process.send({
        type: 'status',
        open: clients.filter((ws) => ws.readyState === WebSocket.OPEN).length,
        unexpectedCloses,
      });
    } else if (message.cmd === 'close') {
      holding = false;
      await Promise.all(
        clients.map(
          (ws) =>
            new Promise((resolve) => {
              if (ws.readyState === WebSocket.CLOSED) return resolve();
              ws.once('close', resolve);
              ws.close(1000, 'soak over');
            }),
        ),
      );
      process.send({ type: 'closed', codes: Object.fromEntries(closeCodes) }, () =>
        process.exit(0),
      );
    }
  });
  process.send({ type: 'ready' });
}

// ---- the server process -------------------------------------------------------------------------

function nextMessage(child, type, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no '${type}' from the client process in ${ms / 1000} s`)),
      ms,
    );
    const onMessage = (message) => {
      if (message.type === 'progress') {
        console.log(`  ... ${message.opened} open after ${message.seconds.toFixed(1)} s`);
        return;
      }
      if (message.type !== type) return;
      clearTimeout(timer);
      child.off('message', onMessage);
      resolve(message);
    };
    child.on('message', onMessage);
  });
}

async function serverProcess() {
  const limit = ensureFdLimit();
  const { range, addresses } = sourceAddresses();
  const { WebSocketServer } = await loadWeft();

  console.log(
    `weft idle-connection soak: ${CONNECTIONS} connections, hold ${HOLD_SECONDS} s, node ${process.version}, ${limit}, ` +
      `ephemeral ports ${range}, source addresses ${addresses.join(', ')}`,
  );
  const wss = new WebSocketServer({
    port: 0,
    host: '127.0.0.1',
    backlog: 4096,
    perMessageDeflate: false,
  });
  await new Promise((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  const { port } = wss.address();
  let serverCloses = 0;
  const serverCodes = new Map();
  wss.on('connection', (ws) => {
    ws.on('error', () => {});
    ws.on('close', (code) => {
      serverCloses++;
      serverCodes.set(code, (serverCodes.get(code) ?? 0) + 1);
    });
  });

  const child = fork(SCRIPT, ['--role', 'client', ...process.argv.slice(2)], { stdio: 'inherit' });
  let childExited = false;
  child.on('exit', () => {
    childExited = true;
  });
  const watchdog = setTimeout(
    () => {
      console.error('FAIL: the soak did not finish within its time limit');
      child.kill();
      process.exit(1);
    },
    (HOLD_SECONDS + 120 + CONNECTIONS / 100) * 1000,
  );

  try {
    await nextMessage(child, 'ready', 30_000);
    const serverBefore = await memory();
    const started = performance.now();
    child.send({ cmd: 'open', port, addresses, count: CONNECTIONS });
    const opened = await nextMessage(child, 'opened', (60 + CONNECTIONS / 50) * 1000);
    const openSeconds = (performance.now() - started) / 1000;
    const serverAfter = await memory();
    const n = opened.opened;
    console.log(
      `opened ${n}/${CONNECTIONS} in ${openSeconds.toFixed(1)} s (${opened.failed} failed${opened.firstError ? `, first error: ${opened.firstError}` : ''}); server clients.size ${wss.clients.size}`,
    );
    const per = (before, after) =>
      n === 0
        ? 'n/a'
        : `RSS ${mb(before.rss)} -> ${mb(after.rss)} (${kb((after.rss - before.rss) / n)}/conn), ` +
          `heap ${mb(before.heapUsed)} -> ${mb(after.heapUsed)} (${kb((after.heapUsed - before.heapUsed) / n)}/conn), ` +
          `external ${kb((after.external - before.external) / n)}/conn`;
    console.log(`server process: ${per(serverBefore, serverAfter)}`);
    console.log(`client process: ${per(opened.before, opened.after)}`);

    console.log(`holding ${HOLD_SECONDS} s ...`);
    await new Promise((resolve) => setTimeout(resolve, HOLD_SECONDS * 1000));
    child.send({ cmd: 'status' });
    const status = await nextMessage(child, 'status', 30_000);
    const serverClosesWhileIdle = serverCloses;
    const serverHeld = await memory();
    console.log(
      `after hold: client open ${status.open}, server clients.size ${wss.clients.size}, ` +
        `unexpected closes: client ${status.unexpectedCloses}, server ${serverClosesWhileIdle}; server RSS ${mb(serverHeld.rss)}, heap ${mb(serverHeld.heapUsed)}`,
    );

    const closing = performance.now();
    child.send({ cmd: 'close' });
    const closed = await nextMessage(child, 'closed', (60 + CONNECTIONS / 50) * 1000);
    const deadline = Date.now() + 30_000;
    while (wss.clients.size > 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    await new Promise((resolve) => wss.close(() => resolve()));
    const serverEnd = await memory();
    console.log(
      `closed all in ${((performance.now() - closing) / 1000).toFixed(1)} s: client close codes ${JSON.stringify(closed.codes)}, ` +
        `server close codes ${JSON.stringify(Object.fromEntries(serverCodes))}, server clients.size ${wss.clients.size}; ` +
        `server RSS ${mb(serverEnd.rss)}, heap ${mb(serverEnd.heapUsed)}`,
    );

    const problems = [];
    if (n !== CONNECTIONS) problems.push(`${CONNECTIONS - n} connections did not open`);
    if (status.open !== n || status.unexpectedCloses > 0 || serverClosesWhileIdle > 0)
      problems.push('connections dropped while idle');
    if (JSON.stringify(closed.codes) !== JSON.stringify({ 1000: n }))
      problems.push('client close codes');
    if (JSON.stringify(Object.fromEntries(serverCodes)) !== JSON.stringify({ 1000: n }))
      problems.push('server close codes');
    if (wss.clients.size !== 0) problems.push('server clients not empty');
    clearTimeout(watchdog);
    if (!childExited) await new Promise((resolve) => child.once('exit', resolve));
    if (problems.length > 0) {
      console.error(`FAIL: ${problems.join('; ')}`);
      process.exit(1);
    }
    console.log('OK');
    process.exit(0);
  } catch (error) {
    console.error(`FAIL: ${error.message}`);
    child.kill();
    process.exit(1);
  }
}

if (
  process.argv.includes('--role') &&
  process.argv[process.argv.indexOf('--role') + 1] === 'client'
) {
  await clientProcess();
} else {
  await serverProcess();
}
