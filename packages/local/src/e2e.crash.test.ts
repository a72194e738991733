import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { objectId, verdictCoverage } from '@binaryalert/core';
import { loadTfvars, REPO_ROOT, resourceNames } from '@binaryalert/deployment';

import { LOCAL_CREDENTIALS } from './constants';
import { buildZips, EICAR } from './testing/e2e';
import { REPO_TFVARS, tempDir, waitFor } from './testing/fixtures';
import { classifyRepeats, readRunEvidence } from './testing/repeats';

// Build, two starts, 500 uploads and at most one alert claim (60 s) left by a killed analysis.
jest.setTimeout(240_000);

const OBJECTS = 500;
/** The kill comes once this many objects have their verdict (analysis is well under way). */
const KILL_AFTER_VERDICTS = 40;
const UPLOAD_CONCURRENCY = 4;
/**
 * Puts come in bursts (each worker puts this many back to back, then pauses): a burst outruns
 * the analysis however fast it is, so the kill finds a backlog; the pauses make the load last
 * longer than the analysis takes to warm up (about 7 s in all, as one put per 60 ms per worker).
 */
const UPLOAD_BURST = 20;
const UPLOAD_PAUSE_MS = 60 * UPLOAD_BURST;
const isEicar = (i: number) => i % 10 === 3;
const keyOf = (i: number) => (isEicar(i) ? `load/eicar-${i}.com` : `load/clean ${i}.txt`);
const bodyOf = (i: number) => (isEicar(i) ? EICAR : `clean file ${i}\n`);

/** `manage.ts local` as a user runs it, in a process group of its own so kill -9 takes it all. */
interface StackProcess {
  child: ChildProcess;
  endpoint: string;
  output: () => string;
  /** SIGKILL to every process of the stack: the CLI, the emulators, the Lambda workers. */
  killAll: () => Promise<void>;
}

async function startStack(args: string[]): Promise<StackProcess> {
  const child = spawn(process.execPath, [require.resolve('tsx/cli'), 'manage.ts', ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  const endpoint = await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`manage.ts local exited:\n${text}`);
      return /local stack on (http:\/\/127\.0\.0\.1:\d+)/.exec(text)?.[1];
    },
    90_000,
    'manage.ts local to start',
  ).catch((error: unknown) => {
    throw new Error(`${String(error)}\n${text}`);
  });
  return {
    child,
    endpoint,
    output: () => text,
    async killAll() {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
      await exited;
      // Every process of the group is gone once signal 0 to the group fails.
      await waitFor(
        () => {
          try {
            process.kill(-child.pid!, 0);
            return undefined;
          } catch {
            return true;
          }
        },
        10_000,
        'every process of the stack to die',
      );
    },
  };
}

