import { promises as fs } from 'node:fs';
import { join } from 'node:path';

import { LineLog } from './line-log';
import { tempDir } from './testing/fixtures';

describe('LineLog', () => {
  let dir: { path: string; remove: () => Promise<void> };
  beforeEach(async () => {
    dir = await tempDir('ba-line-log-');
  });
  afterEach(() => dir.remove());

  it('keeps the order of many lines given at once, after what the file already held', async () => {
    // Prepare
    const file = join(dir.path, 'analyzer.log');
    await fs.writeFile(file, 'from an earlier run\n');
    const log = new LineLog();
    const lines = Array.from(
      { length: 5000 },
      (_, i) => `{"line":${i},"pad":"${'x'.repeat(i % 97)}"}`,
    );

    // Act
    for (const line of lines) log.append(file, line);
    await log.close();

    // Assert
    expect(await fs.readFile(file, 'utf8')).toBe(`from an earlier run\n${lines.join('\n')}\n`);
  });

  it('writes each file its own lines', async () => {
    // Prepare
    const log = new LineLog();
    const a = join(dir.path, 'a.log');
    const b = join(dir.path, 'b.log');

    // Act
    for (let i = 0; i < 100; i++) log.append(i % 2 === 0 ? a : b, String(i));
    await log.close();

    // Assert
    const evens = Array.from({ length: 50 }, (_, i) => String(2 * i));
    const odds = Array.from({ length: 50 }, (_, i) => String(2 * i + 1));
    expect(await fs.readFile(a, 'utf8')).toBe(`${evens.join('\n')}\n`);
    expect(await fs.readFile(b, 'utf8')).toBe(`${odds.join('\n')}\n`);
  });

  it('drops lines it cannot write without throwing, and writes again once it can', async () => {
    // Prepare: the log's directory does not exist yet.
    const logsDir = join(dir.path, 'logs');
    const file = join(logsDir, 'dispatcher.log');
    const failed: string[] = [];
    let reported!: () => void;
    const failure = new Promise<void>((resolve) => (reported = resolve));
    const log = new LineLog((path) => {
      failed.push(path);
      reported();
    });

    // Act
    log.append(file, 'lost');
    await failure;
    await fs.mkdir(logsDir);
    log.append(file, 'kept');
    await log.close();

    // Assert
    expect(await fs.readFile(file, 'utf8')).toBe('kept\n');
    expect(failed).toEqual([file]);
  });
});
