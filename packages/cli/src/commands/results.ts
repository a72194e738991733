import type { Command } from 'commander';
import path from 'node:path';
import { verdictCoverage, VERDICTS, type Verdict, type VerdictRecord } from '@binaryalert/core';
import {
  DEFAULT_TFVARS_PATH,
  loadTfvars,
  resourceNames,
  type BinaryAlertConfig,
} from '@binaryalert/deployment';

import {
  awsClientSettings,
  createAwsClients,
  destroyAwsClients,
  type AwsClients,
  type LocalFlag,
} from '../aws';
import {
  byAttention,
  resultJson,
  toCsv,
  toShowText,
  toSummaryText,
  toTable,
  type ResultSummary,
} from '../results/format';
import {
  findVerdicts,
  getVerdict,
  matchHistory,
  verdictsBySha256,
  type MatchHistory,
  type ResultFilter,
} from '../results/query';
import { UsageError, type CommandRegistrar } from '../usage';

export interface ResultsContext {
  config: BinaryAlertConfig;
  /** `--local [endpoint]`: read the local stack instead of AWS. */
  local?: LocalFlag;
  /** Injected clients (tests); otherwise built for AWS or the local stack. */
  clients?: Pick<AwsClients, 's3' | 'dynamodb'>;
  out?: { write(text: string): unknown };
}

export type ResultsFormat = 'table' | 'json' | 'csv';

async function withClients<T>(
  context: ResultsContext,
  run: (clients: Pick<AwsClients, 's3' | 'dynamodb'>) => Promise<T>,
): Promise<T> {
  const clients =
    context.clients ?? createAwsClients(awsClientSettings(context.config, context.local));
  try {
    return await run(clients);
  } finally {
    if (!context.clients) destroyAwsClients(clients);
  }
}

/** `results`: the objects the filter selects, matches first. Returns how many were printed. */
export async function listResults(
  context: ResultsContext,
  filter: ResultFilter,
  format: ResultsFormat = 'table',
): Promise<VerdictRecord[]> {
  const names = resourceNames(context.config);
  const out = context.out ?? process.stdout;
  const records = await withClients(context, async (clients) => {
    const found: VerdictRecord[] = [];
    for await (const record of findVerdicts(clients.dynamodb, names.verdictTable, filter)) {
      found.push(record);
    }
    return found.sort(byAttention);
  });
  if (format === 'json') out.write(`${JSON.stringify(records.map(resultJson), null, 2)}\n`);
  else if (format === 'csv') out.write(toCsv(records));
  else out.write(toTable(records));
  return records;
}

const SHA256 = /^[0-9a-f]{64}$/i;

/** Where `results show` looks: a SHA-256, `s3://bucket/key`, or a key of the binaries bucket. */
export function parseShowTarget(
  target: string,
  defaultBucket: string,
): { sha256: string } | { bucket: string; key: string } {
  if (SHA256.test(target)) return { sha256: target.toLowerCase() };
  if (target.startsWith('s3://')) {
    const rest = target.slice('s3://'.length);
    const slash = rest.indexOf('/');
    if (slash <= 0 || slash === rest.length - 1) {
      throw new UsageError(`expected s3://bucket/key, got "${target}"`);
    }
    return { bucket: rest.slice(0, slash), key: rest.slice(slash + 1) };
  }
  if (target === '') throw new UsageError('results show needs a SHA-256, s3://bucket/key or key');
  return { bucket: defaultBucket, key: target };
}

/**
 * `results show`: every object with the same bytes as the target, their matched rules with
 * metadata and string names, and the match history across analyzer versions. Returns the records
 * found (none: exit code 1).
 */
