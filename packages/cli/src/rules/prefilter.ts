import { readFile } from 'node:fs/promises';
import { MIN_LITERAL_BYTES, type ContentRequirement } from '@binaryalert/core';

/**
 * The content prefilter of a rules release: from YARA sources, what bytes any match of their rules
 * requires (core content-signature.ts evaluates it against objects' content signatures).
 *
 * Conservative by construction: `undefined` stands for "no requirement known" and absorbs every
 * `or`; whatever this parser does not fully understand (a string modifier such as xor or base64,
 * a regular expression, `not`, `for`, a comparison other than a count >= 1, a module call, text
 * it cannot lex) becomes `undefined` for that part, and a rule whose requirement is `undefined`
 * makes the whole release unfiltered. A part of an `and` may be dropped (the other parts still
 * must hold), a part of an `or` never. The boolean structure is exact: `or` and `and` are YARA's
 * two lowest-precedence operators (in that order), so splitting a condition at its top-level
 * `or`s, then `and`s, outside parentheses and brackets, gives the expression tree's top.
 * Sources are read as latin1 so each character is one byte of the file, as libyara reads it.
 */

/** Text this parser cannot follow: the whole file (every rule in it) is unfiltered. */
export class PrefilterParseError extends Error {}

type Token =
  | { kind: 'word'; text: string } // identifiers, keywords, numbers
  | { kind: 'text'; bytes: Buffer } // "text string", escapes resolved
  | { kind: 'regex'; body: string; flags: string } // /body/flags, body as written
  | { kind: 'hex'; body: string } // { hex string } without its braces
  | { kind: 'string-id'; name: string; wildcard: boolean } // $name, $name*, $
  | { kind: 'count'; name: string } // #name
  | { kind: 'sigil'; text: string } // @name, !name (offsets, lengths)
  | { kind: 'punct'; text: string };

const TWO_CHAR_PUNCTUATION = new Set(['==', '!=', '<=', '>=', '<<', '>>', '..']);
const IDENTIFIER = /[A-Za-z0-9_]/;

function isWord(token: Token | undefined, text: string): boolean {
  return token?.kind === 'word' && token.text === text;
}
function isPunct(token: Token | undefined, text: string): boolean {
  return token?.kind === 'punct' && token.text === text;
}

/** A text string's bytes, with YARA's escapes (\" \\ \t \n \r \xHH) resolved. */
function textBytes(raw: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c !== 0x5c) {
      out.push(c);
      continue;
    }
    const next = raw[++i];
    if (next === '"' || next === '\\') out.push(next.charCodeAt(0));
    else if (next === 't') out.push(9);
    else if (next === 'n') out.push(10);
    else if (next === 'r') out.push(13);
    else if (next === 'x' && /^[0-9A-Fa-f]{2}$/.test(raw.slice(i + 1, i + 3))) {
      out.push(parseInt(raw.slice(i + 1, i + 3), 16));
      i += 2;
    } else throw new PrefilterParseError(`unknown escape \\${next ?? ''} in a text string`);
  }
  return Buffer.from(out);
}

