import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { BinaryAlertConfig } from '@binaryalert/deployment';

import { DEFAULT_LOCAL_ENDPOINT, LOCAL_CREDENTIALS } from '@binaryalert/local';

import { UsageError } from './usage';

/** Where `manage.ts local` serves the AWS APIs by default, and the dummy credentials it accepts. */
export const LOCAL_ENDPOINT = DEFAULT_LOCAL_ENDPOINT;
export { LOCAL_CREDENTIALS };

/** The value of a `--local [endpoint]` flag: absent, bare (`true`) or an endpoint URL. */
export type LocalFlag = boolean | string | undefined;

/** SDK client settings: the deployed region, or the local stack with its dummy credentials. */
export interface AwsClientSettings {
  region: string;
  endpoint?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
  forcePathStyle?: boolean;
}

/**
 * Client settings for `--local [endpoint]` (default http://127.0.0.1:4566, path-style S3, dummy
 * credentials) or, without it, for AWS with the default credential chain and the configured region.
 */
export function awsClientSettings(
  config: Pick<BinaryAlertConfig, 'aws_region'>,
  local?: LocalFlag,
): AwsClientSettings {
  if (local === undefined || local === false) return { region: config.aws_region };
  const endpoint = local === true ? LOCAL_ENDPOINT : local;
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new UsageError(
      `--local expects an endpoint URL such as ${LOCAL_ENDPOINT}, got "${endpoint}"`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`--local expects an http(s) endpoint URL, got "${endpoint}"`);
  }
  return {
    region: config.aws_region,
    endpoint: url.origin,
    credentials: { ...LOCAL_CREDENTIALS },
    forcePathStyle: true,
  };
}

/** The SDK clients the operating commands use, all pointed at the same target. */
export interface AwsClients {
  s3: S3Client;
  sqs: SQSClient;
  lambda: LambdaClient;
  dynamodb: DynamoDBClient;
}

/** Builds every client once for a command run. */
export function createAwsClients(settings: AwsClientSettings): AwsClients {
  const { forcePathStyle, ...common } = settings;
  return {
    s3: new S3Client({ ...common, forcePathStyle: forcePathStyle ?? true }),
    sqs: new SQSClient(common),
    lambda: new LambdaClient(common),
    dynamodb: new DynamoDBClient(common),
  };
}

/** Releases the clients' sockets so the CLI can exit promptly. */
export function destroyAwsClients(clients: Partial<AwsClients>): void {
  for (const client of Object.values(clients)) client?.destroy();
}
