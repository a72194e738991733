import type { IncomingMessage } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { alertRecord, formatAlert } from './alerts';
import { DataDirLockedError, lockDataDir } from './lock';
import { parseQueryParams, signingService } from './protocol';

describe('query protocol parameters', () => {
  it('nests members and entries into arrays of objects', () => {
    const params = new URLSearchParams(
      'Action=PutMetricData&Namespace=BinaryAlert&MetricData.member.1.MetricName=A&MetricData.member.1.Value=2' +
        '&MetricData.member.2.MetricName=B&MetricData.member.2.Values.member.1=1&MetricData.member.2.Values.member.2=5',
    );
    expect(parseQueryParams(params)).toEqual({
      Action: 'PutMetricData',
      Namespace: 'BinaryAlert',
      MetricData: [
        { MetricName: 'A', Value: '2' },
        { MetricName: 'B', Values: ['1', '5'] },
      ],
    });
  });

  it('keeps hostile parameter names (__proto__, constructor.prototype) to the parsed request', () => {
    const params = new URLSearchParams(
      'Action=Publish&__proto__.polluted=yes&constructor.prototype.polluted=yes' +
        '&List.member.1=a&List.__proto__.polluted=yes&Map.__proto__=yes',
    );
    try {
      const parsed = parseQueryParams(params);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect(([] as unknown as Record<string, unknown>).polluted).toBeUndefined();
      expect(parsed.Action).toBe('Publish');
      expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
      expect(Object.keys(parsed)).toEqual(['Action', '__proto__', 'constructor', 'List', 'Map']);
    } finally {
      delete (Object.prototype as Record<string, unknown>).polluted;
      delete (Array.prototype as unknown as Record<string, unknown>).polluted;
    }
  });

  it('reads the service from the SigV4 credential scope (header or presigned query)', () => {
    const req = (headers: Record<string, string>, url = '/') =>
      ({ headers, url }) as unknown as IncomingMessage;
    const auth =
      'AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/monitoring/aws4_request, SignedHeaders=host, Signature=x';
    expect(signingService(req({ authorization: auth }))).toBe('monitoring');
    expect(
      signingService(
        req({}, '/b/k?X-Amz-Credential=AKID%2F20260101%2Fus-east-1%2Fs3%2Faws4_request'),
      ),
    ).toBe('s3');
    expect(signingService(req({}))).toBeUndefined();
  });
});

describe('alerts on the console', () => {
  it('shows the object, filepath, hash and rules of a match summary', () => {
    const text = formatAlert(
      alertRecord({
        messageId: 'm',
        time: '2026-01-01T00:00:00.000Z',
        topicArn: 'arn:aws:sns:us-east-1:1:p_binaryalert_yara_match_alerts',
        subject: 'match',
        messageAttributes: {},
        message: JSON.stringify({
          FileInfo: { S3Location: 'S3:b:k', SHA256: 'ab', S3Metadata: { filepath: 'C:/x.exe' } },
          MatchedRules: {
            Rule1: { RuleName: 'r1', RuleFile: 'f.yara' },
            Rule2: { RuleName: 'r2', RuleFile: '' },
          },
        }),
      }),
    );
    expect(text.split('\n')).toEqual([
      'ALERT 2026-01-01T00:00:00.000Z p_binaryalert_yara_match_alerts: match',
      '  object:   S3:b:k',
      '  filepath: C:/x.exe',
      '  sha256:   ab',
      '  rules:    f.yara:r1, r2',
    ]);
  });

  it('prints any other message as sent', () => {
    const text = formatAlert(
      alertRecord({
        messageId: 'm',
        time: 't',
        topicArn: 'arn:a:b:c:d:topic',
        message: 'plain',
        messageAttributes: {},
      }),
    );
    expect(text).toBe('ALERT t topic\n  plain');
  });
});

describe('the data directory lock', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ba-lock-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is refused while its owner runs and released on request', async () => {
    const release = await lockDataDir(dir);
    expect(await readFile(join(dir, 'stack.lock'), 'utf8')).toBe(`${process.pid}\n`);
    await expect(lockDataDir(dir)).rejects.toThrow(DataDirLockedError);
    await release();
    const again = await lockDataDir(dir);
    await again();
  });

  it('takes over a lock left by a process that is gone', async () => {
    await writeFile(join(dir, 'stack.lock'), '999999999\n');
    const release = await lockDataDir(dir);
    expect(await readFile(join(dir, 'stack.lock'), 'utf8')).toBe(`${process.pid}\n`);
    await release();
  });
});
