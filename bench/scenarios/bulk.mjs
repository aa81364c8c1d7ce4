/**
 * `bulk-64k` and `bulk-1m`: binary messages one way at a time over a few connections, as fast
 * as TCP takes them. Upload: the clients send, the server counts what it received. Download:
 * the server sends, counting what its send callbacks confirmed. Each sender keeps at most
 * `window` messages in flight per connection (the next goes when a send callback fires), so
 * user-space buffers stay bounded and the pipe stays full.
 */
import { randomBytes } from 'node:crypto';
import { openMany, until } from '../lib/util.mjs';
import { windowTiming } from './windows.mjs';

/** Keeps `window` sends in flight on `socket` while `isRunning()`; returns the in-flight count. */
function pump(socket, payload, window, isRunning, counters) {
  const state = { inFlight: 0 };
  const next = () => {
    while (isRunning() && state.inFlight < window && socket.readyState === 1) {
      state.inFlight++;
      socket.send(payload, { binary: true }, (error) => {
        state.inFlight--;
        if (!error) {
          counters.ops++;
          counters.bytesOut += payload.length;
        }
        next();
      });
    }
  };
  next();
  return state;
}

const MB = 1e6;

/** Runs `during` while the clients send; the pipe drains before it returns. */
async function upload(ctx, during) {
  await ctx.client('upload-start');
  const result = await during();
  await ctx.client('upload-stop');
  await ctx.sleep(100);
  return result;
}

/** Runs `during` while the server sends. */
async function download(ctx, during) {
  await ctx.server('download-start');
  const result = await during();
  await ctx.server('download-stop');
  return result;
}

export function bulkScenario(name, size, label, targets) {
  return {
    name,
    targets,
    summary: `${label} binary messages over 4 connections: upload (client to server), then download`,
    kinds: ['websocket', 'raw'],
    params: ({ smoke }) => ({
      connections: smoke ? 2 : 4,
      size,
      // About 1 MiB in flight per connection, at least 2 messages.
      window: Math.max(2, Math.round((1024 * 1024) / size)),
      // A window per direction; 4 rounds, so that a repetition of 4 peers stays near 30 s.
      ...windowTiming({ smoke, warmupMs: 500, rewarmMs: 200, windowMs: 500, rounds: 4 }),
    }),

    server({ params, counters, handle }) {
      const payload = randomBytes(params.size);
      let running = false;
      let pumps = [];
      return {
        onConnection(socket) {
          socket.on('message', (data) => {
            counters.ops++;
            counters.bytesIn += data.length;
          });
        },
        commands: {
          'download-start'() {
            running = true;
            pumps = [...handle().clients].map((socket) =>
              pump(socket, payload, params.window, () => running, counters),
            );
          },
          async 'download-stop'() {
            running = false;
            await until(() => pumps.every((p) => p.inFlight === 0), 5000);
          },
        },
      };
    },

    client({ params, counters, connect }) {
      const payload = randomBytes(params.size);
      let sockets = [];
      let running = false;
      let pumps = [];
      return {
        commands: {
          async setup() {
            sockets = await openMany(connect, params.connections, { concurrency: 8 });
            for (const socket of sockets) {
              socket.on('message', (data) => {
                counters.ops++;
                counters.bytesIn += data.length;
              });
            }
          },
          'upload-start'() {
            running = true;
            pumps = sockets.map((s) => pump(s, payload, params.window, () => running, counters));
          },
          async 'upload-stop'() {
            running = false;
            await until(() => pumps.every((p) => p.inFlight === 0), 5000);
          },
        },
      };
    },

    phases: {
      prepare: (ctx) => ctx.client('setup'),
      async warm(ctx, ms) {
        await upload(ctx, () => ctx.sleep(ms));
        await download(ctx, () => ctx.sleep(ms));
      },
      async measure(ctx, { rewarmMs, windowMs }) {
        const measured = async () => {
          await ctx.sleep(rewarmMs);
          return ctx.window(windowMs);
        };
        return { up: await upload(ctx, measured), down: await download(ctx, measured) };
      },
    },

    metrics({ up, down }) {
      const upMB = up.server.counts.bytesIn / MB;
      const downMB = down.server.counts.bytesOut / MB;
      return [
        {
          key: 'up-cpu',
          label: 'upload: server CPU µs/MB',
          value: up.server.cpuUs / upMB,
          better: 'lower',
          headline: true,
        },
        {
          key: 'up-rate',
          label: 'upload MB/s',
          value: upMB / (up.server.elapsedMs / 1000),
          better: 'higher',
        },
        {
          key: 'down-cpu',
          label: 'download: server CPU µs/MB',
          value: down.server.cpuUs / downMB,
          better: 'lower',
          headline: true,
        },
        {
          key: 'down-rate',
          label: 'download MB/s',
          value: downMB / (down.server.elapsedMs / 1000),
          better: 'higher',
        },
      ];
    },
  };
}
