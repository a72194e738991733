import path from 'node:path';
import { REPO_ROOT, RULES_DIR } from '@binaryalert/deployment';

/** Where the YARA rules live: own rules under binaryalert/, cloned ones under <host>/<repo>/. */
export const DEFAULT_RULES_DIR = RULES_DIR;
/** The remote rule repositories `clone-rules` copies from. */
export const DEFAULT_RULE_SOURCES = path.join(DEFAULT_RULES_DIR, 'rule_sources.json');
/** `compile-rules` output, and the rules `scan` uses by default. */
export const DEFAULT_COMPILED_RULES = path.join(REPO_ROOT, 'dist', 'compiled_yara_rules.bin');
/** Sample files for the starter rules: under rules/ but never compiled or copied over. */
export const SAMPLES_DIR_NAME = 'samples';

/** A path for messages: relative to the working directory when inside it, else absolute. */
export function displayPath(target: string): string {
  const relative = path.relative(process.cwd(), target);
  return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : target;
}
