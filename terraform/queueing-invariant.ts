// The queueing invariant of docs/contracts.md, checked on the parsed Terraform and a tfvars:
// a message is never handed out again while an analyzer may hold it, no invocation is retried
// behind the queue's back, and the trigger never starts more analyzers than can run at once.
import { dig, evaluate, localsOf, type Block, type Scope, type Value } from './hcl';

/** The parsed root module and modules/lambda (see parseModule). */
export interface ParsedTerraform {
  root: Block;
  lambdaModule: Block;
}

/** Lambda's bounds of an event invoke config's maximum event age. */
const EVENT_AGE_RANGE = [60, 21600] as const;

function single(blocks: unknown, what: string, breaches: string[]): Block | undefined {
  if (Array.isArray(blocks) && blocks.length === 1) return blocks[0] as Block;
  breaches.push(`${what} is missing or declared more than once`);
  return undefined;
}

/**
 * Every breach of the queueing invariant in this Terraform with these tfvars values, one sentence
 * each naming the numbers; empty when the invariant holds.
 */
export function queueingInvariantBreaches(
  { root, lambdaModule }: ParsedTerraform,
  tfvars: Record<string, unknown>,
): string[] {
  const breaches: string[] = [];
  const scope: Scope = { variables: tfvars, locals: localsOf(root) };
  const value = (expression: unknown): Value => evaluate(expression, scope);
  const number = (expression: unknown, what: string): number => {
    const result = Number(value(expression));
    if (!Number.isFinite(result)) throw new Error(`${what} is not a number: ${String(expression)}`);
    return result;
  };
  const trigger = value('${var.analyzer_trigger}');
  const count = (resource: Block | undefined): number =>
    resource?.count === undefined ? 1 : number(resource.count, 'count');

  // modules/lambda applies the retry and age settings to the alias every caller invokes.
  const invokeConfig = single(
    dig(lambdaModule, 'resource', 'aws_lambda_function_event_invoke_config', 'this'),
    'modules/lambda aws_lambda_function_event_invoke_config.this',
    breaches,
  );
  if (invokeConfig) {
    const expected: Record<string, string> = {
      function_name: '${aws_lambda_function.this.function_name}',
      qualifier: '${aws_lambda_alias.production.name}',
      maximum_retry_attempts: '${var.async_max_retry_attempts}',
      maximum_event_age_in_seconds: '${var.async_max_event_age_seconds}',
    };
    for (const [attribute, wanted] of Object.entries(expected)) {
      if (invokeConfig[attribute] !== wanted) {
        breaches.push(`the event invoke config sets ${attribute} to ${invokeConfig[attribute]}`);
      }
    }
  }

  const analyzer = single(dig(root, 'module', 'analyzer'), 'module "analyzer"', breaches);
  const dispatcher = single(dig(root, 'module', 'dispatcher'), 'module "dispatcher"', breaches);
  const queue = single(
    dig(root, 'resource', 'aws_sqs_queue', 'analyzer'),
    'the analyzer queue',
    breaches,
  );
  if (!analyzer || !dispatcher || !queue) return breaches;

  const retries = number(analyzer.async_max_retry_attempts ?? 2, 'analyzer retries');
  if (retries !== 0) {
    breaches.push(`Lambda retries a failed analyzer invocation ${retries} time(s) behind SQS`);
  }
  const dispatcherRetries = number(dispatcher.async_max_retry_attempts ?? 2, 'dispatcher retries');
  if (dispatcherRetries !== 0) {
    breaches.push(`Lambda retries a failed dispatcher run ${dispatcherRetries} time(s)`);
  }
  const eventAge = number(analyzer.async_max_event_age_seconds ?? 21600, 'event age');
  if (eventAge < EVENT_AGE_RANGE[0] || eventAge > EVENT_AGE_RANGE[1]) {
    breaches.push(`the analyzer's maximum event age ${eventAge} s is outside Lambda's 60-21600`);
  }
  const timeout = number(analyzer.timeout_sec, 'analyzer timeout');
  const visibility = number(queue.visibility_timeout_seconds ?? 30, 'visibility timeout');
  if (visibility < eventAge + timeout) {
    breaches.push(
      `visibility timeout ${visibility} s < maximum event age ${eventAge} s + analyzer timeout ${timeout} s: a message reappears while an analyzer may still hold it`,
    );
  }
  if (trigger === 'sqs' && visibility < 6 * timeout) {
    breaches.push(
      `visibility timeout ${visibility} s < 6 x analyzer timeout ${timeout} s, which the event source mapping needs to retry a throttled batch`,
    );
  }

  const limit = number('${var.lambda_analyze_concurrency_limit}', 'concurrency limit');
  const reserved = number(analyzer.reserved_concurrent_executions ?? -1, 'reserved concurrency');
  if (reserved !== -1 && reserved < limit) {
    breaches.push(
      `the analyzer's reserved concurrency ${reserved} < the ${limit} invocations the trigger may run at once`,
    );
  }

  const mapping = dig(root, 'resource', 'aws_lambda_event_source_mapping', 'analyzer');
  const mappingBlock = Array.isArray(mapping) ? (mapping[0] as Block) : undefined;
  const schedule = dig(root, 'resource', 'aws_cloudwatch_event_rule', 'dispatch');
  const scheduleBlock = Array.isArray(schedule) ? (schedule[0] as Block) : undefined;
  const mappings = mappingBlock ? count(mappingBlock) : 0;
  const schedules = scheduleBlock ? count(scheduleBlock) : 0;
  if (trigger === 'sqs') {
    if (mappings !== 1 || schedules !== 0) {
      breaches.push(
        `analyzer_trigger = "sqs" deploys ${mappings} event source mapping(s) and ${schedules} dispatcher schedule(s), not 1 and 0`,
      );
    }
    if (mappingBlock) {
      const maximum = (mappingBlock.scaling_config as Block[] | undefined)?.[0]
        ?.maximum_concurrency as unknown;
      if (maximum === undefined || number(maximum, 'maximum concurrency') > limit) {
        breaches.push(
          `the event source mapping's maximum concurrency ${String(maximum === undefined ? 'unset' : value(maximum))} exceeds lambda_analyze_concurrency_limit ${limit}`,
        );
      }
      const responseTypes = (mappingBlock.function_response_types ?? []) as string[];
      if (!responseTypes.includes('ReportBatchItemFailures')) {
        breaches.push(
          'the event source mapping does not use ReportBatchItemFailures: one failed object returns the whole batch',
        );
      }
      if (mappingBlock.function_name !== '${module.analyzer.alias_arn}') {
        breaches.push('the event source mapping does not invoke the analyzer alias');
      }
      if (mappingBlock.event_source_arn !== '${aws_sqs_queue.analyzer.arn}') {
        breaches.push('the event source mapping does not read the analyzer queue');
      }
    }
  } else if (mappings !== 0 || schedules !== 1) {
    breaches.push(
      `analyzer_trigger = "dispatcher" deploys ${mappings} event source mapping(s) and ${schedules} dispatcher schedule(s), not 0 and 1`,
    );
  }

  // The dispatcher holds one slot per invocation from before its receive until the analyzer ends.
  const environment = (dispatcher.environment_variables ?? {}) as Block;
  const slots = number(environment.ANALYZER_CONCURRENCY_LIMIT ?? 'NaN', 'dispatch slots');
  if (slots > limit) {
    breaches.push(
      `the dispatcher has ${slots} slots for the ${limit} analyzers lambda_analyze_concurrency_limit allows`,
    );
  }
  const wait = number(environment.SQS_WAIT_TIME_SECONDS ?? 'NaN', 'long poll');
  const lease = number(environment.DISPATCH_SLOT_LEASE_SECONDS ?? 'NaN', 'slot lease');
  if (lease < wait + eventAge + timeout) {
    breaches.push(
      `a dispatch slot lease of ${lease} s < long poll ${wait} s + maximum event age ${eventAge} s + analyzer timeout ${timeout} s: a slot frees itself while its analyzer may still run`,
    );
  }
  return breaches;
}
