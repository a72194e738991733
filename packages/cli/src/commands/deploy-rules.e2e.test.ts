// The "Done when", from outside: a running local stack, 200 objects, a new rule released
// with deploy-rules --local, then an edited one, then an unchanged one; then compile-rules alone
// (hot reload).
import { randomBytes } from 'node:crypto';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { REPO_RULES, startE2E, type E2E } from '../../../local/src/testing/e2e';
import { tempDir, testConfig, waitFor } from '../../../local/src/testing/fixtures';
import { compileRulesDirectory } from '../rules/compile';
import { deployRules } from './deploy-rules';

jest.setTimeout(600_000);

const OBJECTS = 200;
const MARKER = `UX_PLANTED_MARKER_${randomBytes(6).toString('hex')}`;
const MARKED_KEY = 'fleet/host-117/planted marker.bin';

const rule = (condition: string) =>
  `rule ux_planted_marker\n{\n    strings:\n        $m = "${MARKER}"\n    condition:\n        ${condition}\n}\n`;

describe('deploy-rules --local: a new rule, an edited rule and an unchanged release', () => {
  let e2e: E2E;
  let rules: { path: string; remove: () => Promise<void> };
  let watched: { path: string; remove: () => Promise<void> };
  const printed: string[] = [];
  const log: string[] = [];

  const alerts = () => e2e.stack.alerts.filter((alert) => alert.topicArn.endsWith('match_alerts'));
  let config: Awaited<ReturnType<typeof testConfig>>;
  const release = () =>
    deployRules({
      config,
      rulesDir: rules.path,
      local: e2e.stack.endpoint,
      log: (line) => log.push(line),
    });

  beforeAll(async () => {
    rules = await tempDir('ba-deploy-rules-');
    watched = await tempDir('ba-deploy-rules-dist-');
    await cp(REPO_RULES, rules.path, { recursive: true });
    config = await testConfig();
    e2e = await startE2E({
      config,
      print: (text) => printed.push(text),
      compiledRules: path.join(watched.path, 'compiled_yara_rules.bin'),
    });
    const bucket = e2e.stack.names.bucket;
    const keys = Array.from({ length: OBJECTS }, (_v, i) => `fleet/host-${i}/file ${i}.bin`);
    keys[117] = MARKED_KEY;
    for (let i = 0; i < keys.length; i += 25) {
      await Promise.all(
        keys.slice(i, i + 25).map((Key) =>
          e2e.s3.send(
            new PutObjectCommand({
              Bucket: bucket,
              Key,
              Body: Key === MARKED_KEY ? `header ${MARKER} trailer` : `ordinary file ${Key}`,
            }),
          ),
        ),
      );
    }
    await waitFor(
      () => (e2e.stack.metrics.sum('AnalyzedBinaries') >= OBJECTS ? true : undefined),
      180_000,
      'the uploads to be analyzed',
    );
    await e2e.drained();
  });

  afterAll(async () => {
    await e2e?.dispose();
    await rules?.remove();
    await watched?.remove();
  });

  it('starts with no alert: no rule matches the marker yet', () => {
    expect(alerts()).toEqual([]);
  });

  it('alerts exactly once, naming the marked object, after a new rule without samples is released', async () => {
    await mkdir(path.join(rules.path, 'ux'), { recursive: true });
    await writeFile(path.join(rules.path, 'ux', 'marker.yara'), rule('$m'));

    const outcome = await release();
    await e2e.drained();

    expect(outcome.published).toBe(true);
    expect(outcome.added).toContain('ux/marker.yara:ux_planted_marker');
    expect(alerts()).toHaveLength(1);
    expect(e2e.alertsFor(MARKED_KEY)).toHaveLength(1);
    expect(JSON.stringify(alerts()[0]?.message)).toContain('ux_planted_marker');
    await waitFor(
      () =>
        printed.find((line) => /^rules v1 loaded: \d+ rules \(\d+ new, 0 changed\)$/.test(line)),
      10_000,
      'the loaded line',
    );
  });

  it('alerts once more for that object when the rule is edited and still matches', async () => {
    await writeFile(path.join(rules.path, 'ux', 'marker.yara'), rule('$m and filesize > 10'));

    const outcome = await release();
    await e2e.drained();

    expect(outcome.changed).toEqual(['ux/marker.yara:ux_planted_marker']);
    expect(outcome.added).toEqual([]);
    // The delta re-scan: only ux/marker.yara was scanned, and every other object's verdict was
    // carried over to v2 (the first release had nothing to build on: it re-scanned in full).
    expect(outcome.release.delta).toMatchObject({ baseVersion: 1, namespaces: ['ux/marker.yara'] });
    expect(e2e.stack.metrics.sum('CarriedOverVerdicts')).toBe(OBJECTS - 1);
    // The release states what any match of the edited rule requires (its marker string), and
    // every object whose content signature lacks it was carried over without being read.
    expect(outcome.release.delta?.prefilter).toEqual({
      bytes: Buffer.from(MARKER).toString('hex'),
    });
    expect(e2e.stack.metrics.sum('PrefilterExcludedObjects')).toBe(OBJECTS - 1);
    expect(log.some((line) => line.startsWith('content prefilter on: '))).toBe(true);
    expect(alerts()).toHaveLength(2);
    expect(e2e.alertsFor(MARKED_KEY)).toHaveLength(2);
    await waitFor(
      () =>
        printed.find(
          (line) => line.startsWith('rules v2 loaded:') && line.includes('(0 new, 1 changed)'),
        ),
      10_000,
      'the loaded line of v2',
    );
  });

  it('alerts nothing when the same rules are released again, even after a full re-scan', async () => {
    const outcome = await release();
    await e2e.retroAnalyze();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    await e2e.drained();

    expect(outcome.published).toBe(false);
    expect(log).toContain(`rules unchanged: v2 (${outcome.release.ruleCount} rules)`);
    expect(alerts()).toHaveLength(2);
  });

  it('hot-reloads what compile-rules writes, printing one line, with no rebuild or restart', async () => {
    await writeFile(
      path.join(rules.path, 'ux', 'second.yara'),
      `rule ux_second_marker { strings: $m = "${MARKER}" condition: $m }`,
    );

    await compileRulesDirectory({
      rulesDir: rules.path,
      output: path.join(watched.path, 'compiled_yara_rules.bin'),
    });
    const line = await waitFor(
      () => printed.find((text) => text.startsWith('rules v3 loaded:')),
      15_000,
      'the hot reload',
    );
    await new Promise((resolve) => setTimeout(resolve, 2000)); // the workers' 1 s refresh
    await e2e.retroAnalyze();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    await e2e.drained();

    expect(line).toMatch(/^rules v3 loaded: \d+ rules \(1 new, 0 changed\)$/);
    expect(alerts()).toHaveLength(3);
    expect(JSON.stringify(alerts()[2]?.message)).toContain('ux_second_marker');
  });
});
