#!/usr/bin/env node
/**
 * The top self-time functions of a V8 CPU profile (`node --cpu-prof`), and self time per
 * origin (weft, a plugin, each package of node_modules, Node internals, native/VM).
 *
 *   node bench/run.mjs --scenario echo --peer weft --repeat 1 --profile weft
 *   node bench/profile-summary.mjs bench/results/profiles/echo-weft-server-rep1.cpuprofile [--top 25]
 *
 * Self time of a function: the sampling intervals in which it was the one on top of the stack.
 * The percentages are of the busy time ((idle) excluded).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '25' } },
});
if (positionals.length === 0) {
  console.error('usage: node bench/profile-summary.mjs FILE.cpuprofile [...] [--top N]');
  process.exit(2);
}

/**
 * weft's engine, a plugin of this repository, or the package a file of node_modules belongs
 * to (the innermost one: express-ws's own ws counts as ws), so that a plugin profile splits
 * into the framework (fastify, find-my-way, express, router...) and the WebSocket layer.
 */
function origin(url) {
  if (url === '') return 'native/VM';
  if (url.includes('/packages/core/dist/') || url.includes('@weft/core')) return 'weft';
  const workspace = /\/packages\/([^/]+)\/dist\//.exec(url);
  if (workspace) return `@weft/${workspace[1]}`;
  const dependency = /.*\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (dependency) return dependency[1];
  if (url.startsWith('node:')) return 'node internals';
  if (url.includes('/bench/')) return 'bench harness';
  return 'other';
}

function summarise(file) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map();
  for (let i = 0; i < profile.samples.length; i++) {
    const node = nodes.get(profile.samples[i]);
    const micros = profile.timeDeltas[i + 1] ?? 0;
    const { functionName, url, lineNumber } = node.callFrame;
    const name = functionName || '(anonymous)';
    const where = url
      ? `${url.replace(/^file:\/\/.*\/(packages|node_modules|bench)\//, '$1/')}:${lineNumber + 1}`
      : '';
    const key = `${name}\u0000${where}`;
    const entry = self.get(key) ?? { name, where, origin: origin(url), micros: 0 };
    entry.micros += micros;
    self.set(key, entry);
  }
  const entries = [...self.values()];
  const idle = entries.filter((e) => e.name === '(idle)').reduce((t, e) => t + e.micros, 0);
  const busy = entries.filter((e) => e.name !== '(idle)').reduce((t, e) => t + e.micros, 0);
  const pct = (micros) => `${((100 * micros) / busy).toFixed(1).padStart(5)}%`;

  console.log(`${file}`);
  console.log(`busy ${(busy / 1000).toFixed(0)} ms, idle ${(idle / 1000).toFixed(0)} ms`);
  const byOrigin = new Map();
  for (const e of entries) {
    if (e.name === '(idle)') continue;
    const bucket =
      e.name === '(garbage collector)' ? 'GC' : e.name === '(program)' ? '(program)' : e.origin;
    byOrigin.set(bucket, (byOrigin.get(bucket) ?? 0) + e.micros);
  }
  console.log('\nself time by origin:');
  for (const [name, micros] of [...byOrigin].sort((a, b) => b[1] - a[1])) {
    console.log(`  ${pct(micros)}  ${(micros / 1000).toFixed(0).padStart(6)} ms  ${name}`);
  }
  console.log(`\ntop ${values.top} functions by self time:`);
  const top = entries
    .filter((e) => e.name !== '(idle)')
    .sort((a, b) => b.micros - a.micros)
    .slice(0, Number(values.top));
  for (const e of top) {
    console.log(
      `  ${pct(e.micros)}  ${(e.micros / 1000).toFixed(1).padStart(7)} ms  ${e.name}  ${e.where}`,
    );
  }
  console.log('');
}

for (const file of positionals) summarise(file);
