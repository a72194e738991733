import { parseEmfLine, type EmfMetric } from '@binaryalert/local';

export interface EmfCapture {
  /** The embedded-metric-format lines written so far, as written. */
  lines: string[];
  /** Their metrics, as CloudWatch (and the local stack) extract them. */
  metrics(): EmfMetric[];
  /** Puts process.stdout.write back. */
  restore(): void;
}

/**
 * Captures the embedded-metric-format lines written to stdout, where Powertools Metrics writes
 * them in Lambda; every other write goes through.
 */
export function captureEmf(): EmfCapture {
  const stdout = process.stdout;
  const original = Object.getOwnPropertyDescriptor(stdout, 'write');
  const write = stdout.write.bind(stdout) as (...args: unknown[]) => boolean;
  const lines: string[] = [];
  stdout.write = (chunk: unknown, ...rest: unknown[]) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString();
    if (!text.includes('"_aws"')) return write(chunk, ...rest);
    lines.push(...text.split('\n').filter((line) => line.trim() !== ''));
    return true;
  };
  return {
    lines,
    metrics: () => lines.flatMap(parseEmfLine),
    restore: () => {
      if (original) Object.defineProperty(stdout, 'write', original);
      else delete (stdout as Partial<NodeJS.WriteStream>).write;
    },
  };
}
