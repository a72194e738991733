import { createLogger, objectId } from './logger';

function capture(minLevel?: 'debug' | 'info' | 'warn' | 'error') {
  const lines: string[] = [];
  const log = createLogger('analyzer', (line) => lines.push(line), minLevel);
  return {
    lines,
    log,
    parsed: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

describe('createLogger', () => {
  it('writes one JSON object per line with level, component, message and fields', () => {
    const { lines, log, parsed } = capture();

    log.info('analyzed', { object: objectId('bucket', 'a b/c'), matches: 2 });

    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain('\n');
    expect(parsed()[0]).toMatchObject({
      level: 'info',
      component: 'analyzer',
      message: 'analyzed',
      object: 'S3:bucket:a b/c',
      matches: 2,
    });
    expect(typeof parsed()[0]!.time).toBe('string');
  });

  it('adds the fields of a child logger to every line', () => {
    const { log, parsed } = capture();

    const child = log.child({ object: 'S3:b:k' });
    child.warn('one');
    child.child({ attempt: 2 }).error('two', { extra: true });

    expect(parsed()).toEqual([
      expect.objectContaining({ level: 'warn', message: 'one', object: 'S3:b:k' }),
      expect.objectContaining({
        level: 'error',
        message: 'two',
        object: 'S3:b:k',
        attempt: 2,
        extra: true,
      }),
    ]);
  });

  it('drops lines below the minimum level', () => {
    const { log, parsed } = capture('warn');

    log.debug('d');
    log.info('i');
    log.warn('w');

    expect(parsed().map((entry) => entry.message)).toEqual(['w']);
  });

  it('serializes errors with their name, message, code and cause', () => {
    const { log, parsed } = capture();
    const cause = new Error('disk full');
    const error = Object.assign(new Error('write failed', { cause }), { code: 'EIO' });

    log.error('download failed', { error });

    expect(parsed()[0]!.error).toMatchObject({
      name: 'Error',
      message: 'write failed',
      code: 'EIO',
      cause: { name: 'Error', message: 'disk full' },
    });
  });

  it('survives values JSON cannot represent', () => {
    const { parsed, log } = capture();
    const circular: Record<string, unknown> = {};
    circular.self = circular;

    log.info('odd', { big: 10n, circular });

    expect(parsed()[0]).toMatchObject({ message: 'odd', level: 'info' });
  });
});

describe('objectId', () => {
  it('names an object S3:<bucket>:<key>', () => {
    expect(objectId('my-bucket', 'dir/file name.exe')).toBe('S3:my-bucket:dir/file name.exe');
  });
});
