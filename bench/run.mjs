#!/usr/bin/env node
/**
 * weft's benchmark suite: weft against ws (with and without bufferutil) and a raw TCP ceiling,
 * and the framework plugins (@weft/fastify, @weft/express) against bare weft and their
 * ws-based counterparts (@fastify/websocket, express-ws).
 *
 *   node bench/run.mjs [--scenario NAME[,NAME]]... [--peer NAME[,NAME]]... [--smoke]
 *                      [--repeat N] [--json FILE] [--profile PEER] [--no-pin] [--control]
 *
 * Build first (npm run build). For every scenario, repetition and peer, a server process and
 * a load generator process are forked (pinned to two different CPUs with taskset when
 * possible) and talk over 127.0.0.1. The server measures its own CPU time (process.cpuUsage)
 * around each measured window and reports it over IPC; the headline of every scenario is that
 * CPU time per operation (or memory per connection). A scenario with `phases` keeps every
 * peer's processes up through a repetition and measures them in alternating windows
 * (runInterleaved); the others run one case per peer. Every case (and repetition) has a time
 * limit and the processes are killed at its end. The tables printed at the end, one per subject
 * (weft; each plugin in its own scenarios), give the medians and the ratio subject/peer (the
 * median of the paired ratios: two cases back to back, or two windows next to each other).
 * See bench/README.md.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Child, killAllChildren } from './lib/ipc.mjs';
import { ephemeralPorts, fdLimit, machine, pinning } from './lib/machine.mjs';
import { CLIENT_PEERS, SERVER_PEERS, SUBJECT } from './lib/peers.mjs';
import {
  machineLine,
  sections,
  sectionTitle,
  tableRows,
  targets,
  textTable,
} from './lib/table.mjs';
import { median, sleep } from './lib/util.mjs';
import { SCENARIOS } from './scenarios/index.mjs';

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH, '..');
const SERVER_SCRIPT = join(BENCH, 'lib', 'server-process.mjs');
const LOADGEN_SCRIPT = join(BENCH, 'lib', 'loadgen-process.mjs');
const PROFILE_DIR = join(BENCH, 'results', 'profiles');

const USAGE = `usage: node bench/run.mjs [options]
  --scenario NAME   run only these scenarios (repeatable, or a comma list): ${SCENARIOS.map((s) => s.name).join(', ')}
  --peer NAME       run only these peers (repeatable, or a comma list): ${Object.keys(SERVER_PEERS).join(', ')}
  --smoke           tiny counts and durations: checks that every scenario runs (CI)
  --repeat N        repetitions of every case (default 5, 1 with --smoke)
  --json FILE       write every measurement, the medians and the ratios to FILE
  --profile PEER    run PEER's server (its client in the client scenario) with --cpu-prof,
                    profiles in bench/results/profiles/ (summarise with bench/profile-summary.mjs)
  --no-pin          do not pin the processes to CPUs
  --control         add ws-again, ws once more, where ws runs: weft/ws beside weft/ws-again
                    shows how far the same measurement moves in this run`;

function parseOptions() {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', multiple: true },
      peer: { type: 'string', multiple: true },
      smoke: { type: 'boolean', default: false },
      repeat: { type: 'string' },
      json: { type: 'string' },
      profile: { type: 'string' },
      'no-pin': { type: 'boolean', default: false },
      control: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const list = (items) => items?.flatMap((item) => item.split(',')).filter(Boolean);
  const scenarios = list(values.scenario) ?? SCENARIOS.map((s) => s.name);
  for (const name of scenarios) {
    if (!SCENARIOS.some((s) => s.name === name)) fail(`unknown scenario "${name}"\n${USAGE}`);
  }
  const peers = list(values.peer);
  for (const name of peers ?? []) {
    if (!(name in SERVER_PEERS) && !(name in CLIENT_PEERS)) fail(`unknown peer "${name}"`);
  }
  const repeat = values.repeat === undefined ? (values.smoke ? 1 : 5) : Number(values.repeat);
  if (!Number.isInteger(repeat) || repeat < 1) fail('--repeat needs a positive integer');
  return {
    scenarios,
    peers,
    smoke: values.smoke,
    repeat,
    json: values.json,
    profile: values.profile,
    noPin: values['no-pin'],
    control: values.control,
  };
}

function fail(message) {
  console.error(message);
  process.exit(2);
}

/** The source directories of the packages the bench loads the build of. */
const SOURCES = ['packages/core/src', 'packages/fastify/src', 'packages/express/src'];

