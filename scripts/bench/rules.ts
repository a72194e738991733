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

/**
 * Words of the strings real rule sets look for (API and libc names, paths, protocol fragments,
 * message words). Alone they are common in clean binaries, so their atoms are found often and each
 * hit costs libyara a verification, as in real sets; a rule's string joins two or three of them,
 * which clean files practically never contain.
 */
// prettier-ignore
const WORDS = [
  'GetProcAddress', 'LoadLibrary', 'VirtualAlloc', 'CreateProcess', 'WriteFile', 'ReadFile',
  'CreateFile', 'RegOpenKey', 'RegSetValue', 'InternetOpen', 'HttpSendRequest', 'ShellExecute',
  'socket', 'connect', 'recv', 'send', 'malloc', 'memcpy', 'strcpy', 'sprintf', 'printf', 'fopen',
  'execve', 'fork', 'getenv', 'setsockopt', 'pthread_create', 'dlopen', 'dlsym', 'mmap',
  'mprotect', 'ptrace', 'kernel32', 'ntdll', 'advapi32', 'user32', 'ws2_32', 'wininet', '/bin/sh',
  '/tmp/', '/proc/self', '/etc/passwd', '/dev/null', 'http://', 'https://', 'User-Agent',
  'Mozilla/5.0', 'cmd.exe', 'powershell', 'System32', 'Software', 'Microsoft', 'Windows',
  'CurrentVersion', 'Run', 'Content-Type', 'POST', 'GET', 'password', 'config', 'error',
  'failed to', 'invalid', 'unable to', 'version', 'usage', 'admin', 'update', 'download', 'upload',
  'server', 'client', 'session', 'token', 'encrypt', 'decrypt', 'key', 'debug', 'buffer', 'thread',
  'process', 'service', 'install', 'remove', 'payload', 'shell', 'command', 'module', 'handle',
  'socket error', 'timeout', 'connection', 'library', 'string', 'format', 'result', 'status',
  'memory', 'file', 'path', 'name', 'data', 'open', 'close',
];
const WORD_JOINS = ['', ' ', '_', '.', '/', '\\', '-', ': ', '%s', ' %d '];

/**
 * x86/x64 instruction encodings common in compiled code (`??` a wildcard byte): code signatures
 * in real sets are made of these, so their short fixed runs hit often in any executable.
 */
// prettier-ignore
const X86 = [
  '55', '48 89 E5', '48 83 EC ??', 'E8 ?? ?? ?? ??', '48 8B 45 ??', '89 45 ??', '8B 45 ??',
  '48 85 C0', '74 ??', '75 ??', '0F 84 ?? ?? ?? ??', '31 C0', 'C3', '41 54', '53', '5D',
  '48 8D 3D ?? ?? ?? ??', 'FF 15 ?? ?? ?? ??', '6A ??', '83 C4 ??', '8B 4D ??', '33 C0',
  '48 89 C7', '4C 89 E7', '85 C0', '0F B6 ??', '48 8B 04 24', '8B EC', '83 EC ??', '50', '51',
];
const X86_ANCHORS = ['48 89 E5', '48 85 C0', '48 89 C7', '4C 89 E7', '48 8B 04 24', '48 83 C4 08'];
/** Immediate-operand instructions whose constant (a key, a magic number) makes a signature specific. */
const X86_CONSTANT = ['B8', 'B9', 'BA', 'BE', 'BF', '68', '3D', '35', '81 F1', '81 F2', 'C7 45 ??'];

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

/** Two or three words joined as in real strings: `failed to decrypt %s`, `kernel32.dll_session`. */
function phrase(prng: Prng): string {
  const words = Array.from({ length: prng.int(2, 3) }, () => prng.pick(WORDS));
  return words.join(prng.pick(WORD_JOINS));
}

/** The bytes of one instance of hex tokens (`??` any byte). */
function hexInstance(prng: Prng, tokens: string): Buffer {
  return Buffer.from(
    tokens.split(' ').map((t) => (t === '??' ? prng.nextUint32() & 0xff : parseInt(t, 16))),
  );
}

/**
 * A code signature: three to six common instructions with an immediate-operand instruction whose
 * 4-byte constant makes it specific, sometimes a jump between two of them.
 */
function codePattern(prng: Prng): { declaration: string; instance: Buffer } {
  const count = prng.int(3, 6);
  const constantAt = prng.int(0, count - 1);
  const parts: string[] = [];
  const instance: Buffer[] = [];
  const jumpAt = prng.chance(0.3) ? prng.int(1, count - 1) : -1;
  for (let k = 0; k < count; k++) {
    if (k === jumpAt) {
      const min = prng.int(0, 4);
      const max = min + prng.int(1, 12);
      parts.push(`[${min}-${max}]`);
      instance.push(prng.bytes(prng.int(min, max)));
    }
    const tokens =
      k === constantAt
        ? `${prng.pick(X86_CONSTANT)} ${[...prng.bytes(4)].map(hexByte).join(' ')}`
        : prng.pick(X86);
    parts.push(tokens);
    instance.push(hexInstance(prng, tokens));
  }
  return { declaration: `{ ${parts.join(' ')} }`, instance: Buffer.concat(instance) };
}

