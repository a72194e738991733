import { once } from 'node:events';
import { request } from 'node:http';
import { gzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import {
  CreateQueueCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { createSqsServer } from 'local-aws-sqs';

import { LOCAL_CREDENTIALS } from './constants';
import { startSqsServer, withLegacyAttributeNames, withoutRepeatedMessages } from './sqs-front';

function sqsClient(endpoint: string): SQSClient {
  return new SQSClient({ endpoint, region: 'us-east-1', credentials: LOCAL_CREDENTIALS });
}

/** A signed POST of `body` to the front; its answer. */
function post(
  endpoint: string,
  headers: Record<string, string>,
  body: Buffer,
): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(endpoint);
  return new Promise((ok, fail) => {
    const req = request(
      {
        host: hostname,
        port,
        method: 'POST',
        path: '/',
        headers: {
          authorization:
            'AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0',
          'content-length': String(body.length),
          ...headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          ok({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
        );
      },
    );
    req.on('error', fail);
    req.end(body);
  });
}

/** One message in a queue whose visibility (1 s) runs out twice during a 3 s long poll. */
async function receiveThroughExpiringVisibility(sqs: SQSClient) {
  const { QueueUrl } = await sqs.send(
    new CreateQueueCommand({ QueueName: 'expiring', Attributes: { VisibilityTimeout: '1' } }),
  );
  await sqs.send(
    new SendMessageBatchCommand({ QueueUrl, Entries: [{ Id: '0', MessageBody: 'only one' }] }),
  );
  const { Messages = [] } = await sqs.send(
    new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 3 }),
  );
  return { QueueUrl: QueueUrl!, Messages };
}

describe('the SQS front', () => {
  it('copies MessageSystemAttributeNames into AttributeNames for local-aws-sqs', () => {
    const json = withLegacyAttributeNames(
      Buffer.from(
        JSON.stringify({ QueueUrl: 'q', MessageSystemAttributeNames: ['ApproximateReceiveCount'] }),
      ),
      true,
    );
    expect(JSON.parse(json.toString())).toEqual(
      expect.objectContaining({ AttributeNames: ['ApproximateReceiveCount'] }),
    );
    const query = withLegacyAttributeNames(
      Buffer.from(
        'Action=ReceiveMessage&QueueUrl=q&MessageSystemAttributeName.1=ApproximateReceiveCount',
      ),
      false,
    );
    expect(new URLSearchParams(query.toString()).get('AttributeName.1')).toBe(
      'ApproximateReceiveCount',
    );
  });

  it('keeps each message of a receive once, with its latest receipt, in both protocols', () => {
    const json = withoutRepeatedMessages(
      Buffer.from(
        JSON.stringify({
          Messages: [
            { MessageId: 'a', ReceiptHandle: 'a1' },
            { MessageId: 'b', ReceiptHandle: 'b1' },
            { MessageId: 'a', ReceiptHandle: 'a2' },
          ],
        }),
      ),
      true,
    );
    expect(JSON.parse(json.toString())).toEqual({
      Messages: [
        { MessageId: 'a', ReceiptHandle: 'a2' },
        { MessageId: 'b', ReceiptHandle: 'b1' },
      ],
    });
    const message = (id: string, receipt: string) =>
      `<Message>\n<MessageId>${id}</MessageId>\n<ReceiptHandle>${receipt}</ReceiptHandle>\n<Body>x</Body>\n</Message>\n`;
    const xml = withoutRepeatedMessages(
      Buffer.from(
        `<ReceiveMessageResponse><ReceiveMessageResult>\n${message('a', 'a1')}${message('b', 'b1')}${message('a', 'a2')}</ReceiveMessageResult></ReceiveMessageResponse>`,
      ),
      false,
    ).toString();
    expect(xml).toBe(
      `<ReceiveMessageResponse><ReceiveMessageResult>\n${message('a', 'a2')}${message('b', 'b1')}</ReceiveMessageResult></ReceiveMessageResponse>`,
    );
    const garbage = Buffer.from('<html>not SQS</html>');
    expect(withoutRepeatedMessages(garbage, true)).toBe(garbage);
  });

  it('returns a message once per receive even when its visibility runs out during the long poll', async () => {
    // The quirk itself: local-aws-sqs alone returns the message again after each expiry.
    const raw = await createSqsServer({ port: 0, hostname: '127.0.0.1' });
    if (!raw.listening) await once(raw, 'listening');
    const rawSqs = sqsClient(`http://127.0.0.1:${(raw.address() as AddressInfo).port}`);
    const fronted = await startSqsServer();
    const sqs = sqsClient(fronted.endpoint);
    try {
      const unfixed = await receiveThroughExpiringVisibility(rawSqs);
      expect(unfixed.Messages.length).toBeGreaterThan(1);

      const { QueueUrl, Messages } = await receiveThroughExpiringVisibility(sqs);
      expect(Messages.map((m) => m.Body)).toEqual(['only one']);
      // The receipt kept is one the queue honours: deleting it empties the queue.
      await sqs.send(
        new DeleteMessageCommand({ QueueUrl, ReceiptHandle: Messages[0]!.ReceiptHandle }),
      );
      const { Attributes } = await sqs.send(
        new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['All'] }),
      );
      expect(Attributes?.ApproximateNumberOfMessages).toBe('0');
      expect(Attributes?.ApproximateNumberOfMessagesNotVisible).toBe('0');
    } finally {
      rawSqs.destroy();
      sqs.destroy();
      raw.closeAllConnections();
      await new Promise((ok) => raw.close(ok));
      await fronted.close();
    }
  }, 20_000);

  it('refuses a body over 16 MiB, or a gzip bomb that inflates past it, with 413', async () => {
    // Prepare: a 20 MiB query-protocol SendMessage, and 300 KiB of gzip that inflate to 300 MiB.
    const fronted = await startSqsServer();
    const sqs = sqsClient(fronted.endpoint);
    try {
      const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'too-large' }));
      const huge = Buffer.from(
        `Action=SendMessage&QueueUrl=${encodeURIComponent(QueueUrl!)}&MessageBody=${'a'.repeat(20 << 20)}`,
      );
      const bomb = gzipSync(Buffer.alloc(300 << 20));

      // Act
      const tooLarge = await post(
        fronted.endpoint,
        { 'content-type': 'application/x-www-form-urlencoded' },
        huge,
      );
      const inflated = await post(
        fronted.endpoint,
        {
          'x-amz-target': 'AmazonSQS.ListQueues',
          'content-type': 'application/x-amz-json-1.0',
          'content-encoding': 'gzip',
        },
        bomb,
      );

      // Assert: both refused in their own protocol; the front still serves.
      expect(tooLarge.status).toBe(413);
      expect(tooLarge.body).toContain('<Code>RequestEntityTooLarge</Code>');
      expect(inflated.status).toBe(413);
      expect(JSON.parse(inflated.body)).toMatchObject({ __type: 'RequestEntityTooLarge' });
      const { Attributes } = await sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl,
          AttributeNames: ['ApproximateNumberOfMessages'],
        }),
      );
      expect(Attributes?.ApproximateNumberOfMessages).toBe('0');
    } finally {
      sqs.destroy();
      await fronted.close();
    }
  }, 20_000);

  it('refuses message bodies with characters SQS does not allow, as SQS does', async () => {
    // Prepare
    const fronted = await startSqsServer();
    const sqs = sqsClient(fronted.endpoint);
    try {
      const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'characters' }));
      const send = (MessageBody: string) =>
        sqs
          .send(new SendMessageCommand({ QueueUrl, MessageBody }))
          .catch((error: unknown) => error);

      // Act
      const refused = await Promise.all(
        ['nul \u0000', 'bell \u0007', 'lone \ud800', 'nonchar \uffff'].map(send),
      );
      const batch = await sqs
        .send(
          new SendMessageBatchCommand({
            QueueUrl,
            Entries: [
              { Id: 'ok', MessageBody: 'fine' },
              { Id: 'bad', MessageBody: 'escape \u001b' },
            ],
          }),
        )
        .catch((error: unknown) => error);
      const allowed = await send('tab\t newline\n return\r ü 😀 \ufffd');

      // Assert: each refused with InvalidMessageContents; allowed ones (all of XML's) queued.
      for (const error of [...refused, batch]) {
        expect(error).toMatchObject({ name: 'InvalidMessageContents' });
      }
      expect(allowed).toMatchObject({ MessageId: expect.any(String) });
      const { Attributes } = await sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl,
          AttributeNames: ['ApproximateNumberOfMessages'],
        }),
      );
      expect(Attributes?.ApproximateNumberOfMessages).toBe('1');
    } finally {
      sqs.destroy();
      await fronted.close();
    }
  });
});
