/** One line of the results table. */
export interface Row {
  section: string;
  metric: string;
  /** A number, or a text such as "not measured: <reason>". */
  value: number | string;
  unit?: string;
  note?: string;
}

/** A performance target and whether this run met it (null: not measured). */
export interface TargetCheck {
  target: string;
  actual: string;
  met: boolean | null;
  note?: string;
}

export interface SectionResult {
  rows: Row[];
  targets: TargetCheck[];
  /** Anything else worth keeping in results.json (raw repetitions, counts). */
  details?: Record<string, unknown>;
}

export function notMeasured(section: string, metric: string, reason: string): Row {
  return { section, metric, value: `not measured: ${reason}` };
}

function formatValue(value: number | string): string {
  if (typeof value === 'string') return value;
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 1000) return value.toFixed(0);
  if (abs >= 100) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toFixed(3);
}

/** A Markdown table (readable on a terminal, pasteable into the README). */
export function formatTable(rows: Row[]): string {
  const cells = rows.map((row) => [
    row.section,
    row.metric,
    `${formatValue(row.value)}${row.unit ? ` ${row.unit}` : ''}`,
    row.note ?? '',
  ]);
  const header = ['section', 'metric', 'value', 'note'];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (c: string[]) =>
    `| ${c.map((text, i) => text.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [
    line(header),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...cells.map(line),
  ].join('\n');
}

/** The targets as a Markdown table: target, this run, met. */
export function formatTargets(targets: TargetCheck[]): string {
  const cells = targets.map((t) => [
    t.target,
    `${t.actual}${t.note ? ` (${t.note})` : ''}`,
    t.met === null ? 'n/a' : t.met ? 'yes' : 'NO',
  ]);
  const header = ['target', 'this run', 'met'];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (c: string[]) =>
    `| ${c.map((text, i) => text.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [
    line(header),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...cells.map(line),
  ].join('\n');
}
