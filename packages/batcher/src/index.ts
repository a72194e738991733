export { EnvSchema, loadConfig } from './config';
export { createDeps } from './deps';
export {
  BatchEventSchema,
  ContinuationInvokeError,
  enqueueBucket,
  packMessages,
  type BatchEvent,
  type BatchResult,
  type BatcherConfig,
  type BatcherDeps,
} from './enqueue';
