// A file that shrinks while it is scanned (a log truncated, a download restarted) must fail its own
// scan, never the process: every page past the new end of a file mapping raises SIGBUS in whichever
// thread reads it (digests, trigrams, the container walk, the member visits, libyara). The scans run
// in a child process, so a SIGBUS ends that child instead of the jest worker.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { makeTempDir, type TempDir } from './testing';

// Large enough that each scan takes a good fraction of a second (the truncation lands inside it),
// small enough for a shared machine; the files are sparse, so they cost no disk writes.
const FILE_MB = 64;
const TRUNCATE_AT = [0.05, 0.2, 0.4, 0.6, 0.8];

interface Outcome {
  kind: string;
  at: number;
  size: number;
  newSize: number;
  result: 'scanned' | 'rejected';
  unscanned?: { path: string; reason: string; detail: string }[];
  errorClass?: string;
  code?: string;
  message?: string;
}

// Run by `node --import tsx`: builds the file, scans it intact to learn how long a scan takes, then
// again and again truncating it at fractions of that time; prints one JSON line per scan.
const CHILD = `
import {
  closeSync,
  ftruncateSync,
  openSync,
  readdirSync,
  readlinkSync,
  statSync,
  truncateSync,
  writeSync,
} from 'node:fs';
import { deflateSync } from 'node:zlib';
import { compileRules } from ${JSON.stringify(join(__dirname, 'index.ts'))};

const [dir, kind, sizeMb, fractions] = process.argv.slice(2);
const size = Number(sizeMb) * 1024 * 1024;
const MARKER = 'TRUNCATION-MARKER';

function writeAt(fd, data, position) {
  const bytes = Buffer.from(data);
  writeSync(fd, bytes, 0, bytes.length, position);
}

function octal(value, width) {
  return value.toString(8).padStart(width - 1, '0') + '\\0';
}

// A ustar header; the member's data is a hole but for the marker at its start.
function tarHeader(name, memberSize) {
  const h = Buffer.alloc(512);
  h.write(name, 0);
  h.write(octal(0o644, 8), 100);
  h.write(octal(0, 8), 108);
  h.write(octal(0, 8), 116);
  h.write(octal(memberSize, 12), 124);
  h.write(octal(0, 12), 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(octal(sum, 7) + ' ', 148);
  return h;
}

// Each kind has the mapping read by other threads (the files are sparse: no disk writes).
const kinds = {
  // The scan's own thread: SHA-256, MD5, trigrams, container detection, libyara.
  plain: {
    options: { sha256: true, md5: 'always', contentSignature: true, containers: {} },
    make(file) {
      const fd = openSync(file, 'w');
      writeAt(fd, MARKER, 0);
      ftruncateSync(fd, size);
      closeSync(fd);
    },
  },
  // libarchive on the members thread; the first member matches (by its name: the object does not),
  // so the visiting thread takes the whole object's MD5.
  tar: {
    options: {
      md5: 'if-matched',
      externals: { filename: '' },
      containers: { memoryMemberBytes: 8 * 1024 * 1024 },
    },
    make(file) {
      const fd = openSync(file, 'w');
      const member = 4 * 1024 * 1024;
      let at = 0;
      for (let i = 0; at + 512 + member + 1024 <= size; i++) {
        writeAt(fd, tarHeader('m' + i + '.bin', member), at);
        writeAt(fd, MARKER, at + 512);
        at += 512 + member;
      }
      ftruncateSync(fd, at + 1024);
      closeSync(fd);
    },
  },
  // The PDF walk's search for streams (memmem over the whole mapping) on the members thread.
  pdf: {
    options: { containers: {} },
    make(file) {
      const fd = openSync(file, 'w');
      writeAt(fd, '%PDF-1.4\\n', 0);
      const object = Buffer.concat([
        Buffer.from('\\n1 0 obj\\n<< /Filter /FlateDecode >>\\nstream\\n'),
        deflateSync(MARKER),
        Buffer.from('\\nendstream\\nendobj\\n%%EOF\\n'),
      ]);
      ftruncateSync(fd, size - object.length);
      writeAt(fd, object, size - object.length);
      closeSync(fd);
    },
  },
  // One large member spilled to the walk's anonymous temp file, which is shrunk (through
  // /proc/self/fd: it has no name) as soon as it is complete, while the member is scanned and walked.
  spilled: {
    options: { contentSignature: true, containers: { memoryMemberBytes: 1024 * 1024 } },
    make(file) {
      const fd = openSync(file, 'w');
      writeAt(fd, tarHeader('big.bin', size - 1536), 0);
      writeAt(fd, MARKER, 512);
      ftruncateSync(fd, size);
      closeSync(fd);
    },
    shrink(file, newSize) {
      const timer = setInterval(() => {
        for (const entry of readdirSync('/proc/self/fd')) {
          let target = '';
          try {
            target = readlinkSync('/proc/self/fd/' + entry);
          } catch {
            continue;
          }
          if (!target.startsWith(dir + '/') || !target.endsWith('(deleted)')) continue;
          if (statSync('/proc/self/fd/' + entry).size < size - 1536) continue;
          clearInterval(timer);
          truncateSync('/proc/self/fd/' + entry, newSize);
          return;
        }
      }, 1);
      return () => clearInterval(timer);
    },
  },
};

async function main() {
  const { rules } = await compileRules([{ path: dir + '/marker.yar', namespace: 'marker' }]);
  const { make, options: kindOptions, shrink } = kinds[kind];
  const file = dir + '/' + kind + '.bin';
  const options = {
    ...kindOptions,
    containers: { ...kindOptions.containers, label: kind + '.bin', tempDir: dir },
    timeoutSeconds: 120,
  };
  make(file);
  const started = performance.now();
  const intact = await rules.scanFile(file, options);
  const took = performance.now() - started;
  const matchedMembers = (intact.containers?.members ?? []).filter((m) => m.matches?.length).length;
  console.log(JSON.stringify({ intact: true, matchedMembers, md5: intact.md5 !== undefined }));
  for (const [index, fraction] of fractions.split(',').map(Number).entries()) {
    make(file);
    // Down to nothing, or to a third (the first pages stay readable).
    const newSize = index % 2 === 0 ? 0 : Math.floor(size / 3);
    const outcome = { kind, at: fraction, size: statSync(file).size, newSize };
    let stop;
    if (shrink) {
      stop = shrink(file, newSize);
    } else {
      const timer = setTimeout(() => truncateSync(file, newSize), fraction * took);
      stop = () => clearTimeout(timer);
    }
    try {
      const result = await rules.scanFile(file, options);
      Object.assign(outcome, { result: 'scanned', unscanned: result.containers?.unscanned ?? [] });
    } catch (error) {
      Object.assign(outcome, {
        result: 'rejected',
        errorClass: error.constructor.name,
        code: error.code,
        message: error.message,
      });
    }
    stop();
    console.log(JSON.stringify(outcome));
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
`;

