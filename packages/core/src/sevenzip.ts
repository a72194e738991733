import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';

import { monotonicMs } from './clock';
import type { SevenZipExtraction, SevenZipLimits } from './sevenzip-extract';
import type { SevenZipRequest } from './sevenzip-worker';

export type { ExtractedMember, SevenZipExtraction, SevenZipLimits } from './sevenzip-extract';

/** The 7-Zip worker's entry: bundled beside index.js in the analyzer zip under this name. */
export const SEVEN_ZIP_WORKER_FILE = 'sevenzip-worker.js';
/** Its TypeScript source (bundled into SEVEN_ZIP_WORKER_FILE; run through tsx from a checkout). */
export const SEVEN_ZIP_WORKER_SOURCE = path.join(__dirname, 'sevenzip-worker.ts');
/**
 * How long past the deadline a worker may run before it is stopped: 7-Zip checks the deadline as
 * it writes output, so only a 7-Zip that stalls without writing (or a hostile archive that makes
 * it spin) runs this long.
 */
const STALL_GRACE_MS = 2000;

/** How a 7-Zip run ended (the members' files, if any, are in `membersDir`). */
export type SevenZipOutcome =
  /** 7-Zip finished; no `extraction` when the archive holds nothing encrypted. */
  | { kind: 'finished'; extraction: SevenZipExtraction | undefined }
  /** 7-Zip could not run or failed with an error (its .wasm or the worker missing, a full disk). */
  | { kind: 'failed'; detail: string }
  /** The worker died (an exception, a WebAssembly trap, out of memory). */
  | { kind: 'died'; detail: string }
  /** The worker was stopped: still running past the deadline. */
  | { kind: 'stalled'; detail: string };

export interface SevenZipRun {
  outcome: SevenZipOutcome;
  /** This run's own directory of member files (inside limits.tempDir); remove it when done. */
  membersDir: string;
}

/** Where the worker's entry is and how node must start it. */
export interface WorkerScript {
  file: string;
  execArgv: string[];
}

/**
 * The worker's entry: the bundled JavaScript beside this module (the analyzer zip), else the
 * TypeScript source compiled by tsx's require hook (tests, `tsx`, manage.ts's launcher, which keeps
 * each module's own directory as __dirname).
 */
export function sevenZipWorkerScript(): WorkerScript {
  const bundled = path.join(__dirname, SEVEN_ZIP_WORKER_FILE);
  if (existsSync(bundled)) return { file: bundled, execArgv: [] };
  // A computed name: bundlers leave it to node at run time.
  const hook = ['tsx', 'cjs'].join('/');
  return { file: SEVEN_ZIP_WORKER_SOURCE, execArgv: ['--require', require.resolve(hook)] };
}

/**
 * Opens an encrypted 7z archive with 7-Zip (WebAssembly) in a worker thread, so the event loop
 * keeps serving the invocation's other objects while it runs; see extractEncryptedSevenZip
 * (sevenzip-extract.ts) for what it does. The members go to a new directory of this run inside
 * `limits.tempDir`, which the caller removes (whatever happened to the worker). A worker that
 * dies, or still runs STALL_GRACE_MS past the deadline (then it is terminated), is an outcome,
 * never an exception.
 */
export async function openEncryptedSevenZip(
  archive: string,
  archiveBytes: number,
  limits: Omit<SevenZipLimits, 'tempDir'> & { tempDir?: string },
  script: WorkerScript = sevenZipWorkerScript(),
): Promise<SevenZipRun> {
  const membersDir = mkdtempSync(path.join(limits.tempDir ?? tmpdir(), '7z-'));
  const request: SevenZipRequest = {
    archive,
    archiveBytes,
    limits: { ...limits, tempDir: membersDir },
  };
  let worker: Worker;
  try {
    worker = new Worker(script.file, { workerData: request, execArgv: script.execArgv });
  } catch (error) {
    return {
      outcome: { kind: 'failed', detail: `could not start the 7-Zip worker: ${String(error)}` },
      membersDir,
    };
  }
  const outcome = await new Promise<SevenZipOutcome>((resolve) => {
    let stallTimer: NodeJS.Timeout | undefined;
    let settled = false;
    const settle = (result: SevenZipOutcome): void => {
      if (settled) return;
      settled = true;
      if (stallTimer) clearTimeout(stallTimer);
      resolve(result);
      // A worker that answered ends by itself; this also stops one that did not.
      void worker.terminate();
    };
    if (Number.isFinite(limits.deadline)) {
      const waitMs = Math.max(0, limits.deadline - monotonicMs()) + STALL_GRACE_MS;
      stallTimer = setTimeout(
        () =>
          settle({
            kind: 'stalled',
            detail: `7-Zip still ran ${STALL_GRACE_MS} ms past the time budget and was stopped`,
          }),
        waitMs,
      );
    }
    worker.once('message', (message: { extraction?: SevenZipExtraction; error?: string }) => {
      settle(
        message.error === undefined
          ? { kind: 'finished', extraction: message.extraction }
          : { kind: 'failed', detail: `7-Zip (WebAssembly) failed: ${message.error}` },
      );
    });
    worker.once('error', (error) =>
      settle({ kind: 'died', detail: `the 7-Zip worker died: ${error.message}` }),
    );
    worker.once('exit', (code) =>
      settle({ kind: 'died', detail: `the 7-Zip worker exited (code ${code}) without an answer` }),
    );
  });
  return { outcome, membersDir };
}

/** Removes a run's member files. */
export function removeSevenZipRun(run: Pick<SevenZipRun, 'membersDir'>): void {
  rmSync(run.membersDir, { recursive: true, force: true });
}
