import { createLogger, functionService, objectId } from './logger';

function capture(serviceName = 'p_binaryalert_analyzer') {
  const lines: string[] = [];
  const log = createLogger(serviceName, (line) => lines.push(line));
  return {
    lines,
    log,
    parsed: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

describe('createLogger (Powertools Logger)', () => {
  const savedLevel = process.env.LOG_LEVEL;
  afterEach(() => {
    if (savedLevel === undefined) delete process.env.LOG_LEVEL;
    else process.env.LOG_LEVEL = savedLevel;
  });

  it('writes one JSON object per line with level, service, message, timestamp and fields', () => {
    const { lines, log, parsed } = capture();

    log.info('analyzed', { object: objectId('bucket', 'a b/c'), matches: 2 });

    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain('\n');
    expect(parsed()[0]).toMatchObject({
      level: 'INFO',
      service: 'p_binaryalert_analyzer',
      message: 'analyzed',
      object: 'S3:bucket:a b/c',
      matches: 2,
    });
    expect(Number.isNaN(Date.parse(String(parsed()[0]!.timestamp)))).toBe(false);
  });

  it('keeps the object id on every line of a child, and the child of a child', () => {
    const { log, parsed } = capture();

    const child = log.createChild({ persistentKeys: { object: 'S3:b:k' } });
    child.warn('one');
    child.createChild({ persistentKeys: { attempt: 2 } }).error('two', { extra: true });
    log.info('parent');

    expect(parsed()).toEqual([
      expect.objectContaining({ level: 'WARN', message: 'one', object: 'S3:b:k' }),
      expect.objectContaining({
        level: 'ERROR',
        message: 'two',
        object: 'S3:b:k',
        attempt: 2,
        extra: true,
      }),
      expect.not.objectContaining({ object: expect.anything() }),
    ]);
  });

  it('takes the minimum level from LOG_LEVEL', () => {
    process.env.LOG_LEVEL = 'WARN';
    const { log, parsed } = capture();

    log.debug('d');
    log.info('i');
    log.warn('w');

    expect(parsed().map((entry) => entry.message)).toEqual(['w']);
  });

  it('serializes errors with their name, message and cause', () => {
    const { log, parsed } = capture();
    const cause = new Error('disk full');
    const error = Object.assign(new Error('write failed', { cause }), { code: 'EIO' });

    log.error('download failed', { error });

    expect(parsed()[0]!.error).toMatchObject({
      name: 'Error',
      message: 'write failed',
      cause: { name: 'Error', message: 'disk full' },
    });
  });

  it('survives values JSON cannot represent', () => {
    const { parsed, log } = capture();
    const circular: Record<string, unknown> = {};
    circular.self = circular;

    log.info('odd', { big: 10n, circular });

    expect(parsed()[0]).toMatchObject({ message: 'odd', level: 'INFO', big: '10' });
  });
});

describe('functionService', () => {
  it("is the function's name Lambda sets, or undefined outside a function", () => {
    expect(functionService({ AWS_LAMBDA_FUNCTION_NAME: 'p_binaryalert_batcher' })).toBe(
      'p_binaryalert_batcher',
    );
    expect(functionService({})).toBeUndefined();
    expect(functionService({ AWS_LAMBDA_FUNCTION_NAME: '' })).toBeUndefined();
  });
});

describe('objectId', () => {
  it('names an object S3:<bucket>:<key>', () => {
    expect(objectId('my-bucket', 'dir/file name.exe')).toBe('S3:my-bucket:dir/file name.exe');
  });
});