export async function showResults(
  context: ResultsContext,
  target: string,
  format: 'text' | 'json' = 'text',
): Promise<VerdictRecord[]> {
  const names = resourceNames(context.config);
  const out = context.out ?? process.stdout;
  const where = parseShowTarget(target, names.bucket);
  const { records, history } = await withClients(context, async (clients) => {
    let records: VerdictRecord[];
    if ('sha256' in where) {
      records = await verdictsBySha256(clients.dynamodb, names.verdictTable, where.sha256);
    } else {
      const record = await getVerdict(
        clients.dynamodb,
        names.verdictTable,
        where.bucket,
        where.key,
      );
      // The same bytes elsewhere belong in the same view.
      records = record?.sha256
        ? await verdictsBySha256(clients.dynamodb, names.verdictTable, record.sha256)
        : record
          ? [record]
          : [];
      if (record && !records.some((r) => r.bucket === record.bucket && r.key === record.key)) {
        records.unshift(record);
      }
    }
    const history = new Map<string, MatchHistory | undefined>();
    for (const sha256 of new Set(records.flatMap((record) => record.sha256 ?? []))) {
      history.set(sha256, await matchHistory(clients.dynamodb, names.table, sha256));
    }
    return { records, history };
  });
  if (format === 'json') {
    out.write(
      `${JSON.stringify(
        {
          objects: records.map((record) => ({ ...resultJson(record), matches: record.matches })),
          matchHistory: Object.fromEntries(history),
        },
        null,
        2,
      )}\n`,
    );
  } else if (records.length === 0) {
    out.write(`No verdict for ${target}.\n`);
  } else out.write(toShowText(records, history));
  return records;
}

/** `results summary`: counts by verdict, reason and rule, and objects without a verdict yet. */
export async function summarizeResults(
  context: ResultsContext,
  options: { prefix?: string; format?: 'text' | 'json' } = {},
): Promise<ResultSummary> {
  const names = resourceNames(context.config);
  const out = context.out ?? process.stdout;
  const summary = await withClients(context, async (clients) => {
    const byVerdict: Record<string, number> = {};
    const byReason: Record<string, number> = {};
    const byRule: Record<string, number> = {};
    const filter = { bucket: names.bucket, ...(options.prefix ? { prefix: options.prefix } : {}) };
    for await (const record of findVerdicts(clients.dynamodb, names.verdictTable, filter)) {
      byVerdict[record.verdict] = (byVerdict[record.verdict] ?? 0) + 1;
      if (record.reason) byReason[record.reason] = (byReason[record.reason] ?? 0) + 1;
      for (const rule of record.rules) byRule[rule] = (byRule[rule] ?? 0) + 1;
    }
    const coverage = await verdictCoverage(
      { s3: clients.s3, dynamo: clients.dynamodb },
      { table: names.verdictTable, ...filter },
    );
    return {
      bucket: names.bucket,
      prefix: options.prefix ?? '',
      byVerdict,
      byReason,
      byRule,
      coverage,
    };
  });
  out.write(
    options.format === 'json' ? `${JSON.stringify(summary, null, 2)}\n` : toSummaryText(summary),
  );
  return summary;
}

/** `--since`: an ISO 8601 time, or a duration back from now (`90m`, `12h`, `7d`). */
export function parseSince(value: string, now = Date.now()): string {
  const duration = /^(\d+)([mhd])$/.exec(value);
  if (duration) {
    const unit = { m: 60_000, h: 3_600_000, d: 86_400_000 }[duration[2] as 'm' | 'h' | 'd'];
    return new Date(now - Number(duration[1]) * unit).toISOString();
  }
  const time = Date.parse(value);
  if (!/^\d{4}-\d\d-\d\d/.test(value) || Number.isNaN(time)) {
    throw new UsageError(
      `--since expects an ISO 8601 time (2026-01-31T12:00:00Z) or a duration (90m, 12h, 7d), got "${value}"`,
    );
  }
  return new Date(time).toISOString();
}

function parseVerdict(value: string): Verdict {
  if (!(VERDICTS as readonly string[]).includes(value)) {
    throw new UsageError(`--verdict must be one of ${VERDICTS.join(', ')}, not "${value}"`);
  }
  return value as Verdict;
}

function parseLimit(value: string): number {
  const limit = Number(value);
  if (!Number.isInteger(limit) || limit < 1) {
    throw new UsageError(`--limit must be a positive integer, not "${value}"`);
  }
  return limit;
}

