import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateRawSync, deflateSync, inflateSync } from 'node:zlib';

import { ArchiveKit, EICAR_TEXT } from '@binaryalert/testing';

import {
  DEFAULT_EXTERNALS,
  ScanTimeoutError,
  type CompiledRules,
  type ContainerOptions,
  type ScanResult,
} from './index';
import { compileTexts, makeTempDir, type TempDir } from './testing';

const RULES = {
  eicar: 'rule eicar { strings: $a = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE" condition: $a }',
  // Matches only when the member's externals come from its own name and display path.
  byname: `rule payload_exe_by_name {
    condition: filename == "payload.exe" and extension == ".exe" and filetype == "EXE" and
      filepath endswith "!c.zip!payload.exe"
  }`,
};
const EICAR_SHA256 = createHash('sha256').update(EICAR_TEXT).digest('hex');
// Compressible enough that zip/gzip deflate it, so the outer layers never hold EICAR in clear.
const PAYLOAD = `${'MZ padding '.repeat(500)}${EICAR_TEXT}`;

describe('scanning inside containers', () => {
  let dir: TempDir;
  let kit: ArchiveKit;
  let spill: string;
  let rules: CompiledRules;

  beforeEach(async () => {
    dir = makeTempDir();
    kit = new ArchiveKit(join(dir.path, 'samples'));
    spill = join(dir.path, 'spill');
    mkdirSync(spill);
    rules = await compileTexts(dir, RULES);
  });
  afterEach(() => dir.remove());

  async function scan(path: string, options: Partial<ContainerOptions> = {}): Promise<ScanResult> {
    return rules.scanFile(path, {
      externals: DEFAULT_EXTERNALS,
      containers: { label: path.split('/').pop()!, tempDir: spill, ...options },
    });
  }

  function matchedMembers(result: ScanResult): string[] {
    return (result.containers?.members ?? [])
      .filter((member) => (member.matches ?? []).length > 0)
      .map((member) => `${member.path} ${member.matches!.map((m) => m.rule).join(',')}`);
  }

  it('names the member of a tar.gz that matches, with its SHA-256, where the outer bytes match nothing', async () => {
    const archive = kit.tar('sample.tar.gz', { 'dir/payload.exe': EICAR_TEXT }, '-z');

    const result = await scan(archive);

    expect(result.matches).toEqual([]);
    expect(result.containers?.members).toEqual([
      expect.objectContaining({
        path: 'sample.tar.gz!dir/payload.exe',
        type: 'file',
        depth: 1,
        size: EICAR_TEXT.length,
        sha256: EICAR_SHA256,
      }),
    ]);
    expect(matchedMembers(result)).toEqual(['sample.tar.gz!dir/payload.exe eicar']);
    expect(result.containers?.unscanned).toEqual([]);
  });

  it('scans without containers exactly as before when the option is absent', async () => {
    const archive = kit.tar('sample.tar.gz', { 'payload.exe': EICAR_TEXT }, '-z');

    const result = await rules.scanFile(archive);

    expect(result.matches).toEqual([]);
    expect(result.containers).toBeUndefined();
  });

  it.each([
    ['gzip', 'payload.exe.gz', 'payload.exe.gz!payload.exe'],
    ['bzip2', 'payload.exe.bz2', 'payload.exe.bz2!payload.exe'],
    ['xz', 'payload.exe.xz', 'payload.exe.xz!payload.exe'],
    ['gzip', 'no-suffix', 'no-suffix!data'],
  ] as const)('opens a bare %s stream (%s) as one member', async (tool, name, memberPath) => {
    const file = kit.compress(tool, name, `padding ${EICAR_TEXT}`);

    const result = await scan(file);

    expect(matchedMembers(result)).toEqual([`${memberPath} eicar`]);
  });

  it('scans a gzip whose content starts with zero blocks as content, not as an empty tar', async () => {
    const file = kit.compress(
      'gzip',
      'hidden.bin.gz',
      Buffer.concat([Buffer.alloc(4096), Buffer.from(EICAR_TEXT)]),
    );

    const result = await scan(file);

    expect(matchedMembers(result)).toEqual(['hidden.bin.gz!hidden.bin eicar']);
  });

  it('opens tar.bz2, tar.xz and 7z by their magic bytes, whatever their names', async () => {
    const files = { 'payload.exe': EICAR_TEXT };
    const tbz = kit.tar('a.tar.bz2', files, '-j');
    const txz = kit.tar('b.tar.xz', files, '-J');
    const seven = kit.sevenZip('c.7z', files);
    const renamed = kit.zip('innocent.txt', files);

    for (const [file, label] of [
      [tbz, 'a.tar.bz2'],
      [txz, 'b.tar.xz'],
      [seven, 'c.7z'],
      [renamed, 'innocent.txt'],
    ]) {
      expect(matchedMembers(await scan(file!))).toEqual([`${label}!payload.exe eicar`]);
    }
  });

  it('decrypts a zip made with zip -P infected by trying the configured passwords in turn', async () => {
    const archive = kit.zip('sample.zip', { 'payload.exe': EICAR_TEXT }, 'infected');

    const opened = await scan(archive, { passwords: ['wrong', 'infected'] });
    const locked = await scan(archive, { passwords: ['malware', 'virus'] });

    expect(matchedMembers(opened)).toEqual(['sample.zip!payload.exe eicar']);
    expect(opened.containers?.unscanned).toEqual([]);
    expect(matchedMembers(locked)).toEqual([]);
    expect(locked.containers?.unscanned).toEqual([
      expect.objectContaining({ path: 'sample.zip!payload.exe', reason: 'encrypted' }),
    ]);
  });

  it('opens a zip with the right password even when a wrong one passes the one-byte check', async () => {
    // Traditional zip encryption checks a password against one byte of its header: a wrong
    // password passes 1 time in 256, decrypts garbage and fails the CRC. Find such a password for
    // this archive (Python's zipfile tells "Bad password" from a failed decryption), then give it
    // before the right one.
    const archive = kit.zip('sample.zip', { 'payload.exe': EICAR_TEXT }, 'infected');
    const script = [
      'import sys, zipfile',
      'z = zipfile.ZipFile(sys.argv[1])',
      'for i in range(20000):',
      '    p = "wrong%d" % i',
      '    try:',
      '        z.read("payload.exe", pwd=p.encode())',
      '    except RuntimeError:',
      '        continue',
      '    except Exception:',
      '        print(p); break',
    ].join('\n');
    const passing = execFileSync('python3', ['-c', script, archive], { encoding: 'utf8' }).trim();
    expect(passing).toMatch(/^wrong\d+$/);

    const opened = await scan(archive, { passwords: [passing, 'infected'] });
    const locked = await scan(archive, { passwords: [passing, 'malware'] });

    expect(matchedMembers(opened)).toEqual(['sample.zip!payload.exe eicar']);
    expect(opened.containers?.unscanned).toEqual([]);
    expect(matchedMembers(locked)).toEqual([]);
    expect(locked.containers?.unscanned).toEqual([
      expect.objectContaining({ path: 'sample.zip!payload.exe', reason: 'encrypted' }),
    ]);
  });

  it('reports a 7z made with 7z -p as encrypted (libarchive does not decrypt 7z AES)', async () => {
    const archive = kit.sevenZip('sample.7z', { 'payload.exe': EICAR_TEXT }, 'infected');

    const result = await scan(archive, { passwords: ['infected'] });

    expect(matchedMembers(result)).toEqual([]);
    expect(result.containers?.unscanned).toEqual([
      expect.objectContaining({ path: 'sample.7z!payload.exe', reason: 'encrypted' }),
    ]);
  });

  it('hands an encrypted 7z to the caller when asked: the object itself as is, a nested one as a 0600 copy of a generated name', async () => {
    const locked = kit.sevenZip('locked.7z', { 'payload.exe': EICAR_TEXT }, 'infected');
    const zip = kit.zip('outer.zip', { 'dir/locked.7z': readFileSync(locked), 'clean.txt': 'x' });

    const own = await scan(locked, { passwords: ['infected'], handOffEncryptedSevenZip: true });
    const nested = await scan(zip, { passwords: ['infected'], handOffEncryptedSevenZip: true });
    const withoutPasswords = await scan(zip, { passwords: [], handOffEncryptedSevenZip: true });

    expect(own.containers?.unscanned).toEqual([]);
    expect(own.containers?.encryptedSevenZips).toEqual([
      {
        path: 'locked.7z',
        file: locked,
        owned: false,
        depth: 0,
        size: readFileSync(locked).length,
        encrypted: [
          expect.objectContaining({ path: 'locked.7z!payload.exe', reason: 'encrypted' }),
        ],
        scannedNames: [],
      },
    ]);
    const [handed] = nested.containers?.encryptedSevenZips ?? [];
    expect(handed).toMatchObject({ path: 'outer.zip!dir/locked.7z', owned: true, depth: 1 });
    expect(handed!.file).toMatch(new RegExp(`^${spill}/binaryalert-7z-\\w{6}$`));
    expect(statSync(handed!.file).mode & 0o777).toBe(0o600);
    expect(readFileSync(handed!.file)).toEqual(readFileSync(locked));
    expect(nested.containers?.unscanned).toEqual([]);
    // No password to try: nothing handed over, the entries reported as before.
    expect(withoutPasswords.containers?.encryptedSevenZips).toEqual([]);
    expect(withoutPasswords.containers?.unscanned).toEqual([
      expect.objectContaining({ path: 'outer.zip!dir/locked.7z!payload.exe', reason: 'encrypted' }),
    ]);
  });

  it("cuts the object's own scan at the deadline: the budget covers the whole analysis", async () => {
    const big = join(dir.path, 'big.bin');
    writeFileSync(big, Buffer.alloc(64 << 20, 'A'));

    const late = scan(big, { deadlineMs: Number(process.hrtime.bigint()) / 1e6 + 1 });

    await expect(late).rejects.toThrow(ScanTimeoutError);
  });

  it('cuts both threads of a container at the deadline: its own scan and the walk beside it', async () => {
    const staging = join(dir.path, 'stored');
    mkdirSync(staging);
    writeFileSync(join(staging, 'a.bin'), Buffer.alloc(64 << 20, 'A'));
    execFileSync('zip', ['-q', '-0', 'stored.zip', 'a.bin'], { cwd: staging });

    const late = scan(join(staging, 'stored.zip'), {
      deadlineMs: Number(process.hrtime.bigint()) / 1e6 + 1,
    });
    await expect(late).rejects.toThrow(ScanTimeoutError);
    const inTime = await scan(join(staging, 'stored.zip'));

    expect(inTime.containers?.members.map((m) => [m.path, m.size])).toEqual([
      ['stored.zip!a.bin', 64 << 20],
    ]);
  });

  it('reads the holes of a sparse tar entry as zeros, the data after them where it belongs', async () => {
    const staging = join(dir.path, 'sparse');
    mkdirSync(staging);
    // 4 MiB of hole, EICAR, then 2 MiB more hole: GNU tar --sparse stores only the data block.
    execFileSync(
      'sh',
      [
        '-c',
        `printf '%s' '${EICAR_TEXT}' | dd of=holey.bin bs=1 seek=4194304 conv=notrunc status=none && truncate -s 6M holey.bin && tar --sparse -cf holey.tar holey.bin`,
      ],
      { cwd: staging },
    );
    const expected = readFileSync(join(staging, 'holey.bin'));

    const result = await scan(join(staging, 'holey.tar'));

    expect(result.containers?.members).toEqual([
      expect.objectContaining({
        path: 'holey.tar!holey.bin',
        size: 6 * 2 ** 20,
        sha256: createHash('sha256').update(expected).digest('hex'),
        matches: [expect.objectContaining({ rule: 'eicar' })],
      }),
    ]);
    expect(result.containers?.unscanned).toEqual([]);
  });

  it('follows three levels of nesting, with externals from the member path', async () => {
    const zip = kit.zip('c.zip', { 'payload.exe': PAYLOAD });
    const tgz = kit.tar('b.tar.gz', { 'c.zip': readFileSync(zip) }, '-z');
    const seven = kit.sevenZip('a.7z', { 'b.tar.gz': readFileSync(tgz) });

    const result = await scan(seven);

    expect(matchedMembers(result)).toEqual([
      'a.7z!b.tar.gz!c.zip!payload.exe eicar,payload_exe_by_name',
    ]);
    expect(result.containers?.members.map((m) => [m.path, m.depth])).toEqual([
      ['a.7z!b.tar.gz', 1],
      ['a.7z!b.tar.gz!c.zip', 2],
      ['a.7z!b.tar.gz!c.zip!payload.exe', 3],
    ]);
  });

  it('keeps the own name of a member whose path passes the label limit, for its externals', async () => {
    // zip(1) stores the path as given: 600 directory levels, then the payload.
    const deep = `${'d/'.repeat(600)}payload.exe`;
    const zip = kit.zip('deep.zip', { [deep]: 'harmless bytes' });
    const byName = await compileTexts(dir, {
      byname: `rule exe_by_name {
        condition: filename == "payload.exe" and extension == ".exe" and filetype == "EXE"
      }`,
    });

    const result = await byName.scanFile(zip, {
      externals: DEFAULT_EXTERNALS,
      containers: { label: 'deep.zip', tempDir: spill },
    });

    expect(matchedMembers(result)).toEqual([
      expect.stringMatching(/^deep\.zip!d\/.* \.\.\. .*d\/d\/payload\.exe exe_by_name$/),
    ]);
    const [member] = result.containers?.members ?? [];
    expect(member?.path).toMatch(/^deep\.zip!d\/d\/.* \.\.\. .*\/d\/payload\.exe$/);
    expect(Buffer.byteLength(member!.path)).toBeLessThanOrEqual('deep.zip!'.length + 1024);

    // Escapes and multibyte characters are never cut in half.
    const odd = kit.zipRawNames('odd.zip', {
      [`${'\u0001'.repeat(200)}${'é文'.repeat(200)}\u0002x.exe`]: 'harmless',
    });
    const oddResult = await byName.scanFile(odd, {
      externals: DEFAULT_EXTERNALS,
      containers: { label: 'odd.zip', tempDir: spill },
    });
    const oddPath = oddResult.containers?.members[0]?.path ?? '';
    expect(oddPath).toMatch(/^odd\.zip!(\\x01)+ \.\.\. (é文)+\\x02x\.exe$/);
    expect(Buffer.byteLength(oddPath)).toBeLessThanOrEqual('odd.zip!'.length + 1024);
  });

  it('stops at the depth limit and says so', async () => {
    const zip = kit.zip('c.zip', { 'payload.exe': PAYLOAD });
    const tgz = kit.tar('b.tar.gz', { 'c.zip': readFileSync(zip) }, '-z');

    const result = await scan(tgz, { maxDepth: 1 });

    expect(matchedMembers(result)).toEqual([]);
    expect(result.containers?.unscanned).toEqual([
      expect.objectContaining({ path: 'b.tar.gz!c.zip', reason: 'depth-limit' }),
    ]);
  });

  it('looks inside an office document (a docx is a zip)', async () => {
    const docx = kit.zip('report.docx', {
      '[Content_Types].xml': '<?xml version="1.0"?><Types/>',
      'word/document.xml': '<w:document/>',
      'word/vbaProject.bin': `macro ${EICAR_TEXT}`,
    });

    expect(matchedMembers(await scan(docx))).toEqual(['report.docx!word/vbaProject.bin eicar']);
  });

  it('inflates PDF FlateDecode streams and names them after their object', async () => {
    const pdf = kit.pdfWithStream('doc.pdf', `BT (${EICAR_TEXT}) Tj ET`);

    const result = await scan(pdf);

    expect(result.matches).toEqual([]);
    expect(matchedMembers(result)).toEqual(['doc.pdf!obj-4-0 eicar']);
  });

  it('inflates a FlateDecode stream whole when its compressed bytes hold the word endstream', async () => {
    // A stored deflate block of text that says "endstream", then the payload compressed: a reader
    // takes the stream's /Length, so the payload is part of the stream.
    const decoy = Buffer.from('decoy text\nendstream\nendobj\n');
    const payload = Buffer.from(PAYLOAD);
    const stored = Buffer.alloc(5);
    stored.writeUInt8(0, 0); // BFINAL 0, BTYPE 00 (stored)
    stored.writeUInt16LE(decoy.length, 1);
    stored.writeUInt16LE(~decoy.length & 0xffff, 3);
    const plain = Buffer.concat([decoy, payload]);
    let a = 1;
    let b = 0;
    for (const byte of plain) {
      a = (a + byte) % 65521;
      b = (b + a) % 65521;
    }
    const adler = Buffer.alloc(4);
    adler.writeUInt32BE(((b << 16) | a) >>> 0);
    const deflated = Buffer.concat([
      Buffer.from([0x78, 0x01]),
      stored,
      decoy,
      deflateRawSync(payload),
      adler,
    ]);
    expect(inflateSync(deflated)).toEqual(plain);
    const pdf = join(dir.path, 'samples', 'hidden.pdf');
    writeFileSync(
      pdf,
      Buffer.concat([
        Buffer.from('%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n'),
        Buffer.from(`4 0 obj\n<< /Length ${deflated.length} /Filter /FlateDecode >>\nstream\n`),
        deflated,
        Buffer.from('\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n'),
      ]),
    );

    const result = await scan(pdf);

    expect(result.matches).toEqual([]);
    expect(matchedMembers(result)).toEqual(['hidden.pdf!obj-4-0 eicar']);
    expect(result.containers?.members.map((m) => [m.path, m.size])).toEqual([
      ['hidden.pdf!obj-4-0', plain.length],
    ]);
    expect(result.containers?.unscanned).toEqual([]);
  });

  it('inflates a FlateDecode stream whose dictionary says "obj" after its filter', async () => {
    const deflated = deflateSync(Buffer.from(PAYLOAD));
    const pdf = join(dir.path, 'samples', 'obj-in-dict.pdf');
    writeFileSync(
      pdf,
      Buffer.concat([
        Buffer.from('%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n'),
        Buffer.from(
          `4 0 obj\n<< /Length ${deflated.length} /Filter /FlateDecode /Desc (an object) >>\nstream\n`,
        ),
        deflated,
        Buffer.from('\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n'),
      ]),
    );

    const result = await scan(pdf);

    expect(result.matches).toEqual([]);
    // Named by its place among the streams: the look-back took "(an object)" for the header.
    expect(matchedMembers(result)).toEqual(['obj-in-dict.pdf!stream-1 eicar']);
    expect(result.containers?.unscanned).toEqual([]);
  });

  it('treats ../ and absolute member names as labels: nothing is written anywhere', async () => {
    const archive = kit.zipRawNames('dotdot.zip', {
      '../../escape.exe': EICAR_TEXT,
      '/tmp/absolute.exe': EICAR_TEXT,
      'bad\nname\u0007.exe': EICAR_TEXT,
    });
    const before = readdirSync(dir.path).sort();

    const result = await scan(archive, { memoryMemberBytes: 1 }); // every member via a temp file

    expect(matchedMembers(result)).toEqual([
      'dotdot.zip!../../escape.exe eicar',
      'dotdot.zip!/tmp/absolute.exe eicar',
      'dotdot.zip!bad\\x0Aname\\x07.exe eicar',
    ]);
    expect(readdirSync(dir.path).sort()).toEqual(before);
    expect(readdirSync(spill)).toEqual([]);
    expect(existsSync('/tmp/absolute.exe')).toBe(false);
    expect(existsSync(join(spill, '../../escape.exe'))).toBe(false);
  });

  it('lists symlinks, hard links, devices and FIFOs in a tar as labels only', async () => {
    const archive = kit.hostileTar('hostile.tar');

    const result = await scan(archive);

    expect(result.containers?.members.map((m) => [m.path, m.type, m.linkTarget])).toEqual([
      ['hostile.tar!../../escape.exe', 'file', undefined],
      ['hostile.tar!link-to-passwd', 'symlink', '/etc/passwd'],
      ['hostile.tar!hardlink-to-shadow', 'hardlink', '/etc/shadow'],
      ['hostile.tar!dev/sda', 'character-device', undefined],
      ['hostile.tar!pipe', 'fifo', undefined],
    ]);
    expect(matchedMembers(result)).toEqual(['hostile.tar!../../escape.exe eicar']);
    expect(result.containers?.unscanned).toEqual([]);
    expect(readdirSync(spill)).toEqual([]);
  });

  it('scans a truncated tar.gz as plain bytes and reports it corrupt', async () => {
    const whole = kit.tar(
      'whole.tar.gz',
      { 'a.bin': Buffer.alloc(200_000, 7), 'b.exe': EICAR_TEXT },
      '-z',
    );
    const truncated = kit.truncate(whole, 'truncated.tar.gz', 0.3);

    const result = await scan(truncated);

    expect(result.size).toBeGreaterThan(0);
    expect(result.containers?.unscanned).toEqual([expect.objectContaining({ reason: 'corrupt' })]);
  });

  it('never unwraps bytes that only look like a compressed stream into copies of themselves', async () => {
    const tail = Buffer.concat([Buffer.alloc(4000, 0x5a), Buffer.from(EICAR_TEXT)]);
    const samples = dir.path;
    const write = (name: string, head: number[]): string => {
      writeFileSync(join(samples, name), Buffer.concat([Buffer.from(head), tail]));
      return join(samples, name);
    };
    // lz4's magic with an invalid descriptor: our magic test passes, libarchive's decoder refuses.
    const lz4 = await scan(write('bad.lz4', [0x04, 0x22, 0x4d, 0x18, 0x00]));
    // gzip's magic without deflate, compress's with a reserved bit: not streams at all.
    const gzip = await scan(write('bad.gz', [0x1f, 0x8b, 0x07, 0x00]));
    const compress = await scan(write('bad.Z', [0x1f, 0x9d, 0x70]));

    expect(lz4.matches.map((m) => m.rule)).toEqual(['eicar']);
    expect(lz4.containers?.members).toEqual([]);
    expect(lz4.containers?.unscanned).toEqual([
      { path: 'bad.lz4', reason: 'corrupt', detail: 'lz4: no decoder accepted its header' },
    ]);
    for (const plain of [gzip, compress]) {
      expect(plain.matches.map((m) => m.rule)).toEqual(['eicar']);
      expect(plain.containers?.members ?? []).toEqual([]);
      expect(plain.containers?.unscanned ?? []).toEqual([]);
    }
  });

  it('reports a zip whose deflate data is damaged as corrupt, keeping the members before it', async () => {
    const lines = Array.from({ length: 3000 }, (_, i) => `line ${i * 7919}\n`).join('');
    const zip = kit.zip('sample.zip', { 'first.exe': EICAR_TEXT, 'second.txt': lines });
    const damaged = kit.corrupt(zip, 'damaged.zip', 400, 64);

    const result = await scan(damaged);

    expect(matchedMembers(result)).toEqual(['damaged.zip!first.exe eicar']);
    expect(result.containers?.unscanned).toEqual([
      expect.objectContaining({ path: 'damaged.zip!second.txt', reason: 'corrupt' }),
      expect.objectContaining({ path: 'damaged.zip', reason: 'corrupt' }),
    ]);
  });

  it('ends a 10 GiB zip bomb at the ratio ceiling, within a bounded expansion', async () => {
    const bomb = kit.zipBomb('bomb.zip'); // 10 x 1 GiB of zeros in about 10 MB

    const result = await scan(bomb, { memoryMemberBytes: 1 << 20 });

    expect(result.containers?.unscanned).toEqual([
      expect.objectContaining({ path: 'bomb.zip', reason: 'ratio-limit' }),
    ]);
    expect(result.containers!.expandedBytes).toBeLessThan(256 << 20);
    expect(readdirSync(spill)).toEqual([]);
  });

  it('ends the same bomb at the size limit when the ratio ceiling is off', async () => {
    const bomb = kit.zipBomb('bomb.zip');

    const result = await scan(bomb, { maxRatio: 0, maxExpandedBytes: 64 << 20 });

    expect(result.containers?.unscanned).toEqual([
      expect.objectContaining({ path: 'bomb.zip!zeros-0.bin', reason: 'size-limit' }),
    ]);
    expect(result.containers!.expandedBytes).toBeLessThanOrEqual((64 << 20) + 65536);
  });

  it('ends the same bomb at the time budget when neither size nor ratio stops it', async () => {
    const bomb = kit.zipBomb('bomb.zip');

    const result = await scan(bomb, { maxRatio: 0, maxExpandedBytes: 2 ** 40, budgetMs: 300 });

    expect(result.containers?.unscanned).toEqual([
      expect.objectContaining({ reason: 'time-limit' }),
    ]);
    expect(result.containers!.expandedBytes).toBeLessThan(10 * 2 ** 30);
  });

  it('stops at the member limit and names the container', async () => {
    const zip = kit.zip('many.zip', {
      'a.txt': 'a',
      'b.txt': 'b',
      'c.txt': 'c',
      'd.exe': EICAR_TEXT,
    });

    const result = await scan(zip, { maxMembers: 2 });

    expect(result.containers?.members.map((m) => m.path)).toEqual([
      'many.zip!a.txt',
      'many.zip!b.txt',
    ]);
    expect(result.containers?.unscanned).toEqual([
      expect.objectContaining({ path: 'many.zip', reason: 'member-limit' }),
    ]);
  });

  it('scans a member larger than the memory threshold through an anonymous temp file', async () => {
    const big = Buffer.concat([Buffer.alloc(3 << 20, 0x41), Buffer.from(EICAR_TEXT)]);
    const archive = kit.tar('big.tar.gz', { 'big.bin': big }, '-z');

    const result = await scan(archive, { memoryMemberBytes: 1 << 20 });

    expect(matchedMembers(result)).toEqual(['big.tar.gz!big.bin eicar']);
    expect(result.containers?.members[0]?.sha256).toBe(
      createHash('sha256').update(big).digest('hex'),
    );
    expect(readdirSync(spill)).toEqual([]);
  });

  it('scans members on a second thread in walk order: every record, spilled and nested ones included, once', async () => {
    // 7z (solid LZMA: decoding is slow, so the walk runs ahead of the scans and the queue fills),
    // 300 members of mixed sizes, some spilled to temp files, one a nested tar.gz, EICAR in some.
    const files: Record<string, string | Buffer> = {};
    const expected: string[] = [];
    for (let i = 0; i < 300; i++) {
      const name = `m${String(i).padStart(3, '0')}.bin`;
      const size = i % 50 === 7 ? (2 << 20) + i : 1000 + ((i * 7919) % 60_000);
      const body = randomBytes(size); // incompressible: no ratio ceiling in the way
      body[0] = 0xaa; // no container's magic starts so: random bytes never pass for a stream
      if (i % 37 === 5) Buffer.from(EICAR_TEXT).copy(body, size - EICAR_TEXT.length - 1);
      files[name] = body;
      expected.push(`inner.7z!${name}${i % 37 === 5 ? ' eicar' : ''}`);
    }
    files['m150.bin'] = readFileSync(
      kit.tar('nested.tar.gz', { 'deep/payload.exe': PAYLOAD }, '-z'),
    );
    expected[150] = 'inner.7z!m150.bin';
    expected.splice(151, 0, 'inner.7z!m150.bin!deep/payload.exe eicar');
    const archive = kit.sevenZip('inner.7z', files);

    const result = await scan(archive, { memoryMemberBytes: 1 << 20 });

    const records = (result.containers?.members ?? []).map(
      (m) =>
        `${m.path}${(m.matches ?? []).length > 0 ? ` ${m.matches!.map((x) => x.rule).join(',')}` : ''}`,
    );
    expect(records).toEqual(expected);
    expect(result.containers?.unscanned).toEqual([]);
    expect(readdirSync(spill)).toEqual([]);
  });

  it('stops the walk when a member scan on the second thread runs out of time, and says so once', async () => {
    // 100 MD5s of (almost) the whole content, each of another range (the module caches a range's):
    // seconds on a 32 MiB member, instant on the 32 KiB tar.gz itself.
    const slow = await compileTexts(dir, {
      slow: 'import "hash" rule slow_hashes { condition: for all i in (0..99) : (hash.md5(i, filesize - i) != "") }',
      eicar: RULES.eicar,
    });
    const archive = kit.tar(
      'slow.tar.gz',
      { 'a-slow.bin': Buffer.alloc(32 << 20, 'A'), 'z-after.bin': EICAR_TEXT },
      '-z',
    );

    const result = await slow.scanFile(archive, {
      externals: DEFAULT_EXTERNALS,
      containers: {
        label: 'slow.tar.gz',
        tempDir: spill,
        maxRatio: 0,
        deadlineMs: Number(process.hrtime.bigint()) / 1e6 + 1500,
      },
    });

    const unscanned = result.containers?.unscanned ?? [];
    expect(unscanned).toContainEqual(
      expect.objectContaining({ path: 'slow.tar.gz!a-slow.bin', reason: 'time-limit' }),
    );
    expect(
      unscanned.filter((u) => u.path === 'slow.tar.gz' && u.reason === 'time-limit'),
    ).toHaveLength(1);
    expect(result.containers?.members.map((m) => m.path)).not.toContain('slow.tar.gz!z-after.bin');
    expect(readdirSync(spill)).toEqual([]);
  });

  it('reports a member it cannot spill (temp directory missing) without failing the scan', async () => {
    const archive = kit.tar('big.tar', { 'big.bin': Buffer.alloc(2 << 20, 1) });

    const result = await scan(archive, {
      memoryMemberBytes: 1 << 20,
      tempDir: join(dir.path, 'missing'),
    });

    expect(result.containers?.unscanned).toEqual([
      expect.objectContaining({ path: 'big.tar!big.bin', reason: 'scan-error' }),
    ]);
  });
});
