/**
 * Memory per idle connection on the server: process.memoryUsage() after a full GC before any
 * connection, then again with every connection open and idle; the difference divided by the
 * connection count. Nothing is sent after the handshake.
 *
 * The RSS headline counts anonymous pages only (Linux's RssAnon: V8's heap, malloc, stacks),
 * which is where a connection's memory lives. File-backed resident pages are the node binary
 * and its libraries, paged in once per process when code first runs and shared with every
 * other node process: they grow by as much as 4 MB between the two readings for a peer whose
 * module loading happened not to touch the optimising compiler's pages before the first one
 * (weft, raw), and by 0.5 MB for one whose did (ws), the same 42 MB in the end for all. The
 * total, file-backed pages included, is reported beside it.
 *
 * 10 000 connections, or fewer when the open-files limit would not allow them: each process
 * holds one descriptor per connection (run.mjs passes `fdLimit`, which is what Node raised its
 * soft limit to, i.e. the hard limit). When one source address would need more than half of
 * the ephemeral port range, the clients spread over 127.0.0.2, .3, ... (all of 127/8 is
 * loopback on Linux). At most 3 repetitions (`maxRepeat`), whatever --repeat says.
 */
import { openMany } from '../lib/util.mjs';

const TARGET = 10_000;
const FD_MARGIN = 1024;

export default {
  name: 'idle-memory',
  summary: '10 000 idle connections (fewer if the fd limit says so): server memory per connection',
  kinds: ['websocket', 'raw'],
  // Issue 8's targets, as ratios weft/peer.
  targets: [
    { key: 'rss', peer: 'ws', max: 0.8 },
    { key: 'heap', peer: 'ws', max: 0.8 },
  ],
  // Memory after a full GC barely moves between runs, and 10 000 handshakes take a while.
  maxRepeat: 3,
  params({ smoke, fdLimit, portRange }) {
    const target = smoke ? 200 : TARGET;
    const connections = Math.max(10, Math.min(target, fdLimit - FD_MARGIN));
    const sources = Math.max(1, Math.ceil(connections / (portRange / 2)));
    return {
      connections,
      target,
      fdLimit,
      sources,
      concurrency: smoke ? 50 : 200,
      settleMs: smoke ? 100 : 1000,
    };
  },
  notes: (params) => [
    params.connections < params.target
      ? `idle-memory: ${params.connections} connections instead of ${params.target} (open-files limit ${params.fdLimit} per process)`
      : `idle-memory: ${params.connections} connections (open-files limit ${params.fdLimit} per process, ${params.sources} source address${params.sources > 1 ? 'es' : ''})`,
  ],

  server: () => ({ onConnection() {}, commands: {} }),

  client({ params, connect }) {
    let sockets = [];
    return {
      commands: {
        async setup() {
          sockets = await openMany(connect, params.connections, {
            concurrency: params.concurrency,
            sources: params.sources,
          });
          return { opened: sockets.length };
        },
      },
    };
  },

  async drive(ctx) {
    const before = await ctx.server('memory');
    const { opened } = await ctx.client('setup');
    await ctx.sleep(ctx.params.settleMs);
    const after = await ctx.server('memory');
    const connections = after.open - before.open;
    if (connections !== opened) {
      throw new Error(`the server holds ${connections} connections, the client opened ${opened}`);
    }
    return { before, after, connections };
  },

  metrics({ before, after, connections }) {
    const perConnection = (key) => (after[key] - before[key]) / 1024 / connections;
    // Anonymous RSS where the system splits it: see the header comment.
    const split = Number.isFinite(before.rssAnon) && Number.isFinite(after.rssAnon);
    return [
      {
        key: 'rss',
        label: split ? 'server RSS (anonymous) KiB/connection' : 'server RSS KiB/connection',
        value: perConnection(split ? 'rssAnon' : 'rss'),
        better: 'lower',
        headline: true,
      },
      {
        key: 'heap',
        label: 'server heap KiB/connection',
        value: perConnection('heapUsed'),
        better: 'lower',
        headline: true,
      },
      ...(split
        ? [
            {
              key: 'rss-all',
              label: 'server RSS (with file-backed pages) KiB/connection',
              value: perConnection('rss'),
              better: 'lower',
            },
          ]
        : []),
    ];
  },
};
