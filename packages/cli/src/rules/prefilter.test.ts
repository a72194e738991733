import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  mayMeetRequirement,
  readContentSignature,
  type ContentRequirement,
} from '@binaryalert/core';
import { compileRules, RuleCompileError, type CompiledRules } from '@binaryalert/yara';
import { deltaPrefilter, hexRequirement, ruleRequirements } from './prefilter';

/** A small deterministic generator (mulberry32), so a failure can be replayed from its seed. */
function random(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  return { next, int, pick };
}
type Random = ReturnType<typeof random>;

// A small alphabet, so random files hold the random strings often (matches must happen).
const ALPHABET = Buffer.from('abcAB\0xy-');

const literalText = (r: Random, length: number) =>
  Buffer.from(Array.from({ length }, () => ALPHABET[r.int(ALPHABET.length)]!));

/** A YARA text-string body for bytes, with escapes of every kind. */
function escaped(r: Random, bytes: Buffer): string {
  return [...bytes]
    .map((byte) => {
      if (byte === 0 || r.next() < 0.15) return `\\x${byte.toString(16).padStart(2, '0')}`;
      if (byte === 0x22) return '\\"';
      if (byte === 0x5c) return '\\\\';
      return String.fromCharCode(byte);
    })
    .join('');
}

interface GeneratedString {
  declaration: string;
  /** Bytes a file can hold to match it (for planting). */
  plant?: Buffer;
}

function generateString(r: Random, name: string): GeneratedString {
  const kind = r.int(10);
  if (kind < 5) {
    const bytes = literalText(r, 1 + r.int(6));
    const modifiers = new Set<string>();
    for (let i = r.int(3); i > 0; i--) {
      modifiers.add(r.pick(['ascii', 'wide', 'nocase', 'fullword', 'private', 'xor', 'base64']));
    }
    // base64 cannot be combined with nocase/xor/fullword (libyara refuses it).
    if (modifiers.has('base64')) ['nocase', 'xor', 'fullword'].forEach((m) => modifiers.delete(m));
    const wide = modifiers.has('wide') && (!modifiers.has('ascii') || r.next() < 0.5);
    let plant = wide ? Buffer.from([...bytes].flatMap((b) => [b, 0])) : bytes;
    if (modifiers.has('nocase'))
      plant = Buffer.from(plant.toString('latin1').toUpperCase(), 'latin1');
    if (modifiers.has('xor') || modifiers.has('base64')) plant = Buffer.from(bytes);
    return {
      declaration: `$${name} = "${escaped(r, bytes)}" ${[...modifiers].join(' ')}`,
      plant,
    };
  }
  if (kind < 8) {
    const items: string[] = [];
    const plant: number[] = [];
    const byte = () => ALPHABET[r.int(ALPHABET.length)]!;
    const hex = (b: number) => b.toString(16).padStart(2, '0').toUpperCase();
    const first = byte();
    items.push(hex(first));
    plant.push(first);
    for (let i = 1 + r.int(7); i > 0; i--) {
      const shape = r.int(10);
      if (shape < 6) {
        const b = byte();
        items.push(r.next() < 0.5 ? hex(b) : hex(b).toLowerCase());
        plant.push(b);
      } else if (shape === 6) {
        items.push('??');
        plant.push(byte());
      } else if (shape === 7) {
        const b = byte();
        items.push(`${hex(b)[0]}?`);
        plant.push(b);
      } else if (shape === 8) {
        items.push('[1-2]');
        plant.push(byte());
      } else {
        const [a, b, c] = [byte(), byte(), byte()];
        items.push(`( ${hex(a)} ${hex(b)} | ${hex(c)} )`);
        plant.push(a, b);
      }
    }
    const last = byte();
    items.push(hex(last));
    plant.push(last);
    return { declaration: `$${name} = { ${items.join(' ')} }`, plant: Buffer.from(plant) };
  }
  return generateRegex(r, name);
}

