import type { BinaryAlertConfig } from './tfvars';

/**
 * Seconds an asynchronous analyzer event may wait to start before Lambda drops it (the least
 * Lambda allows); terraform/locals.tf analyzer_max_event_age_seconds.
 */
export const ANALYZER_MAX_EVENT_AGE_SECONDS = 60;

/**
 * The analyzer queue's visibility timeout: longer than any analyzer can hold a received message
 * (docs/contracts.md, the queueing invariant); terraform/locals.tf computes the same.
 */
export function queueVisibilityTimeoutSeconds(config: BinaryAlertConfig): number {
  return config.analyzer_trigger === 'sqs'
    ? 6 * config.lambda_analyze_timeout_sec
    : ANALYZER_MAX_EVENT_AGE_SECONDS + config.lambda_analyze_timeout_sec + 30;
}

/**
 * How long a dispatch slot is held unless its analyzer releases it: it is taken before a receive
 * (up to one long poll), and the invocation may wait up to the maximum event age to start and then
 * run up to the analyzer timeout; terraform/locals.tf computes the same.
 */
export function dispatchSlotLeaseSeconds(config: BinaryAlertConfig): number {
  return (
    config.lambda_dispatch_wait_time_seconds +
    ANALYZER_MAX_EVENT_AGE_SECONDS +
    config.lambda_analyze_timeout_sec +
    30
  );
}
