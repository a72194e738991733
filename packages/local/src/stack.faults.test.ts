import { Agent } from 'node:http';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

import { startLocalStack, type LocalStack } from './stack';
import { tempDir, testConfig } from './testing/fixtures';

jest.setTimeout(60_000);

/**
 * With S3 faults injected (the soak, the failure tests) the faults live in the stack's own
 * process, which injects them on GetObject: connections that start with a read stay there, and
 * uploads are still handed to the store's process, so the soak's uploads take the same path as
 * everyone's.
 */
describe('the local stack with S3 faults injected', () => {
  let parent: { path: string; remove: () => Promise<void> };
  let stack: LocalStack;
  const agents: Agent[] = [];
  const clients: S3Client[] = [];

  beforeAll(async () => {
    parent = await tempDir('ba-stack-faults-');
    stack = await startLocalStack({
      config: await testConfig(),
      dataDir: join(parent.path, 'data'),
      zipsDir: join(parent.path, 'no-zips'),
      port: 0,
      dispatch: false,
      statusIntervalMs: 0,
      print: () => undefined,
      faults: { poisonPrefix: 'poison/' },
    });
    await stack.reconciled;
  });

  afterAll(async () => {
    clients.forEach((client) => client.destroy());
    agents.forEach((agent) => agent.destroy());
    await stack?.stop();
    await parent?.remove();
  });

  /** A client on a connection of its own; `sockets` collects the connections it used. */
  const connection = () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<unknown>();
    agent.on('free', (socket) => sockets.add(socket));
    const client = new S3Client({
      endpoint: stack.endpoint,
      region: stack.region,
      credentials: { accessKeyId: 'any', secretAccessKey: 'pair' },
      forcePathStyle: true,
      maxAttempts: 1,
      requestHandler: { httpAgent: agent },
    });
    agents.push(agent);
    clients.push(client);
    return { client, sockets };
  };
  const get = (client: S3Client, key: string) =>
    client.send(new GetObjectCommand({ Bucket: stack.names.bucket, Key: key }));

  it('injects the faults on a connection that starts with a read', async () => {
    // Prepare
    const writer = connection();
    await writer.client.send(
      new PutObjectCommand({ Bucket: stack.names.bucket, Key: 'poison/read', Body: 'x' }),
    );
    const reader = connection();

    // Act + Assert
    await expect(get(reader.client, 'poison/read')).rejects.toThrow(/injected fault \(poison\)/);
  });

  it('hands a connection that starts with an upload to the store, whose reads carry no faults', async () => {
    // Prepare
    const uploader = connection();

    // Act: an upload, then a read of a poisoned key on the same connection.
    await uploader.client.send(
      new PutObjectCommand({ Bucket: stack.names.bucket, Key: 'poison/upload', Body: 'stored' }),
    );
    const read = await get(uploader.client, 'poison/upload');

    // Assert: the store answered the read (the stack's process would have injected the fault).
    expect(await read.Body!.transformToString()).toBe('stored');
    expect(uploader.sockets.size).toBe(1);
  });
});