/** YARA source (latin1) as tokens, without comments and whitespace, lexed as libyara's lexer does. */
export function tokenizeYara(source: string): Token[] {
  const tokens: Token[] = [];
  const n = source.length;
  let i = 0;
  const previous = (back: number) => tokens[tokens.length - back];
  while (i < n) {
    const c = source[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '/' && source[i + 1] === '/') {
      while (i < n && source[i] !== '\n') i++;
    } else if (c === '/' && source[i + 1] === '*') {
      const end = source.indexOf('*/', i + 2);
      if (end === -1) throw new PrefilterParseError('unterminated comment');
      i = end + 2;
    } else if (c === '"') {
      let j = i + 1;
      while (j < n && source[j] !== '"') {
        if (source[j] === '\n') throw new PrefilterParseError('line break in a text string');
        j += source[j] === '\\' ? 2 : 1;
      }
      if (j >= n) throw new PrefilterParseError('unterminated text string');
      tokens.push({ kind: 'text', bytes: textBytes(source.slice(i + 1, j)) });
      i = j + 1;
    } else if (c === '/') {
      // A regular expression ends at the first unescaped '/' (even inside a class), as in libyara.
      let j = i + 1;
      while (j < n && source[j] !== '/') {
        if (source[j] === '\n') throw new PrefilterParseError('line break in a regular expression');
        j += source[j] === '\\' ? 2 : 1;
      }
      if (j >= n) throw new PrefilterParseError('unterminated regular expression');
      const body = source.slice(i + 1, j);
      j++;
      const flagsStart = j;
      while (j < n && /[is]/.test(source[j]!)) j++;
      tokens.push({ kind: 'regex', body, flags: source.slice(flagsStart, j) });
      i = j;
    } else if (
      c === '{' &&
      isPunct(previous(1), '=') &&
      previous(2)?.kind === 'string-id' // `$a = { ... }`: a hex string
    ) {
      const end = source.indexOf('}', i + 1);
      if (end === -1) throw new PrefilterParseError('unterminated hex string');
      const body = source.slice(i + 1, end);
      // Comments inside hex strings ('//' may even hide a '}') are not followed here.
      if (!/^[0-9A-Fa-f?~[\]\-()|\s]*$/.test(body)) {
        throw new PrefilterParseError('a hex string with characters this parser does not follow');
      }
      tokens.push({ kind: 'hex', body });
      i = end + 1;
    } else if (c === '$' || c === '#' || c === '@' || (c === '!' && source[i + 1] !== '=')) {
      let j = i + 1;
      while (j < n && IDENTIFIER.test(source[j]!)) j++;
      const name = source.slice(i + 1, j);
      if (c === '$') {
        const wildcard = source[j] === '*';
        tokens.push({ kind: 'string-id', name, wildcard });
        i = wildcard ? j + 1 : j;
      } else {
        tokens.push(c === '#' ? { kind: 'count', name } : { kind: 'sigil', text: c + name });
        i = j;
      }
    } else if (IDENTIFIER.test(c)) {
      let j = i + 1;
      while (j < n && IDENTIFIER.test(source[j]!)) j++;
      tokens.push({ kind: 'word', text: source.slice(i, j) });
      i = j;
    } else if (TWO_CHAR_PUNCTUATION.has(source.slice(i, i + 2))) {
      tokens.push({ kind: 'punct', text: source.slice(i, i + 2) });
      i += 2;
    } else {
      tokens.push({ kind: 'punct', text: c });
      i++;
    }
  }
  return tokens;
}

// --- Requirements: `undefined` is "none known" ---

type Requirement = ContentRequirement | undefined;

/** Every part must hold: any one known requirement is one of the whole. */
export function allOf(parts: Requirement[]): Requirement {
  const known = parts.filter((part): part is ContentRequirement => part !== undefined);
  if (known.length === 0) return undefined;
  return known.length === 1 ? known[0] : { all: known };
}

/** Some part holds: known only when every part's is. */
export function anyOf(parts: Requirement[]): Requirement {
  if (parts.length === 0 || parts.some((part) => part === undefined)) return undefined;
  const known = parts as ContentRequirement[];
  return known.length === 1 ? known[0] : { any: known };
}

function literal(bytes: Buffer, nocase = false): Requirement {
  if (bytes.length < MIN_LITERAL_BYTES) return undefined;
  return { bytes: bytes.toString('hex'), ...(nocase ? { nocase: true as const } : {}) };
}

/** Each byte followed by a zero, as libyara makes a `wide` string. */
function wide(bytes: Buffer): Buffer {
  const out = Buffer.alloc(bytes.length * 2);
  bytes.forEach((byte, index) => (out[index * 2] = byte));
  return out;
}

