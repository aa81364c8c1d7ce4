#!/usr/bin/env node
/**
 * Writes bench/RESULTS.md and bench/ratios.svg from the JSON of a run.
 *
 *   node bench/run.mjs --json bench/results/latest.json
 *   node bench/report.mjs bench/results/latest.json [--out bench/RESULTS.md] [--svg bench/ratios.svg]
 *
 * One table per subject of the ratios: weft against ws and raw TCP, then each framework plugin
 * against bare weft and its ws-based counterpart. The chart shows the subject/peer ratio of
 * every headline metric (CPU per operation, memory per connection; lower is better for all of
 * them) on a log scale centred on 1, with the scenarios' targets marked.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  allPeers,
  formatRatio,
  machineLine,
  markdownTable,
  sections,
  sectionTitle,
  tableRows,
  targets,
} from './lib/table.mjs';

const BENCH = dirname(fileURLToPath(import.meta.url));
const FINDINGS = join(BENCH, 'FINDINGS.md');

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    out: { type: 'string', default: join(BENCH, 'RESULTS.md') },
    svg: { type: 'string', default: join(BENCH, 'ratios.svg') },
  },
});
if (positionals.length !== 1) {
  console.error('usage: node bench/report.mjs RESULTS.json [--out RESULTS.md] [--svg chart.svg]');
  process.exit(2);
}
const results = JSON.parse(readFileSync(positionals[0], 'utf8'));

// ---- chart ------------------------------------------------------------------------------------

const PALETTE = [
  '#1f77b4',
  '#ff7f0e',
  '#7f7f7f',
  '#2ca02c',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#17becf',
  '#bcbd22',
];
const TARGET_COLOUR = '#d62728';

const escapeXml = (text) =>
  String(text).replace(
    /[&<>"]/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c],
  );

/**
 * Hand-built SVG: per table (subject), one group of horizontal bars per headline metric, one
 * bar per subject/peer pair, and a dashed mark where a scenario sets a target for that pair.
 */
/** A target's bound (an upper or a lower one), where the chart draws its mark. */
function targetBound(target) {
  return target?.max ?? target?.min;
}

