export { EnvSchema, type DispatcherEnv } from './env';
export {
  classifyBody,
  dispatch,
  type AnalyzerPayload,
  type DispatchConfig,
  type DispatchDeps,
  type DispatchResult,
} from './dispatch';
