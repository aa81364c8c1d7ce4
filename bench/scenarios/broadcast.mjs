/**
 * One 1 KiB text message to every one of 1 000 clients, round after round. weft sends with
 * `wss.broadcast` (frame built once), ws with the loop over `wss.clients` from its README,
 * raw TCP writes one prebuilt buffer to every socket. The payload is a Buffer for all of them
 * (a string would make ws encode it once per client).
 *
 * Pacing: the client that connected last (so the last one every broadcast writes to) answers
 * each message with a 1-byte ack, and the server keeps at most `window` rounds unacknowledged.
 * That keeps buffers bounded whichever side is faster; the ack costs the server one small
 * receive per 1 000 deliveries, the same for every peer. With a window of 8, acks arrive
 * several to a socket read, so several rounds go out in one tick of the server's event loop
 * (the "rounds per tick" line says how many); with a window of 1 (`broadcast-1`), exactly one.
 */
import { openMany, until } from '../lib/util.mjs';

/**
 * The scenario with at most `window` rounds unacknowledged; `targets` as ratios weft/peer.
 */
export function broadcastScenario(name, window, summary, targets = []) {
  return {
    name,
    summary,
    kinds: ['websocket', 'raw'],
    targets,
    params: ({ smoke }) => ({
      clients: smoke ? 50 : 1000,
      size: 1024,
      window,
      warmupMs: smoke ? 100 : 500,
      measureMs: smoke ? 200 : 2000,
    }),

    server({ params, counters, handle }) {
      const payload = Buffer.from(
        JSON.stringify({ type: 'tick', body: 'x'.repeat(params.size) }).slice(0, params.size),
      );
      let running = false;
      let rounds = 0;
      let acked = 0;
      // Ticks of the event loop in which at least one round went out.
      let ticks = 0;
      let inTick = false;
      const endTick = () => {
        inTick = false;
      };
      const pump = () => {
        if (running && !inTick && rounds - acked < params.window) {
          inTick = true;
          ticks++;
          process.nextTick(endTick);
        }
        while (running && rounds - acked < params.window) {
          rounds++;
          counters.ops += handle().broadcast(payload, false);
        }
      };
      return {
        onConnection(socket) {
          socket.on('message', () => {
            acked++;
            pump();
          });
        },
        commands: {
          async start() {
            // Every client, the acker last, must be in the server's set before the first round.
            if (!(await until(() => counters.open >= params.clients, 5000))) {
              throw new Error(`${counters.open} of ${params.clients} clients connected`);
            }
            running = true;
            rounds = 0;
            acked = 0;
            ticks = 0;
            pump();
          },
          stop() {
            running = false;
            return { rounds, acked, ticks };
          },
        },
      };
    },

    client({ params, counters, connect }) {
      return {
        commands: {
          async setup() {
            const sockets = await openMany(connect, params.clients - 1, { concurrency: 100 });
            const acker = await connect();
            for (const socket of sockets) {
              socket.on('message', () => counters.ops++);
            }
            const ack = Buffer.from('a');
            acker.on('message', () => {
              counters.ops++;
              acker.send(ack, { binary: false });
            });
            return { clients: sockets.length + 1 };
          },
        },
      };
    },

    async drive(ctx) {
      const setup = await ctx.client('setup');
      await ctx.server('start');
      await ctx.sleep(ctx.params.warmupMs);
      const window = await ctx.window(ctx.params.measureMs);
      const pumped = await ctx.server('stop');
      return { ...window, setup, pumped };
    },

    metrics({ server, client, pumped }) {
      return [
        {
          key: 'cpu',
          label: 'server CPU µs/delivery',
          value: server.cpuUs / server.counts.ops,
          better: 'lower',
          headline: true,
        },
        {
          key: 'rate',
          label: 'deliveries/s',
          value: server.counts.ops / (server.elapsedMs / 1000),
          better: 'higher',
        },
        {
          key: 'received',
          label: 'received by clients/s',
          value: client.counts.ops / (client.elapsedMs / 1000),
          better: 'higher',
        },
        {
          key: 'per-tick',
          label: 'rounds per tick (warm-up included)',
          value: pumped.rounds / Math.max(1, pumped.ticks),
          better: 'higher',
        },
      ];
    },
  };
}

// Issue 8's target is on the first: the ws loop against wss.broadcast, paced the same way.
export const broadcastScenarios = [
  broadcastScenario(
    'broadcast',
    8,
    '1 KiB text to 1 000 clients per round, up to 8 rounds in flight (wss.broadcast / the ws loop / raw writes)',
    [{ key: 'cpu', peer: 'ws', max: 0.6 }],
  ),
  broadcastScenario(
    'broadcast-1',
    1,
    '1 KiB text to 1 000 clients per round, one round in flight, so one round per tick',
  ),
];
