// The addon must load on Amazon Linux 2023 (glibc 2.34, GCC 11's libstdc++) with nothing beside it:
// libyara and its dependencies are linked in statically, only system libraries stay dynamic.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const ADDON = join(__dirname, '..', 'build', 'Release', 'yara.node');

const ALLOWED_LIBRARIES = new Set([
  'libc.so.6',
  'libm.so.6',
  'libdl.so.2',
  'libpthread.so.0',
  'libstdc++.so.6',
  'libgcc_s.so.1',
  'ld-linux-x86-64.so.2',
]);

// Highest symbol versions Amazon Linux 2023 provides (glibc 2.34, libstdc++ of GCC 11).
const MAX_VERSIONS: Record<string, string> = { GLIBC: '2.34', GLIBCXX: '3.4.29', CXXABI: '1.3.13' };

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

describe('yara.node linkage', () => {
  it('needs only libc, libm, libstdc++ and libgcc_s at run time, with no RPATH', () => {
    const dynamic = execFileSync('readelf', ['-d', ADDON], { encoding: 'utf8' });

    const needed = [...dynamic.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map(
      (m) => m[1]!,
    );

    expect(needed.length).toBeGreaterThan(0);
    expect(needed.filter((lib) => !ALLOWED_LIBRARIES.has(lib))).toEqual([]);
    expect(needed.some((lib) => /yara|magic|jansson|crypto|ssl/.test(lib))).toBe(false);
    expect(dynamic).not.toMatch(/\((RPATH|RUNPATH)\)/);
  });

  it('requires at most GLIBC_2.34, GLIBCXX_3.4.29 and CXXABI_1.3.13', () => {
    const symbols = execFileSync('objdump', ['-T', ADDON], {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    });

    const versions = [...symbols.matchAll(/\b(GLIBC|GLIBCXX|CXXABI)_(\d+(?:\.\d+)*)\b/g)];
    const tooNew = versions
      .filter(([, family, version]) => compareVersions(version!, MAX_VERSIONS[family!]!) > 0)
      .map(([whole]) => whole);

    expect(versions.length).toBeGreaterThan(0);
    expect([...new Set(tooNew)]).toEqual([]);
  });

  it('exports nothing of libyara, OpenSSL or the other static libraries', () => {
    const symbols = execFileSync('nm', ['-D', '--defined-only', ADDON], { encoding: 'utf8' });

    const exported = symbols
      .split('\n')
      .map((line) => line.trim().split(/\s+/)[2])
      .filter((name): name is string => name !== undefined);

    expect(
      exported.filter((name) => /^(yr_|EVP_|OPENSSL_|magic_|json_|BZ2_|lzma_|inflate)/.test(name)),
    ).toEqual([]);
    expect(exported).toContain('napi_register_module_v1');
  });
});
