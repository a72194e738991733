import { s3EventRecord } from '@binaryalert/core';

import type { ObjectCreatedEvent } from './s3/store';

/**
 * The binaries bucket's event notification: each object created in `bucket` becomes one SQS
 * message in S3's own shape, handed to `deliver` (the queue, in the stack's process, as AWS
 * delivers it without an API call); a failed delivery is reported, never thrown.
 */
export function notifyObjectCreated(
  deliver: (messageBody: string) => void,
  bucket: string,
  onFailure: (key: string, error: unknown) => void,
  /** Fault injection: when it answers true, the notification is delivered twice. */
  duplicate: () => boolean = () => false,
): (event: ObjectCreatedEvent) => void {
  return (event) => {
    if (event.bucket !== bucket) return;
    const record = s3EventRecord(
      { bucket: event.bucket, key: event.key, size: event.size },
      event.eventName,
    );
    const body = JSON.stringify({ Records: [record] });
    for (let copy = duplicate() ? 2 : 1; copy > 0; copy--) {
      try {
        deliver(body);
      } catch (error) {
        onFailure(event.key, error);
      }
    }
  };
}
