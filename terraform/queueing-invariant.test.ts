import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_TFVARS_PATH, parseTfvars } from '../packages/deployment/src';
import { evaluate, parseModule } from './hcl';
import { queueingInvariantBreaches, type ParsedTerraform } from './queueing-invariant';

const MODULE_DIR = path.join(__dirname, 'modules', 'lambda');

let tfvars: Record<string, unknown>;
let repository: ParsedTerraform;

beforeAll(async () => {
  tfvars = await parseTfvars(readFileSync(DEFAULT_TFVARS_PATH, 'utf8'));
  repository = { root: await parseModule(__dirname), lambdaModule: await parseModule(MODULE_DIR) };
});

/** The repository's Terraform with one piece of one file's text replaced (the planted breach). */
async function terraformWith(
  file: string,
  find: string | RegExp,
  replacement: string,
): Promise<ParsedTerraform> {
  let planted = false;
  const replace = (name: string, text: string): string => {
    if (name !== path.basename(file)) return text;
    const changed = text.replace(find, replacement);
    planted = changed !== text;
    return changed;
  };
  const inModule = file.startsWith('modules/');
  const parsed = {
    root: await parseModule(__dirname, inModule ? undefined : replace),
    lambdaModule: await parseModule(MODULE_DIR, inModule ? replace : undefined),
  };
  if (!planted) throw new Error(`${file} does not contain ${String(find)}`);
  return parsed;
}