const TEXT_MODIFIERS = new Set(['ascii', 'wide', 'nocase', 'fullword', 'private']);

/**
 * The requirement of a string whose matches must contain every one of `runs` (literal byte runs),
 * for each of its ascii/wide forms: any of the forms, all of the runs.
 */
function runsRequirement(runs: Buffer[], modifiers: string[], nocase: boolean): Requirement {
  // xor, base64, base64wide (or anything else): the bytes in the file are not the literal.
  if (modifiers.some((modifier) => !TEXT_MODIFIERS.has(modifier))) return undefined;
  const folded = nocase || modifiers.includes('nocase');
  const forms: Requirement[] = [];
  if (modifiers.includes('wide')) forms.push(allOf(runs.map((run) => literal(wide(run), folded))));
  if (modifiers.includes('ascii') || !modifiers.includes('wide')) {
    forms.push(allOf(runs.map((run) => literal(run, folded))));
  }
  return anyOf(forms);
}

function textRequirement(bytes: Buffer, modifiers: string[]): Requirement {
  return runsRequirement([bytes], modifiers, false);
}

const REGEX_CHAR_ESCAPES: Record<string, number> = { t: 9, n: 10, r: 13, f: 12, a: 7 };

/**
 * The literal runs every match of a regular expression (libyara's syntax, as written between the
 * slashes) contains, or undefined. Only a top-level concatenation is read: a `|` outside
 * classes and groups makes it unknown; a character is part of a run only when it must occur once
 * in that place (not before `?`, `*` or `{...}`; a `+` ends the run after it); classes, groups,
 * `.`, anchors and class escapes (\w \d \s \b ...) end runs. A `[]` or `[^]` class (whose end
 * other engines read differently) makes it unknown.
 */
export function regexLiteralRuns(body: string): Buffer[] | undefined {
  const runs: Buffer[] = [];
  let run: number[] = [];
  const endRun = () => {
    if (run.length > 0) runs.push(Buffer.from(run));
    run = [];
  };
  let i = 0;
  /** Skips a quantifier at `i` (and its lazy `?`); the kind it was, or undefined. */
  const quantifier = (): 'optional' | 'repeated' | undefined => {
    const q = body[i];
    let kind: 'optional' | 'repeated' | undefined;
    if (q === '?' || q === '*') {
      kind = 'optional';
      i++;
    } else if (q === '+') {
      kind = 'repeated';
      i++;
    } else if (q === '{') {
      const close = body.indexOf('}', i);
      if (close === -1) throw new PrefilterParseError('unterminated {');
      kind = 'optional'; // {0,...} allows none: never counted on
      i = close + 1;
    }
    if (kind && body[i] === '?') i++;
    return kind;
  };
  /** Skips a class starting at `i` ('['). */
  const skipClass = () => {
    i++;
    if (body[i] === '^') i++;
    if (body[i] === ']') throw new PrefilterParseError('a class starting with ]');
    while (i < body.length && body[i] !== ']') {
      // `[[:alpha:]]`-style classes would end at another ']': not followed here.
      if (body[i] === '[') throw new PrefilterParseError('a [ inside a class');
      i += body[i] === '\\' ? 2 : 1;
    }
    if (i >= body.length) throw new PrefilterParseError('unterminated class');
    i++;
  };
  let depth = 0;
  while (i < body.length) {
    const c = body[i]!;
    if (c === '[') {
      endRun();
      skipClass();
      quantifier();
    } else if (c === '(') {
      endRun();
      depth++;
      i++;
    } else if (c === ')') {
      endRun();
      depth--;
      if (depth < 0) throw new PrefilterParseError('unbalanced )');
      i++;
      quantifier();
    } else if (c === '|') {
      if (depth === 0) return undefined;
      i++;
    } else if (depth > 0) {
      i += c === '\\' ? 2 : 1; // inside a group: nothing is counted on
    } else if ('.^$?*+{'.includes(c)) {
      endRun();
      if ('.^$'.includes(c)) i++;
      quantifier();
    } else {
      let byte: number | undefined;
      if (c === '\\') {
        const next = body[i + 1];
        if (next === undefined) throw new PrefilterParseError('trailing backslash');
        if (next === 'x') {
          if (!/^[0-9A-Fa-f]{2}$/.test(body.slice(i + 2, i + 4))) {
            throw new PrefilterParseError('\\x without two hex digits');
          }
          byte = parseInt(body.slice(i + 2, i + 4), 16);
          i += 4;
        } else if (next in REGEX_CHAR_ESCAPES) {
          byte = REGEX_CHAR_ESCAPES[next];
          i += 2;
        } else if ('wWsSdDbB'.includes(next)) {
          i += 2; // a class or an assertion: no literal
        } else if (/[0-9A-Za-z]/.test(next)) {
          throw new PrefilterParseError(`an escape \\${next} this parser does not know`);
        } else {
          byte = next.charCodeAt(0);
          i += 2;
        }
      } else {
        byte = c.charCodeAt(0);
        i++;
      }
      const kind = quantifier();
      if (byte === undefined || kind === 'optional') endRun();
      else {
        run.push(byte);
        if (kind === 'repeated') endRun();
      }
    }
  }
  if (depth !== 0) throw new PrefilterParseError('unbalanced (');
  endRun();
  return runs;
}