function ratioChart() {
  const pairs = [];
  const blocks = [];
  for (const section of sections(results)) {
    const groups = [];
    for (const scenario of section.scenarios) {
      for (const metric of scenario.metrics.filter((m) => m.headline)) {
        const bars = section.peers
          .filter((p) => p !== section.subject && scenario.peers.includes(p))
          .map((peer) => ({
            pair: `${section.subject}/${peer}`,
            ratio: scenario.ratio[metric.key]?.[peer],
            target: targetBound(
              scenario.targets?.find((t) => t.key === metric.key && t.peer === peer),
            ),
          }))
          .filter((b) => Number.isFinite(b.ratio) && b.ratio > 0);
        for (const bar of bars) if (!pairs.includes(bar.pair)) pairs.push(bar.pair);
        if (bars.length > 0) groups.push({ title: `${scenario.name}: ${metric.label}`, bars });
      }
    }
    if (groups.length > 0) blocks.push({ title: sectionTitle(section), groups });
  }
  const colour = Object.fromEntries(pairs.map((p, i) => [p, PALETTE[i % PALETTE.length]]));
  const allGroups = blocks.flatMap((b) => b.groups);
  const hasTargets = allGroups.some((g) => g.bars.some((b) => b.target !== undefined));
  const all = allGroups.flatMap((g) =>
    g.bars.flatMap((b) => [b.ratio, b.target ?? 1]).map((r) => Math.abs(Math.log2(r))),
  );
  // Symmetric log2 range in whole powers of 2: at least 0.5..2, at most 0.125..8 (longer bars
  // are clipped and marked).
  const span = Math.min(3, Math.max(1, Math.ceil(Math.max(0, ...all) - 0.01)));
  const width = 920;
  const left = 290;
  const right = width - 70;
  const barHeight = 13;
  const barGap = 3;
  const groupGap = 12;
  const blockHeader = 22;
  const centre = (left + right) / 2;
  const x = (ratio) => {
    const clamped = Math.max(-span, Math.min(span, Math.log2(ratio)));
    return centre + (clamped / span) * ((right - left) / 2);
  };

  // Legend, wrapped over as many rows as it takes.
  const legend = [
    ...pairs.map((pair) => ({ text: pair, swatch: 'bar', fill: colour[pair] })),
    ...(hasTargets ? [{ text: 'target', swatch: 'target' }] : []),
  ];
  const legendItems = [];
  let legendX = 20;
  let legendY = 54;
  for (const item of legend) {
    const itemWidth = 30 + 7 * item.text.length;
    if (legendX + itemWidth > width - 20) {
      legendX = 20;
      legendY += 18;
    }
    legendItems.push({ ...item, x: legendX, y: legendY });
    legendX += itemWidth;
  }
  const top = legendY + 28;
  const height =
    top +
    blocks.reduce(
      (h, b) =>
        h +
        blockHeader +
        b.groups.reduce((g, group) => g + group.bars.length * (barHeight + barGap) + groupGap, 0),
      0,
    ) +
    40;

  const subjects = [...new Set(sections(results).map((s) => s.subject))];
  const who = subjects.length === 1 ? subjects[0] : 'the subject (left of the slash)';
  const out = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<title>subject / peer ratios of the headline metrics</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">subject / peer, headline metrics (median of per-repetition ratios)</text>`,
    `<text x="${width / 2}" y="40" text-anchor="middle" fill="#555">left of 1: ${escapeXml(who)} uses less CPU per operation or memory per connection; right of 1: more (log scale)</text>`,
  );
  for (const item of legendItems) {
    out.push(
      item.swatch === 'bar'
        ? `<rect x="${item.x}" y="${item.y - 10}" width="12" height="12" fill="${item.fill}"/>`
        : `<line x1="${item.x + 6}" y1="${item.y - 11}" x2="${item.x + 6}" y2="${item.y + 3}" stroke="${TARGET_COLOUR}" stroke-width="2" stroke-dasharray="3,2"/>`,
      `<text x="${item.x + 16}" y="${item.y}">${escapeXml(item.text)}</text>`,
    );
  }
  // Grid.
  const bottom = height - 30;
  const ticks = [0.125, 0.25, 0.5, 0.67, 0.8, 1, 1.25, 1.5, 2, 4, 8].filter(
    (t) => Math.abs(Math.log2(t)) <= span + 1e-9 && (span < 2 || Math.abs(Math.log2(t)) % 1 < 0.01),
  );
  for (const tick of ticks) {
    const gx = x(tick).toFixed(1);
    out.push(
      `<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${bottom}" stroke="${tick === 1 ? '#000' : '#ddd'}" stroke-width="${tick === 1 ? 1.5 : 1}"/>`,
      `<text x="${gx}" y="${bottom + 16}" text-anchor="middle" fill="#333">${tick}</text>`,
    );
  }
  // Bars, table by table.
  let y = top;
  for (const block of blocks) {
    out.push(`<text x="20" y="${y + 14}" font-weight="bold">${escapeXml(block.title)}</text>`);
    y += blockHeader;
    for (const group of block.groups) {
      const groupHeight = group.bars.length * (barHeight + barGap);
      out.push(
        `<text x="${left - 10}" y="${y + groupHeight / 2 + 4}" text-anchor="end">${escapeXml(group.title)}</text>`,
      );
      for (const bar of group.bars) {
        const end = x(bar.ratio);
        const from = Math.min(centre, end);
        const clipped = Math.abs(Math.log2(bar.ratio)) > span;
        out.push(
          `<rect x="${from.toFixed(1)}" y="${y}" width="${Math.max(1, Math.abs(end - centre)).toFixed(1)}" height="${barHeight}" fill="${colour[bar.pair]}"><title>${escapeXml(`${group.title}: ${bar.pair} = ${formatRatio(bar.ratio)}`)}</title></rect>`,
        );
        // Over the bar (a target inside it must show), under the value label.
        if (bar.target !== undefined) {
          const tx = x(bar.target).toFixed(1);
          out.push(
            `<line x1="${tx}" y1="${y - 2}" x2="${tx}" y2="${y + barHeight + 2}" stroke="${TARGET_COLOUR}" stroke-width="2" stroke-dasharray="3,2"><title>${escapeXml(`${group.title}: target for ${bar.pair}: ${bar.target}`)}</title></line>`,
          );
        }
        out.push(
          `<text x="${(end + (end >= centre ? 4 : -4)).toFixed(1)}" y="${y + barHeight - 2}" text-anchor="${end >= centre ? 'start' : 'end'}" font-size="11">${clipped ? (end >= centre ? '▸ ' : '◂ ') : ''}${formatRatio(bar.ratio)}</text>`,
        );
        y += barHeight + barGap;
      }
      y += groupGap;
    }
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

// ---- Markdown --------------------------------------------------------------------------------

function paramsLine(params) {
  return Object.entries(params)
    .filter(([key]) => key !== 'perMessageDeflate' && key !== 'json')
    .map(([key, value]) => `${key} ${value}`)
    .join(', ');
}

/** The package versions a server peer reported in this run, e.g. " (fastify 5.12.8)". */
function ran(peer) {
  for (const scenario of results.scenarios) {
    if (scenario.role === 'client') continue;
    const found = scenario.runs[peer]?.find((r) => r.info?.server?.package)?.info.server.package;
    if (found) return ` (ran: ${found})`;
  }
  return '';
}

/** The scenarios that ran a different number of repetitions (capped), if any. */
function repeatExceptions(results) {
  const others = results.scenarios.filter((scenario) => scenario.repeat !== results.repeat);
  if (others.length === 0) return '';
  return ` (${others.map((scenario) => `${scenario.name}: ${scenario.repeat}`).join(', ')})`;
}

/** Which scenarios were measured in alternating windows, and how many per repetition. */
function windowsLine(results) {
  const groups = new Map();
  for (const scenario of results.scenarios.filter((s) => s.windows)) {
    const key = `${scenario.windows} alternating windows of ${scenario.params.windowMs} ms`;
    groups.set(key, [...(groups.get(key) ?? []), scenario.name]);
  }
  return [...groups].map(([how, names]) => `; ${names.join(', ')}: ${how}`).join('');
}

/** Which measured packages had uncommitted source changes (older runs only knew about core). */
function uncommitted(git) {
  const changed = git.changed ?? (git.coreChanged ? ['packages/core/src'] : []);
  return changed.length > 0 ? ` (with uncommitted changes in ${changed.join(', ')})` : '';
}

function markdown(svgPath, outPath) {
  const lines = [];
  const svgLink = relative(dirname(outPath), svgPath) || basename(svgPath);
  lines.push(
    '# weft benchmark results',
    '',
    '<!-- Generated by bench/report.mjs from the JSON of a run: do not edit by hand. -->',
    '',
    `- **Date:** ${results.date}`,
    `- **Command:** \`${results.command}\`${results.smoke ? ' (smoke mode: tiny counts, not a measurement)' : ''}`,
    ...(results.git ? [`- **Commit:** ${results.git.commit}${uncommitted(results.git)}`] : []),
    `- **Machine:** ${machineLine(results).replace(/^machine: /, '')}`,
    `- **Load average** (1 min) at start and end of the run: ${results.loadavg?.start ?? '?'} / ${results.loadavg?.end ?? '?'}`,
    `- **Repetitions:** ${results.repeat} per case${repeatExceptions(results)}${windowsLine(results)}; per peer and repetition; run time ${results.durationS} s`,
    '',
    `![subject/peer ratios of the headline metrics](${svgLink})`,
    '',
    ...sections(results).flatMap((section) => [
      `**${sectionTitle(section)}**`,
      '',
      markdownTable(tableRows(section)),
      '',
    ]),
    '`*` marks the headline metrics. ↓ lower is better, ↑ higher is better. Values are medians over the',
    'repetitions (over the windows, in the scenarios measured in alternating windows). A ratio is',
    'subject/peer, the subject being the first peer column of its table (weft, or the plugin in the',
    'plugin scenarios): the median of the paired ratios, each pair two cases run back to back or two',
    'windows next to each other in time, so it need not equal the quotient of the two medians.',
    '`n/a`: the peer does not take part in that scenario; `—`: no value (a failed case).',
    '',
  );
  const goals = targets(results);
  if (goals.length > 0) {
    lines.push(
      `Targets${results.smoke ? ' (smoke mode: not a measurement)' : ''}:`,
      '',
      ...goals.map((t) => `- ${t.text}`),
      '',
    );
  }
  if (results.notes.length > 0) {
    lines.push('Notes:', '', ...results.notes.map((n) => `- ${n}`), '');
  }
  // What the profiles say about the targets is written by hand, next to this script.
  if (existsSync(FINDINGS)) lines.push(readFileSync(FINDINGS, 'utf8').trim(), '');
  const errors = results.scenarios.flatMap((s) =>
    s.errors.map((e) => `- ${s.name}, ${e.peer}, repetition ${e.rep + 1}: ${e.error}`),
  );
  if (errors.length > 0) lines.push('Failed cases:', '', ...errors, '');
  lines.push(
    '## Peers',
    '',
    ...allPeers(results).map((p) => `- \`${p}\`: ${results.peers[p] ?? p}${ran(p)}`),
    '',
    'In every scenario but `client`, the load generator is the `ws` client (with bufferutil) for',
    'every WebSocket peer, and a raw TCP client for `raw`. The plugin peers serve one WebSocket',
    'route, which the load generator connects to; the bare servers take any path. In `client` the',
    'peers are the clients, all against the same `ws` server (with bufferutil):',
    '',
    ...(results.scenarios.find((s) => s.role === 'client')?.peers ?? []).map(
      (p) => `- \`${p}\`: ${results.clientPeers?.[p] ?? p}`,
    ),
    '',
    '## Scenarios',
    '',
  );
  for (const scenario of results.scenarios) {
    lines.push(
      `- **${scenario.name}**: ${scenario.summary}. Parameters: ${paramsLine(scenario.params)}.`,
    );
  }
  lines.push(
    '',
    '## How it is measured',
    '',
    '- Server and load generator are separate processes (`child_process.fork`), on 127.0.0.1,',
    '  pinned to two different CPUs with `taskset -c` when available.',
    '- CPU per operation is the server process measuring itself: `process.cpuUsage()` (user +',
    '  system, all threads, so zlib work on the libuv pool counts) around the measured window,',
    '  divided by the operations the server counted in that window, and sent to the orchestrator',
    '  over IPC. Each window follows a warm-up under the same load.',
    '- The steady-load scenarios (echo, deflate-echo, client, handshake and the plugin echoes and',
    '  handshakes) are measured in alternating windows: every peer of the scenario has its server',
    '  and load generator up at once, each is warmed up once, then one peer at a time gets the',
    '  load for a short re-warm and a window, peer after peer, in reversed order every round. The',
    "  machine's speed drifts by up to a factor of two over seconds; windows a second apart see",
    '  the same machine, where whole cases run one after the other did not. Bulk, broadcast and',
    '  idle memory run one case per peer and repetition.',
    '- Memory per connection: `process.memoryUsage()` in the server after a full GC, with all the',
    '  connections open and idle, minus the same before the first connection, over the count.',
    '  The RSS headline counts anonymous pages (`RssAnon` of `/proc/self/status`); resident pages',
    '  of the node binary, paged in once per process, are in the line with file-backed pages.',
    '- On a shared, loaded machine the absolute throughput and latency figures mostly measure the',
    '  other tenants; CPU time per operation is the most stable figure, and the ratios (paired',
    '  within one run) are what to compare between runs.',
    '',
    'Reproduce: `npm run bench` (builds, then runs `node bench/run.mjs`), or',
    `\`node bench/run.mjs --control --json bench/results/latest.json && node bench/report.mjs bench/results/latest.json\`.`,
    'See [bench/README.md](README.md).',
    '',
  );
  return lines.join('\n');
}

const outPath = resolve(values.out);
const svgPath = resolve(values.svg);
writeFileSync(svgPath, ratioChart());
writeFileSync(outPath, markdown(svgPath, outPath));
console.log(`wrote ${relative(process.cwd(), outPath)} and ${relative(process.cwd(), svgPath)}`);
