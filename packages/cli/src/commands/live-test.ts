import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QueryCommand } from '@aws-sdk/client-dynamodb';
import { DeleteObjectsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { Command } from 'commander';
import { objectId } from '@binaryalert/core';
import { loadTfvars, resourceNames, type BinaryAlertConfig } from '@binaryalert/deployment';

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
 * unique keys, two of them archives, and waits until the match table's records for each file's
 * SHA-256 list it in `S3Objects` and, for an archive, name the EICAR member in `MatchedMembers`.
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
      for (const sha256 of new Set(files.map((file) => file.sha256))) {
        const records = await recordsFor(clients, names.table, sha256);
        const member = files.find((file) => file.sha256 === sha256)?.member;
        // An archive counts once its record names the EICAR member inside it.
        if (member && !records.members.has(`${member} ${EICAR_SHA256}`)) continue;
        records.objects.forEach((id) => recorded.objects.add(id));
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
 * Every S3 object, rule and matched member (`path sha256`) recorded for the SHA-256, over all
 * analyzer versions.
 */
async function recordsFor(
  clients: Pick<AwsClients, 'dynamodb'>,
  table: string,
  sha256: string,
): Promise<{ objects: Set<string>; rules: Set<string>; members: Set<string> }> {
  const objects = new Set<string>();
  const rules = new Set<string>();
  const members = new Set<string>();
  let ExclusiveStartKey: Record<string, never> | undefined;
  do {
    const page = await clients.dynamodb.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'SHA256 = :sha',
        ExpressionAttributeValues: { ':sha': { S: sha256 } },
        ExclusiveStartKey,
      }),
    );
    for (const item of page.Items ?? []) {
      for (const id of item.S3Objects?.SS ?? []) objects.add(id);
      for (const rule of item.MatchedRules?.SS ?? []) rules.add(rule);
      for (const member of item.MatchedMembers?.L ?? []) {
        members.add(`${member.M?.MemberPath?.S ?? ''} ${member.M?.MemberSHA256?.S ?? ''}`);
      }
    }
    ExclusiveStartKey = page.LastEvaluatedKey as Record<string, never> | undefined;
  } while (ExclusiveStartKey);
  return { objects, rules, members };
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
