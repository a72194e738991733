// Test-only helpers of the runtime core (not exported by index.ts, never bundled).
import type { FileAnalysis } from './analysis';

/** A FileAnalysis of an empty, clean object, with `overrides`. */
export function analysisOf(overrides: Partial<FileAnalysis>): FileAnalysis {
  return {
    sha256: 's',
    md5: 'm',
    size: 0,
    label: 'key',
    scanMs: 0,
    matches: [],
    members: [],
    unscanned: [],
    coverage: 'complete',
    expandedBytes: 0,
    ...overrides,
  };
}