/** Two to four common instructions in a row: a generic code pattern. */
function genericCode(prng: Prng): { declaration: string; instance: Buffer } {
  // Led by an instruction of three fixed bytes or more, so libyara has an atom to search for (a
  // shorter one would be a "slowing down scanning" warning, which real sets' authors fix).
  const parts = [
    prng.pick(X86_ANCHORS),
    ...Array.from({ length: prng.int(1, 3) }, () => prng.pick(X86)),
  ];
  const tokens = parts.join(' ');
  return { declaration: `{ ${tokens} }`, instance: hexInstance(prng, tokens) };
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
 * Generates `count` synthetic YARA rules from a seed, shaped like public rule sets so the scan
 * costs what a real set costs: text rules (45%) of 4-12 strings (two or three words of API names,
 * paths and messages; wide, nocase) plus 2-4 common single words, needing 2-3 of the former and
 * often a PE header and a size bound; hex rules (35%) of 2-6 code signatures (common x86/x64
 * instructions around a 4-byte constant, jumps) and byte patterns with alternatives, plus 1-4
 * generic code sequences; regular expressions (5%); header rules (15%). The common words and code
 * make libyara verify many atom hits in any executable, as real sets do, while every condition
 * also needs something specific, so clean files rarely match: only the one ELF header rule in 100
 * meant to (large ELF files with three common strings). Calibrated on this machine's /usr/bin and
 * /usr/lib (2026-12-01): 5,000 rules compile to 15.6 MB and `yara -p 1` scans 828 MB of ELF files at
 * about 59 MB/s and matches about 5% of them (the issue's real set of 5,900 rules: 16 MB, 57 MB/s).
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
      // Text strings as real sets write them (API names, paths, messages; wide, nocase), the
      // condition needing two or three of them, often behind a PE header and a size bound.
      const n = prng.int(4, 12);
      const texts: TextString[] = Array.from({ length: n }, (_, k) => {
        const wide = prng.chance(0.25);
        return {
          id: `s${k}`,
          text: phrase(prng),
          nocase: prng.chance(0.25),
          wide,
          ascii: wide && prng.chance(0.6),
        };
      });
      // Single common words (`password` wide): found in many clean files, so never enough alone.
      const words: TextString[] = Array.from({ length: prng.int(2, 4) }, (_, k) => {
        const wide = prng.chance(0.4);
        return {
          id: `w${k}`,
          text: prng.pick(WORDS),
          nocase: prng.chance(0.4),
          wide,
          ascii: wide && prng.chance(0.5),
        };
      });
      [...texts, ...words].forEach((s) => strings.push(textDeclaration(s)));
      const needed = prng.int(2, Math.min(3, n));
      const pe = prng.chance(0.5);
      const bounded = pe || prng.chance(0.3);
      const maxFileSize = bounded ? prng.pick([1, 2, 3]) * 1024 * 1024 : undefined;
      condition = `${pe ? 'uint16(0) == 0x5A4D and ' : ''}${bounded ? `filesize < ${(maxFileSize ?? 0) / 1024 / 1024}MB and ` : ''}${needed} of ($s*)${words.length > 0 ? ' and any of ($w*)' : ''}`;
      plants.push({
        rule: name,
        bytes: joinPlants(
          prng,
          [...texts.slice(0, needed), ...words.slice(0, 1)].map((s) => textBytes(prng, s)),
        ),
        ...(pe ? { header: 'MZ' as const } : {}),
        ...(maxFileSize === undefined ? {} : { maxFileSize }),
      });
    } else if (roll < 0.8) {
      // Hex strings: code signatures (common instructions around a distinctive constant) and
      // byte patterns with jumps and alternatives.
      const n = prng.int(2, 6);
      const patterns = Array.from({ length: n }, () =>
        prng.chance(0.7) ? codePattern(prng) : hexPattern(prng),
      );
      patterns.forEach((p, k) => strings.push(`$h${k} = ${p.declaration}`));
      // Generic code (no constant): in every executable, so only ever beside a specific pattern.
      const generic = Array.from({ length: prng.int(1, 4) }, () => genericCode(prng));
      generic.forEach((p, k) => strings.push(`$c${k} = ${p.declaration}`));
      const all = prng.chance(0.3);
      condition = `${all ? 'all' : 'any'} of ($h*)${generic.length > 0 ? ' and any of ($c*)' : ''}`;
      plants.push({
        rule: name,
        bytes: joinPlants(prng, [
          ...(all ? patterns.map((p) => p.instance) : [prng.pick(patterns).instance]),
          ...generic.slice(0, 1).map((p) => p.instance),
        ]),
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
        // Real rule sets match few clean binaries: most header rules need their rare string beside
        // the common ones (whose atoms are still searched); one in 100 matches large ordinary ELF
        // files having three common strings (a few percent of /usr/bin and /usr/lib).
        const matchesCommon = prng.chance(0.01);
        const picks = new Set<string>();
        while (picks.size < (matchesCommon ? 3 : 2)) picks.add(prng.pick(ELF_COMMON));
        [...picks].forEach((text, k) => strings.push(`$e${k} = "${yaraText(text)}"`));
        const rare = token(prng, 8, 12);
        strings.push(`$x0 = "${rare}" nocase`);
        const minSize = matchesCommon ? prng.pick([512, 1024, 2048]) : prng.pick([0, 16, 64, 256]);
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
