export { EnvSchema, loadConfig } from './config';
export { createDeps } from './deps';
export {
  dispatch,
  type AnalyzerPayload,
  type DispatchConfig,
  type DispatchDeps,
  type DispatchResult,
} from './dispatch';
