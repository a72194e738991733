import type { LocalStack } from '../../packages/local/src';
import type { Corpus } from './corpus';

/** What every section gets from the harness. */
export interface BenchContext {
  quick: boolean;
  reps: number;
  cores: number;
  /** Scratch directory for this run (removed at the end). */
  workDir: string;
  repoRoot: string;
  /** manage.ts bundled with esbuild (run as `node <cliBundle> ...`). */
  cliBundle: string;
  /** Compiled synthetic (500) + project rules, written by `manage.ts compile-rules`. */
  compiledRules: string;
  /** The rules directory that file was compiled from. */
  rulesDir: string;
  synthetic: Corpus;
  elf: Corpus;
  seed: string;
  log: (line: string) => void;
  /** The Lambda zips, once some section built them. */
  zipsBuilt?: Promise<{ name: string; bytes: number; entries: string[] }[]>;
  /** The local stack, once some section started it. */
  stack?: Promise<LocalStack>;
  /** Run (in reverse) when the harness finishes. */
  cleanups: (() => Promise<void>)[];
}
