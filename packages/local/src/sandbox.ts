import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdirSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

/** The user Lambda workers run as when the stack is started as root. */
export const WORKER_USER = 'nobody';
/**
 * Added to a function's memory setting for its data-size limit: RLIMIT_DATA also counts what
 * Lambda's memory figure does not (each of Node's ~10 threads has an 8 MiB stack mapping, V8 and
 * malloc reserve ahead), so the bare setting would kill a 128 MB function at start-up. The JS
 * heap itself is held to the setting by --max-old-space-size.
 */
export const RUNTIME_OVERHEAD_MB = 256;

/** The data-size limit of a worker of a function with `memoryMb`. */
export function dataLimitBytes(memoryMb: number): number {
  return (memoryMb + RUNTIME_OVERHEAD_MB) * 1024 * 1024;
}

/**
 * Where and as whom Lambda workers run. As root, a worker drops to `nobody` with no capabilities
 * and no_new_privs (setpriv), since the analyzer parses hostile files; its code is then unpacked
 * under the system temp directory, readable by that user but not writable, because the data
 * directory may sit in a home that user cannot enter. Every worker gets its own temp directory
 * and a data-size limit from the function's memory setting (prlimit), on any user.
 */
export interface WorkerIsolation {
  /** uid/gid to run as; undefined keeps the stack's own user. */
  user?: { uid: number; gid: number };
  /** Code directories live here (`<fn>/<version>`). */
  codeRoot: string;
  /** Worker temp directories live here. */
  tmpRoot: string;
  /** The worker runner and preload scripts, where the worker user can read them. */
  workerScript: string;
  preloadScript: string;
  /** Removes what only this run needed. */
  dispose: () => Promise<void>;
}

async function lookupUser(name: string): Promise<{ uid: number; gid: number }> {
  const passwd = await readFile('/etc/passwd', 'utf8');
  const line = passwd.split('\n').find((entry) => entry.startsWith(`${name}:`));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined) throw new Error(`no user ${name} in /etc/passwd`);
  return { uid: Number(uid), gid: Number(gid) };
}

/** Prepares the isolation for a runtime whose state lives in `dataDir`. */
export async function workerIsolation(
  dataDir: string,
  scripts: { worker: string; preload: string },
): Promise<WorkerIsolation> {
  if (process.getuid?.() !== 0) {
    return {
      codeRoot: dataDir,
      tmpRoot: join(dataDir, 'tmp'),
      workerScript: scripts.worker,
      preloadScript: scripts.preload,
      dispose: () => rm(join(dataDir, 'tmp'), { recursive: true, force: true }),
    };
  }
  const user = await lookupUser(WORKER_USER);
  // A fresh directory (mkdtemp: no other user can have planted it), then opened for reading.
  const root = await mkdtemp(join(tmpdir(), 'binaryalert-lambda-'));
  await chmod(root, 0o755);
  await mkdir(join(root, 'runtime'), { recursive: true, mode: 0o755 });
  await mkdir(join(root, 'tmp'), { recursive: true, mode: 0o755 });
  const workerScript = join(root, 'runtime', basename(scripts.worker));
  const preloadScript = join(root, 'runtime', basename(scripts.preload));
  await copyFile(scripts.worker, workerScript);
  await copyFile(scripts.preload, preloadScript);
  return {
    user,
    codeRoot: join(root, 'code'),
    tmpRoot: join(root, 'tmp'),
    workerScript,
    preloadScript,
    dispose: () => rm(root, { recursive: true, force: true }),
  };
}

/** A worker's own temp directory, private to the user it runs as. */
export function makeWorkerTmp(isolation: WorkerIsolation, name: string): string {
  const dir = join(isolation.tmpRoot, name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (isolation.user) chownSync(dir, isolation.user.uid, isolation.user.gid);
  return dir;
}

/** Starts a worker process (Node with an IPC channel) inside the isolation. */
export function spawnWorker(
  isolation: WorkerIsolation,
  options: { execArgv: string[]; env: Record<string, string>; cwd: string; memoryMb: number },
): ChildProcess {
  const node = [process.execPath, ...options.execArgv, isolation.workerScript];
  const limitBytes = dataLimitBytes(options.memoryMb);
  const dropped = isolation.user
    ? [
        'setpriv',
        `--reuid=${isolation.user.uid}`,
        `--regid=${isolation.user.gid}`,
        '--clear-groups',
        '--inh-caps=-all',
        '--bounding-set=-all',
        '--no-new-privs',
        '--',
        ...node,
      ]
    : node;
  const command = ['prlimit', `--data=${limitBytes}:${limitBytes}`, '--', ...dropped];
  return spawn(command[0]!, command.slice(1), {
    cwd: options.cwd,
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    serialization: 'json',
  });
}
