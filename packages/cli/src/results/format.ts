import type { VerdictCoverage, VerdictRecord } from '@binaryalert/core';
import type { MatchHistory } from './query';

/** One `results --json` item: the wire format (every field present, null when unknown). */
export interface ResultJson {
  bucket: string;
  key: string;
  sha256: string | null;
  verdict: string;
  reason: string | null;
  rules: string[];
  analyzedAt: string;
  size: number | null;
  etag: string | null;
  versionId: string | null;
  analyzerVersion: number;
  alerted: boolean | null;
}

export function resultJson(record: VerdictRecord): ResultJson {
  return {
    bucket: record.bucket,
    key: record.key,
    sha256: record.sha256 ?? null,
    verdict: record.verdict,
    reason: record.reason ?? null,
    rules: record.rules,
    analyzedAt: record.analyzedAt,
    size: record.size ?? null,
    etag: record.etag ?? null,
    versionId: record.versionId ?? null,
    analyzerVersion: record.analyzerVersion,
    alerted: record.alerted ?? null,
  };
}

// Matches first: what needs attention, then what was fully scanned and clean.
const VERDICT_ORDER: Record<string, number> = {
  matched: 0,
  partial: 1,
  failed: 2,
  skipped: 3,
  clean: 4,
};

/** Matches first, then partial, failed, skipped and clean; newest first within each. */
export function byAttention(a: VerdictRecord, b: VerdictRecord): number {
  return (
    (VERDICT_ORDER[a.verdict] ?? 9) - (VERDICT_ORDER[b.verdict] ?? 9) ||
    b.analyzedAt.localeCompare(a.analyzedAt) ||
    a.key.localeCompare(b.key)
  );
}

const CSV_COLUMNS = [
  'bucket',
  'key',
  'verdict',
  'reason',
  'rules',
  'sha256',
  'size',
  'analyzedAt',
  'analyzerVersion',
] as const;

/**
 * One CSV field (RFC 4180). A field a spreadsheet would run as a formula (=, +, -, @, tab, CR) is
 * prefixed with a quote: object keys are attacker-chosen.
 */
export function csvField(value: string | number | null): string {
  let text = value === null ? '' : String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function toCsv(records: VerdictRecord[]): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const record of records) {
    const json = resultJson(record);
    lines.push(
      CSV_COLUMNS.map((column) =>
        csvField(column === 'rules' ? json.rules.join(' ') : json[column]),
      ).join(','),
    );
  }
  return `${lines.join('\r\n')}\r\n`;
}

/**
 * Control characters (a hostile key could move the cursor or recolor a terminal) as \xNN, and
 * the characters that reorder or break what a terminal shows as \uNNNN: a right-to-left override
 * shows `invoice\u202efdp.exe` as `invoice` + `exe.pdf`.
 */
export function printable(text: string): string {
  return text
    .replace(
      // eslint-disable-next-line no-control-regex
      /[\x00-\x1f\x7f-\x9f]/g,
      (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
    )
    .replace(
      /[\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16)}`,
    );
}

/** Keeps the start and end of a long text: `dir/...name.exe`. */
export function elideMiddle(text: string, width: number): string {
  if (text.length <= width) return text;
  const keep = width - 3;
  return `${text.slice(0, Math.ceil(keep / 2))}...${text.slice(text.length - Math.floor(keep / 2))}`;
}

function columns(rows: string[][]): string {
  const widths = rows[0]!.map((_, index) => Math.max(...rows.map((row) => row[index]!.length)));
  return rows
    .map((row) =>
      row
        .map((cell, index) => (index === row.length - 1 ? cell : cell.padEnd(widths[index]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The default `results` table: one row per object, matches first. */
export function toTable(records: VerdictRecord[], keyWidth = 60): string {
  if (records.length === 0) return 'No results.\n';
  const rows = [['VERDICT', 'RULES / REASON', 'SHA256', 'ANALYZED', 'OBJECT']];
  for (const record of records) {
    const detail = record.rules.length > 0 ? record.rules.join(' ') : (record.reason ?? '');
    rows.push([
      record.verdict,
      elideMiddle(
        printable(
          record.reason && record.rules.length > 0 ? `${detail} (${record.reason})` : detail,
        ),
        48,
      ),
      record.sha256?.slice(0, 12) ?? '-',
      record.analyzedAt.replace(/\.\d+Z$/, 'Z'),
      elideMiddle(printable(`s3://${record.bucket}/${record.key}`), keyWidth),
    ]);
  }
  return `${columns(rows)}\n`;
}