/** A regular expression of random parts, and a string it matches (for planting). */
function generateRegex(r: Random, name: string): GeneratedString {
  const char = () => {
    const byte = ALPHABET[r.int(ALPHABET.length)]!;
    const text =
      byte === 0 || byte === 0x2d
        ? `\\x${byte.toString(16).padStart(2, '0')}`
        : String.fromCharCode(byte);
    return { text, sample: String.fromCharCode(byte) };
  };
  const part = (): { text: string; sample: string } => {
    const shape = r.int(14);
    const c = char();
    if (shape < 6) return c;
    if (shape === 6) return { text: `${c.text}?`, sample: r.next() < 0.5 ? c.sample : '' };
    if (shape === 7) return { text: `${c.text}*`, sample: c.sample.repeat(r.int(3)) };
    if (shape === 8) return { text: `${c.text}+`, sample: c.sample.repeat(1 + r.int(2)) };
    if (shape === 9) return { text: `${c.text}{0,2}`, sample: c.sample.repeat(r.int(3)) };
    if (shape === 10) return { text: '[abx]', sample: r.pick(['a', 'b', 'x']) };
    if (shape === 11) return { text: '.', sample: 'y' };
    if (shape === 12) {
      const d = char();
      return {
        text: `(${c.text}${d.text}|yy)`,
        sample: r.next() < 0.5 ? c.sample + d.sample : 'yy',
      };
    }
    return { text: `(${c.text}A)?`, sample: r.next() < 0.5 ? `${c.sample}A` : '' };
  };
  const parts = Array.from({ length: 2 + r.int(7) }, part);
  let text = parts.map((p) => p.text).join('');
  let sample = parts.map((p) => p.sample).join('');
  if (r.next() < 0.1) {
    text = `${text}|bab`;
    if (r.next() < 0.5) sample = 'bab';
  }
  const flags = r.pick(['', '', 'i', 's']);
  const modifiers = r.pick(['', '', 'nocase', 'wide', 'ascii wide', 'fullword', 'private']);
  let plant = Buffer.from(sample, 'latin1');
  if (flags === 'i' || modifiers === 'nocase') {
    plant = Buffer.from(sample.toUpperCase(), 'latin1');
  }
  if (modifiers.includes('wide')) plant = Buffer.from([...plant].flatMap((b) => [b, 0]));
  return { declaration: `$${name} = /${text}/${flags} ${modifiers}`, plant };
}

function generateCondition(r: Random, names: string[], depth: number): string {
  const s = () => `$${r.pick(names)}`;
  const c = () => `#${r.pick(names)}`;
  if (depth > 0 && r.next() < 0.55) {
    const op = r.pick(['and', 'or', 'and', 'or']);
    const left = generateCondition(r, names, depth - 1);
    const right = generateCondition(r, names, depth - 1);
    return r.next() < 0.4 ? `(${left} ${op} ${right})` : `${left} ${op} ${right}`;
  }
  const leaves = [
    () => s(),
    () => s(),
    () => s(),
    () => `${c()} > 0`,
    () => `any of (${s()}, ${s()})`,
    () => `${s()} at ${r.int(4)}`,
    () => `${s()} in (0..${r.int(60)})`,
    () => `${c()} > ${r.int(2)}`,
    () => `${c()} >= ${r.int(3)}`,
    () => `${c()} == ${r.int(2)}`,
    () => `${r.int(2)} < ${c()}`,
    () => `${c()} != 0`,
    () => 'any of them',
    () => 'all of them',
    () => `${1 + r.int(2)} of them`,
    () => `0 of them`,
    () => `any of (${s()}, ${s()})`,
    () => `all of (${s()})`,
    () => `any of ($${r.pick(names).slice(0, 1)}*)`,
    () => `not ${s()}`,
    () => `not ${generateCondition(r, names, 0)}`,
    () => `not (${generateCondition(r, names, 1)})`,
    () => `filesize > ${r.int(50)}`,
    () => 'true',
    () => 'false',
    () => `for any of them : ( $ at ${r.int(3)} )`,
    () => `for all i in (1..${c()}) : ( @${r.pick(names)}[i] < 40 )`,
    () => `uint8(0) == 0x${ALPHABET[r.int(ALPHABET.length)]!.toString(16)}`,
    () => `${c()} + 1 > 1`,
  ];
  return r.pick(leaves)();
}

