import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { s3EventRecord } from '@binaryalert/core';

import type { ObjectCreated } from './emulators';

/**
 * The binaries bucket's event notification: each object created in `bucket` becomes one SQS
 * message in S3's own shape on `queueUrl`; a failed send is reported, never thrown.
 */
export function notifyObjectCreated(
  sqs: SQSClient,
  bucket: string,
  queueUrl: string,
  onFailure: (key: string, error: unknown) => void,
): (event: ObjectCreated) => void {
  return (event) => {
    if (event.bucket !== bucket) return;
    const record = s3EventRecord(
      {
        bucket: event.bucket,
        key: event.key,
        ...(event.size === undefined ? {} : { size: event.size }),
      },
      event.eventName,
    );
    sqs
      .send(
        new SendMessageCommand({
          QueueUrl: queueUrl,
          MessageBody: JSON.stringify({ Records: [record] }),
        }),
      )
      .catch((error: unknown) => onFailure(event.key, error));
  };
}
