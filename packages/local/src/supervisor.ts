import { fork, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

import { exitWhenSpawnFails } from './child-exit';
import type { EmulatorCommand, EmulatorKind, EmulatorMessage } from './emulator-main';

/** The child entry, run as TypeScript through tsx (the stack itself runs under tsx or jest). */
const EMULATOR_MAIN = join(__dirname, 'emulator-main.ts');
const TSX_LOADER = pathToFileURL(require.resolve('tsx')).href;
const FIRST_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5000;
/** A child that ran this long without dying starts its next backoff from the beginning. */
const HEALTHY_MS = 30_000;

export interface SupervisedEmulator {
  /** The port it listens on now (the same one after a restart unless that was taken). */
  readonly port: number;
  /** How many times it died and was started again. */
  readonly restarts: number;
  /** The running child's pid (for fault injection and tests). */
  readonly pid: number | undefined;
  /**
   * Sends a client connection (and the bytes already read from it) to the running child to serve;
   * false when no child is listening now (being restarted): the caller serves it then.
   */
  handOff: (socket: Socket, prefix: Buffer) => boolean;
  close: () => Promise<void>;
}

export interface SuperviseOptions {
  /** Readable name for the console, e.g. `S3`. */
  name: string;
  kind: EmulatorKind;
  /** Handed to the child as JSON. */
  settings: Record<string, unknown>;
  print: (text: string) => void;
  /** Each event the child reports (e.g. an object created). */
  onEvent?: (message: EmulatorMessage) => void;
  /** Restarts never move to another port (processes were told this one); default false. */
  keepPort?: boolean;
  /** V8 flags of the child (and of every restart), e.g. `--no-incremental-marking`. */
  v8Flags?: string[];
  /** A restarted child listens again (what died with the last one may need redoing). */
  onRestarted?: () => void;
}

function startChild(
  options: SuperviseOptions,
  port: number,
): { child: ChildProcess; listening: Promise<number>; isListening: () => boolean } {
  const child = fork(EMULATOR_MAIN, [options.kind, JSON.stringify({ ...options.settings, port })], {
    execArgv: [...(options.v8Flags ?? []), '--import', TSX_LOADER],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    serialization: 'json',
  });
  exitWhenSpawnFails(child, options.name, options.print);
  for (const stream of [child.stdout, child.stderr]) {
    if (stream)
      createInterface({ input: stream }).on('line', (line) =>
        options.print(`[local] ${options.name}: ${line}`),
      );
  }
  let listened = false;
  const listening = new Promise<number>((ok, fail) => {
    child.on('message', (message: EmulatorMessage) => {
      if (message.type === 'listening') {
        listened = true;
        ok(message.port);
      } else options.onEvent?.(message);
    });
    child.once('exit', (code, signal) =>
      fail(new Error(`${options.name} exited before listening (${signal ?? `exit ${code}`})`)),
    );
  });
  const isListening = (): boolean =>
    listened && child.connected && child.exitCode === null && child.signalCode === null;
  return { child, listening, isListening };
}

/** What Node keeps on a ChildProcess for the handles it sends (lib/internal/child_process.js). */
interface HandleSending {
  /** The one handle written to the channel and waiting for the child's acknowledgement. */
  _pendingMessage?: { handle?: { close?: () => void } } | null;
  /** Handles waiting for that acknowledgement before they are written. */
  _handleQueue?: Array<{ handle?: { destroy?: () => void } }> | null;
}

/**
 * Closes the connections handed to a child that died before taking them. Node closes its copy of a
 * sent handle only when the child acknowledges it, or when the channel disconnects with no handle
 * queued; a child that dies with one unacknowledged leaves `_handleQueue` set, so Node never
 * disconnects it: the client's connection stayed open with no one to answer it, forever (an SDK
 * client without timeouts hung; the handoff test caught it under load). Closed here, the client
 * sees a reset and retries.
 */
function closeUndeliveredHandles(child: ChildProcess): void {
  const sending = child as unknown as HandleSending;
  const pending = sending._pendingMessage;
  sending._pendingMessage = null;
  pending?.handle?.close?.();
  // Emptied, not removed: an acknowledgement still unread on the channel asserts it is an array.
  for (const { handle } of sending._handleQueue?.splice(0) ?? []) handle?.destroy?.();
}

/**
 * Runs an emulator in a child process of its own, so that whatever a request does to it cannot
 * take the stack down: when it dies, the failure is printed and it is started again (on the same
 * port, with backoff when it keeps dying). Its state is on disk, so a restart loses nothing
 * acknowledged.
 */
export async function superviseEmulator(options: SuperviseOptions): Promise<SupervisedEmulator> {
  let closing = false;
  let restarts = 0;
  let backoff = FIRST_BACKOFF_MS;
  // The first start is retried a while too: after a crash of the whole stack, the old child
  // may still hold its files (dynalite's LevelDB lock) for a moment.
  let { child, listening, isListening } = startChild(options, 0);
  let port = 0;
  for (let attempt = 1; ; attempt++) {
    try {
      port = await listening;
      break;
    } catch (error) {
      if (attempt >= 8) throw error;
      await new Promise((ok) => setTimeout(ok, backoff));
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      ({ child, listening, isListening } = startChild(options, 0));
    }
  }
  backoff = FIRST_BACKOFF_MS;
  let startedAt = Date.now();
  let restartTimer: NodeJS.Timeout | undefined;

  const watch = (current: ChildProcess): void => {
    current.once('exit', (code, signal) => {
      closeUndeliveredHandles(current);
      if (closing) return;
      if (Date.now() - startedAt > HEALTHY_MS) backoff = FIRST_BACKOFF_MS;
      options.print(
        `[local] ${options.name} stopped (${signal ? `signal ${signal}` : `exit ${code}`}); restarting in ${backoff} ms`,
      );
      restartTimer = setTimeout(() => void restart(), backoff);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    });
  };
  const restart = async (): Promise<void> => {
    if (closing) return;
    restarts += 1;
    ({ child, listening, isListening } = startChild(options, port));
    watch(child);
    startedAt = Date.now();
    try {
      port = await listening;
      if (!closing) options.onRestarted?.();
    } catch {
      // Died again while starting: its exit handler schedules the next try. The old port may be
      // taken by now, so the next child picks any free one, unless clients were given the port:
      // then it is tried again (with backoff) until it is free.
      if (!options.keepPort) port = 0;
    }
  };
  watch(child);

  return {
    get port() {
      return port;
    },
    get restarts() {
      return restarts;
    },
    get pid() {
      return child.pid;
    },
    handOff: (socket, prefix) => {
      if (closing || !isListening()) return false;
      const command: EmulatorCommand = { type: 'connection', prefix: prefix.toString('base64') };
      // A child that dies before taking it: the client sees its connection reset and retries.
      child.send(command, socket, (error) => {
        if (error) socket.destroy();
      });
      return true;
    },
    close: async () => {
      closing = true;
      clearTimeout(restartTimer);
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
      // One that died a moment ago may still look connected: its exit is on the way.
      if (child.connected) child.send({ type: 'close' } satisfies EmulatorCommand, () => undefined);
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
