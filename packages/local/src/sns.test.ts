import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';

import { LOCAL_CREDENTIALS } from './constants';
import { closeServer } from './loopback';
import { createSnsHandler, type PublishedMessage } from './sns';

describe('the local SNS', () => {
  const topic = 'arn:aws:sns:us-east-1:123456789012:alerts';
  let server: Server;
  let sns: SNSClient;
  let published: PublishedMessage[];

  beforeAll(async () => {
    published = [];
    const handle = createSnsHandler([topic], (message) => {
      published.push(message);
    });
    server = createServer((req, res) => void handle(req, res));
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    sns = new SNSClient({
      endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      region: 'us-east-1',
      credentials: LOCAL_CREDENTIALS,
      maxAttempts: 1,
    });
  });

  afterAll(async () => {
    sns.destroy();
    await closeServer(server);
  });

  it('refuses a Publish that SNS refuses: message over 256 KiB, empty, or a bad subject', async () => {
    // Prepare: 256 KiB with the attribute (name, type and value) counted, and one byte more.
    const attributes = { sha256: { DataType: 'String', StringValue: 'ab' } };
    const attributeBytes = 'sha256'.length + 'String'.length + 'ab'.length;
    const largest = 'x'.repeat(256 * 1024 - attributeBytes);
    const publish = (input: { Message: string; Subject?: string }) =>
      sns
        .send(new PublishCommand({ TopicArn: topic, MessageAttributes: attributes, ...input }))
        .catch((error: unknown) => error);

    // Act
    const refused = await Promise.all([
      publish({ Message: `${largest}x` }),
      publish({ Message: '' }),
      publish({ Message: 'm', Subject: 's'.repeat(100) }),
      publish({ Message: 'm', Subject: 'line\nbreak' }),
      publish({ Message: 'm', Subject: '' }),
    ]);
    const accepted = await publish({ Message: largest, Subject: 's'.repeat(99) });

    // Assert: each refused with InvalidParameter, as SNS answers; the largest allowed is published.
    for (const error of refused) {
      expect(error).toMatchObject({
        name: 'InvalidParameterException',
        $metadata: { httpStatusCode: 400 },
      });
    }
    expect(accepted).toMatchObject({ MessageId: expect.any(String) });
    expect(published.map((p) => p.message.length)).toEqual([largest.length]);
  });
});
