import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { RuleFingerprints } from '@binaryalert/core';
import type { RuleSource } from '@binaryalert/yara';

/**
 * Rule identity by content. A rule's fingerprint covers its normalized source (comments,
 * whitespace and the `meta:` section left out: they do not change what matches) and everything
 * its verdict depends on: the file's imports, the file's global rules and, recursively, the rules
 * its condition references. Where a rule cannot be isolated (a file with `include`, or text this
 * lexer does not understand) every rule of the file gets the file-level fingerprint, which covers
 * the file's bytes and those of what it includes.
 */

/** Hex characters kept of each SHA-256: 64 bits, plenty to tell two versions of a rule apart. */
export const FINGERPRINT_LENGTH = 16;

function digest(...parts: string[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(`${part.length}:${part}`);
  return hash.digest('hex').slice(0, FINGERPRINT_LENGTH);
}

class LexError extends Error {}

/**
 * YARA source as tokens, without comments and whitespace. Text strings, regular expressions (YARA
 * divides with `\`, so a `/` outside a comment always starts one) and words are single tokens;
 * any other character is a token of its own, which is enough to match braces.
 */
export function tokenize(text: string): string[] {
  const tokens: string[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i] as string;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '/' && text[i + 1] === '/') {
      while (i < n && text[i] !== '\n') i++;
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      if (end === -1) throw new LexError('unterminated comment');
      i = end + 2;
    } else if (c === '"' || c === '/') {
      let j = i + 1;
      while (j < n && text[j] !== c) {
        if (text[j] === '\n') throw new LexError('line break in a string or regular expression');
        j += text[j] === '\\' ? 2 : 1;
      }
      if (j >= n) throw new LexError('unterminated string or regular expression');
      j++;
      if (c === '/') while (j < n && /[a-z]/i.test(text[j] as string)) j++;
      tokens.push(text.slice(i, j));
      i = j;
    } else if (/[\w$#@!.]/.test(c)) {
      let j = i + 1;
      while (j < n && /[\w$#@!.*]/.test(text[j] as string)) j++;
      tokens.push(text.slice(i, j));
      i = j;
    } else {
      tokens.push(c);
      i++;
    }
  }
  return tokens;
}

interface ParsedRule {
  name: string;
  global: boolean;
  /** Normalized text without the meta section. */
  text: string;
  /** Words of the rule's body (candidates for references to other rules). */
  words: Set<string>;
}

interface ParsedFile {
  imports: string[];
  includes: string[];
  rules: ParsedRule[];
}

const MODIFIERS = new Set(['private', 'global']);

/** Top-level structure of a rule file; throws LexError where it does not follow YARA's grammar. */
export function parseRuleFile(text: string): ParsedFile {
  const tokens = tokenize(text);
  const file: ParsedFile = { imports: [], includes: [], rules: [] };
  let i = 0;
  while (i < tokens.length) {
    const token = tokens[i] as string;
    if (token === 'import' || token === 'include') {
      const target = tokens[i + 1];
      if (!target?.startsWith('"')) throw new LexError(`${token} without a file name`);
      (token === 'import' ? file.imports : file.includes).push(target);
      i += 2;
      continue;
    }
    const start = i;
    const modifiers = new Set<string>();
    while (MODIFIERS.has(tokens[i] as string)) modifiers.add(tokens[i++] as string);
    if (tokens[i] !== 'rule') throw new LexError(`unexpected "${tokens[i] ?? 'end of file'}"`);
    const name = tokens[i + 1];
    if (!name || !/^\w+$/.test(name)) throw new LexError('rule without a name');
    i += 2;
    while (i < tokens.length && tokens[i] !== '{') i++; // tags
    const bodyStart = i;
    let depth = 0;
    do {
      if (i >= tokens.length) throw new LexError(`rule ${name} has no closing brace`);
      if (tokens[i] === '{') depth++;
      else if (tokens[i] === '}') depth--;
      i++;
    } while (depth > 0);
    const kept = withoutMeta(tokens.slice(start, i), bodyStart - start);
    file.rules.push({
      name,
      global: modifiers.has('global'),
      text: kept.join(' '),
      words: new Set(tokens.slice(bodyStart, i).filter((t) => /^\w+$/.test(t))),
    });
  }
  return file;
}

function withoutMeta(tokens: string[], bodyStart: number): string[] {
  const kept: string[] = [];
  let inMeta = false;
  tokens.forEach((token, index) => {
    const section = index > bodyStart && tokens[index + 1] === ':' ? token : undefined;
    if (section === 'meta') inMeta = true;
    else if (section === 'strings' || section === 'condition') inMeta = false;
    if (!inMeta) kept.push(token);
  });
  return kept;
}

/** Every file `include`d by `file`, recursively, with their bytes (what YARA would read). */
async function includedTexts(file: string, seen = new Set<string>()): Promise<string[]> {
  if (seen.has(file)) return [];
  seen.add(file);
  const text = await fs.readFile(file, 'utf8');
  const texts = [text];
  let parsed: ParsedFile | undefined;
  try {
    parsed = parseRuleFile(text);
  } catch {
    return texts;
  }
  for (const include of parsed.includes) {
    const target = path.resolve(path.dirname(file), JSON.parse(include) as string);
    texts.push(...(await includedTexts(target, seen).catch(() => [`missing ${target}`])));
  }
  return texts;
}

/** The fingerprints of one file's rules from its text (undefined: it cannot be isolated). */
export function fingerprintRules(text: string): Record<string, string> | undefined {
  let parsed: ParsedFile;
  try {
    parsed = parseRuleFile(text);
  } catch (error) {
    if (error instanceof LexError) return undefined;
    throw error;
  }
  if (parsed.includes.length > 0) return undefined;
  const imports = [...parsed.imports].sort().join(',');
  const byName = new Map(parsed.rules.map((rule) => [rule.name, rule]));
  const fingerprints: Record<string, string> = {};
  const globals = parsed.rules.filter((rule) => rule.global);

  const fingerprintOf = (rule: ParsedRule, visiting: Set<string>): string => {
    const known = fingerprints[rule.name];
    if (known) return known;
    visiting.add(rule.name);
    const references = [...rule.words]
      .filter((word) => word !== rule.name && byName.has(word) && !visiting.has(word))
      .sort()
      .map((word) => fingerprintOf(byName.get(word) as ParsedRule, visiting));
    const globalTexts = globals.filter((g) => g.name !== rule.name).map((g) => g.text);
    const result = digest(imports, globalTexts.join('\n'), rule.text, references.join(','));
    visiting.delete(rule.name);
    fingerprints[rule.name] = result;
    return result;
  };
  for (const rule of parsed.rules) fingerprintOf(rule, new Set());
  return fingerprints;
}

/**
 * Fingerprints of every rule file of a rule set: per rule where the rule can be isolated, and
 * per file (namespace) always, the fallback for rules found in included files.
 */
export async function fingerprintRuleFiles(sources: RuleSource[]): Promise<RuleFingerprints> {
  const result: RuleFingerprints = { rules: {}, files: {} };
  for (const source of sources) {
    const namespace = source.namespace ?? path.basename(source.path);
    const texts = await includedTexts(source.path);
    result.files[namespace] = digest(...texts);
    const perRule = fingerprintRules(texts[0] as string);
    if (!perRule) continue;
    for (const [name, fingerprint] of Object.entries(perRule)) {
      result.rules[`${namespace}:${name}`] = fingerprint;
    }
  }
  return result;
}