/** `results show`: each object holding the bytes, the rules with their details, the history. */
export function toShowText(
  records: VerdictRecord[],
  history: Map<string, MatchHistory | undefined>,
): string {
  const lines: string[] = [];
  for (const record of records) {
    lines.push(`s3://${printable(record.bucket)}/${printable(record.key)}`);
    lines.push(`  verdict:     ${record.verdict}${record.reason ? ` (${record.reason})` : ''}`);
    if (record.sha256) lines.push(`  sha256:      ${record.sha256}`);
    if (record.md5) lines.push(`  md5:         ${record.md5}`);
    if (record.size !== undefined) lines.push(`  size:        ${record.size} bytes`);
    if (record.etag) lines.push(`  etag:        ${record.etag}`);
    if (record.versionId) lines.push(`  version id:  ${record.versionId}`);
    if (record.lastModified) lines.push(`  modified:    ${record.lastModified}`);
    lines.push(`  analyzed:    ${record.analyzedAt} by analyzer version ${record.analyzerVersion}`);
    if (record.alerted !== undefined) {
      lines.push(
        `  alert:       ${record.alerted ? 'sent' : 'not sent'} (${record.alertReason ?? '?'})`,
      );
    }
    for (const match of record.matches) {
      lines.push(`  rule ${match.id}${match.tags.length > 0 ? ` [${match.tags.join(', ')}]` : ''}`);
      for (const [name, value] of Object.entries(match.meta)) {
        lines.push(`    ${printable(name)} = ${printable(JSON.stringify(value))}`);
      }
      if (match.strings.length > 0)
        lines.push(`    strings: ${match.strings.map(printable).join(' ')}`);
    }
    const detailed = new Set(record.matches.map((match) => match.id));
    const more = record.rules.filter((rule) => !detailed.has(rule));
    if (more.length > 0) lines.push(`  also matched (no details kept): ${more.join(' ')}`);
    lines.push('');
  }
  for (const [sha256, entry] of history) {
    if (!entry) continue;
    lines.push(`Alert history of ${sha256} (every key and rules release merged):`);
    if (entry.firstMatchedAt) lines.push(`  first matched: ${entry.firstMatchedAt}`);
    if (entry.lastAlertAt) lines.push(`  last alert:    ${entry.lastAlertAt}`);
    for (const rule of entry.alertedRules) {
      lines.push(
        `  alerted: ${rule.id}${rule.fingerprint ? ` (rule version ${rule.fingerprint})` : ''}`,
      );
    }
    lines.push('');
  }
  return lines.join('\n');
}

/** Counts for `results summary`. */
export interface ResultSummary {
  bucket: string;
  prefix: string;
  byVerdict: Record<string, number>;
  byReason: Record<string, number>;
  byRule: Record<string, number>;
  coverage: VerdictCoverage;
}

function countLines(title: string, counts: Record<string, number>): string[] {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (entries.length === 0) return [];
  const width = Math.max(...entries.map(([name]) => name.length));
  return [title, ...entries.map(([name, count]) => `  ${printable(name).padEnd(width)}  ${count}`)];
}

export function toSummaryText(summary: ResultSummary): string {
  const { coverage } = summary;
  const unverdicted = Object.values(coverage.gaps).reduce((sum, count) => sum + count, 0);
  const lines = [
    `s3://${summary.bucket}/${printable(summary.prefix)}: ${coverage.listed} objects, ${coverage.covered} with a verdict, ${unverdicted} without one yet`,
    ...(unverdicted > 0
      ? [
          `  without a verdict: ${coverage.gaps['no verdict']} never analyzed, ${coverage.gaps['content changed']} replaced since their analysis`,
        ]
      : []),
    ...(coverage.gone > 0
      ? [`  ${coverage.gone} verdicts name objects no longer in the bucket`]
      : []),
    '',
    ...countLines('By verdict:', summary.byVerdict),
    ...countLines('By reason:', summary.byReason),
    ...countLines('By rule:', summary.byRule),
  ];
  return `${lines.join('\n')}\n`;
}
