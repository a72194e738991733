import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ZipFile } from 'yazl';
// program before the command module: command modules import program, which registers them.
import { deploy, readZipEntry, realDeploySteps, type DeploySteps } from './deploy';

/** Steps that record the order they ran in; `failing` names one that rejects. */
function recordingSteps(options: {
  rules: string;
  previous?: string;
  failing?: keyof DeploySteps;
}): { steps: DeploySteps; ran: string[]; recorded: string[] } {
  const ran: string[] = [];
  const recorded: string[] = [];
  const step =
    <T>(name: keyof DeploySteps, result: T) =>
    () => {
      ran.push(name);
      return options.failing === name
        ? Promise.reject(new Error(`${name} failed`))
        : Promise.resolve(result);
    };
  return {
    ran,
    recorded,
    steps: {
      test: step('test', undefined),
      build: step('build', undefined),
      rulesSha256: step('rulesSha256', options.rules),
      lastDeployedRulesSha256: step('lastDeployedRulesSha256', options.previous),
      apply: step('apply', undefined),
      recordDeployedRules: (sha256) => {
        ran.push('recordDeployedRules');
        recorded.push(sha256);
        return Promise.resolve();
      },
      retroAnalyze: step('retroAnalyze', undefined),
      log: () => undefined,
    },
  };
}

describe('deploy', () => {
  it('tests, builds and applies, then retro-analyzes when the rules changed', async () => {
    const { steps, ran, recorded } = recordingSteps({ rules: 'new', previous: 'old' });

    const outcome = await deploy(steps);

    expect(ran).toEqual([
      'test',
      'build',
      'rulesSha256',
      'lastDeployedRulesSha256',
      'apply',
      'recordDeployedRules',
      'retroAnalyze',
    ]);
    expect(recorded).toEqual(['new']);
    expect(outcome).toEqual({ rulesSha256: 'new', rulesChanged: true, retroAnalyzed: true });
  });

  it('does not retro-analyze when the rules are the ones deployed last time', async () => {
    const { steps, ran } = recordingSteps({ rules: 'same', previous: 'same' });

    const outcome = await deploy(steps);

    expect(ran).not.toContain('retroAnalyze');
    expect(outcome.rulesChanged).toBe(false);
  });

  it('retro-analyzes on the first deployment (nothing recorded yet)', async () => {
    const { steps, ran } = recordingSteps({ rules: 'first' });

    await deploy(steps);

    expect(ran.at(-1)).toBe('retroAnalyze');
  });

  it('skips retroactive analysis with --no-retro but still records the rules', async () => {
    const { steps, ran, recorded } = recordingSteps({ rules: 'new', previous: 'old' });

    const outcome = await deploy(steps, { retro: false });

    expect(ran).not.toContain('retroAnalyze');
    expect(recorded).toEqual(['new']);
    expect(outcome).toEqual({ rulesSha256: 'new', rulesChanged: true, retroAnalyzed: false });
  });

  it('stops before building and applying when the tests fail', async () => {
    const { steps, ran } = recordingSteps({ rules: 'new', failing: 'test' });

    await expect(deploy(steps)).rejects.toThrow('test failed');

    expect(ran).toEqual(['test']);
  });

  it('records nothing and does not retro-analyze when apply fails', async () => {
    const { steps, ran, recorded } = recordingSteps({ rules: 'new', failing: 'apply' });

    await expect(deploy(steps)).rejects.toThrow('apply failed');

    expect(ran).not.toContain('retroAnalyze');
    expect(recorded).toEqual([]);
  });

  it('does not run the tests with --skip-tests', async () => {
    const { steps, ran } = recordingSteps({ rules: 'r', previous: 'r' });

    await deploy(steps, { skipTests: true });

    expect(ran[0]).toBe('build');
  });
});

describe('deployed rules record', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'binaryalert-deploy-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('remembers the rules hash of the last deployment', async () => {
    const steps = realDeploySteps(path.join(dir, 'not-yet', 'record'));

    const before = await steps.lastDeployedRulesSha256();
    await steps.recordDeployedRules('abc123');
    const after = await steps.lastDeployedRulesSha256();

    expect(before).toBeUndefined();
    expect(after).toBe('abc123');
  });
});

describe('readZipEntry', () => {
  async function zipOf(entries: { name: string; data: Buffer; compress: boolean }[]) {
    const zip = new ZipFile();
    for (const entry of entries)
      zip.addBuffer(entry.data, entry.name, { compress: entry.compress });
    zip.end();
    const chunks: Buffer[] = [];
    for await (const chunk of zip.outputStream) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  it('extracts deflated and stored entries by name', async () => {
    const rules = Buffer.from('YARA'.repeat(5000));
    const zip = await zipOf([
      { name: 'index.js', data: Buffer.from('exports.handler = 1;'), compress: true },
      { name: 'compiled_yara_rules.bin', data: rules, compress: true },
      { name: 'yara.node', data: Buffer.from([0, 1, 2, 3]), compress: false },
    ]);

    expect(readZipEntry(zip, 'compiled_yara_rules.bin').equals(rules)).toBe(true);
    expect([...readZipEntry(zip, 'yara.node')]).toEqual([0, 1, 2, 3]);
    expect(() => readZipEntry(zip, 'missing.bin')).toThrow('missing.bin is not in the zip');
    expect(() => readZipEntry(Buffer.from('not a zip'), 'x')).toThrow('not a zip file');
  });
});