function generateRule(r: Random, index: number): { text: string; plants: Buffer[] } {
  const count = 1 + r.int(4);
  const names = Array.from({ length: count }, (_, i) => `${r.pick(['a', 'b', 's'])}${i}`);
  const strings = names.map((name) => generateString(r, name));
  // libyara refuses unreferenced strings: `them` references all, `or true` adds no requirement.
  const condition = `${generateCondition(r, names, 2)} and (any of them or true)`;
  const comment = r.next() < 0.3 ? ' // a "comment" with { braces } and /slashes/\n' : ' ';
  const text = `rule r${index} : t1 {${comment}meta: note = "x { } // \\" y" strings: ${strings
    .map((s) => s.declaration)
    .join('\n  ')} condition: ${condition} }\n`;
  return { text, plants: strings.flatMap((s) => (s.plant ? [s.plant] : [])) };
}

function generateFile(r: Random, plants: Buffer[]): Buffer {
  const parts: Buffer[] = [literalText(r, r.int(40))];
  for (let i = r.int(3); i > 0 && plants.length > 0; i--) {
    parts.push(r.pick(plants), literalText(r, r.int(20)));
  }
  return Buffer.concat(parts);
}

describe('content prefilter of rule sources', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cli-prefilter-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const compile = async (name: string, text: string): Promise<CompiledRules | undefined> => {
    const file = path.join(dir, name);
    await writeFile(file, text, 'latin1');
    try {
      return (await compileRules([{ path: file, namespace: name }])).rules;
    } catch (error) {
      if (error instanceof RuleCompileError) return undefined;
      throw error;
    }
  };

  it('never says "cannot match" where libyara matches (random rules, random and planted files)', async () => {
    const r = random(20261201);
    let compiled = 0;
    let filtered = 0;
    let excluded = 0;
    let matched = 0;
    for (let index = 0; index < 1000; index++) {
      const rule = generateRule(r, index);
      const rules = await compile(`rule${index}.yar`, rule.text);
      if (!rules) continue;
      compiled++;
      const [parsed] = ruleRequirements(rule.text);
      const requires: ContentRequirement | undefined = parsed!.requires;
      if (requires) filtered++;
      for (let f = 0; f < 12; f++) {
        const file = generateFile(r, rule.plants);
        const scan = await rules.scanBuffer(file, { contentSignature: true });
        const signature = readContentSignature(scan.contentSignature);
        const may = !requires || !signature || mayMeetRequirement(signature, requires);
        if (scan.matches.length > 0) {
          matched++;
          if (!may) {
            throw new Error(
              `missed match: rule ${rule.text} file ${file.toString('hex')} requirement ${JSON.stringify(requires)}`,
            );
          }
        } else if (!may) excluded++;
      }
    }
    // The test must exercise both sides: rules that compiled, matched files, filtered rules and
    // files the prefilter ruled out.
    expect(compiled).toBeGreaterThan(600);
    expect(matched).toBeGreaterThan(2000);
    expect(filtered).toBeGreaterThan(compiled * 0.2);
    expect(excluded).toBeGreaterThan(1000);
  });

  it('reads the requirement of each condition shape', () => {
    const req = (condition: string, strings = '$a = "alpha" $b = "bravo" $c = /x+/') =>
      ruleRequirements(`rule x { strings: ${strings} condition: ${condition} }`)[0]!.requires;
    const a = { bytes: Buffer.from('alpha').toString('hex') };
    const b = { bytes: Buffer.from('bravo').toString('hex') };
    expect(req('$a')).toEqual(a);
    expect(req('$a and $b')).toEqual({ all: [a, b] });
    expect(req('$a or $b')).toEqual({ any: [a, b] });
    expect(req('$a or $c')).toBeUndefined();
    expect(req('$a and $c')).toEqual(a);
    expect(req('$a and not $b')).toEqual(a);
    expect(req('not $a')).toBeUndefined();
    expect(req('not $a and $b')).toEqual(b);
    expect(req('not ($a and $b)')).toBeUndefined();
    expect(req('$a at 0 and filesize < 10MB')).toEqual(a);
    expect(req('#a == 0')).toBeUndefined();
    expect(req('#a >= 1')).toEqual(a);
    expect(req('#a > 0 or 2 <= #b')).toEqual({ any: [a, b] });
    expect(req('none of them')).toBeUndefined();
    expect(req('0 of ($a, $b)')).toBeUndefined();
    expect(req('any of ($a, $b)')).toEqual({ any: [a, b] });
    expect(req('all of them')).toEqual({ all: [a, b] });
    expect(req('any of them')).toBeUndefined(); // $c = /x+/: one literal byte only
    // Runs: ab | e | fg (h optional) | ijk.l: only the one of 3 bytes or more is required.
    expect(req('$c', '$c = /ab(c|d)e+fgh?[xy]ijk\\.l/')).toEqual({ bytes: '696a6b2e6c' });
    expect(req('$c', '$c = /abc+de(f)?ghi/')).toEqual({
      all: [{ bytes: '616263' }, { bytes: '676869' }],
    });
    expect(req('$c', '$c = /abc|def/')).toBeUndefined();
    expect(req('$c', '$c = /abcd/i wide')).toEqual({ bytes: '6100620063006400', nocase: true });
    expect(req('$c', '$c = /\\x41BC\\d+xyz{2}/')).toEqual({ bytes: '414243' });
    expect(req('$c', '$c = /abc\\1/')).toBeUndefined(); // an escape this does not know
    expect(req('$c', '$c = /[[:alpha:]]xyz/')).toBeUndefined(); // a class this does not follow
    expect(req('$c', '$c = /[]]xyz/')).toBeUndefined();
    expect(req('for any of ($a, $b) : ( $ at 0 )')).toBeUndefined();
    expect(req('other_rule')).toBeUndefined();
    expect(req('$a and other_rule')).toEqual(a);
    expect(req('filename == "alpha"')).toBeUndefined();
    expect(req('($a or ($b and $c)) and true')).toEqual({ any: [a, b] });
    expect(req('$a', '$a = "alpha" xor')).toBeUndefined();
    expect(req('$a', '$a = "alpha" base64')).toBeUndefined();
    expect(req('$a', '$a = "ab"')).toBeUndefined(); // shorter than a trigram
    expect(req('$a', '$a = "ab" wide')).toEqual({ bytes: '61006200' });
    expect(req('$a', '$a = "ab" wide ascii')).toBeUndefined();
    expect(req('$a', '$a = "abc" nocase wide ascii')).toEqual({
      any: [
        { bytes: '610062006300', nocase: true },
        { bytes: '616263', nocase: true },
      ],
    });
  });

  it('reads hex strings: literal runs, wildcards, jumps and alternations', () => {
    expect(hexRequirement('4D 5A 90 00 ?? 01 02 03')).toEqual({
      all: [{ bytes: '4d5a9000' }, { bytes: '010203' }],
    });
    expect(hexRequirement('4D5A9? 00 [2-4] 01 02')).toBeUndefined();
    expect(hexRequirement('( 01 02 03 | 04 05 06 ) AA')).toEqual({
      any: [{ bytes: '010203' }, { bytes: '040506' }],
    });
    expect(hexRequirement('( 01 02 03 | 04 ) AA BB CC')).toEqual({ bytes: 'aabbcc' });
    expect(() => hexRequirement('( 01 02 03')).toThrow();
  });

  it('follows comments, escapes, regular expressions and unicode the way libyara lexes them', async () => {
    const source = [
      '/* rule hidden { condition: true } */ import "pe"',
      '// rule hidden2 { condition: true }',
      'private global rule tricky : tag {',
      '  meta: text = "a \\"quoted\\" } brace // not a comment"',
      '  strings:',
      '    $s1 = "quote\\" and // slash" wide',
      '    $s2 = /http:\\/\\/[a-z]+\\// nocase // a comment after a regex',
      '    $s3 = "caf\u00e9 \u2603" // unicode: its UTF-8 bytes are the literal',
      '    $h = { 4D 5A ( 90 00 | 91 00 ) [2-4] 50 45 00 00 }',
      '  condition: /* and $s2 */ ($s1 or $s3) and #h > 0 and (any of them or true) // or true',
      '}',
    ].join('\n');
    const rules = await compile('tricky.yar', Buffer.from(source, 'utf8').toString('latin1'));
    expect(rules?.ruleCount).toBe(1);
    const [rule] = ruleRequirements(Buffer.from(source, 'utf8').toString('latin1'));
    expect(rule!.name).toBe('tricky');
    const all = (rule!.requires as { all: ContentRequirement[] }).all;
    expect(all).toHaveLength(2);
    expect(all[0]).toEqual({
      any: [
        {
          bytes: Buffer.from(
            [...Buffer.from('quote" and // slash')].flatMap((byte) => [byte, 0]),
          ).toString('hex'),
        },
        { bytes: Buffer.from('caf\u00e9 \u2603', 'utf8').toString('hex') },
      ],
    });
    expect(all[1]).toEqual({ bytes: '50450000' });
  });

  it('leaves a delta unfiltered when any rule, file or count is not understood', async () => {
    const write = async (name: string, text: string) => {
      const file = path.join(dir, name);
      await writeFile(file, text, 'latin1');
      return file;
    };
    const good = await write('good.yar', 'rule g { strings: $a = "MARKER" condition: $a }');
    const open = await write('open.yar', 'rule o { condition: filesize > 0 }');
    const include = await write(
      'inc.yar',
      `include "good.yar"\nrule i { strings: $a = "abc" condition: $a }`,
    );
    const hexComment = await write(
      'hexc.yar',
      'rule h { strings: $a = { 4D 5A // } \n 90 } condition: $a }',
    );
    const huge = await write(
      'huge.yar',
      Array.from(
        { length: 2000 },
        (_, i) => `rule r${i} { strings: $a = "marker_${i}" condition: $a }`,
      ).join('\n'),
    );
    expect(await deltaPrefilter([good], 1)).toEqual({
      bytes: Buffer.from('MARKER').toString('hex'),
    });
    expect(await deltaPrefilter([good, open], 2)).toBeUndefined();
    expect(await deltaPrefilter([include], 2)).toBeUndefined();
    expect(await deltaPrefilter([hexComment], 1)).toBeUndefined();
    expect(await deltaPrefilter([good], 2)).toBeUndefined(); // libyara saw a rule this did not
    const many = await deltaPrefilter([huge], 2000);
    expect(many && 'any' in many && many.any).toHaveLength(2000);
    // Hostile nesting: unfiltered, not a stack overflow of the release.
    const deep = await write(
      'deep.yar',
      `rule d { strings: $a = "abc" condition: ${'('.repeat(20_000)}$a${')'.repeat(20_000)} }`,
    );
    expect(await deltaPrefilter([deep], 1)).toBeUndefined();
    const nested = await write(
      'nested.yar',
      `rule n { strings: $a = "abc" condition: ${'('.repeat(150)}$a${')'.repeat(150)} }`,
    );
    expect(await deltaPrefilter([nested], 1)).toEqual({ bytes: '616263' });
    // Garbage never throws: it is unfiltered.
    const garbage = await write('garbage.yar', 'rule { "unterminated');
    expect(await deltaPrefilter([garbage], 0)).toBeUndefined();
  });
});
