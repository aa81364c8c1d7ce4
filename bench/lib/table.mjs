/** The results table, as aligned text (run.mjs) or Markdown (report.mjs), from a results object. */
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

/** The peer columns in first-seen order, the subject first. */
export function peerColumns(results) {
  const columns = [SUBJECT];
  for (const scenario of results.scenarios) {
    for (const peer of scenario.peers) if (!columns.includes(peer)) columns.push(peer);
  }
  return columns;
}

/** Header and rows of strings: scenario, metric, each peer's median, weft/peer ratios. */
export function tableRows(results) {
  const peers = peerColumns(results);
  const others = peers.filter((p) => p !== SUBJECT);
  const header = ['scenario', 'metric', ...peers, ...others.map((p) => `${SUBJECT}/${p}`)];
  const rows = [];
  for (const scenario of results.scenarios) {
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
