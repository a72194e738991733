import type { Command } from 'commander';

/** Adds one command (or a group of related commands) to the manage.ts program. */
export type CommandRegistrar = (program: Command) => void;

/** Raised by a command for a usage problem (bad argument, bad flag combination): exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
