/**
 * Run by the archive-bounds section in a fresh process (node with the tsx loader): analyzes one
 * file with the analysis the analyzer and `manage.ts scan` share, with the given archive settings,
 * and reports the peak JS heap, the peak RSS (VmHWM), the peak of member bytes in temp files
 * (named ones in the temp dir and the addon's anonymous O_TMPFILE spills, found through
 * /proc/self/fd), the wall time and the outcome. Prints one line "BENCH {json}".
 */
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';

import { analyzeFile, type ArchiveSettings } from '../../packages/core/src';
import { loadRules } from '../../packages/yara/src';

interface ChildArgs {
  file: string;
  rulesPath: string;
  tempDir: string;
  archives: ArchiveSettings;
  budgetMs: number;
  timeoutSeconds: number;
}

/** Bytes of member files under `tempDir` right now (7-Zip's run directories and open anonymous files included). */
function tempBytes(tempDir: string): number {
  let bytes = 0;
  const seen = new Set<number>();
  const walk = (dir: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return; // removed meanwhile
    }
    for (const name of names) {
      try {
        const stat = statSync(path.join(dir, name));
        if (stat.isDirectory()) {
          walk(path.join(dir, name));
          continue;
        }
        seen.add(stat.ino);
        bytes += stat.size;
      } catch {
        // removed meanwhile
      }
    }
  };
  walk(tempDir);
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (!target.startsWith(tempDir)) continue;
      const stat = statSync(`/proc/self/fd/${fd}`);
      if (stat.isFile() && !seen.has(stat.ino)) {
        seen.add(stat.ino);
        bytes += stat.size;
      }
    } catch {
      // closed meanwhile
    }
  }
  return bytes;
}

function peakRssBytes(): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return match ? Number(match[1]) * 1024 : NaN;
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as ChildArgs;
  const rules = await loadRules(args.rulesPath);
  const peak = { heapUsed: process.memoryUsage().heapUsed, tempBytes: 0 };
  const sample = (): void => {
    peak.heapUsed = Math.max(peak.heapUsed, process.memoryUsage().heapUsed);
    peak.tempBytes = Math.max(peak.tempBytes, tempBytes(args.tempDir));
  };
  const timer = setInterval(sample, 20);
  const started = performance.now();
  let analysis: Awaited<ReturnType<typeof analyzeFile>> | undefined;
  let error: string | undefined;
  try {
    analysis = await analyzeFile(rules, args.file, {
      label: path.basename(args.file),
      archives: args.archives,
      budgetMs: args.budgetMs,
      timeoutSeconds: args.timeoutSeconds,
      tempDir: args.tempDir,
    });
  } catch (failure) {
    // A budget too short for the object's own scan fails the object (the analyzer retries it).
    error = failure instanceof Error ? failure.name : String(failure);
  } finally {
    clearInterval(timer);
  }
  const wallMs = performance.now() - started;
  sample();
  process.stdout.write(
    `BENCH ${JSON.stringify({
      wallMs,
      heapPeak: peak.heapUsed,
      rssPeak: peakRssBytes(),
      tempPeak: peak.tempBytes,
      tempLeft: tempBytes(args.tempDir),
      size: analysis?.size ?? 0,
      expandedBytes: analysis?.expandedBytes ?? 0,
      members: analysis?.members.length ?? 0,
      matches: analysis?.matches.length ?? 0,
      unscanned: [...new Set(analysis?.unscanned.map((entry) => entry.reason))],
      ...(error === undefined ? {} : { error }),
    })}\n`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(
    `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
});
