import { receiptsOf } from './dead-worker';

describe('receiptsOf', () => {
  it('reads the receipts of a dispatcher payload and of an SQS event-source batch', () => {
    expect(receiptsOf({ Records: [], SQSReceipts: ['r1', 'r2'] })).toEqual(['r1', 'r2']);
    expect(
      receiptsOf({
        Records: [
          { messageId: 'a', receiptHandle: 'h1', body: '{}' },
          { messageId: 'b', receiptHandle: 'h2', body: '{}' },
        ],
      }),
    ).toEqual(['h1', 'h2']);
  });

  it('finds nothing to release in other or hostile events', () => {
    expect(receiptsOf(null)).toEqual([]);
    expect(receiptsOf('SQSReceipts')).toEqual([]);
    expect(receiptsOf({ Records: [{ s3: { object: { key: 'k' } } }] })).toEqual([]);
    expect(receiptsOf({ SQSReceipts: ['', 7, null, { a: 1 }, 'ok'] })).toEqual(['ok']);
    expect(receiptsOf({ Records: [null, 3, { receiptHandle: 5 }] })).toEqual([]);
  });
});
