export { EnvSchema, type BatcherEnv } from './env';
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