describe('a file that shrinks while it is scanned', () => {
  let dir: TempDir;
  beforeEach(() => {
    dir = makeTempDir();
  });
  afterEach(() => dir.remove());

  // Runs the child over one kind of file; its first line describes the intact file's scan.
  function scanWhileShrinking(kind: string): { intact: unknown; outcomes: Outcome[] } {
    // Only the tar's first member matches: the file itself is scanned with filename "".
    dir.write(
      'marker.yar',
      'rule marker { strings: $a = "TRUNCATION-MARKER" condition: $a and filename == "m0.bin" }',
    );
    const child = dir.write('child.ts', CHILD);

    const run = spawnSync(
      process.execPath,
      ['--import', 'tsx', child, dir.path, kind, String(FILE_MB), TRUNCATE_AT.join(',')],
      { cwd: join(__dirname, '..'), encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL' },
    );

    // Without the guard the child dies of SIGBUS (or spins in libyara's handler until killed).
    expect({ signal: run.signal, status: run.status, stderr: run.stderr }).toEqual({
      signal: null,
      status: 0,
      stderr: '',
    });
    const [intact, ...outcomes] = run.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as unknown);
    expect(outcomes).toHaveLength(TRUNCATE_AT.length);
    return { intact, outcomes: outcomes as Outcome[] };
  }

  it.each(['plain', 'tar', 'pdf'])(
    'rejects a %s file with FileTruncatedError and never dies of SIGBUS',
    (kind) => {
      const { intact, outcomes } = scanWhileShrinking(kind);

      // The tar's member match is what sends the visiting thread over the whole object (its MD5).
      expect(intact).toEqual(
        kind === 'tar'
          ? { intact: true, matchedMembers: 1, md5: true }
          : { intact: true, matchedMembers: 0, md5: kind === 'plain' },
      );
      for (const outcome of outcomes) {
        if (outcome.result === 'scanned') continue;
        expect(outcome).toMatchObject({
          errorClass: 'FileTruncatedError',
          code: 'FILE_TRUNCATED',
          message: `${dir.path}/${kind}.bin: the file shrank while it was scanned (${outcome.size} bytes when opened, ${outcome.newSize} after)`,
        });
      }
      // The early truncations always land inside a scan.
      expect(outcomes.some((o) => o.result === 'rejected')).toBe(true);
    },
    90_000,
  );

  it('reports a member whose temp file shrinks as unscanned, and scans the rest', () => {
    const { outcomes } = scanWhileShrinking('spilled');

    for (const outcome of outcomes) {
      expect(outcome).toMatchObject({ result: 'scanned' });
      for (const entry of outcome.unscanned ?? []) {
        expect(entry).toEqual({
          path: 'spilled.bin!big.bin',
          reason: 'scan-error',
          detail: expect.stringMatching(
            /^its temp file could not be read while (it was scanned|its own members were walked)$/,
          ),
        });
      }
    }
    // The temp file is shrunk as soon as it is complete, while its member is still being read.
    expect(outcomes.some((o) => (o.unscanned ?? []).length > 0)).toBe(true);
  }, 90_000);

  it('leaves any other SIGBUS to the handler that was there before (the default: the process ends)', () => {
    const child = dir.write(
      'other.ts',
      `import { libyaraVersion } from ${JSON.stringify(join(__dirname, 'index.ts'))};\n` +
        `console.log(libyaraVersion);\nprocess.kill(process.pid, 'SIGBUS');\nsetTimeout(() => {}, 5000);\n`,
    );

    const run = spawnSync(process.execPath, ['--import', 'tsx', child], {
      cwd: join(__dirname, '..'),
      encoding: 'utf8',
      timeout: 30_000,
    });

    expect({ signal: run.signal, stdout: run.stdout }).toEqual({
      signal: 'SIGBUS',
      stdout: '4.2.3\n',
    });
  });
});
