/**
 * Real local AWS emulators for tests: the local stack's S3 store, local-aws-sqs (SQS) and dynalite (DynamoDB),
 * each on 127.0.0.1 with a random port and driven by the real SDK v3 clients.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { createDynamoServer, startS3Server, startSqsServer } from '@binaryalert/local';

/** Dummy credentials: the emulators accept any pair. */
export const TEST_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;
export const TEST_REGION = 'us-east-1';

export interface Emulator<Client> {
  /** Base URL, e.g. http://127.0.0.1:41234 */
  endpoint: string;
  client: Client;
  stop(): Promise<void>;
}

/** Configuration for any SDK v3 client pointed at a local emulator. */
export function clientConfig(endpoint: string) {
  return {
    endpoint,
    region: TEST_REGION,
    credentials: TEST_CREDENTIALS,
    forcePathStyle: true,
  };
}

/** A fresh name for a bucket, queue or table, so tests can run in parallel. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(5).toString('hex')}`.toLowerCase();
}

function endpointOf(address: AddressInfo | string | null): string {
  if (!address || typeof address === 'string') throw new Error('emulator is not listening on TCP');
  return `http://127.0.0.1:${address.port}`;
}

async function listen(server: Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return endpointOf(server.address());
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve, reject) =>
    server.close((error) => (error ? reject(error) : resolve())),
  );
}

/** An emulator handle whose stop() releases the client's sockets, then the server. */
function emulator<Client extends { destroy(): void }>(
  endpoint: string,
  client: Client,
  stopServer: () => Promise<void>,
): Emulator<Client> {
  return {
    endpoint,
    client,
    async stop() {
      client.destroy();
      await stopServer();
    },
  };
}

/** Starts the local S3 store with its data in a fresh temp directory. */
export async function startS3(): Promise<Emulator<S3Client>> {
  const directory = await mkdtemp(join(tmpdir(), 'ba-s3-'));
  const server = await startS3Server({ dir: directory });
  const { endpoint } = server;
  return emulator(endpoint, new S3Client(clientConfig(endpoint)), async () => {
    await server.close();
    await rm(directory, { recursive: true, force: true });
  });
}

/**
 * The address an unmodified SDK S3 client (no forcePathStyle, as the Lambda bundles create it)
 * reaches startS3's store at: "<bucket>.localhost:<port>" for dotted bucket names, resolved to
 * 127.0.0.1 by packages/local/runtime/lambda-preload.cjs.
 */
export function s3VirtualHostEndpoint(s3: Emulator<S3Client>): string {
  return `http://localhost:${new URL(s3.endpoint).port}`;
}

/** Starts local-aws-sqs behind the local stack's SQS front (which makes it answer as SQS does). */
export async function startSqs(): Promise<Emulator<SQSClient>> {
  const server = await startSqsServer();
  const { endpoint } = server;
  return emulator(endpoint, new SQSClient(clientConfig(endpoint)), () => server.close());
}

/**
 * Starts the local stack's DynamoDB server (dynalite, and BatchExecuteStatement run by its
 * UpdateItem) in memory, with tables ACTIVE as soon as they are created.
 */
export async function startDynamo(): Promise<Emulator<DynamoDBClient>> {
  const server = createDynamoServer({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  const endpoint = await listen(server);
  return emulator(endpoint, new DynamoDBClient(clientConfig(endpoint)), () => close(server));
}
export * from './archives';
export * from './dynamo-faults';
export * from './metrics';
