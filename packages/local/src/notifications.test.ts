import { objectsOfNotification } from '@binaryalert/core';

import { notifyObjectCreated } from './notifications';
import type { ObjectCreatedEvent } from './s3/store';

const created = (key: string, bucket = 'binaries'): ObjectCreatedEvent => ({
  bucket,
  key,
  size: 1234,
  etag: '"e"',
  eventName: 'ObjectCreated:Put',
});

describe('notifyObjectCreated', () => {
  it('delivers one S3 event message per object created in the bucket, naming the key as written', () => {
    const delivered: string[] = [];
    const notify = notifyObjectCreated(
      (body) => delivered.push(body),
      'binaries',
      () => {
        throw new Error('no failure expected');
      },
    );

    notify(created('dir/ü +x.exe'));
    notify(created('other.exe', 'rules-bucket'));

    expect(delivered).toHaveLength(1);
    expect(objectsOfNotification(delivered[0])).toEqual([
      { bucket: 'binaries', key: 'dir/ü +x.exe', size: 1234 },
    ]);
  });

  it('delivers twice when the duplicate-notification fault says so (S3 delivers at least once)', () => {
    const delivered: string[] = [];
    const answers = [true, false];
    const notify = notifyObjectCreated(
      (body) => delivered.push(body),
      'binaries',
      () => undefined,
      () => answers.shift()!,
    );

    notify(created('a'));
    notify(created('b'));

    expect(delivered.map((body) => objectsOfNotification(body)[0]!.key)).toEqual(['a', 'a', 'b']);
  });

  it('reports a failed delivery with the key and goes on, never throwing into the store', () => {
    const failures: [string, unknown][] = [];
    const notify = notifyObjectCreated(
      (body) => {
        if (body.includes('bad')) throw new Error('no such queue');
      },
      'binaries',
      (key, error) => failures.push([key, error]),
    );

    expect(() => notify(created('bad.exe'))).not.toThrow();
    notify(created('good.exe'));

    expect(failures).toEqual([['bad.exe', new Error('no such queue')]]);
  });
});