/**
 * Refuses to measure a missing build of the workspace packages the run loads (@weft/core,
 * and the plugins when their peers run), and warns about one older than its sources.
 */
function checkBuild(packages) {
  const require = createRequire(import.meta.url);
  const newest = (dir) =>
    Math.max(
      ...readdirSync(dir, { withFileTypes: true }).map((e) =>
        e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs,
      ),
    );
  for (const name of packages) {
    let entry;
    try {
      entry = require.resolve(`${name}/package.json`);
    } catch {
      fail(`${name} is not installed: run npm install at the repository root`);
    }
    const dir = dirname(entry);
    const dist = join(dir, 'dist', 'index.js');
    let built;
    try {
      built = statSync(dist).mtimeMs;
    } catch {
      fail(`${relative(ROOT, dist)} is missing: build first (npm run build)`);
    }
    if (newest(join(dir, 'src')) > built) {
      const where = relative(ROOT, dir);
      console.error(
        `warning: ${where}/dist is older than ${where}/src: this measures the old build (npm run build)`,
      );
    }
  }
}

/** The commit measured, and which measured packages have source changes not committed yet. */
function gitState() {
  try {
    const git = (...args) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
    const status = git('status', '--porcelain', '--', ...SOURCES);
    const changed = SOURCES.filter((dir) => status.includes(` ${dir}/`));
    return {
      commit: git('rev-parse', '--short', 'HEAD'),
      coreChanged: changed.includes('packages/core/src'),
      changed,
    };
  } catch {
    return null;
  }
}

/** The packages a peer needs that are not installed (a peer missing one is skipped). */
function missingPackages(id) {
  const require = createRequire(import.meta.url);
  return [SERVER_PEERS[id]?.optional ?? []].flat().filter((name) => {
    try {
      require.resolve(name);
      return false;
    } catch {
      return true;
    }
  });
}

function peersOf(scenario, options, notes) {
  const all =
    scenario.role === 'client'
      ? scenario.clients
      : (scenario.peers ??
        Object.keys(SERVER_PEERS).filter(
          (id) =>
            scenario.kinds.includes(SERVER_PEERS[id].kind) &&
            (!SERVER_PEERS[id].control || options.control || options.peers?.includes(id)),
        ));
  const selected = all.filter((id) => !options.peers || options.peers.includes(id));
  // With --peer, a plugin scenario runs only for a plugin peer: bare weft alone would repeat
  // the scenario it is made from.
  if (scenario.peers && !selected.some((id) => SERVER_PEERS[id].kind === 'plugin')) return [];
  return selected.filter((id) => {
    const missing = scenario.role === 'client' ? [] : missingPackages(id);
    if (missing.length === 0) return true;
    notes.push(`${scenario.name}: ${id} skipped (${missing.join(', ')} not installed)`);
    return false;
  });
}

/** The scenarios to run, each with its parameters, notes and peers. */
function plan(options, limits) {
  return options.scenarios.map((name) => {
    const scenario = SCENARIOS.find((s) => s.name === name);
    const params = scenario.params({ smoke: options.smoke, ...limits });
    const notes = scenario.notes?.(params) ?? [];
    const peers = peersOf(scenario, options, notes);
    return { name, scenario, params, notes, peers };
  });
}

/** The workspace packages whose dist/ the planned cases load. */
function workspacesOf(cases) {
  const peers = cases.flatMap((c) => (c.scenario.role === 'client' ? [] : c.peers));
  return [...new Set(['@weft/core', ...peers.map((id) => SERVER_PEERS[id].workspace)])].filter(
    Boolean,
  );
}

/** The env of every child: ours without the switches that would change what a peer loads. */
function baseEnv() {
  const env = { ...process.env };
  delete env.WS_NO_BUFFER_UTIL;
  delete env.WEFT_NO_BUFFER_UTIL;
  return env;
}

/**
 * Forks one peer's server and load generator for a scenario and connects them: returns the
 * `ctx` the scenario drives them through, what they report of themselves, and `close()`.
 */
