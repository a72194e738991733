// Helpers for this package's tests: rule files written to a fresh temporary directory.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { compileRules, type CompiledRules, type CompileOptions, type RuleSource } from './index';

export interface TempDir {
  path: string;
  /** Writes a file (relative to the directory) and returns its absolute path. */
  write(name: string, content: string | Buffer): string;
  remove(): void;
}

export function makeTempDir(): TempDir {
  const path = mkdtempSync(join(tmpdir(), 'binaryalert-yara-'));
  return {
    path,
    write(name, content) {
      const file = join(path, name);
      writeFileSync(file, content);
      return file;
    },
    remove() {
      rmSync(path, { recursive: true, force: true });
    },
  };
}

/** Writes each rule text to its own file (named after the namespace) and compiles them together. */
export async function compileTexts(
  dir: TempDir,
  texts: Record<string, string>,
  options?: CompileOptions,
): Promise<CompiledRules> {
  const sources: RuleSource[] = Object.entries(texts).map(([namespace, text]) => ({
    path: dir.write(namespace.replaceAll('/', '_'), text),
    namespace,
  }));
  return (await compileRules(sources, options)).rules;
}

/** A condition that costs about filesize² iterations, to make scans slow on purpose. */
export const SLOW_RULE = `
rule slow_nested_loops {
  condition:
    for any i in (0..filesize) : (
      for any j in (0..filesize) : (uint8(i) == 0x42 and uint8(j) == 0x43)
    )
}`;
