/**
 * Sample containers for tests, made by Debian's own tools (zip, tar, gzip, bzip2, xz, 7z) in a
 * directory the caller owns. Hostile shapes that those tools refuse to make (`../` names, device
 * entries, a 10 GB zip bomb) are written with python3's zipfile/tarfile or by hand.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The EICAR anti-virus test file (harmless; rules/binaryalert/eicar.yara matches it). */
export const EICAR_TEXT = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';

export class ArchiveKit {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  /** Writes `files` (relative names chosen by the test) into a fresh staging directory. */
  stage(files: Record<string, string | Buffer>): string {
    const staging = mkdtempSync(join(this.dir, 'stage-'));
    for (const [name, content] of Object.entries(files)) {
      const file = join(staging, name);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, content);
    }
    return staging;
  }

  private run(command: string, args: string[], cwd: string): void {
    execFileSync(command, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  }

  private out(name: string): string {
    return join(this.dir, name);
  }

  /** `zip -r` of the files (`password`: traditional PKWARE encryption, as `zip -P`). */
  zip(name: string, files: Record<string, string | Buffer>, password?: string): string {
    const staging = this.stage(files);
    const args = ['-q', '-X', '-r', ...(password ? ['-P', password] : []), this.out(name)];
    this.run('zip', [...args, ...Object.keys(files)], staging);
    rmSync(staging, { recursive: true });
    return this.out(name);
  }

  /** `tar -c` with an optional compression flag (-z gzip, -j bzip2, -J xz). */
  tar(name: string, files: Record<string, string | Buffer>, compression = ''): string {
    const staging = this.stage(files);
    const flags = `-c${compression.replace('-', '')}f`;
    this.run('tar', [flags, this.out(name), ...Object.keys(files)], staging);
    rmSync(staging, { recursive: true });
    return this.out(name);
  }

  /** `7z a` (`password`: AES-256, as `7z -p`). */
  sevenZip(name: string, files: Record<string, string | Buffer>, password?: string): string {
    const staging = this.stage(files);
    const args = ['a', '-bd', '-y', ...(password ? [`-p${password}`] : []), this.out(name)];
    this.run('7z', [...args, ...Object.keys(files)], staging);
    rmSync(staging, { recursive: true });
    return this.out(name);
  }

  /** One file through gzip, bzip2 or xz: `<name>` holds `content` compressed. */
  compress(tool: 'gzip' | 'bzip2' | 'xz', name: string, content: string | Buffer): string {
    const compressed = execFileSync(tool, ['-c'], { input: content });
    writeFileSync(this.out(name), compressed);
    return this.out(name);
  }

  /** A zip with members named exactly as given (`../`, absolute), which `zip` itself refuses. */
  zipRawNames(name: string, files: Record<string, string>): string {
    this.python(
      `import sys, zipfile, json\n` +
        `with zipfile.ZipFile(sys.argv[1], 'w') as z:\n` +
        `    for n, c in json.loads(sys.argv[2]).items(): z.writestr(zipfile.ZipInfo(n), c)\n`,
      [this.out(name), JSON.stringify(files)],
    );
    return this.out(name);
  }

  /**
   * A tar holding a regular file named `../../escape.exe` (EICAR), a symlink to /etc/passwd, a
   * hard link to /etc/shadow, a character device (8,0) and a FIFO: entries tar(1) would create
   * on disk, crafted with python3's tarfile.
   */
  hostileTar(name: string): string {
    this.python(
      `import sys, tarfile, io\n` +
        `with tarfile.open(sys.argv[1], 'w') as t:\n` +
        `    data = sys.argv[2].encode()\n` +
        `    i = tarfile.TarInfo('../../escape.exe'); i.size = len(data); t.addfile(i, io.BytesIO(data))\n` +
        `    i = tarfile.TarInfo('link-to-passwd'); i.type = tarfile.SYMTYPE; i.linkname = '/etc/passwd'; t.addfile(i)\n` +
        `    i = tarfile.TarInfo('hardlink-to-shadow'); i.type = tarfile.LNKTYPE; i.linkname = '/etc/shadow'; t.addfile(i)\n` +
        `    i = tarfile.TarInfo('dev/sda'); i.type = tarfile.CHRTYPE; i.devmajor = 8; i.devminor = 0; t.addfile(i)\n` +
        `    i = tarfile.TarInfo('pipe'); i.type = tarfile.FIFOTYPE; t.addfile(i)\n`,
      [this.out(name), EICAR_TEXT],
    );
    return this.out(name);
  }

  /**
   * A zip bomb: `entries` members of `gibPerEntry` GiB of zeros each (10 x 1 GiB = 10 GiB in about
   * 10 MB). Writing it with zip(1) would deflate 10 GB; instead one fully flushed deflate block of
   * 1 MiB of zeros is repeated (valid deflate) and the CRC-32 is combined arithmetically.
   */
  zipBomb(name: string, entries = 10, gibPerEntry = 1): string {
    this.python(ZIP_BOMB_SCRIPT, [this.out(name), String(entries), String(gibPerEntry * 1024)]);
    return this.out(name);
  }

  /** A PDF whose object 4 is a FlateDecode stream holding `content` (what a PDF writer does). */
  pdfWithStream(name: string, content: string | Buffer): string {
    const deflated = execFileSync(
      'python3',
      ['-c', 'import sys,zlib; sys.stdout.buffer.write(zlib.compress(sys.stdin.buffer.read()))'],
      {
        input: content,
      },
    );
    const pdf = Buffer.concat([
      Buffer.from('%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n'),
      Buffer.from(`4 0 obj\n<< /Length ${deflated.length} /Filter /FlateDecode >>\nstream\n`),
      deflated,
      Buffer.from('\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n'),
    ]);
    writeFileSync(this.out(name), pdf);
    return this.out(name);
  }

  /** The first `fraction` of a file's bytes, as a new file. */
  truncate(source: string, name: string, fraction = 0.5): string {
    const bytes = readFileSync(source);
    writeFileSync(this.out(name), bytes.subarray(0, Math.floor(bytes.length * fraction)));
    return this.out(name);
  }

  /** A copy of a file with `count` bytes from `offset` overwritten by 0x55. */
  corrupt(source: string, name: string, offset: number, count = 16): string {
    const bytes = Buffer.from(readFileSync(source));
    bytes.fill(0x55, offset, Math.min(bytes.length, offset + count));
    writeFileSync(this.out(name), bytes);
    return this.out(name);
  }

  private python(script: string, args: string[]): void {
    execFileSync('python3', ['-c', script, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  }
}

// zlib's crc32_combine in Python: the CRC of N MiB of zeros without computing over N MiB.
const ZIP_BOMB_SCRIPT = String.raw`
import sys, zlib, struct
path, entries, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
MB = 1 << 20
def times(mat, vec):
    s, i = 0, 0
    while vec:
        if vec & 1: s ^= mat[i]
        vec >>= 1; i += 1
    return s
def square(mat): return [times(mat, mat[n]) for n in range(32)]
def combine(crc1, crc2, len2):
    odd = [0xedb88320] + [1 << n for n in range(31)]
    even = square(odd); odd = square(even)
    while True:
        even = square(odd)
        if len2 & 1: crc1 = times(even, crc1)
        len2 >>= 1
        if not len2: break
        odd = square(even)
        if len2 & 1: crc1 = times(odd, crc1)
        len2 >>= 1
        if not len2: break
    return crc1 ^ crc2
c = zlib.compressobj(9, zlib.DEFLATED, -15)
block = c.compress(b'\0' * MB) + c.flush(zlib.Z_FULL_FLUSH)
end = zlib.compressobj(9, zlib.DEFLATED, -15).flush()
data = block * mib + end
crc, size = zlib.crc32(b'\0' * MB), MB
while size < mib * MB:
    crc, size = combine(crc, crc, size), size * 2
assert size == mib * MB, 'entry size must be a power of two MiB'
local, central = b'', b''
for n in range(entries):
    name = ('zeros-%d.bin' % n).encode()
    header = struct.pack('<IHHHHHIIIHH', 0x04034b50, 20, 0, 8, 0, 0x21, crc, len(data), size, len(name), 0)
    central += struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 20, 20, 0, 8, 0, 0x21, crc, len(data), size, len(name), 0, 0, 0, 0, 0, len(local)) + name
    local += header + name + data
eocd = struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, entries, entries, len(central), len(local), 0)
open(path, 'wb').write(local + central + eocd)
`;
