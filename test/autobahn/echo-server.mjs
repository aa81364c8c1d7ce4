#!/usr/bin/env node
// Autobahn|Testsuite server testee for weft ("fuzzingclient" mode).
//
// A WebSocketServer from @weft/core that sends every text/binary message back
// unchanged and with the same type. Run it through the shared runner, which
// picks a free port and exports $PORT (run.sh runs the command inside its outdir,
// so give an absolute path; from the repository root):
//
//   /work/shared/tools/autobahn/run.sh \
//     --server-cmd "node $PWD/test/autobahn/echo-server.mjs" --agent weft --exclude "12.*,13.*"
//
// What it configures:
//   host 127.0.0.1        loopback only, never all interfaces.
//   port $PORT            (default 9001).
//   maxPayload 64 MiB     Autobahn 9.1.x / 9.2.x send single messages of up to
//                         16 MiB; ws' default is 100 MiB. Override with
//                         AUTOBAHN_MAX_PAYLOAD=<bytes>.
//   perMessageDeflate     off by default (sections 1-10 run uncompressed).
//                         AUTOBAHN_DEFLATE=1 passes { threshold: 0 } so every
//                         message is compressed; needed for sections 12.x / 13.x.
//   AUTOBAHN_NO_LIMITS=1  also passes maxFragments: 0, maxBufferedChunks: 0 (the
//                         ws 8.23 DoS limits; with ws' defaults 9.3.1, 9.3.2,
//                         9.4.1, 9.4.2 end in close 1008). Off by default so the
//                         numbers compare with ws' default configuration.
//   AUTOBAHN_VERBOSE=1    log every connection / socket error to stderr
//                         (run.sh writes it to <outdir>/server.log).
//   AUTOBAHN_IMPL=<spec>  module to import instead of '@weft/core' (e.g. 'ws',
//                         to check this testee itself). Must export WebSocketServer.
//
// The import resolves @weft/core through the workspace link
// node_modules/@weft/core -> packages/core, i.e. packages/core/dist/index.js:
// build it first with `npm run build -w @weft/core`.

// Not turbo task inputs: these scripts are run by hand through run.sh.
const env = process.env;
const impl = env.AUTOBAHN_IMPL || '@weft/core';
const port = Number(env.PORT || '9001');
const maxPayload = Number(env.AUTOBAHN_MAX_PAYLOAD || 64 * 1024 * 1024);
const deflate = env.AUTOBAHN_DEFLATE === '1';
const noLimits = env.AUTOBAHN_NO_LIMITS === '1';
const verbose = env.AUTOBAHN_VERBOSE === '1';

let WebSocketServer;
try {
  ({ WebSocketServer } = await import(impl));
} catch (err) {
  console.error(`[echo-server] cannot import ${impl}: ${err.message}`);
  console.error('[echo-server] for @weft/core, build it first: npm run build -w @weft/core');
  process.exit(2);
}

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  maxPayload,
  perMessageDeflate: deflate ? { threshold: 0 } : false,
  ...(noLimits ? { maxFragments: 0, maxBufferedChunks: 0 } : {}),
});

let connections = 0;
wss.on('connection', (ws) => {
  const id = ++connections;
  ws.on('message', (data, isBinary) => {
    // A throw from send() is an engine bug: log it, keep serving the other cases.
    try {
      ws.send(data, { binary: isBinary });
    } catch (err) {
      console.error(
        `[echo-server] #${id} send threw (readyState ${ws.readyState}): ${err.message}`,
      );
    }
  });
  // Protocol errors are the point of the fuzzing; they must not crash the server.
  ws.on('error', (err) => {
    if (verbose) console.error(`[echo-server] #${id} error: ${err.code || ''} ${err.message}`);
  });
  if (verbose) {
    ws.on('close', (code, reason) => {
      console.error(`[echo-server] #${id} close ${code} ${String(reason)}`);
    });
  }
});

wss.on('listening', () => {
  console.error(
    `[echo-server] ${impl} listening on ws://127.0.0.1:${port} maxPayload=${maxPayload} ` +
      `deflate=${deflate} noLimits=${noLimits} pid=${process.pid}`,
  );
});
wss.on('error', (err) => {
  console.error(`[echo-server] server error: ${err.message}`);
  process.exit(1);
});

const stop = () => {
  for (const c of wss.clients) c.terminate();
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 500).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
