/**
 * The results tables, as aligned text (run.mjs) or Markdown (report.mjs), from a results
 * object. The scenarios are grouped by the subject of their ratios, one table per subject:
 * weft against ws and raw TCP, then each framework plugin against bare weft and its ws-based
 * counterpart. A table's columns are only the peers of its own scenarios.
 */
import { SUBJECT } from './peers.mjs';

export function formatValue(value) {
  if (value === undefined || value === null || !Number.isFinite(value)) return '—';
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString('en-US');
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toFixed(3);
}

export function formatRatio(value) {
  if (value === undefined || value === null || !Number.isFinite(value)) return '—';
  return value.toFixed(2);
}

/** The peer a scenario's ratios are computed for (results of older runs have one for all). */
export function subjectOf(scenario, results) {
  return scenario.subject ?? results.subject ?? SUBJECT;
}

/** The scenarios grouped by subject, in first-seen order: [{ subject, scenarios, peers }]. */
export function sections(results) {
  const out = [];
  for (const scenario of results.scenarios) {
    const subject = subjectOf(scenario, results);
    let section = out.find((s) => s.subject === subject);
    if (section === undefined) {
      section = { subject, scenarios: [], peers: [subject] };
      out.push(section);
    }
    section.scenarios.push(scenario);
    for (const peer of scenario.peers) if (!section.peers.includes(peer)) section.peers.push(peer);
  }
  return out;
}

/** Every peer of the run, in the order of the tables. */
export function allPeers(results) {
  return [...new Set(sections(results).flatMap((s) => s.peers))];
}

/** What a section's table compares, e.g. "weft-fastify against weft, fastify-websocket". */
export function sectionTitle({ subject, peers }) {
  const others = peers.filter((p) => p !== subject);
  if (others.length === 0) return `${subject} alone: no ratios`;
  return `${subject} against ${others.join(', ')}: ratios ${subject}/peer`;
}

/** Header and rows of strings: scenario, metric, each peer's median, subject/peer ratios. */
export function tableRows({ subject, scenarios, peers }) {
  const others = peers.filter((p) => p !== subject);
  const header = ['scenario', 'metric', ...peers, ...others.map((p) => `${subject}/${p}`)];
  const rows = [];
  for (const scenario of scenarios) {
    if (scenario.metrics.length === 0) {
      rows.push([scenario.name, 'failed', ...peers.map(() => '—'), ...others.map(() => '—')]);
      continue;
    }
    scenario.metrics.forEach((metric, index) => {
      const arrow = metric.better === 'lower' ? '↓' : '↑';
      const median = scenario.median[metric.key] ?? {};
      const ratio = scenario.ratio[metric.key] ?? {};
      rows.push([
        index === 0 ? scenario.name : '',
        `${metric.headline ? '* ' : ''}${metric.label} ${arrow}`,
        ...peers.map((p) => (scenario.peers.includes(p) ? formatValue(median[p]) : 'n/a')),
        ...others.map((p) => (scenario.peers.includes(p) ? formatRatio(ratio[p]) : 'n/a')),
      ]);
    });
  }
  return { header, rows };
}

/**
 * The scenarios' targets with the ratio measured: [{ scenario, metric, subject, peer, max or
 * min, ratio, met, text }]; `met` is null when there is no ratio (a failed or skipped case).
 */
export function targets(results) {
  const out = [];
  for (const scenario of results.scenarios) {
    const subject = subjectOf(scenario, results);
    for (const { key, peer, max, min } of scenario.targets ?? []) {
      const metric = scenario.metrics.find((m) => m.key === key);
      const ratio = scenario.ratio[key]?.[peer];
      const met = Number.isFinite(ratio) ? (max !== undefined ? ratio <= max : ratio >= min) : null;
      const verdict = met === null ? 'no value' : met ? 'met' : 'NOT met';
      const bound = max !== undefined ? `≤ ${max}` : `≥ ${min}`;
      out.push({
        scenario: scenario.name,
        metric: metric?.label ?? key,
        subject,
        peer,
        max,
        min,
        ratio,
        met,
        text: `${scenario.name}: ${subject}/${peer} of ${metric?.label ?? key} ${formatRatio(ratio)}, target ${bound}: ${verdict}`,
      });
    }
  }
  return out;
}

export function textTable({ header, rows }) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function markdownTable({ header, rows }) {
  const escapeCell = (cell) => cell.replace(/\|/g, '\\|');
  return [
    `| ${header.map(escapeCell).join(' | ')} |`,
    `| ${header.map((_, i) => (i < 2 ? '---' : '---:')).join(' | ')} |`,
    ...rows.map((row) => `| ${row.map(escapeCell).join(' | ')} |`),
  ].join('\n');
}

export function machineLine(results) {
  const m = results.machine;
  return `machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, node ${m.node}, ${m.os}, ${results.date}; ${results.pinning}`;
}
