import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { s3EventRecord } from '@binaryalert/core';

import type { ObjectCreatedEvent } from './s3/store';

/**
 * The binaries bucket's event notification: each object created in `bucket` becomes one SQS
 * message in S3's own shape on `queueUrl`; a failed send is reported, never thrown. `drain`
 * resolves when every send started has finished.
 */
export function notifyObjectCreated(
  sqs: SQSClient,
  bucket: string,
  queueUrl: string,
  onFailure: (key: string, error: unknown) => void,
  /** Fault injection: when it answers true, the notification is delivered twice. */
  duplicate: () => boolean = () => false,
): { notify: (event: ObjectCreatedEvent) => void; drain: () => Promise<void> } {
  const sending = new Set<Promise<void>>();
  const notify = (event: ObjectCreatedEvent): void => {
    if (event.bucket !== bucket) return;
    const record = s3EventRecord(
      { bucket: event.bucket, key: event.key, size: event.size },
      event.eventName,
    );
    const send = (): void => {
      const sent = sqs
        .send(
          new SendMessageCommand({
            QueueUrl: queueUrl,
            MessageBody: JSON.stringify({ Records: [record] }),
          }),
        )
        .then(
          () => undefined,
          (error: unknown) => onFailure(event.key, error),
        )
        .finally(() => sending.delete(sent));
      sending.add(sent);
    };
    send();
    if (duplicate()) send();
  };
  // Stopping waits for the sends in flight, so no acknowledged upload loses its message to a
  // queue that is closing.
  const drain = async (): Promise<void> => {
    while (sending.size > 0) await Promise.allSettled([...sending]);
  };
  return { notify, drain };
}