function regexRequirement(body: string, flags: string, modifiers: string[]): Requirement {
  let runs: Buffer[] | undefined;
  try {
    runs = regexLiteralRuns(body);
  } catch (error) {
    if (error instanceof PrefilterParseError) return undefined; // this string only
    throw error;
  }
  return runs ? runsRequirement(runs, modifiers, flags.includes('i')) : undefined;
}

/**
 * What a hex string requires: each run of literal bytes between wildcards, jumps and
 * alternations, and for each alternation one of its alternatives' requirements.
 */
export function hexRequirement(body: string): Requirement {
  const items = body.match(/~?[0-9A-Fa-f?]{2}|\[[^\]]*\]|[()|]|\S/g) ?? [];
  let at = 0;
  const sequence = (): Requirement => {
    const parts: Requirement[] = [];
    let run: number[] = [];
    const endRun = () => {
      parts.push(literal(Buffer.from(run)));
      run = [];
    };
    while (at < items.length && items[at] !== '|' && items[at] !== ')') {
      const item = items[at++]!;
      if (/^[0-9A-Fa-f]{2}$/.test(item)) {
        run.push(parseInt(item, 16));
      } else if (/^~?[0-9A-Fa-f?]{2}$/.test(item) || /^\[[0-9\s-]*\]$/.test(item)) {
        endRun(); // a wildcard, a masked or negated byte, a jump
      } else if (item === '(') {
        endRun();
        const alternatives = [sequence()];
        while (items[at] === '|') {
          at++;
          alternatives.push(sequence());
        }
        if (items[at++] !== ')') throw new PrefilterParseError('unbalanced hex alternation');
        parts.push(anyOf(alternatives));
      } else {
        throw new PrefilterParseError(`unexpected "${item}" in a hex string`);
      }
    }
    endRun();
    return allOf(parts);
  };
  const requirement = sequence();
  if (at !== items.length) throw new PrefilterParseError('unbalanced hex string');
  return requirement;
}

// --- Rules ---

/** One rule's name and what any match of it requires (undefined: nothing known). */
export interface RuleRequirement {
  name: string;
  requires: Requirement;
}

const RULE_MODIFIERS = new Set(['private', 'global']);
/** Parentheses and and/or levels read before a condition counts as not understood. */
const MAX_NESTING = 200;
const STRING_MODIFIERS = new Set([...TEXT_MODIFIERS, 'xor', 'base64', 'base64wide']);

