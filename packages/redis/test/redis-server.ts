// A real redis-server for the tests: found on this machine (never downloaded), started on a free
// port of 127.0.0.1 with no persistence and a temp dir, killed by PID afterwards.
//
// Without the binary the Redis tests are skipped with a loud message, except under CI (the
// CI variable set), where a missing redis-server fails the run: CI must test the adapter.

import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { within } from './helpers.js';

const INSTALL_HINT = 'apt-get install redis-server';

/** The redis-server executable: $REDIS_SERVER, else the first one on PATH or in the sbin dirs. */
function findRedisServer(): string | null {
  const explicit = process.env.REDIS_SERVER;
  const dirs = [
    ...(process.env.PATH ?? '').split(delimiter),
    '/usr/local/sbin',
    '/usr/local/bin',
    '/usr/sbin',
    '/usr/bin',
  ].filter((dir) => dir !== '');
  const candidates = explicit ? [explicit] : dirs.map((dir) => join(dir, 'redis-server'));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

function runningInCi(): boolean {
  const ci = process.env.CI;
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
}

/** Null when there is no redis-server: the caller skips its Redis tests. */
export const redisServerBinary: string | null = findRedisServer();

if (redisServerBinary === null) {
  const banner = [
    '',
    '#'.repeat(78),
    '#  @weft/redis: NO redis-server BINARY FOUND (looked on PATH and in /usr/sbin,',
    '#  /usr/local/sbin; or set REDIS_SERVER=/path/to/redis-server).',
    `#  Install it to run these tests:   ${INSTALL_HINT}`,
    runningInCi()
      ? '#  CI is set: FAILING instead of skipping.'
      : '#  The tests that need Redis are SKIPPED.',
    '#'.repeat(78),
    '',
  ].join('\n');
  if (runningInCi()) throw new Error(banner);
  console.warn(banner);
}

/** Every server started here and not yet stopped: killed on exit if a test forgot. */
const live = new Set<RedisServer>();
process.once('exit', () => {
  for (const server of live) server.killNow();
});

/** A redis-server child process on 127.0.0.1 that can be killed and started again on its port. */
export class RedisServer {
  readonly port: number;
  readonly dir: string;
  #child: ChildProcess | null = null;
  #exited: Promise<void> = Promise.resolve();
  #output = '';

  private constructor(port: number, dir: string) {
    this.port = port;
    this.dir = dir;
  }

  /** Starts a server on a free port (retrying if another process takes the port first). */
  static async start(): Promise<RedisServer> {
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const server = new RedisServer(await freePort(), mkdtempSync(join(tmpdir(), 'weft-redis-')));
      try {
        await server.restart();
        return server;
      } catch (error) {
        lastError = error;
        await server.destroy();
      }
    }
    throw lastError;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child !== null;
  }

  /** (Re)starts the process on this server's port; resolves once it answers PING. */
  async restart(): Promise<void> {
    if (this.#child !== null) throw new Error('redis-server is already running');
    if (redisServerBinary === null) throw new Error(`no redis-server: ${INSTALL_HINT}`);
    this.#output = '';
    const child = spawn(
      redisServerBinary,
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        this.dir,
        '--daemonize',
        'no',
        '--loglevel',
        'warning',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.#child = child;
    live.add(this);
    const keep = (chunk: Buffer): void => {
      this.#output = (this.#output + chunk.toString()).slice(-4000);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    this.#exited = new Promise<void>((resolve) => {
      child.once('exit', () => {
        if (this.#child === child) this.#child = null;
        resolve();
      });
      child.once('error', () => resolve());
    });
    const failed = this.#exited.then(() => {
      throw new Error(`redis-server exited on start (port ${this.port}):\n${this.#output}`);
    });
    try {
      await within(
        Promise.race([waitForPong(this.port, () => this.#child !== child), failed]),
        `redis-server on port ${this.port} to answer PING`,
        10_000,
      );
    } catch (error) {
      await this.kill();
      throw error;
    } finally {
      failed.catch(() => {});
    }
  }

  /** SIGKILL by PID (no shutdown, no save), resolving once the process is gone. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (child === null) return;
    this.killNow();
    await within(this.#exited, `redis-server (pid ${child.pid}) to exit`, 10_000);
    this.#child = null;
    live.delete(this);
  }

  /** Synchronous kill, for the exit hook. */
  killNow(): void {
    const pid = this.#child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }

  /** Kills the process and removes its temp dir. */
  async destroy(): Promise<void> {
    await this.kill();
    live.delete(this);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => {
        if (address === null || typeof address === 'string') reject(new Error('no port'));
        else resolve(address.port);
      });
    });
  });
}

/** Polls with a raw PING until +PONG (or `stop()`); `within` bounds it. */
async function waitForPong(port: number, stop: () => boolean): Promise<void> {
  while (!stop()) {
    if (await ping(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let reply = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}