describe('the local stack after kill -9 in the middle of a 500-upload load', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  const stacks: StackProcess[] = [];

  beforeAll(async () => {
    work = await tempDir('ba-e2e-crash-');
  });

  afterAll(async () => {
    for (const stack of stacks) await stack.killAll();
    await work?.remove();
  });

  it('gives every uploaded object a verdict after a restart, with no retro-analysis and no duplicate alert beyond the publish cut off by the kill', async () => {
    const zipsDir = join(work.path, 'zips');
    const dataDir = join(work.path, 'data');
    await buildZips(zipsDir);
    const prefix = `crash${Math.random().toString(36).slice(2, 7).replace(/\d/g, 'x')}`;
    const tfvars = join(work.path, 'terraform.tfvars');
    const settings = await readFile(REPO_TFVARS, 'utf8');
    await writeFile(tfvars, settings.replace(/^name_prefix\s*=.*$/m, `name_prefix = "${prefix}"`));
    const config = await loadTfvars(tfvars);
    const names = resourceNames(config);
    const bucket = names.bucket;
    const args = ['local', '--port', '0', '--data-dir', dataDir, '--zips-dir', zipsDir];
    const clientsFor = (endpoint: string) => {
      const client = { endpoint, region: config.aws_region, credentials: LOCAL_CREDENTIALS };
      return {
        // One attempt: a put cut off by the kill fails at once and is uploaded again later.
        s3: new S3Client({ ...client, forcePathStyle: true, maxAttempts: 1 }),
        dynamo: new DynamoDBClient(client),
      };
    };
    const uploaded = new Set<number>();
    /** Uploads the given objects, UPLOAD_CONCURRENCY at once; failed puts stay not uploaded. */
    const upload = async (s3: S3Client, indexes: number[]) => {
      const pending = [...indexes];
      const worker = async () => {
        let puts = 0;
        for (let i = pending.shift(); i !== undefined; i = pending.shift()) {
          try {
            await s3.send(new PutObjectCommand({ Bucket: bucket, Key: keyOf(i), Body: bodyOf(i) }));
            uploaded.add(i);
          } catch {
            // cut off by the kill
          }
          if (++puts % UPLOAD_BURST === 0)
            await new Promise((ok) => setTimeout(ok, UPLOAD_PAUSE_MS));
        }
      };
      await Promise.all(Array.from({ length: UPLOAD_CONCURRENCY }, worker));
    };
    const all = Array.from({ length: OBJECTS }, (_v, i) => i);

    // Prepare: the first stack, and the load of uploads.
    const first = await startStack([...args, '--no-build', '--tfvars', tfvars]);
    stacks.push(first);
    const firstClients = clientsFor(first.endpoint);
    const firstLoad = upload(firstClients.s3, all);
    const coverage = (clients: typeof firstClients) =>
      verdictCoverage(clients, { bucket, table: names.verdictTable });
    const coverageAtKill = await waitFor(
      async () => {
        const now = await coverage(firstClients);
        // ...and a backlog the kill loses: objects uploaded, not yet analyzed.
        return now.covered >= KILL_AFTER_VERDICTS && now.listed - now.covered >= 20
          ? now
          : undefined;
      },
      90_000,
      `${KILL_AFTER_VERDICTS} verdicts and a backlog`,
      50,
    );

    // Act: kill -9 of the whole stack in the middle of the load: objects in the queue, in the
    // analyzers, and uploads in flight.
    const killedAt = Date.now();
    await first.killAll();
    await firstLoad; // the puts after the kill fail
    Object.values(firstClients).forEach((client) => client.destroy());
    expect(uploaded.size).toBeLessThan(OBJECTS);
    const second = await startStack([...args, '--no-build', '--tfvars', tfvars]);
    stacks.push(second);
    const secondClients = clientsFor(second.endpoint);
    // The upload script goes on with whatever did not succeed.
    await upload(
      secondClients.s3,
      all.filter((i) => !uploaded.has(i)),
    );
    expect(uploaded.size).toBe(OBJECTS);
    const final = await waitFor(
      async () => {
        const now = await coverage(secondClients);
        return now.covered === OBJECTS ? now : undefined;
      },
      150_000,
      'a verdict for every object',
      1000,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${second.output().slice(-3000)}`);
    });

    // Assert: the kill lost queued work, which the restart recovered by itself.
    expect(coverageAtKill.covered).toBeLessThan(coverageAtKill.listed);
    const requeued = /queued (\d+) objects that had no verdict yet/.exec(second.output());
    expect(Number(requeued?.[1] ?? 0)).toBeGreaterThan(0);
    // No retro-analysis: the batcher never ran.
    await expect(readFile(join(dataDir, 'logs', 'batcher.log'))).rejects.toThrow(/ENOENT/);
    expect(final).toMatchObject({ listed: OBJECTS, covered: OBJECTS, gone: 0 });
    // Each EICAR alerted, nothing else. A second alert for one object is allowed only where SNS
    // offers nothing better than at-least-once, as the run's records show it: the sender of its
    // first alert died with the stack just after that publish, without recording it as sent
    // (testing/repeats.ts); anything else is a duplicate.
    await new Promise((ok) => setTimeout(ok, 2000)); // a late duplicate would show by now
    const evidence = await readRunEvidence(dataDir, {
      namePrefix: config.name_prefix,
      names,
      stackKilledAt: killedAt,
    });
    const eicarKeys = Array.from({ length: OBJECTS }, (_v, i) => i)
      .filter(isEicar)
      .map((i) => objectId(bucket, keyOf(i)))
      .sort();
    expect([...evidence.alerts.keys()].sort()).toEqual(eicarKeys);
    expect(classifyRepeats(evidence).duplicates).toEqual([]);
    Object.values(secondClients).forEach((client) => client.destroy());
  });
});
