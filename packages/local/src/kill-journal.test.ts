import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeS3Key, s3EventRecord } from '@binaryalert/core';

import { invocationObjects, recordWorkerKill, WORKER_KILLS_FILE } from './kill-journal';

describe('the worker kill journal', () => {
  const hostile = 'dir/ünï códe+1 日本.exe';
  const record = s3EventRecord({ bucket: 'b', key: hostile });

  it('names the objects of a dispatcher payload and of an SQS batch, and none of anything else', () => {
    const dispatcher = { Records: [record, record], SQSReceipts: ['r1', 'r2'] };
    const sqs = {
      Records: [
        { eventSource: 'aws:sqs', body: JSON.stringify({ Records: [record] }) },
        { eventSource: 'aws:sqs', body: 'not json' },
      ],
    };

    expect(invocationObjects(dispatcher)).toEqual([`S3:b:${hostile}`]);
    expect(invocationObjects(sqs)).toEqual([`S3:b:${hostile}`]);
    expect(invocationObjects({ Records: 'no' })).toEqual([]);
    expect(invocationObjects(null)).toEqual([]);
    expect(record.s3.object.key).toBe(encodeS3Key(hostile));
  });

  it('appends one line per kill with its time, pid, invocation, cause and objects', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ba-kills-'));
    try {
      const event = { Records: [record], SQSReceipts: ['r1'] };
      recordWorkerKill(
        dir,
        'p_binaryalert_analyzer',
        { pid: 7, invocation: 'i-1', event },
        'timeout',
      );
      recordWorkerKill(
        dir,
        'p_binaryalert_analyzer',
        { pid: 8, invocation: 'i-2', event: {} },
        'fault injection',
      );

      const lines = (await readFile(join(dir, WORKER_KILLS_FILE), 'utf8')).trim().split('\n');

      expect(lines.map((line) => JSON.parse(line) as unknown)).toEqual([
        {
          time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
          functionName: 'p_binaryalert_analyzer',
          pid: 7,
          invocation: 'i-1',
          cause: 'timeout',
          objects: [`S3:b:${hostile}`],
        },
        expect.objectContaining({
          pid: 8,
          invocation: 'i-2',
          cause: 'fault injection',
          objects: [],
        }),
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