/** The index just past the parenthesized group that opens at `start` (tokens[start] is '('). */
function closingParen(tokens: Token[], start: number): number {
  let depth = 0;
  for (let i = start; i < tokens.length; i++) {
    if (isPunct(tokens[i], '(') || isPunct(tokens[i], '[')) depth++;
    else if (isPunct(tokens[i], ')') || isPunct(tokens[i], ']')) {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  throw new PrefilterParseError('unbalanced parentheses');
}

/** `tokens` cut at each top-level occurrence of the word `at` (outside () and []). */
function splitTopLevel(tokens: Token[], word: string): Token[][] {
  const parts: Token[][] = [[]];
  let depth = 0;
  for (const token of tokens) {
    if (isPunct(token, '(') || isPunct(token, '[')) depth++;
    if (isPunct(token, ')') || isPunct(token, ']')) depth--;
    if (depth < 0) throw new PrefilterParseError('unbalanced parentheses');
    if (depth === 0 && isWord(token, word)) parts.push([]);
    else parts[parts.length - 1]!.push(token);
  }
  if (depth !== 0) throw new PrefilterParseError('unbalanced parentheses');
  if (parts.some((part) => part.length === 0))
    throw new PrefilterParseError(`empty side of ${word}`);
  return parts;
}

/** A non-negative integer literal (decimal or 0x hex, with KB/MB), or undefined. */
function integer(token: Token | undefined): number | undefined {
  if (token?.kind !== 'word') return undefined;
  const match = /^(?:0x([0-9A-Fa-f]+)|([0-9]+)(KB|MB)?)$/.exec(token.text);
  if (!match) return undefined;
  if (match[1] !== undefined) return parseInt(match[1], 16);
  return Number(match[2]) * (match[3] === 'KB' ? 1024 : match[3] === 'MB' ? 1024 * 1024 : 1);
}

/** Whether `#a <op> n` (or `n <op> #a`, mirrored) holds only for a count >= 1. */
function countAtLeastOne(op: string, n: number, countOnLeft: boolean): boolean {
  const mirrored: Record<string, string> = { '<': '>', '<=': '>=', '>': '<', '>=': '<=' };
  const normal = countOnLeft ? op : (mirrored[op] ?? op);
  return (
    (normal === '>' && n >= 0) ||
    (normal === '>=' && n >= 1) ||
    (normal === '==' && n >= 1) ||
    (normal === '!=' && n === 0)
  );
}

class RuleParser {
  constructor(
    private readonly strings: Map<string, Requirement>,
    private readonly order: string[],
  ) {}

  private string(name: string): Requirement {
    if (!this.strings.has(name)) throw new PrefilterParseError(`unknown string $${name}`);
    return this.strings.get(name);
  }

  /** The strings a set names: `them` or `($a, $b*, ...)`; undefined for a set this does not read. */
  private stringSet(tokens: Token[]): Requirement[] | undefined {
    if (tokens.length === 1 && isWord(tokens[0], 'them')) {
      if (this.order.length === 0)
        throw new PrefilterParseError('`them` in a rule without strings');
      return this.order.map((name) => this.string(name));
    }
    if (!isPunct(tokens[0], '(') || closingParen(tokens, 0) !== tokens.length) return undefined;
    const members: Requirement[] = [];
    const inner = tokens.slice(1, -1);
    for (let i = 0; i < inner.length; i += 2) {
      const token = inner[i];
      if (token?.kind !== 'string-id') return undefined;
      if (i + 1 < inner.length && !isPunct(inner[i + 1], ',')) return undefined;
      if (token.wildcard) {
        const names = this.order.filter((name) => name.startsWith(token.name));
        if (names.length === 0) throw new PrefilterParseError(`no string matches $${token.name}*`);
        members.push(...names.map((name) => this.string(name)));
      } else {
        if (token.name === '') return undefined; // `$` inside a for ... of loop
        members.push(this.string(token.name));
      }
    }
    return members.length > 0 ? members : undefined;
  }

  /** What the boolean expression `tokens` requires. */
  expression(tokens: Token[], depth = 0): Requirement {
    // A hostile nesting depth ends here, not in a stack overflow of the release.
    if (depth > MAX_NESTING) throw new PrefilterParseError('a condition nested too deep');
    const disjuncts = splitTopLevel(tokens, 'or');
    if (disjuncts.length > 1) {
      return anyOf(disjuncts.map((part) => this.expression(part, depth + 1)));
    }
    const conjuncts = splitTopLevel(tokens, 'and');
    if (conjuncts.length > 1) {
      return allOf(conjuncts.map((part) => this.expression(part, depth + 1)));
    }
    return this.term(tokens, depth);
  }

  /** One operand of `and`/`or`: only the shapes below are read; anything else requires nothing known. */
  private term(tokens: Token[], depth: number): Requirement {
    const [first, second, third] = tokens;
    if (isPunct(first, '(') && closingParen(tokens, 0) === tokens.length) {
      return this.expression(tokens.slice(1, -1), depth + 1);
    }
    if (first?.kind === 'string-id' && !first.wildcard && first.name !== '') {
      // `$a`, `$a at <one token or group>`, `$a in (<range>)`
      if (tokens.length === 1) return this.string(first.name);
      const rest = tokens.slice(2);
      const single = rest.length === 1 && rest[0]?.kind === 'word';
      const group = isPunct(rest[0], '(') && closingParen(rest, 0) === rest.length;
      if ((isWord(second, 'at') && (single || group)) || (isWord(second, 'in') && group)) {
        return this.string(first.name);
      }
      return undefined;
    }
    if (tokens.length === 3 && second?.kind === 'punct') {
      if (first?.kind === 'count' && first.name !== '') {
        const n = integer(third);
        if (n !== undefined && countAtLeastOne(second.text, n, true))
          return this.string(first.name);
      }
      if (third?.kind === 'count' && third.name !== '') {
        const n = integer(first);
        if (n !== undefined && countAtLeastOne(second.text, n, false))
          return this.string(third.name);
      }
      return undefined;
    }
    if (isWord(second, 'of') && tokens.length >= 3) {
      const members = this.stringSet(tokens.slice(2));
      if (!members) return undefined;
      if (isWord(first, 'all')) return allOf(members);
      const n = isWord(first, 'any') ? 1 : integer(first);
      if (n !== undefined && n >= 1) return anyOf(members);
    }
    return undefined;
  }
}

/** The strings section's strings, in order, with what each requires. */
function parseStrings(tokens: Token[]): { strings: Map<string, Requirement>; order: string[] } {
  const strings = new Map<string, Requirement>();
  const order: string[] = [];
  let i = 0;
  let anonymous = 0;
  while (i < tokens.length) {
    const id = tokens[i];
    const value = tokens[i + 2];
    if (id?.kind !== 'string-id' || id.wildcard || !isPunct(tokens[i + 1], '=') || !value) {
      throw new PrefilterParseError('a string declaration this parser does not follow');
    }
    i += 3;
    const modifiers: string[] = [];
    while (i < tokens.length && tokens[i]?.kind === 'word') {
      const modifier = (tokens[i] as { text: string }).text;
      if (!STRING_MODIFIERS.has(modifier)) throw new PrefilterParseError(`modifier ${modifier}`);
      modifiers.push(modifier);
      i++;
      if (isPunct(tokens[i], '(')) i = closingParen(tokens, i); // xor(1-255), base64("...")
    }
    let requirement: Requirement;
    if (value.kind === 'text') requirement = textRequirement(value.bytes, modifiers);
    else if (value.kind === 'hex') {
      requirement = modifiers.every((m) => m === 'private')
        ? hexRequirement(value.body)
        : undefined;
    } else if (value.kind === 'regex') {
      requirement = regexRequirement(value.body, value.flags, modifiers);
    } else throw new PrefilterParseError('a string value this parser does not follow');
    // Anonymous strings (`$`) count in `them` but cannot be named.
    const name = id.name === '' ? `\0anonymous${anonymous++}` : id.name;
    if (strings.has(name)) throw new PrefilterParseError(`string $${name} declared twice`);
    strings.set(name, requirement);
    order.push(name);
  }
  return { strings, order };
}

/** One rule's body (between its braces): what any match of it requires. */
function bodyRequirement(body: Token[]): Requirement {
  const sections = new Map<string, number>();
  body.forEach((token, index) => {
    if (
      token.kind === 'word' &&
      ['meta', 'strings', 'condition'].includes(token.text) &&
      isPunct(body[index + 1], ':')
    ) {
      if (sections.has(token.text)) throw new PrefilterParseError(`two ${token.text} sections`);
      sections.set(token.text, index);
    }
  });
  const condition = sections.get('condition');
  if (condition === undefined) throw new PrefilterParseError('a rule without a condition');
  const stringsAt = sections.get('strings');
  if (stringsAt !== undefined && stringsAt > condition) {
    throw new PrefilterParseError('strings after the condition');
  }
  const { strings, order } =
    stringsAt === undefined
      ? { strings: new Map<string, Requirement>(), order: [] }
      : parseStrings(body.slice(stringsAt + 2, condition));
  return new RuleParser(strings, order).expression(body.slice(condition + 2));
}

/**
 * Every rule of one YARA file (latin1 text) and what any match of it requires. Throws
 * PrefilterParseError when the file holds anything this parser cannot follow (an `include`
 * among them: the included rules would be compiled in too).
 */
export function ruleRequirements(source: string): RuleRequirement[] {
  const tokens = tokenizeYara(source);
  const rules: RuleRequirement[] = [];
  let i = 0;
  while (i < tokens.length) {
    if (isWord(tokens[i], 'import') && tokens[i + 1]?.kind === 'text') {
      i += 2;
      continue;
    }
    while (tokens[i]?.kind === 'word' && RULE_MODIFIERS.has((tokens[i] as { text: string }).text)) {
      i++;
    }
    const name = tokens[i + 1];
    if (!isWord(tokens[i], 'rule') || name?.kind !== 'word') {
      throw new PrefilterParseError('text outside a rule this parser does not follow');
    }
    i += 2;
    if (isPunct(tokens[i], ':')) {
      i++;
      while (tokens[i]?.kind === 'word') i++; // tags
    }
    if (!isPunct(tokens[i], '{')) throw new PrefilterParseError(`rule ${name.text} has no body`);
    // No '{' or '}' token occurs inside a body (hex strings are single tokens).
    const end = tokens.findIndex((token, index) => index > i && isPunct(token, '}'));
    if (end === -1) throw new PrefilterParseError(`rule ${name.text} has no closing brace`);
    const body = tokens.slice(i + 1, end);
    if (body.some((token) => isPunct(token, '{'))) {
      throw new PrefilterParseError(`rule ${name.text}: a brace this parser does not follow`);
    }
    rules.push({ name: name.text, requires: bodyRequirement(body) });
    i = end + 1;
  }
  return rules;
}

/**
 * What any match of the rules in these files requires, or undefined (unfiltered) when some rule's
 * requirement is unknown, some file cannot be parsed, or the parse does not account for exactly
 * `ruleCount` rules (what libyara compiled from the same files).
 */
export async function deltaPrefilter(
  files: string[],
  ruleCount: number,
): Promise<ContentRequirement | undefined> {
  const requirements: Requirement[] = [];
  try {
    for (const file of files) {
      for (const rule of ruleRequirements(await readFile(file, 'latin1'))) {
        requirements.push(rule.requires);
      }
    }
  } catch (error) {
    if (error instanceof PrefilterParseError) return undefined;
    throw error;
  }
  if (requirements.length !== ruleCount) return undefined;
  return anyOf(requirements);
}
