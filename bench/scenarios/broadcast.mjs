/**
 * One 1 KiB text message to every one of 1 000 clients, round after round. weft sends with
 * `wss.broadcast` (frame built once), ws with the loop over `wss.clients` from its README,
 * raw TCP writes one prebuilt buffer to every socket. The payload is a Buffer for all of them
 * (a string would make ws encode it once per client).
 *
 * Pacing: the client that connected last (so the last one every broadcast writes to) answers
 * each message with a 1-byte ack, and the server keeps at most `window` rounds unacknowledged.
 * That keeps buffers bounded whichever side is faster; the ack costs the server one small
 * receive per 1 000 deliveries, the same for every peer.
 */
import { openMany, until } from '../lib/util.mjs';

export default {
  name: 'broadcast',
  summary: '1 KiB text to 1 000 clients per round (wss.broadcast / the ws loop / raw writes)',
  kinds: ['websocket', 'raw'],
  // Issue 8's targets, as ratios weft/peer.
  targets: [{ key: 'cpu', peer: 'ws', max: 0.6 }],
  params: ({ smoke }) => ({
    clients: smoke ? 50 : 1000,
    size: 1024,
    window: 8,
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
    const pump = () => {
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
          pump();
        },
        stop() {
          running = false;
          return { rounds, acked };
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
    await ctx.server('stop');
    return { ...window, setup };
  },

  metrics({ server, client }) {
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
    ];
  },
};