async function openCase({ scenario, peer, params, rep, options, pins }) {
  const role = scenario.role ?? 'server';
  const serverPeer = role === 'client' ? scenario.serverPeer : peer;
  const clientPeer = role === 'client' ? peer : SERVER_PEERS[peer].client;
  const profiled = options.profile === peer;
  const profileArgs = (side) => [
    '--cpu-prof',
    `--cpu-prof-dir=${PROFILE_DIR}`,
    `--cpu-prof-name=${scenario.name}-${peer}-${side}-rep${rep + 1}.cpuprofile`,
  ];
  if (profiled) mkdirSync(PROFILE_DIR, { recursive: true });

  const server = new Child(
    `${peer}/${scenario.name} server`,
    SERVER_SCRIPT,
    [JSON.stringify({ peer: serverPeer, scenario: scenario.name, params })],
    {
      env: { ...baseEnv(), ...SERVER_PEERS[serverPeer].env },
      execArgv: [
        '--expose-gc',
        '--max-old-space-size=4096',
        ...(profiled && role === 'server' ? profileArgs('server') : []),
      ],
      core: pins.server,
      taskset: pins.taskset,
    },
  );
  const loadgen = new Child(
    `${peer}/${scenario.name} load generator`,
    LOADGEN_SCRIPT,
    [JSON.stringify({ client: clientPeer, scenario: scenario.name, params })],
    {
      env: { ...baseEnv(), ...CLIENT_PEERS[clientPeer].env },
      execArgv: [
        '--max-old-space-size=4096',
        ...(profiled && role === 'client' ? profileArgs('client') : []),
      ],
      core: pins.client,
      taskset: pins.taskset,
    },
  );
  const close = async () => {
    const grace = profiled ? 15_000 : 2000;
    await Promise.all([loadgen.stop(grace), server.stop(grace)]);
  };

  const ctx = {
    params,
    sleep,
    server: (type, args) => server.request(type, args),
    client: (type, args) => loadgen.request(type, args),
    /** One measured window: both processes mark, `ms` later both report. */
    async window(ms) {
      await Promise.all([server.request('mark'), loadgen.request('mark')]);
      await sleep(ms);
      const [serverReport, clientReport] = await Promise.all([
        server.request('report'),
        loadgen.request('report'),
      ]);
      return { server: serverReport, client: clientReport };
    },
  };
  try {
    const ready = await server.event('ready');
    await loadgen.event('ready');
    const init = await loadgen.request('init', { port: ready.port, path: ready.path });
    return { peer, ctx, info: { server: ready.info, client: init.info }, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** `work` or, past `limitMs`, a rejection: every case and repetition is bounded in time. */
async function withinTime(work, limitMs) {
  let timer;
  work.catch(() => {});
  try {
    return await Promise.race([
      work,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${limitMs} ms`)), limitMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** One scenario against one peer: fork both processes, drive, measure, kill. */
async function runCase({ scenario, peer, params, rep, options, pins }) {
  let opened = null;
  try {
    return await withinTime(
      (async () => {
        opened = await openCase({ scenario, peer, params, rep, options, pins });
        return { raw: await scenario.drive(opened.ctx), info: opened.info };
      })(),
      options.smoke ? 20_000 : 90_000,
    );
  } finally {
    await opened?.close();
  }
}

/**
 * One repetition of a scenario with `phases`, measured in alternating windows: every peer's
 * server and load generator are up at once (the servers all on the server CPU, idle but for
 * the one under load), each peer is warmed up once (phases.warm), then in each of
 * `params.rounds` rounds one peer at a time is measured (phases.measure: a short re-warm under
 * load and a window of `params.windowMs`, or one per direction), the order reversed every
 * round. On a shared machine whose speed drifts by a factor of two over seconds, windows of
 * different peers a second apart see the same machine, where whole cases run one after the
 * other did not. `onWindow(peer, round, result)` gets every window's `{ raw, info }`, or
 * `{ error }` once for a peer that failed (it sits out the rest of the repetition).
 */
async function runInterleaved({ scenario, peers, params, rep, options, pins, onWindow: report }) {
  const { phases } = scenario;
  const opened = [];
  const failed = new Set();
  // Past the time limit the steps still running fail as their processes go: not news.
  let over = false;
  const onWindow = (...args) => over || report(...args);
  const step = async (peer, work) => {
    if (failed.has(peer)) return;
    try {
      await work();
    } catch (error) {
      failed.add(peer);
      onWindow(peer, null, { error });
    }
  };
  // A measure may hold more than one window (bulk: upload and download).
  const perPeerMs =
    2 * (params.warmupMs + params.rounds * (params.rewarmMs + params.windowMs)) +
    (options.smoke ? 10_000 : 30_000);
  try {
    await withinTime(
      (async () => {
        const order = rotate(peers, rep);
        const cases = new Map();
        for (const peer of order) {
          await step(peer, async () => {
            const c = await openCase({ scenario, peer, params, rep, options, pins });
            opened.push(c);
            cases.set(peer, { ...c, setup: await phases.prepare?.(c.ctx) });
          });
        }
        for (const peer of order) {
          await step(peer, () => phases.warm(cases.get(peer).ctx, params.warmupMs));
        }
        for (let round = 0; round < params.rounds; round++) {
          for (const peer of round % 2 === 0 ? order : [...order].reverse()) {
            await step(peer, async () => {
              const { ctx, setup, info } = cases.get(peer);
              const raw = await phases.measure(ctx, params);
              onWindow(peer, round, { raw: { ...raw, setup }, info });
            });
          }
        }
      })(),
      peers.length * perPeerMs,
    );
  } catch (error) {
    for (const peer of peers) if (!failed.has(peer)) onWindow(peer, null, { error });
    over = true;
  } finally {
    await Promise.all(opened.map((c) => c.close()));
  }
}

/** The peers in another order on every repetition, so no peer always runs first. */
function rotate(list, by) {
  const k = by % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

async function main() {
  const options = parseOptions();
  const limits = { fdLimit: fdLimit(), portRange: ephemeralPorts() };
  const cases = plan(options, limits);
  checkBuild(workspacesOf(cases));
  const pins = pinning(options.noPin);
  const startedAt = Date.now();
  const results = {
    date: new Date().toISOString(),
    command: `node bench/run.mjs ${process.argv.slice(2).join(' ')}`.trim(),
    machine: machine(),
    git: gitState(),
    pinning: pins.note,
    loadavg: { start: os.loadavg()[0].toFixed(2), end: null },
    smoke: options.smoke,
    repeat: options.repeat,
    subject: SUBJECT,
    peers: Object.fromEntries(Object.entries(SERVER_PEERS).map(([id, p]) => [id, p.label])),
    clientPeers: Object.fromEntries(Object.entries(CLIENT_PEERS).map(([id, p]) => [id, p.label])),
    notes: [],
    scenarios: [],
  };
  let failures = 0;
  console.error(machineLine(results));

  for (const { name, scenario, params, notes, peers } of cases) {
    if (peers.length === 0) {
      const why = scenario.peers
        ? '--peer selects none of its plugin peers'
        : 'none of the selected peers takes part in it';
      results.notes.push(`${name}: skipped (${why})`);
      continue;
    }
    const repeat = Math.min(options.repeat, scenario.maxRepeat ?? options.repeat);
    if (repeat < options.repeat) notes.push(`${name}: ${repeat} repetitions (the scenario's cap)`);
    const entry = {
      name,
      summary: scenario.summary,
      role: scenario.role ?? 'server',
      serverPeer: scenario.serverPeer,
      subject: scenario.subject ?? SUBJECT,
      targets: scenario.targets ?? [],
      params,
      repeat,
      // Interleaved scenarios: windows per peer and repetition, each paired with its neighbours.
      windows: scenario.phases ? params.rounds : null,
      peers,
      notes,
      metrics: [],
      runs: Object.fromEntries(peers.map((p) => [p, []])),
      median: {},
      ratio: {},
      errors: [],
    };
    results.scenarios.push(entry);
    const width = Math.max(...peers.map((p) => p.length));
    const rounds = scenario.phases ? params.rounds : 1;
    /** Files one case's (or one window's) outcome under its repetition and round. */
    const record = (peer, rep, round, result, started) => {
      const where = scenario.phases
        ? `${rep + 1}/${repeat} window ${round === null ? '-' : round + 1}/${rounds}`
        : `${rep + 1}/${repeat}`;
      const label = `[${name} ${where}] ${peer.padEnd(width)}`;
      // Windows (or cases) with the same sample number ran next to each other: they pair up.
      const sample = scenario.phases && round === null ? null : rep * rounds + (round ?? 0);
      try {
        if (result.error) throw result.error;
        const metrics = scenario.metrics(result.raw, params);
        if (entry.metrics.length === 0) {
          entry.metrics = metrics.map(({ key, label, better, headline }) => ({
            key,
            label,
            better,
            headline: headline === true,
          }));
        }
        const values = Object.fromEntries(metrics.map((m) => [m.key, m.value]));
        const bad = metrics.filter((m) => !Number.isFinite(m.value)).map((m) => m.key);
        if (bad.length > 0) throw new Error(`no measurement for ${bad.join(', ')}`);
        entry.runs[peer].push({ rep, round, sample, values, info: result.info, raw: result.raw });
        const headline = metrics.find((m) => m.headline);
        console.error(
          `${label} ${headline.label} ${headline.value.toPrecision(4)}  (${((Date.now() - started) / 1000).toFixed(1)} s)`,
        );
      } catch (error) {
        failures++;
        const message = String(error?.message ?? error);
        entry.errors.push({ peer, rep, error: message });
        entry.runs[peer].push({ rep, round, sample, error: message });
        console.error(`${label} FAILED: ${message}`);
      }
    };
    for (let rep = 0; rep < repeat; rep++) {
      const started = Date.now();
      if (scenario.phases) {
        await runInterleaved({
          scenario,
          peers,
          params,
          rep,
          options,
          pins,
          onWindow: (peer, round, result) => record(peer, rep, round, result, started),
        });
        continue;
      }
      for (const peer of rotate(peers, rep)) {
        const caseStarted = Date.now();
        const result = await runCase({ scenario, peer, params, rep, options, pins }).catch(
          (error) => ({ error }),
        );
        record(peer, rep, null, result, caseStarted);
      }
    }
    summarise(entry);
  }

  results.durationS = Math.round((Date.now() - startedAt) / 1000);
  results.loadavg.end = os.loadavg()[0].toFixed(2);
  results.notes.push(...results.scenarios.flatMap((s) => s.notes));
  printTable(results);
  if (options.json) {
    const file = resolve(options.json);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
    console.error(`results written to ${relative(process.cwd(), file) || file}`);
  }
  if (failures > 0) {
    console.error(`${failures} case(s) failed`);
    process.exitCode = 1;
  }
}

/** Medians per metric and peer; ratios subject/peer as the median of per-repetition ratios. */
function summarise(entry) {
  const subject = entry.subject;
  for (const { key } of entry.metrics) {
    entry.median[key] = {};
    entry.ratio[key] = {};
    const valueAt = (peer, sample) =>
      entry.runs[peer].find((r) => r.sample === sample)?.values?.[key];
    for (const peer of entry.peers) {
      entry.median[key][peer] = median(entry.runs[peer].map((r) => r.values?.[key]));
    }
    if (!entry.peers.includes(subject)) continue;
    for (const peer of entry.peers) {
      if (peer === subject) continue;
      const ratios = entry.runs[subject].map(
        (r) => valueAt(subject, r.sample) / valueAt(peer, r.sample),
      );
      entry.ratio[key][peer] = median(ratios);
    }
  }
}

function printTable(results) {
  for (const section of sections(results)) {
    console.log('');
    console.log(sectionTitle(section));
    console.log(textTable(tableRows(section)));
  }
  console.log('');
  console.log(
    '* headline: CPU time per operation measured by the process under test itself (the server; the client in `client`), or memory per connection. ↓ lower is better, ↑ higher is better',
  );
  console.log(
    `medians of ${results.repeat} repetition(s) (of their windows where alternating); ratio = median of the paired subject/peer ratios (subject: the first column of each table)`,
  );
  for (const target of targets(results)) {
    console.log(`target: ${target.text}${results.smoke ? ' (smoke mode: not a measurement)' : ''}`);
  }
  for (const note of results.notes) console.log(`note: ${note}`);
  for (const scenario of results.scenarios) {
    for (const { peer, rep, error } of scenario.errors) {
      console.log(`error: ${scenario.name} ${peer} rep ${rep + 1}: ${error}`);
    }
  }
  console.log(machineLine(results));
  console.log(
    `duration: ${results.durationS} s; load average (1 min) ${results.loadavg.start} at start, ${results.loadavg.end} at end`,
  );
}

process.on('exit', killAllChildren);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    killAllChildren();
    process.exit(130);
  });
}

main().catch((error) => {
  console.error(error);
  killAllChildren();
  process.exit(1);
});
