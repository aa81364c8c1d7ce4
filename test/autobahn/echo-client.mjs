#!/usr/bin/env node
// Autobahn|Testsuite client testee for weft ("fuzzingserver" mode).
//
// Drives an Autobahn fuzzing server with weft's WebSocket client:
//   1. ws $URL/getCaseCount                    -> one text message: the number of cases
//   2. ws $URL/runCase?case=N&agent=$AGENT      for N = 1..count, echoing every
//                                               message back with the same type
//   3. ws $URL/updateReports?agent=$AGENT       -> the fuzzing server writes its reports
// Each connection is awaited until it closes before the next one opens.
//
// Run it through the shared runner, which starts the fuzzing server and sets $URL, $AGENT
// (run.sh runs the command inside its outdir, so give an absolute path; from the repo root):
//
//   /work/shared/tools/autobahn/run.sh \
//     --client-cmd "node $PWD/test/autobahn/echo-client.mjs" --agent weft-client --exclude "12.*,13.*"
//
// What it configures (per connection):
//   maxPayload 64 MiB     Autobahn 9.1.x / 9.2.x send single messages of up to
//                         16 MiB. Override with AUTOBAHN_MAX_PAYLOAD=<bytes>.
//   perMessageDeflate     false by default (sections 1-10 run uncompressed).
//                         AUTOBAHN_DEFLATE=1 passes { threshold: 0 } (sections 12/13).
//   AUTOBAHN_NO_LIMITS=1  also passes maxFragments: 0, maxBufferedChunks: 0 (ws 8.23 limits).
//   AUTOBAHN_CASE_TIMEOUT=<s>  terminate a case that has not closed after this many
//                         seconds (default 60) so one hung case cannot stall the run.
//   AUTOBAHN_IMPL=<spec>  module to import instead of '@weft/core' (e.g. 'ws').
// Only loopback URLs are accepted. Per-case errors / timeouts are logged to stderr
// (run.sh writes them to <outdir>/client.log).

// Not turbo task inputs: these scripts are run by hand through run.sh.
const env = process.env;
const impl = env.AUTOBAHN_IMPL || '@weft/core';
const base = (env.URL || 'ws://127.0.0.1:9001').replace(/\/$/, '');
const agent = env.AGENT || 'weft-client';
const maxPayload = Number(env.AUTOBAHN_MAX_PAYLOAD || 64 * 1024 * 1024);
const deflate = env.AUTOBAHN_DEFLATE === '1';
const noLimits = env.AUTOBAHN_NO_LIMITS === '1';
const caseTimeoutMs = Number(env.AUTOBAHN_CASE_TIMEOUT || '60') * 1000;

if (!/^ws:\/\/(127\.0\.0\.1|localhost|\[::1\]):\d+$/.test(base)) {
  console.error(`[echo-client] refusing non-loopback URL ${base}`);
  process.exit(2);
}

let WebSocket;
try {
  ({ WebSocket } = await import(impl));
} catch (err) {
  console.error(`[echo-client] cannot import ${impl}: ${err.message}`);
  console.error('[echo-client] for @weft/core, build it first: npm run build -w @weft/core');
  process.exit(2);
}

const options = {
  maxPayload,
  perMessageDeflate: deflate ? { threshold: 0 } : false,
  ...(noLimits ? { maxFragments: 0, maxBufferedChunks: 0 } : {}),
};
console.error(
  `[echo-client] ${impl} -> ${base} agent=${agent} maxPayload=${maxPayload} ` +
    `deflate=${deflate} noLimits=${noLimits}`,
);

// Opens one connection and resolves when it is closed (or given up on).
function session(label, url, onMessage) {
  return new Promise((resolve) => {
    let ws;
    let done = false;
    let errorTimer;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(caseTimer);
      clearTimeout(errorTimer);
      resolve();
    };
    const caseTimer = setTimeout(() => {
      console.error(`[echo-client] ${label}: no close after ${caseTimeoutMs} ms, terminating`);
      try {
        ws.terminate();
      } catch {}
      finish();
    }, caseTimeoutMs);
    try {
      ws = new WebSocket(url, options);
    } catch (err) {
      console.error(`[echo-client] ${label}: constructor threw: ${err.message}`);
      finish();
      return;
    }
    ws.on('message', (data, isBinary) => {
      // A throw here (e.g. send() refused) is an engine bug: log it and let the
      // case fail in the report instead of crashing the remaining cases.
      try {
        onMessage?.(ws, data, isBinary);
      } catch (err) {
        console.error(
          `[echo-client] ${label}: message handler threw (readyState ${ws.readyState}): ${err.message}`,
        );
      }
    });
    ws.on('error', (err) => {
      // Expected in the protocol-violation cases; 'close' should follow.
      console.error(`[echo-client] ${label}: error: ${err.code || ''} ${err.message}`);
      errorTimer = setTimeout(() => {
        console.error(`[echo-client] ${label}: 'error' without 'close' after 5 s`);
        finish();
      }, 5000);
    });
    ws.on('close', finish);
  });
}

let count = 0;
await session('getCaseCount', `${base}/getCaseCount`, (_ws, data) => {
  count = Number(String(data));
});
if (!Number.isInteger(count) || count <= 0) {
  console.error(`[echo-client] bad case count: ${count}`);
  process.exit(1);
}
console.error(`[echo-client] ${count} cases`);

const a = encodeURIComponent(agent);
for (let i = 1; i <= count; i++) {
  await session(`case ${i}`, `${base}/runCase?case=${i}&agent=${a}`, (ws, data, isBinary) => {
    ws.send(data, { binary: isBinary });
  });
}
await session('updateReports', `${base}/updateReports?agent=${a}`);
console.error('[echo-client] done');
