/**
 * The request/response loop shared by `echo`, `deflate-echo` and `client`: every connection
 * sends one message, waits for its echo, sends the next (one in flight per connection).
 * The server echoes each message back as it came (text stays text).
 */
import { jsonDocuments, openMany, until } from '../lib/util.mjs';
import { steadyPhases } from './windows.mjs';

/** Server side: echo every message and count it. */
export function echoServer({ counters }) {
  return {
    onConnection(socket) {
      socket.on('message', (data, isBinary) => {
        counters.ops++;
        counters.bytesIn += data.length;
        socket.send(data, { binary: isBinary });
      });
    },
    commands: {},
  };
}

/** Client side: the closed loop, with one latency sample per round trip. */
export function echoClient({ params, counters, latency, connect }) {
  const payloads =
    params.json === true
      ? jsonDocuments(params.documents, params.size, 7)
      : [Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz'.repeat(8).slice(0, params.size))];
  const senders = [];
  let running = false;
  let inFlight = 0;
  return {
    commands: {
      async setup() {
        const sockets = await openMany(connect, params.connections, {
          concurrency: 50,
          options: { perMessageDeflate: params.perMessageDeflate },
        });
        if (
          params.perMessageDeflate &&
          !sockets.every((s) => /permessage-deflate/.test(s.extensions))
        ) {
          throw new Error(
            `permessage-deflate not negotiated (extensions: "${sockets[0].extensions}")`,
          );
        }
        sockets.forEach((socket, index) => {
          let sentAt = 0;
          let next = index;
          const send = () => {
            inFlight++;
            sentAt = performance.now();
            socket.send(payloads[next++ % payloads.length], { binary: false });
          };
          socket.on('message', (data) => {
            inFlight--;
            latency.record(performance.now() - sentAt);
            counters.ops++;
            counters.bytesIn += data.length;
            if (running) send();
          });
          senders.push(send);
        });
        return { connections: sockets.length, extensions: sockets[0]?.extensions ?? '' };
      },
      start() {
        running = true;
        for (const send of senders) send();
      },
      async stop() {
        running = false;
        await until(() => inFlight === 0, 3000);
      },
    },
  };
}

/** Orchestrator side: connect once, then run the loop for each window (see run.mjs). */
export const echoPhases = steadyPhases({
  prepare: (ctx) => ctx.client('setup'),
  start: (ctx) => ctx.client('start'),
  async stop(ctx) {
    await ctx.client('stop');
    return {};
  },
});

const perSecond = (count, ms) => count / (ms / 1000);

/** Server CPU per round trip, round trips/s and latency, from the server's own counts. */
export function echoServerMetrics({ server, client }) {
  return [
    {
      key: 'cpu',
      label: 'server CPU µs/round trip',
      value: server.cpuUs / server.counts.ops,
      better: 'lower',
      headline: true,
    },
    {
      key: 'rate',
      label: 'round trips/s',
      value: perSecond(server.counts.ops, server.elapsedMs),
      better: 'higher',
    },
    { key: 'p50', label: 'p50 latency ms', value: client.latency.p50, better: 'lower' },
    { key: 'p99', label: 'p99 latency ms', value: client.latency.p99, better: 'lower' },
  ];
}
