export {
  startLocalStack,
  LOCAL_CREDENTIALS,
  LOCAL_ACCOUNT_ID,
  DEFAULT_LOCAL_PORT,
  DEFAULT_DATA_DIR,
  DEFAULT_LOCAL_ENDPOINT,
  localClientConfig,
  type LocalStack,
  type LocalStackOptions,
  type LocalStatus,
} from './stack';
export { DataDirLockedError } from './lock';
export { MetricStore, type MetricTotal } from './cloudwatch';
export {
  LambdaRuntime,
  DeploymentError,
  FunctionNotFoundError,
  type InvokeOutcome,
} from './lambda';
export { AwsChunkedDecoder, ChunkedEncodingError } from './awsChunked';
export type { AlertRecord } from './alerts';