describe('the queueing invariant', () => {
  it.each(['dispatcher', 'sqs'])(
    'holds for the repository with analyzer_trigger = %s',
    (trigger) => {
      expect(
        queueingInvariantBreaches(repository, { ...tfvars, analyzer_trigger: trigger }),
      ).toEqual([]);
    },
  );

  it('holds at the bounds of the settings', () => {
    const settings = { ...tfvars, lambda_analyze_timeout_sec: 900 };

    expect(queueingInvariantBreaches(repository, settings)).toEqual([]);
    expect(queueingInvariantBreaches(repository, { ...settings, analyzer_trigger: 'sqs' })).toEqual(
      [],
    );
  });

  it('fails when Lambda retries failed analyzer runs', async () => {
    const terraform = await terraformWith(
      'lambda.tf',
      /(module "analyzer"[\s\S]*?async_max_retry_attempts\s*=\s*)0/,
      '$12',
    );

    expect(queueingInvariantBreaches(terraform, tfvars)).toEqual([
      'Lambda retries a failed analyzer invocation 2 time(s) behind SQS',
    ]);
  });

  it('fails when the analyzer keeps the default event age of six hours', async () => {
    const terraform = await terraformWith(
      'lambda.tf',
      '  async_max_event_age_seconds = local.analyzer_max_event_age_seconds\n',
      '',
    );

    expect(queueingInvariantBreaches(terraform, tfvars)).toEqual([
      'visibility timeout 390 s < maximum event age 21600 s + analyzer timeout 300 s: a message reappears while an analyzer may still hold it',
      'a dispatch slot lease of 400 s < long poll 10 s + maximum event age 21600 s + analyzer timeout 300 s: a slot frees itself while its analyzer may still run',
    ]);
  });

  it('fails with the visibility timeout that covers only the analyzer timeout', async () => {
    const terraform = await terraformWith(
      'locals.tf',
      ': local.analyzer_max_event_age_seconds + var.lambda_analyze_timeout_sec + 30',
      ': var.lambda_analyze_timeout_sec + 30',
    );

    expect(queueingInvariantBreaches(terraform, tfvars)).toEqual([
      'visibility timeout 330 s < maximum event age 60 s + analyzer timeout 300 s: a message reappears while an analyzer may still hold it',
    ]);
  });

  it('fails when the event source mapping may retry a throttled batch after the message reappears', async () => {
    const terraform = await terraformWith(
      'locals.tf',
      '? 6 * var.lambda_analyze_timeout_sec',
      '? var.lambda_analyze_timeout_sec + 90',
    );

    expect(queueingInvariantBreaches(terraform, { ...tfvars, analyzer_trigger: 'sqs' })).toEqual([
      'visibility timeout 390 s < 6 x analyzer timeout 300 s, which the event source mapping needs to retry a throttled batch',
    ]);
  });

  it('fails when the module stops applying the event invoke config', async () => {
    const terraform = await terraformWith(
      'modules/lambda/main.tf',
      'maximum_retry_attempts       = var.async_max_retry_attempts',
      'maximum_retry_attempts       = 2',
    );

    expect(queueingInvariantBreaches(terraform, tfvars)).toEqual([
      'the event invoke config sets maximum_retry_attempts to 2',
    ]);
  });

  it('fails when fewer analyzers are reserved than the trigger starts', () => {
    expect(
      queueingInvariantBreaches(repository, {
        ...tfvars,
        lambda_analyze_concurrency_limit: 50,
        lambda_analyze_reserved_concurrency: 20,
      }),
    ).toEqual([
      "the analyzer's reserved concurrency 20 < the 50 invocations the trigger may run at once",
    ]);
  });

  it('fails when the dispatcher has more slots than analyzers may run', async () => {
    const terraform = await terraformWith(
      'lambda.tf',
      'ANALYZER_CONCURRENCY_LIMIT  = tostring(var.lambda_analyze_concurrency_limit)',
      'ANALYZER_CONCURRENCY_LIMIT  = tostring(var.lambda_analyze_concurrency_limit + 1)',
    );

    expect(queueingInvariantBreaches(terraform, tfvars)).toEqual([
      'the dispatcher has 9 slots for the 8 analyzers lambda_analyze_concurrency_limit allows',
    ]);
  });

  it('fails when a dispatch slot frees itself before its analyzer must have ended', async () => {
    const terraform = await terraformWith(
      'locals.tf',
      'var.lambda_dispatch_wait_time_seconds + local.analyzer_max_event_age_seconds + ',
      'var.lambda_dispatch_wait_time_seconds + ',
    );

    expect(queueingInvariantBreaches(terraform, tfvars)).toEqual([
      'a dispatch slot lease of 340 s < long poll 10 s + maximum event age 60 s + analyzer timeout 300 s: a slot frees itself while its analyzer may still run',
    ]);
  });

  it('fails when the event source mapping may run more analyzers than the limit', async () => {
    const terraform = await terraformWith(
      'sqs.tf',
      'maximum_concurrency = var.lambda_analyze_concurrency_limit',
      'maximum_concurrency = var.lambda_analyze_concurrency_limit * 2',
    );

    expect(queueingInvariantBreaches(terraform, { ...tfvars, analyzer_trigger: 'sqs' })).toEqual([
      "the event source mapping's maximum concurrency 16 exceeds lambda_analyze_concurrency_limit 8",
    ]);
  });

  it('fails when the event source mapping returns whole batches', async () => {
    const terraform = await terraformWith(
      'sqs.tf',
      'function_response_types = ["ReportBatchItemFailures"]',
      'function_response_types = []',
    );

    expect(queueingInvariantBreaches(terraform, { ...tfvars, analyzer_trigger: 'sqs' })).toEqual([
      'the event source mapping does not use ReportBatchItemFailures: one failed object returns the whole batch',
    ]);
  });

  it('fails when the dispatcher schedule also runs beside the event source mapping', async () => {
    const terraform = await terraformWith(
      'events.tf',
      /(resource "aws_cloudwatch_event_rule" "dispatch" \{\n)\s*count\s*=.*\n/,
      '$1',
    );

    expect(queueingInvariantBreaches(terraform, { ...tfvars, analyzer_trigger: 'sqs' })).toEqual([
      'analyzer_trigger = "sqs" deploys 1 event source mapping(s) and 1 dispatcher schedule(s), not 1 and 0',
    ]);
  });
});

describe('evaluate', () => {
  const scope = {
    variables: { timeout: 300, trigger: 'sqs', wait: '${local.base + 1}' },
    locals: { base: 10, loop: '${local.loop}' },
  };

  it('computes arithmetic, comparisons and conditionals over var and local', () => {
    expect(evaluate('${var.timeout + var.wait * 2 - (4 / 2)}', scope)).toBe(320);
    expect(evaluate('${var.trigger == "sqs" ? 6 * var.timeout : 1}', scope)).toBe(1800);
    expect(evaluate('${var.trigger != "sqs" ? 1 : max(2, local.base)}', scope)).toBe(10);
    expect(evaluate('${tostring(-var.timeout)}', scope)).toBe('-300');
    expect(evaluate(42, scope)).toBe(42);
  });

  it('refuses what it cannot evaluate rather than guessing', () => {
    expect(() => evaluate('${module.analyzer.alias_arn}', scope)).toThrow('cannot evaluate');
    expect(() => evaluate('${var.missing}', scope)).toThrow('undefined variable');
    expect(() => evaluate('${local.loop}', scope)).toThrow('cyclic local');
    expect(() => evaluate('${length(var.trigger)}', scope)).toThrow('function length');
    expect(() => evaluate('${var.trigger + 1}', scope)).toThrow('"sqs" is not a number');
    expect(() => evaluate('rate(${var.timeout} minutes)', scope)).toThrow('template');
  });
});
