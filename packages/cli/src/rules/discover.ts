import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { RuleSource } from '@binaryalert/yara';
import { SAMPLES_DIR_NAME } from './paths';

const RULE_FILE = /\.yara?$/i;

/** Whether a file name is a YARA rule file (.yar or .yara). */
export function isRuleFile(name: string): boolean {
  return RULE_FILE.test(name);
}

/**
 * Every .yar/.yara file under `rulesDir`, recursively, each with its namespace: the path relative
 * to `rulesDir` with '/' separators (`binaryalert/eicar.yara`). The top-level samples directory
 * and hidden directories (.git, staging copies) are skipped; symbolic links are not followed, so
 * a link cannot pull files from elsewhere into the rule set. Sorted by namespace.
 */
export async function findRuleFiles(rulesDir: string): Promise<RuleSource[]> {
  const root = path.resolve(rulesDir);
  const found: RuleSource[] = [];
  async function walk(dir: string, relative: string): Promise<void> {
    const entries = await fs.readdir(dir, { withFileTypes: true });
    for (const entry of entries) {
      const entryRelative = relative ? `${relative}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        if (entry.name.startsWith('.')) continue;
        if (!relative && entry.name === SAMPLES_DIR_NAME) continue;
        await walk(path.join(dir, entry.name), entryRelative);
      } else if (entry.isFile() && isRuleFile(entry.name)) {
        found.push({ path: path.join(dir, entry.name), namespace: entryRelative });
      }
    }
  }
  await walk(root, '');
  return found.sort((a, b) => (a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : 0));
}
