// retro-analyze's progress after a rules release, from outside: a running local stack whose
// verdicts are already those of the current release (a delta re-scan cut off and started again,
// or objects uploaded between a release and its re-scan) confirms them without writing anything.
import { randomBytes } from 'node:crypto';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { hasVerdict, verdictFromItem } from '@binaryalert/core';
import { REPO_RULES, startE2E, type E2E } from '../../../local/src/testing/e2e';
import { tempDir, testConfig } from '../../../local/src/testing/fixtures';
import { deployRules } from './deploy-rules';
import { retroAnalyze } from './retro-analyze';

jest.setTimeout(600_000);

const MARKER = `RETRO_MARKER_${randomBytes(6).toString('hex')}`;
const rule = (condition: string) =>
  `rule retro_marker { strings: $m = "${MARKER}" condition: ${condition} }\n`;

describe('retro-analyze --local after a rules release', () => {
  let e2e: E2E;
  let rules: { path: string; remove: () => Promise<void> };
  const keys = ['a/marked.bin', 'a/plain.txt', 'a/other.txt'];

  beforeAll(async () => {
    rules = await tempDir('ba-retro-rules-');
    await cp(REPO_RULES, rules.path, { recursive: true });
    e2e = await startE2E({ config: await testConfig() });
    for (const Key of keys) {
      await e2e.s3.send(
        new PutObjectCommand({
          Bucket: e2e.stack.names.bucket,
          Key,
          Body: Key === keys[0] ? `head ${MARKER} tail` : `ordinary ${Key}`,
        }),
      );
    }
    await e2e.drained();
  });

  afterAll(async () => {
    await e2e?.dispose();
    await rules?.remove();
  });

  it('ends at once when every object already has a verdict of the current release', async () => {
    const release = () =>
      deployRules({
        config: e2e.config,
        rulesDir: rules.path,
        local: e2e.stack.endpoint,
        log: () => undefined,
      });
    await mkdir(path.join(rules.path, 'retro'), { recursive: true });
    await writeFile(path.join(rules.path, 'retro', 'marker.yara'), rule('$m'));
    await deployRules({
      config: e2e.config,
      rulesDir: rules.path,
      local: e2e.stack.endpoint,
      retro: false,
      log: () => undefined,
    });
    await writeFile(path.join(rules.path, 'retro', 'marker.yara'), rule('$m and filesize > 4'));
    // v2 builds on v1; its own re-scan gives every object a verdict of v2.
    const second = await release();
    await e2e.drained();
    expect(second).toMatchObject({ published: true, retroAnalyzed: true });
    const { Items = [] } = await e2e.dynamo.send(
      new ScanCommand({ TableName: e2e.stack.names.verdictTable, ConsistentRead: true }),
    );
    expect(Items.filter(hasVerdict).map((item) => verdictFromItem(item).rulesVersion)).toEqual(
      keys.map(() => '2'),
    );

    const printed: string[] = [];
    const again = await retroAnalyze({
      config: e2e.config,
      local: e2e.stack.endpoint,
      mode: 'delta',
      pollIntervalMs: 200,
      stallMs: 20_000,
      out: { write: (text: string) => printed.push(text) },
    });

    expect(again).toMatchObject({ finished: true, stalled: false, listed: 3, analyzed: 3 });
    expect(printed.join('')).toMatch(
      /Retroactive analysis finished: 3 objects analyzed in \d+s \(matched 1, clean 2,/,
    );
  });

  it('starts the re-scan of a release whose deploy-rules was cut off before it, when run again', async () => {
    const alerts = () =>
      e2e.stack.alerts.filter((alert) => alert.topicArn.endsWith('match_alerts')).length;
    const before = alerts();
    await mkdir(path.join(rules.path, 'retro'), { recursive: true });
    await writeFile(
      path.join(rules.path, 'retro', 'late.yara'),
      `rule retro_late { strings: $m = "${MARKER}" condition: $m }\n`,
    );
    // Killed while it waits for the analyzers to load the release: published, not re-scanned.
    await expect(
      deployRules({
        config: e2e.config,
        rulesDir: rules.path,
        local: e2e.stack.endpoint,
        log: () => undefined,
        sleep: () => Promise.reject(new Error('killed')),
      }),
    ).rejects.toThrow('killed');
    await e2e.drained();
    expect(alerts()).toBe(before);
    const printed: string[] = [];

    const again = await deployRules({
      config: e2e.config,
      rulesDir: rules.path,
      local: e2e.stack.endpoint,
      log: (line) => printed.push(line),
    });
    await e2e.drained();

    expect(again).toMatchObject({ published: false, retroAnalyzed: true });
    expect(printed).toContainEqual(
      expect.stringMatching(
        /^the re-scan after rules v\d+ was never started \(deploy-rules was cut off\): starting it now$/,
      ),
    );
    expect(e2e.alertsFor(keys[0]!).length).toBeGreaterThan(0);
    expect(alerts()).toBe(before + 1);
    // Started once: a third run has nothing left to do.
    const third = await deployRules({
      config: e2e.config,
      rulesDir: rules.path,
      local: e2e.stack.endpoint,
      log: () => undefined,
    });
    expect(third).toMatchObject({ published: false, retroAnalyzed: false });
  });
});
