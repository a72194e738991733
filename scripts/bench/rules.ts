import { Prng } from './prng';

/** Bytes that make one generated rule match when placed in a file meeting its requirements. */
export interface Plant {
  rule: string;
  bytes: Buffer;
  /** The file must start with this header (the rule tests it with uint16/uint32 at 0). */
  header?: 'MZ' | 'ELF';
  /** The file must be smaller than this (the rule tests filesize). */
  maxFileSize?: number;
  /** The file must be larger than this (the rule tests filesize). */
  minFileSize?: number;
}

export interface GeneratedRules {
  /** YARA source text of every rule. */
  source: string;
  ruleCount: number;
  plants: Plant[];
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';
const ALNUM = `${LETTERS}0123456789`;
const HEX = '0123456789abcdef';

/** Strings common in real ELF files, so the header rules also match part of /usr/bin. */
const ELF_COMMON = [
  '__libc_start_main',
  'GLIBC_2.',
  '.gnu.version',
  '__cxa_finalize',
  '_ITM_registerTMCloneTable',
  '.note.gnu.build-id',
  'libpthread',
  'memcpy',
  '.eh_frame_hdr',
  'GCC: (Debian',
];

function token(prng: Prng, min: number, max: number): string {
  const length = prng.int(min, max);
  let text = prng.pick([...LETTERS]);
  for (let i = 1; i < length; i++) text += prng.pick([...ALNUM]);
  return text;
}

function hexByte(value: number): string {
  return value.toString(16).toUpperCase().padStart(2, '0');
}

function yaraText(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
}

interface TextString {
  id: string;
  text: string;
  nocase: boolean;
  wide: boolean;
  ascii: boolean;
}

function textDeclaration(s: TextString): string {
  const modifiers = [
    s.nocase ? 'nocase' : '',
    s.wide ? 'wide' : '',
    s.wide && s.ascii ? 'ascii' : '',
  ]
    .filter(Boolean)
    .join(' ');
  return `$${s.id} = "${yaraText(s.text)}"${modifiers ? ` ${modifiers}` : ''}`;
}

/** The bytes of a text string as it may appear in a file (case shuffled for nocase, UTF-16 for wide). */
function textBytes(prng: Prng, s: TextString): Buffer {
  let text = s.text;
  if (s.nocase) {
    text = [...text].map((c) => (prng.chance(0.5) ? c.toUpperCase() : c)).join('');
  }
  const wideForm = s.wide && (!s.ascii || prng.chance(0.5));
  return Buffer.from(text, wideForm ? 'utf16le' : 'latin1');
}

function joinPlants(prng: Prng, parts: Buffer[]): Buffer {
  const pieces: Buffer[] = [];
  parts.forEach((part, index) => {
    if (index > 0) pieces.push(prng.bytes(prng.int(1, 64)));
    pieces.push(part);
  });
  return Buffer.concat(pieces);
}

/** A hex string with a jump and an alternative, and the bytes of one instance of it. */
function hexPattern(prng: Prng): { declaration: string; instance: Buffer } {
  const head = prng.bytes(4);
  const jumpMin = prng.int(0, 4);
  const jumpMax = jumpMin + prng.int(1, 8);
  const altA = prng.bytes(2);
  const altB = prng.bytes(prng.int(2, 3));
  const tail = prng.bytes(3);
  const hex = (bytes: Buffer) => [...bytes].map(hexByte).join(' ');
  const declaration = `{ ${hex(head)} [${jumpMin}-${jumpMax}] ( ${hex(altA)} | ${hex(altB)} ) ?? ${hex(tail)} }`;
  const instance = Buffer.concat([
    head,
    prng.bytes(prng.int(jumpMin, jumpMax)),
    prng.chance(0.5) ? altA : altB,
    prng.bytes(1),
    tail,
  ]);
  return { declaration, instance };
}

/**
 * Generates `count` synthetic YARA rules from a seed: text strings with nocase/wide, hex strings
 * with jumps and alternatives, a few regular expressions, conditions on filesize and headers.
 * Also returns, for most rules, bytes that make the rule match when planted in a file.
 */
export function generateRules(seed: string, count: number): GeneratedRules {
  const prng = new Prng(`rules:${seed}`);
  const rules: string[] = [];
  const plants: Plant[] = [];
  for (let i = 0; i < count; i++) {
    const roll = prng.next();
    const name = `bench_${i.toString().padStart(5, '0')}`;
    const strings: string[] = [];
    let condition: string;
    const meta = `        description = "synthetic benchmark rule ${i}"\n        seed = "${yaraText(seed)}"`;
    if (roll < 0.45) {
      // Text strings; condition any/2 of them, sometimes bounded by filesize.
      const n = prng.int(2, 4);
      const texts: TextString[] = Array.from({ length: n }, (_, k) => {
        const wide = prng.chance(0.25);
        return {
          id: `t${k}`,
          text: `${token(prng, 6, 10)}_${token(prng, 3, 8)}`,
          nocase: prng.chance(0.3),
          wide,
          ascii: wide && prng.chance(0.6),
        };
      });
      texts.forEach((s) => strings.push(textDeclaration(s)));
      const two = prng.chance(0.3);
      const bounded = prng.chance(0.3);
      const maxFileSize = bounded ? prng.pick([1, 2, 3]) * 1024 * 1024 : undefined;
      condition = `${bounded ? `filesize < ${(maxFileSize ?? 0) / 1024 / 1024}MB and ` : ''}${two ? '2 of them' : 'any of them'}`;
      const chosen = two ? texts.slice(0, 2) : [prng.pick(texts)];
      plants.push({
        rule: name,
        bytes: joinPlants(
          prng,
          chosen.map((s) => textBytes(prng, s)),
        ),
        ...(maxFileSize === undefined ? {} : { maxFileSize }),
      });
    } else if (roll < 0.8) {
      // Hex strings with jumps and alternatives, sometimes with a counted or positional condition.
      const n = prng.int(1, 3);
      const patterns = Array.from({ length: n }, () => hexPattern(prng));
      patterns.forEach((p, k) => strings.push(`$h${k} = ${p.declaration}`));
      const all = prng.chance(0.3) && n > 1;
      condition = all ? 'all of them' : 'any of them';
      plants.push({
        rule: name,
        bytes: joinPlants(
          prng,
          all ? patterns.map((p) => p.instance) : [prng.pick(patterns).instance],
        ),
      });
    } else if (roll < 0.85) {
      // A regular expression with a literal prefix (good atoms) and a bounded class repetition.
      const prefix = token(prng, 5, 8);
      const suffix = token(prng, 3, 6);
      const nocase = prng.chance(0.3);
      strings.push(`$r0 = /${prefix}[0-9a-f]{4,8}${suffix}/${nocase ? 'i' : ''}`);
      strings.push(`$t0 = "${token(prng, 8, 12)}"`);
      condition = '$r0 or $t0';
      let hex = '';
      for (let k = prng.int(4, 8); k > 0; k--) hex += prng.pick([...HEX]);
      plants.push({ rule: name, bytes: Buffer.from(`${prefix}${hex}${suffix}`, 'latin1') });
    } else {
      // Header rules: MZ or ELF magic at 0 plus strings (for ELF, strings real binaries contain).
      const elf = prng.chance(0.5);
      if (elf) {
        const picks = new Set<string>();
        while (picks.size < 2) picks.add(prng.pick(ELF_COMMON));
        [...picks].forEach((text, k) => strings.push(`$e${k} = "${yaraText(text)}"`));
        const rare = token(prng, 8, 12);
        strings.push(`$x0 = "${rare}" nocase`);
        const minSize = prng.pick([0, 16, 64, 256]);
        // Real rule sets match few clean binaries: most header rules need their rare string beside
        // the common ones (whose atoms are still searched); one in 25 matches ordinary ELF files.
        const matchesCommon = prng.chance(0.04);
        condition = `uint32(0) == 0x464C457F and filesize > ${minSize}KB and ${
          matchesCommon ? '(all of ($e*) or $x0)' : '($x0 and any of ($e*))'
        }`;
        plants.push({
          rule: name,
          bytes: matchesCommon
            ? Buffer.from(rare, 'latin1')
            : joinPlants(prng, [Buffer.from(rare, 'latin1'), Buffer.from([...picks][0] ?? '')]),
          header: 'ELF',
          minFileSize: minSize * 1024,
        });
      } else {
        const texts: TextString[] = [0, 1].map((k) => ({
          id: `m${k}`,
          text: `${token(prng, 6, 9)}.${prng.pick(['dll', 'exe', 'sys'])}`,
          nocase: true,
          wide: true,
          ascii: true,
        }));
        texts.forEach((s) => strings.push(textDeclaration(s)));
        condition = 'uint16(0) == 0x5A4D and filesize < 4MB and any of ($m*)';
        plants.push({
          rule: name,
          bytes: textBytes(prng, prng.pick(texts)),
          header: 'MZ',
          maxFileSize: 4 * 1024 * 1024,
        });
      }
    }
    rules.push(
      `rule ${name}\n{\n    meta:\n${meta}\n    strings:\n${strings
        .map((s) => `        ${s}`)
        .join('\n')}\n    condition:\n        ${condition}\n}\n`,
    );
  }
  return {
    source: `// Generated by scripts/bench (seed ${JSON.stringify(seed)}); do not edit.\n\n${rules.join('\n')}`,
    ruleCount: count,
    plants,
  };
}
