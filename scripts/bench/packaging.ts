import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';

import { buildLambdaZips } from '../../packages/cli/src/build';
import type { BenchContext } from './context';
import { interleave, MB, median, runTimed } from './measure';
import type { Row, SectionResult } from './report';

const SECTION = 'packaging';

/** The deployment zips, built once per run (the pipeline section runs them in the local stack). */
export async function lambdaZips(ctx: BenchContext): Promise<string> {
  const dir = path.join(ctx.workDir, 'lambda');
  if (ctx.zipsBuilt === undefined) {
    ctx.zipsBuilt = buildLambdaZips({ outDir: dir }).then((zips) =>
      zips.map((zip) => ({ name: zip.function, bytes: zip.bytes, entries: zip.entries })),
    );
  }
  await ctx.zipsBuilt;
  return dir;
}

// Runs in a fresh node process beside the unzipped analyzer, as the Lambda runtime would: require
// the handler (module init: clients, environment), then the first invocation (awaits the rules).
const COLD_START_SCRIPT = `
const started = performance.now();
const mod = require(process.argv[2]);
const loaded = performance.now();
mod.handler({ Records: [] }, { functionVersion: '1' }).catch(() => undefined).finally(() => {
  const invoked = performance.now();
  process.stdout.write('\\nBENCH ' + JSON.stringify({ nodeStartMs: started, moduleInitMs: loaded - started, firstInvokeMs: invoked - loaded, totalMs: invoked }));
});
`;

/** The JSON after "BENCH " on the last such line (the handler's own log lines go to stdout too). */
export function resultLine<T>(stdout: string): T {
  const line = stdout
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('BENCH '));
  if (line === undefined)
    throw new Error(`no result line in the child's output: ${stdout.slice(-500)}`);
  return JSON.parse(line.slice('BENCH '.length)) as T;
}

export async function benchPackaging(ctx: BenchContext): Promise<SectionResult> {
  const rows: Row[] = [];
  const started = performance.now();
  const dir = await lambdaZips(ctx);
  const zips = (await ctx.zipsBuilt) ?? [];
  rows.push({
    section: SECTION,
    metric: 'manage.ts build (3 zips)',
    value: (performance.now() - started) / 1000,
    unit: 's',
    note: 'buildLambdaZips, default rules/',
  });
  for (const zip of zips) {
    rows.push({
      section: SECTION,
      metric: `${zip.name}.zip size`,
      value: zip.bytes / MB,
      unit: 'MB',
      note: zip.entries.join(', '),
    });
  }
  const analyzer = zips.find((zip) => zip.name === 'analyzer');

  const unpacked = path.join(ctx.workDir, 'analyzer-unpacked');
  await fs.mkdir(unpacked, { recursive: true });
  execFileSync('unzip', ['-q', '-o', path.join(dir, 'analyzer.zip'), '-d', unpacked]);
  const script = path.join(ctx.workDir, 'cold-start.js');
  await fs.writeFile(script, COLD_START_SCRIPT);
  const env = {
    PATH: process.env.PATH,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'bench',
    AWS_SECRET_ACCESS_KEY: 'bench',
    AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
    YARA_MATCHES_DYNAMO_TABLE_NAME: 'bench',
    VERDICTS_DYNAMO_TABLE_NAME: 'bench-verdicts',
    YARA_ALERTS_SNS_TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:bench',
    SQS_QUEUE_URL: 'http://127.0.0.1:9/123456789012/bench',
    MAX_FILE_SIZE_MB: '1024',
    SCAN_TIMEOUT_SECONDS: '60',
  };
  interface ColdStart {
    nodeStartMs: number;
    moduleInitMs: number;
    firstInvokeMs: number;
    totalMs: number;
  }
  const runs = await interleave<ColdStart | number>(
    [
      {
        name: 'analyzer',
        run: async () =>
          resultLine<ColdStart>(
            (await runTimed(process.execPath, [script, path.join(unpacked, 'index.js')], { env }))
              .stdout,
          ),
      },
      {
        name: 'node',
        run: async () => (await runTimed(process.execPath, ['-e', '0'], { env })).wallMs,
      },
    ],
    ctx.reps,
  );
  const cold = runs.get('analyzer') as ColdStart[];
  const nodeOnly = median(runs.get('node') as number[]);
  const moduleInit = median(cold.map((c) => c.moduleInitMs));
  const firstInvoke = median(cold.map((c) => c.firstInvokeMs));
  rows.push(
    {
      section: SECTION,
      metric: 'analyzer cold start: module init',
      value: moduleInit,
      unit: 'ms',
      note: 'require index.js: SDK clients, environment, rules load started',
    },
    {
      section: SECTION,
      metric: 'analyzer cold start: first invocation',
      value: firstInvoke,
      unit: 'ms',
      note: 'waits for the compiled rules to load',
    },
    {
      section: SECTION,
      metric: 'analyzer cold start: init + first invocation',
      value: moduleInit + firstInvoke,
      unit: 'ms',
      note: `plus node start-up (${nodeOnly.toFixed(0)} ms for node -e 0 in the same run)`,
    },
  );
  return {
    rows,
    targets: [
      {
        target: 'analyzer zip < 10 MB',
        actual: analyzer ? `${(analyzer.bytes / MB).toFixed(2)} MB` : 'not built',
        met: analyzer ? analyzer.bytes < 10 * MB : null,
      },
    ],
    details: { zips, coldStart: cold, nodeOnlyMs: runs.get('node') },
  };
}
