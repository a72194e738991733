import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { DeleteObjectsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { Command } from 'commander';
import { objectId, parseAlertedRule } from '@binaryalert/core';
import {
  loadTfvars,
  resourceNames,
  type BinaryAlertConfig,
  type ResourceNames,
} from '@binaryalert/deployment';

import {
  awsClientSettings,
  createAwsClients,
  destroyAwsClients,
  type AwsClients,
  type LocalFlag,
} from '../aws';
import { UsageError, type CommandRegistrar } from '../usage';

/** The EICAR anti-virus test file: harmless, and matched by rules/binaryalert/eicar.yara. */
export const EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';
export const EICAR_SHA256 = createHash('sha256').update(EICAR).digest('hex');

export const LIVE_TEST_PREFIX = 'binaryalert-live-test/';
/** The member name of EICAR inside the uploaded archives. */
export const ARCHIVE_MEMBER = 'eicar.com';

/** One uploaded test file: its bytes and, for an archive, the member that must be named. */
interface TestFile {
  name: string;
  body: Buffer;
  sha256: string;
  member?: string;
}

/**
 * The files uploaded per run: EICAR plain, under a key S3 has to URL-encode, inside a .tar.gz and
 * inside a zip encrypted with the password "infected" (archives made with tar and zip).
 */
export function liveTestFiles(): TestFile[] {
  const file = (name: string, body: Buffer, member?: string): TestFile => ({
    name,
    body,
    sha256: createHash('sha256').update(body).digest('hex'),
    ...(member ? { member } : {}),
  });
  const dir = mkdtempSync(join(tmpdir(), 'binaryalert-live-test-'));
  try {
    writeFileSync(join(dir, ARCHIVE_MEMBER), EICAR);
    const run = (command: string, args: string[]) =>
      execFileSync(command, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    run('tar', ['-czf', 'eicar.tar.gz', ARCHIVE_MEMBER]);
    run('zip', ['-q', '-P', 'infected', 'eicar-infected.zip', ARCHIVE_MEMBER]);
    return [
      file('eicar.com', Buffer.from(EICAR)),
      file('eicar test file (copy).txt', Buffer.from(EICAR)),
      file('eicar.tar.gz', readFileSync(join(dir, 'eicar.tar.gz')), ARCHIVE_MEMBER),
      file('eicar-infected.zip', readFileSync(join(dir, 'eicar-infected.zip')), ARCHIVE_MEMBER),
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface LiveTestOptions {
  config: BinaryAlertConfig;
  local?: LocalFlag;
  clients?: Pick<AwsClients, 's3' | 'dynamodb'>;
  /** How long to wait for the records (default 300 s). */
  timeoutSeconds?: number;
  pollIntervalMs?: number;
  /** Names this run's keys (default: random). */
  runId?: string;
  /** Leave the uploaded test files in the bucket. */
  keep?: boolean;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export interface LiveTestResult {
  passed: boolean;
  /** `S3:bucket:key` of each uploaded file. */
  expected: string[];
  missing: string[];
  matchedRules: string[];
}

/**
 * End-to-end check of a deployment: uploads EICAR test files (with `filepath` metadata) under
 * unique keys, two of them archives, and waits until the verdict ledger records each as an alerted
 * copy of its SHA-256 and, for an archive, the match table names the EICAR member in
 * `MatchedMembers`.
 * The files are deleted afterwards unless `keep`.
 */
export async function liveTest(options: LiveTestOptions): Promise<LiveTestResult> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const names = resourceNames(options.config);
  const clients =
    options.clients ?? createAwsClients(awsClientSettings(options.config, options.local));
  const runId =
    options.runId ??
    `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(4).toString('hex')}`;
  const files = liveTestFiles();
  const keys = files.map((file) => `${LIVE_TEST_PREFIX}${runId}/${file.name}`);
  const expected = keys.map((key) => objectId(names.bucket, key));
  const timeoutMs = (options.timeoutSeconds ?? 300) * 1000;
  try {
    for (const [index, key] of keys.entries()) {
      await clients.s3.send(
        new PutObjectCommand({
          Bucket: names.bucket,
          Key: key,
          Body: files[index]!.body,
          Metadata: { filepath: `/${key}` },
        }),
      );
    }
    log(
      `Uploaded ${keys.length} EICAR test files to s3://${names.bucket}/${LIVE_TEST_PREFIX}${runId}/`,
    );
    log(`Waiting up to ${timeoutMs / 1000} s for their records in ${names.table}...`);

    const started = Date.now();
    const deadline = started + timeoutMs;
    let recorded = { objects: new Set<string>(), rules: new Set<string>() };
    for (;;) {
      recorded = { objects: new Set<string>(), rules: new Set<string>() };
      for (const [index, file] of files.entries()) {
        const key = keys[index]!;
        const records = await recordsFor(clients, names, key, file.sha256);
        // An archive counts once its record names the EICAR member inside it.
        if (file.member && !records.members.has(`${file.member} ${EICAR_SHA256}`)) continue;
        if (records.alerted) recorded.objects.add(objectId(names.bucket, key));
        records.rules.forEach((rule) => recorded.rules.add(rule));
      }
      const missing = expected.filter((id) => !recorded.objects.has(id));
      if (missing.length === 0 || Date.now() >= deadline || options.signal?.aborted) {
        const result: LiveTestResult = {
          passed: missing.length === 0,
          expected,
          missing,
          matchedRules: [...recorded.rules].sort(),
        };
        report(result, log, recorded.objects.size > 0, Date.now() - started);
        return result;
      }
      await new Promise((resolve) =>
        setTimeout(
          resolve,
          Math.min(options.pollIntervalMs ?? 5000, Math.max(0, deadline - Date.now())),
        ),
      );
    }
  } finally {
    if (!options.keep) {
      await clients.s3
        .send(
          new DeleteObjectsCommand({
            Bucket: names.bucket,
            Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true },
          }),
        )
        .catch((error: unknown) =>
          log(`Could not delete the test files: ${(error as Error).message}`),
        );
    }
    if (!options.clients) destroyAwsClients(clients);
  }
}

/**
 * Whether the ledger records the object as an alerted copy of the SHA-256, and the rules and
 * matched members (`path sha256`) the match table holds for that SHA-256.
 */
async function recordsFor(
  clients: Pick<AwsClients, 'dynamodb'>,
  names: ResourceNames,
  key: string,
  sha256: string,
): Promise<{ alerted: boolean; rules: Set<string>; members: Set<string> }> {
  const ledger = await clients.dynamodb.send(
    new GetItemCommand({
      TableName: names.verdictTable,
      Key: { Bucket: { S: names.bucket }, Key: { S: key } },
      ConsistentRead: true,
    }),
  );
  const { Item } = await clients.dynamodb.send(
    new GetItemCommand({ TableName: names.table, Key: { SHA256: { S: sha256 } } }),
  );
  const members = new Set(
    (Item?.MatchedMembers?.L ?? []).map(
      (member) => `${member.M?.MemberPath?.S ?? ''} ${member.M?.MemberSHA256?.S ?? ''}`,
    ),
  );
  return {
    alerted: ledger.Item?.MatchAlertSha256?.S === sha256,
    rules: new Set((Item?.AlertedRules?.SS ?? []).map((pair) => parseAlertedRule(pair).id)),
    members,
  };
}

function report(
  result: LiveTestResult,
  log: (line: string) => void,
  anyRecord: boolean,
  elapsedMs: number,
): void {
  if (result.passed) {
    log(
      `PASS: all ${result.expected.length} test files were analyzed and recorded (rules: ${result.matchedRules.join(', ')})`,
    );
    return;
  }
  log(
    `FAIL: after ${Math.round(elapsedMs / 1000)} s, no record in the match table lists (archives: with the member ${ARCHIVE_MEMBER}):`,
  );
  for (const id of result.missing) log(`  ${id}`);
  log(
    anyRecord
      ? `  (records for EICAR exist, rules: ${result.matchedRules.join(', ') || 'none'}: the analyzer ran before but not for these files)`
      : '  (there is no record for EICAR at all: check the dispatcher and analyzer logs, the queue and its dead-letter queue)',
  );
}

export const registerLiveTest: CommandRegistrar = (program: Command) => {
  program
    .command('live-test')
    .description(
      'upload EICAR test files (plain, in a .tar.gz, in a zip locked with "infected") and check that BinaryAlert records them (PASS/FAIL)',
    )
    .option('--local [endpoint]', 'use the local stack (default http://127.0.0.1:4566)')
    .option('--timeout <seconds>', 'how long to wait for the records', '300')
    .option('--keep', 'leave the test files in the bucket')
    .action(async (flags: { local?: LocalFlag; timeout: string; keep?: boolean }) => {
      const timeoutSeconds = Number(flags.timeout);
      if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) {
        throw new UsageError(
          `--timeout expects a positive number of seconds, got "${flags.timeout}"`,
        );
      }
      const controller = new AbortController();
      const onInterrupt = (): void => controller.abort();
      process.once('SIGINT', onInterrupt);
      try {
        const result = await liveTest({
          config: await loadTfvars(),
          local: flags.local,
          timeoutSeconds,
          keep: flags.keep,
          signal: controller.signal,
        });
        if (!result.passed) process.exitCode = 1;
      } finally {
        process.removeListener('SIGINT', onInterrupt);
      }
    });
};
