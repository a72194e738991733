import { failedMessageIds, sqsEvent } from './eventSourceMapping';
import type { InvokeOutcome } from './lambda';

const ok = (payload: unknown): InvokeOutcome => ({ ok: true, version: '1', payload });
const batch = ['m1', 'm2', 'm3'];

describe('the event source mapping', () => {
  it('keeps only the messages the function reports as failed', () => {
    expect(failedMessageIds(ok({ batchItemFailures: [{ itemIdentifier: 'm2' }] }), batch)).toEqual(
      new Set(['m2']),
    );
    expect(failedMessageIds(ok({ batchItemFailures: [] }), batch)).toEqual(new Set());
    expect(failedMessageIds(ok(null), batch)).toEqual(new Set());
    expect(failedMessageIds(ok({}), batch)).toEqual(new Set());
  });

  it('keeps the whole batch when the invocation fails or names an id not in the batch', () => {
    const failed: InvokeOutcome = {
      ok: false,
      version: '1',
      error: { errorType: 'Runtime.ExitError', errorMessage: 'killed' },
    };
    expect(failedMessageIds(failed, batch)).toEqual(new Set(batch));
    expect(
      failedMessageIds(ok({ batchItemFailures: [{ itemIdentifier: 'other' }] }), batch),
    ).toEqual(new Set(batch));
    expect(failedMessageIds(ok({ batchItemFailures: [{ itemIdentifier: '' }] }), batch)).toEqual(
      new Set(batch),
    );
    expect(failedMessageIds(ok({ batchItemFailures: 'm1' }), batch)).toEqual(new Set(batch));
  });

  it('builds the SQS event Lambda sends', () => {
    const event = sqsEvent(
      [
        {
          MessageId: 'm1',
          ReceiptHandle: 'r1',
          Body: '{}',
          MD5OfBody: 'x',
          Attributes: { ApproximateReceiveCount: '2' },
        },
      ],
      'arn:aws:sqs:us-east-1:123456789012:q',
      'us-east-1',
    );
    expect(event.Records).toEqual([
      {
        messageId: 'm1',
        receiptHandle: 'r1',
        body: '{}',
        attributes: { ApproximateReceiveCount: '2' },
        messageAttributes: {},
        md5OfBody: 'x',
        eventSource: 'aws:sqs',
        eventSourceARN: 'arn:aws:sqs:us-east-1:123456789012:q',
        awsRegion: 'us-east-1',
      },
    ]);
  });
});
