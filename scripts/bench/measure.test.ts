import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { cpuByPid, cpuSince, freePageReportingOrder, processTreeCpuSeconds } from './measure';

/** Spins until it used 0.4 s of CPU (not of wall time: the machine may be loaded), says so, waits. */
const SPINNER = `
while (process.cpuUsage().user < 400_000);
process.stdout.write('spun\\n');
setInterval(() => {}, 1000);
`;

describe('processTreeCpuSeconds', () => {
  it("counts a live child's CPU time, and stops counting it once it exited", async () => {
    // Prepare
    const before = processTreeCpuSeconds();
    const child = spawn(process.execPath, ['-e', SPINNER], { stdio: ['ignore', 'pipe', 'ignore'] });
    // Act
    await once(child.stdout, 'data');
    const after = processTreeCpuSeconds();
    child.kill('SIGKILL');
    await once(child, 'exit');
    // Assert: its 0.4 s (and node's start-up) counted while it lived, gone once it exited.
    expect(after - before).toBeGreaterThanOrEqual(0.4);
    expect(processTreeCpuSeconds()).toBeLessThan(after - 0.3);
  });
});

describe('freePageReportingOrder', () => {
  it('reads the kernel parameter, and is undefined where there is none or it is not a number', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-page-reporting-'));
    try {
      await writeFile(path.join(dir, 'page_reporting_order'), '9\n');
      expect(freePageReportingOrder(dir)).toBe(9);
      await writeFile(path.join(dir, 'page_reporting_order'), 'nine\n');
      expect(freePageReportingOrder(dir)).toBeUndefined();
      await writeFile(path.join(dir, 'page_reporting_order'), '\n');
      expect(freePageReportingOrder(dir)).toBeUndefined();
      expect(freePageReportingOrder(path.join(dir, 'missing'))).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('cpuSince', () => {
  it("counts a process's CPU since the first reading, and all of it for one started since", async () => {
    // Prepare
    const child = spawn(process.execPath, ['-e', SPINNER], { stdio: ['ignore', 'pipe', 'ignore'] });
    const atStart = cpuByPid([child.pid]);
    // Act
    await once(child.stdout, 'data');
    const spun = cpuByPid([child.pid, undefined, 2 ** 22 + 1]);
    child.kill('SIGKILL');
    await once(child, 'exit');
    // Assert: its 0.4 s counted from either reading; pids that are not running are left out.
    expect([...spun.keys()]).toEqual([child.pid]);
    expect(cpuSince(atStart, spun)).toBeGreaterThanOrEqual(0.4 - (atStart.get(child.pid!) ?? 0));
    expect(cpuSince(new Map(), spun)).toBeGreaterThanOrEqual(0.4);
    expect(cpuSince(spun, spun)).toBe(0);
  });
});
