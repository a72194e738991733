export { buildProgram, runCli, UsageError, type CommandRegistrar } from './program';