interface ListFlags {
  local?: LocalFlag;
  tfvars: string;
  verdict?: Verdict;
  rule?: string;
  prefix?: string;
  bucket?: string;
  since?: string;
  limit?: number;
  json?: boolean;
  csv?: boolean;
}

export const registerResults: CommandRegistrar = (program: Command) => {
  const local = '--local [endpoint]';
  const localHelp = 'read the local stack (default http://127.0.0.1:4566)';
  const tfvarsHelp = 'settings file (names the tables and the bucket)';
  const results = program
    .command('results')
    .description(
      'list the verdict of every analyzed object (matches first); see also results show and results summary',
    )
    .option(local, localHelp)
    .option('--verdict <verdict>', `only this verdict: ${VERDICTS.join(', ')}`, parseVerdict)
    .option('--rule <rule>', 'only objects matching this rule (namespace:rule, or the rule name)')
    .option('--prefix <prefix>', 'only keys starting with this prefix (in the binaries bucket)')
    .option(
      '--bucket <bucket>',
      'only objects of this bucket (default with --prefix: the binaries bucket)',
    )
    .option('--since <time>', 'only verdicts from this time on (ISO 8601, or 90m, 12h, 7d)')
    .option('--limit <n>', 'at most this many objects', parseLimit)
    .option('--json', 'print a JSON array')
    .option('--csv', 'print CSV (for spreadsheets)')
    .option('--tfvars <file>', tfvarsHelp, DEFAULT_TFVARS_PATH)
    .action(async (flags: ListFlags) => {
      if (flags.json && flags.csv) throw new UsageError('choose one of --json and --csv');
      const config = await loadTfvars(path.resolve(flags.tfvars));
      const filter: ResultFilter = {
        ...(flags.verdict ? { verdict: flags.verdict } : {}),
        ...(flags.rule ? { rule: flags.rule } : {}),
        ...(flags.prefix ? { prefix: flags.prefix } : {}),
        ...(flags.bucket || flags.prefix
          ? { bucket: flags.bucket ?? resourceNames(config).bucket }
          : {}),
        ...(flags.since ? { since: parseSince(flags.since) } : {}),
        ...(flags.limit ? { limit: flags.limit } : {}),
      };
      await listResults(
        { config, local: flags.local },
        filter,
        flags.json ? 'json' : flags.csv ? 'csv' : 'table',
      );
    });

  results
    .command('show <target>')
    .description(
      'every object holding the same bytes as <sha256 | s3://bucket/key | key>, its matched rules and alert history',
    )
    .option(local, localHelp)
    .option('--json', 'print JSON')
    .option('--tfvars <file>', tfvarsHelp, DEFAULT_TFVARS_PATH)
    .action(async (target: string, _flags: unknown, command: Command) => {
      // The parent command's options (declared there too) are parsed wherever they appear.
      const flags = command.optsWithGlobals<{
        local?: LocalFlag;
        json?: boolean;
        tfvars: string;
      }>();
      const config = await loadTfvars(path.resolve(flags.tfvars));
      const found = await showResults(
        { config, local: flags.local },
        target,
        flags.json ? 'json' : 'text',
      );
      if (found.length === 0) process.exitCode = 1;
    });

  results
    .command('summary')
    .description(
      'counts by verdict, reason and rule, and the objects in the bucket without a verdict yet',
    )
    .option(local, localHelp)
    .option('--prefix <prefix>', 'only keys starting with this prefix')
    .option('--json', 'print JSON')
    .option('--tfvars <file>', tfvarsHelp, DEFAULT_TFVARS_PATH)
    .action(async (_flags: unknown, command: Command) => {
      const flags = command.optsWithGlobals<{
        local?: LocalFlag;
        prefix?: string;
        json?: boolean;
        tfvars: string;
      }>();
      const config = await loadTfvars(path.resolve(flags.tfvars));
      await summarizeResults(
        { config, local: flags.local },
        {
          ...(flags.prefix ? { prefix: flags.prefix } : {}),
          format: flags.json ? 'json' : 'text',
        },
      );
    });
};
