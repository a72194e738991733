// The wiring contract between the Terraform, terraform.tfvars, the configuration loader and the
// workers' code, checked on the parsed HCL (providers cannot be downloaded here, so no validate).
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  BinaryAlertConfigSchema,
  COMMON_SETTINGS,
  FUNCTION_NAMES,
  FUNCTIONS as MANIFEST,
  HANDLER,
  functionSpec,
  DEFAULT_TFVARS_PATH,
  functionEnvironments,
  parseTfvars,
  resourceNames,
  validateTfvars,
  LAMBDA_RUNTIMES,
  type BinaryAlertConfig,
  type FunctionName,
  type ResourceNames,
} from '../packages/deployment/src';
import { BUNDLE_TARGET, LAMBDA_FUNCTIONS } from '../packages/cli/src/build';
import { matchTableDefinition, verdictTableDefinition } from '../packages/core/src/match-table';
import { createLogger } from '../packages/core/src/logger';
import {
  addMetric,
  createMetrics,
  METRIC_NAMESPACE,
  METRICS,
  type MetricName,
} from '../packages/core/src/metrics';
import { parseModule, type Block } from './hcl';
import { actionsUsedBy } from './sdk-calls';

// Parsed HCL is untyped JSON; the assertions below are what checks its shape.
/* eslint-disable @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-call */

const MODULE_DIR = path.join(__dirname, 'modules', 'lambda');
const FUNCTIONS = FUNCTION_NAMES;

/** Every string anywhere in a parsed block (where HCL expressions end up as "${...}"). */
function strings(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(strings);
  if (value && typeof value === 'object') return Object.values(value).flatMap(strings);
  return [];
}

/** The metrics an alarm watches: its metric_name, or those of its metric math queries. */
function alarmMetrics(alarm: Block): string[] {
  if (typeof alarm.metric_name === 'string') return [alarm.metric_name];
  return ((alarm.metric_query ?? []) as Block[]).flatMap((query) =>
    ((query.metric ?? []) as Block[]).map((metric) => metric.metric_name as string),
  );
}

function only(blocks: unknown): Block {
  expect(Array.isArray(blocks) && blocks.length === 1).toBe(true);
  return (blocks as Block[])[0]!;
}

/** The tfvars settings a module instance reads, directly or through a local (not the names). */
function settingsUsedBy(instance: Block): string[] {
  const locals = Object.assign({}, ...root.locals) as Record<string, unknown>;
  const expressions = strings(instance);
  for (const text of [...expressions]) {
    for (const [, name] of text.matchAll(/\blocal\.(\w+)/g)) {
      if (name !== 'names' && name !== 'lambda_zip') expressions.push(...strings(locals[name!]));
    }
  }
  const used = expressions.flatMap((text) => [...text.matchAll(/\bvar\.(\w+)/g)].map((m) => m[1]!));
  return [...new Set(used)].sort();
}

let root: Block;
let lambdaModule: Block;
let tfvars: Record<string, unknown>;
let config: BinaryAlertConfig;

beforeAll(async () => {
  root = await parseModule(__dirname);
  lambdaModule = await parseModule(MODULE_DIR);
  tfvars = await parseTfvars(readFileSync(DEFAULT_TFVARS_PATH, 'utf8'));
  config = validateTfvars(tfvars);
});

describe('variables and outputs', () => {
  it('declares exactly the settings of terraform.tfvars', () => {
    const declared = Object.keys(root.variable).sort();

    expect(declared).toEqual(Object.keys(tfvars).sort());
    expect(declared).toEqual(Object.keys(BinaryAlertConfigSchema.shape).sort());
  });

  it('gives every variable a type and a description and every output a description', () => {
    for (const mod of [root, lambdaModule]) {
      for (const [name, blocks] of Object.entries(mod.variable as Block)) {
        const variable = only(blocks);
        expect([name, typeof variable.type]).toEqual([name, 'string']);
        expect([name, typeof variable.description]).toEqual([name, 'string']);
      }
      for (const [name, blocks] of Object.entries(mod.output as Block)) {
        expect([name, typeof only(blocks).description]).toEqual([name, 'string']);
      }
    }
  });

  it('refers only to declared variables, locals, modules, resources and data sources', () => {
    for (const mod of [root, lambdaModule]) {
      const locals = new Set((mod.locals ?? []).flatMap((block: Block) => Object.keys(block)));
      const expressions = strings({ ...mod, variable: undefined }).join('\n');
      const problems: string[] = [];
      for (const [, name] of expressions.matchAll(/\bvar\.(\w+)/g)) {
        if (!mod.variable[name!]) problems.push(`var.${name}`);
      }
      for (const [, name] of expressions.matchAll(/\blocal\.(\w+)/g)) {
        if (!locals.has(name!)) problems.push(`local.${name}`);
      }
      for (const [, name] of expressions.matchAll(/\bmodule\.(\w+)/g)) {
        if (!mod.module?.[name!]) problems.push(`module.${name}`);
      }
      for (const [, type, name] of expressions.matchAll(/\bdata\.(\w+)\.(\w+)/g)) {
        if (!mod.data?.[type!]?.[name!]) problems.push(`data.${type}.${name}`);
      }
      for (const [, type, name] of expressions.matchAll(/(?<![.\w])(aws_\w+)\.(\w+)/g)) {
        if (!mod.resource?.[type!]?.[name!]) problems.push(`${type}.${name}`);
      }
      expect(problems).toEqual([]);
    }
  });

  it("names only keys that the root module's map locals define", () => {
    const locals = Object.assign({}, ...root.locals) as Record<string, unknown>;
    const expressions = strings({ ...root, locals: undefined }).join('\n');
    const problems: string[] = [];
    for (const [, map, key] of expressions.matchAll(/\blocal\.(names|lambda_zip)\.(\w+)/g)) {
      if (!(key! in (locals[map!] as Record<string, unknown>)))
        problems.push(`local.${map}.${key}`);
    }
    expect(problems).toEqual([]);
  });

  it('passes every instance of modules/lambda exactly the variables it declares', () => {
    const declared = Object.keys(lambdaModule.variable as Block);
    const required = declared.filter((name) => !('default' in only(lambdaModule.variable[name])));
    for (const fn of FUNCTIONS) {
      const inputs = Object.keys(only(root.module[fn])).filter((key) => key !== 'source');

      expect([fn, inputs.filter((name) => !declared.includes(name))]).toEqual([fn, []]);
      expect([fn, required.filter((name) => !inputs.includes(name))]).toEqual([fn, []]);
    }
  });

  it('outputs every module output the root module uses', () => {
    const used = strings(root).join('\n');
    for (const [, , output] of used.matchAll(/\bmodule\.(\w+)\.(\w+)/g)) {
      expect(lambdaModule.output).toHaveProperty(output!);
    }
  });
});

describe('names', () => {
  it('names every resource as resourceNames() does', () => {
    const names = Object.assign({}, ...root.locals).names as Record<string, string>;
    const evaluate = (expression: string) =>
      expression
        .replaceAll('${replace(var.name_prefix, "_", ".")}', config.name_prefix.replace(/_/g, '.'))
        .replaceAll('${var.name_prefix}', config.name_prefix)
        .replaceAll('${var.aws_region}', config.aws_region);
    const expected = resourceNames(config);
    const pairs: [keyof ResourceNames, string][] = [
      ['bucket', 'bucket'],
      ['queue', 'queue'],
      ['deadLetterQueue', 'dead_letter_queue'],
      ['table', 'table'],
      ['dispatchSlotsTable', 'dispatch_slots'],
      ['verdictTable', 'verdict_table'],
      ['rulesBucket', 'rules_bucket'],
      ['matchesTopic', 'matches_topic'],
      ['negativeMatchesTopic', 'negative_topic'],
      ['alarmTopic', 'alarm_topic'],
      ['analyzerFunction', 'analyzer_function'],
      ['dispatcherFunction', 'dispatcher_function'],
      ['batcherFunction', 'batcher_function'],
    ];

    for (const [key, local] of pairs) {
      expect([key, evaluate(names[local]!)]).toEqual([key, expected[key]]);
    }
    // The log bucket is conditional: the created one is named like resourceNames() names it.
    expect(names.log_bucket).toContain(
      '"${replace(var.name_prefix, "_", ".")}.binaryalert-s3-access-logs.${var.aws_region}"',
    );
    expect(
      evaluate(
        '${replace(var.name_prefix, "_", ".")}.binaryalert-s3-access-logs.${var.aws_region}',
      ),
    ).toBe(resourceNames({ ...config, s3_log_bucket: '' }).logBucket);
  });
});

describe('Lambda functions', () => {
  const ids = { accountId: '123456789012', queueUrl: 'https://sqs.example/q' };

  it.each(FUNCTIONS)('%s reads its zip from dist/lambda with handler index.handler', (fn) => {
    const instance = only(root.module[fn]);
    const zips = Object.assign({}, ...root.locals).lambda_zip as Record<string, string>;

    expect(instance.source).toBe('./modules/lambda');
    expect(zips[fn]).toBe(`\${path.module}/../dist/lambda/${fn}.zip`);
    expect(instance.filename).toBe(`\${local.lambda_zip.${fn}}`);
    expect(instance.source_code_hash).toBe(`\${filebase64sha256(local.lambda_zip.${fn})}`);
    expect(instance.handler).toBe(HANDLER);
    expect(instance.function_name).toBe(`\${local.names.${fn}_function}`);
    expect(instance.description).toBe(functionSpec(fn).description);
    expect(instance.memory_size_mb).toBe(`\${var.${functionSpec(fn).memoryMbSetting}}`);
    expect(instance.timeout_sec).toBe(`\${var.${functionSpec(fn).timeoutSecSetting}}`);
  });

  it.each(FUNCTIONS)('%s uses exactly the settings its manifest entry lists', (fn) => {
    const used = settingsUsedBy(only(root.module[fn]));
    const listed = [...functionSpec(fn).settings, ...COMMON_SETTINGS];

    expect({
      fn,
      notInManifest: used.filter((setting) => !listed.includes(setting as never)),
    }).toEqual({ fn, notInManifest: [] });
    expect({ fn, notInTerraform: listed.filter((setting) => !used.includes(setting)) }).toEqual({
      fn,
      notInTerraform: [],
    });
  });

  it('deploys the functions the build writes, on a runtime that runs its bundles', () => {
    const runtimeMajor = Number(/^nodejs(\d+)\.x$/.exec(config.lambda_runtime)?.[1]);
    const bundleMajor = Number(/^node(\d+)$/.exec(BUNDLE_TARGET)?.[1]);

    expect([...LAMBDA_FUNCTIONS].sort()).toEqual([...FUNCTIONS].sort());
    expect(MANIFEST.map((fn) => fn.packageDir)).toEqual(FUNCTIONS.map((fn) => `packages/${fn}`));
    expect(Object.keys(root.module).sort()).toEqual([...FUNCTIONS].sort());
    expect(runtimeMajor).toBeGreaterThanOrEqual(bundleMajor);
    expect(only(root.module.analyzer).runtime).toBe('${var.lambda_runtime}');
  });

  it.each(FUNCTIONS)('%s gets exactly the environment functionEnvironments() builds', (fn) => {
    const terraformEnv = Object.keys(only(root.module[fn]).environment_variables as Block).sort();

    expect(terraformEnv).toEqual(Object.keys(functionEnvironments(config, ids)[fn]).sort());
  });

  it.each(FUNCTIONS)('%s environment is what its handler env schema reads', (fn) => {
    const env = functionEnvironments(config, ids)[fn];
    const schema = functionSpec(fn).envSchema;
    const names = Object.keys(schema.shape);
    const required = names.filter((name) => !schema.shape[name]!.safeParse(undefined).success);

    expect(Object.keys(env).filter((name) => !names.includes(name))).toEqual([]);
    expect(required.filter((name) => !(name in env))).toEqual([]);
    expect(schema.safeParse(env).success).toBe(true);
  });

  it('publishes a version per change behind a Production alias, with logs, alarms and a role', () => {
    const resources = lambdaModule.resource as Block;
    const fn = only(resources.aws_lambda_function.this);
    const alias = only(resources.aws_lambda_alias.production);
    const logs = only(resources.aws_cloudwatch_log_group.this);
    const alarms = resources.aws_cloudwatch_metric_alarm as Block;

    expect(fn.publish).toBe(true);
    expect(fn.role).toBe('${aws_iam_role.this.arn}');
    expect(alias.name).toBe('Production');
    expect(alias.function_version).toBe('${aws_lambda_function.this.version}');
    expect(logs.name).toBe('/aws/lambda/${var.function_name}');
    expect(logs.retention_in_days).toBe('${var.log_retention_days}');
    expect(alarmMetrics(only(alarms.errors))).toEqual(['Errors', 'Invocations']);
    expect(only(alarms.throttles).metric_name).toBe('Throttles');
    expect(only(resources.aws_iam_role_policy.function).policy).toBe('${var.policy_json}');
    expect(only(resources.aws_iam_role_policy.logging).policy).toContain('logging');
  });

  it('keeps the Production alias name in step with the environments', () => {
    const env = functionEnvironments(config, ids);

    expect(env.dispatcher.ANALYZER_FUNCTION_QUALIFIER).toBe('Production');
    expect(env.batcher.BATCH_LAMBDA_QUALIFIER).toBe('Production');
    expect(only(root.module.batcher).environment_variables.BATCH_LAMBDA_QUALIFIER).toBe(
      'Production',
    );
  });
});

describe('IAM', () => {
  function statements(fn: FunctionName): Block[] {
    return only(root.data.aws_iam_policy_document[fn]).statement as Block[];
  }

  it.each(FUNCTIONS)('%s may do exactly what its manifest entry and its code say', async (fn) => {
    const granted = statements(fn)
      .flatMap((statement) => statement.actions as string[])
      .filter((action, i, all) => all.indexOf(action) === i)
      .sort();
    const listed = [...functionSpec(fn).actions].sort();

    expect({ fn, granted }).toEqual({ fn, granted: listed });
    expect({ fn, called: await actionsUsedBy(fn) }).toEqual({ fn, called: listed });
  });

  // Metrics are embedded in the log (EMF): no function needs cloudwatch:PutMetricData, the one
  // action that used to be granted on "*".
  it.each(FUNCTIONS)('%s grants nothing on "*" and no CloudWatch action', (fn) => {
    for (const statement of statements(fn)) {
      expect(statement.effect ?? 'Allow').toBe('Allow');
      expect((statement.actions as string[]).some((action) => action.includes('*'))).toBe(false);
      expect(
        (statement.actions as string[]).filter((action) => action.startsWith('cloudwatch:')),
      ).toEqual([]);
      // A resources list built by an expression (concat) parses as one "${...}" string.
      expect(strings(statement.resources)).not.toContain('*');
    }
  });

  it('lets the dispatcher invoke only the analyzer alias and the batcher only itself', () => {
    const invoke = (fn: FunctionName) =>
      statements(fn).find((s) => (s.actions as string[]).includes('lambda:InvokeFunction'));

    expect(invoke('dispatcher')?.resources).toEqual(['${module.analyzer.alias_arn}']);
    expect(invoke('batcher')?.resources).toEqual([
      expect.stringMatching(/:function:\$\{local\.names\.batcher_function\}:Production$/),
    ]);
  });
});

describe('IAM statements that depend on the settings', () => {
  function dynamicStatement(sid: string): Block {
    const dynamics = only(root.data.aws_iam_policy_document.analyzer).dynamic as Block;
    const found = (dynamics.statement as Block[]).find(
      (statement) => only(statement.content).sid === sid,
    );
    if (!found) throw new Error(`no dynamic statement ${sid}`);
    return found;
  }

  it('lets the analyzer decrypt with external KMS keys only through S3, and only when listed', () => {
    const statement = dynamicStatement('DecryptExternalObjects');
    const content = only(statement.content);

    expect(statement.for_each).toBe('${length(var.external_kms_key_resources) > 0 ? [1] : []}');
    expect(content.actions).toEqual(['kms:Decrypt']);
    expect(content.resources).toBe('${var.external_kms_key_resources}');
    expect(only(content.condition)).toEqual({
      test: 'StringEquals',
      variable: 'kms:ViaService',
      values: ['s3.${var.aws_region}.amazonaws.com'],
    });
  });

  it('lets the event source mapping poll the queue with the analyzer role only in sqs mode', () => {
    const statement = dynamicStatement('EventSourceMappingPollsQueue');
    const content = only(statement.content);
    // With DeleteMessage (granted for the dispatcher payloads) these are the actions the
    // mapping needs (AWSLambdaSQSQueueExecutionRole).
    const granted = only(root.data.aws_iam_policy_document.analyzer).statement as Block[];

    expect(statement.for_each).toBe('${var.analyzer_trigger == "sqs" ? [1] : []}');
    expect(content.actions).toEqual(['sqs:ReceiveMessage', 'sqs:GetQueueAttributes']);
    expect(content.resources).toEqual(['${aws_sqs_queue.analyzer.arn}']);
    expect(granted.flatMap((s) => s.actions as string[])).toContain('sqs:DeleteMessage');
  });
});

describe('alarms', () => {
  const alarm = (name: string) => only(lambdaModule.resource.aws_cloudwatch_metric_alarm[name]);
  const variable = (name: string) => only(lambdaModule.variable[name]);

  it('alarms on the share of failed invocations over consecutive periods, not one error', () => {
    const errors = alarm('errors');
    const rate = (errors.metric_query as Block[]).find((query) => query.return_data === true);

    expect(rate?.expression).toBe('IF(invocations > 0, 100 * errors / invocations, 0)');
    expect(errors.threshold).toBe('${var.errors_alarm_percent}');
    expect(errors.evaluation_periods).toBe('${var.errors_alarm_periods}');
    expect(errors.datapoints_to_alarm).toBe('${var.errors_alarm_periods}');
    expect(variable('errors_alarm_percent').default).toBeGreaterThan(0);
    expect(variable('errors_alarm_periods').default).toBeGreaterThanOrEqual(3);
    // The analyzer and dispatcher keep those defaults; only the rare batcher alarms at once.
    expect(only(root.module.analyzer)).not.toHaveProperty('errors_alarm_periods');
    expect(only(root.module.dispatcher)).not.toHaveProperty('errors_alarm_periods');
    expect(only(root.module.batcher).errors_alarm_periods).toBe(1);
  });

  it('alarms on throttles only when they last several periods', () => {
    const throttles = alarm('throttles');

    expect(throttles.evaluation_periods).toBe('${var.throttles_alarm_periods}');
    expect(throttles.datapoints_to_alarm).toBe('${var.throttles_alarm_periods}');
    expect(variable('throttles_alarm_periods').default).toBeGreaterThanOrEqual(3);
  });
});

describe('provider', () => {
  // The first AWS provider release whose runtime validation accepts each runtime offered
  // (hashicorp/terraform-provider-aws#44986: nodejs24.x from 6.19.0; older runtimes every 6.x).
  const FIRST_PROVIDER_WITH: Record<(typeof LAMBDA_RUNTIMES)[number], string> = {
    'nodejs20.x': '6.0.0',
    'nodejs22.x': '6.0.0',
    'nodejs24.x': '6.19.0',
  };
  const semver = (version: string) => version.split('.').map(Number);
  const atLeast = (version: string, minimum: string) => {
    const [a, b] = [semver(version), semver(minimum)];
    for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
    return true;
  };

  it('accepts only AWS provider versions that know every runtime offered', () => {
    for (const mod of [root, lambdaModule]) {
      const constraint = only(only(mod.terraform).required_providers).aws.version as string;
      const pessimistic = /^~>\s*(\d+)\.(\d+)$/.exec(constraint);
      expect(pessimistic).not.toBeNull(); // "~> X.Y": at least X.Y, below X+1
      const minimum = `${pessimistic![1]}.${pessimistic![2]}.0`;

      for (const runtime of LAMBDA_RUNTIMES) {
        expect([runtime, atLeast(minimum, FIRST_PROVIDER_WITH[runtime])]).toEqual([runtime, true]);
      }
    }
  });
});

describe('resources', () => {
  it('wires the bucket to the queue and lets only the bucket send to it', () => {
    const resources = root.resource as Block;
    const notification = only(resources.aws_s3_bucket_notification.binaries);
    const queuePolicy = only(root.data.aws_iam_policy_document.analyzer_queue).statement;

    expect(only(notification.queue).queue_arn).toBe('${aws_sqs_queue.analyzer.arn}');
    expect(only(notification.queue).events).toEqual(['s3:ObjectCreated:*']);
    expect(only(queuePolicy).actions).toEqual(['sqs:SendMessage']);
    expect(strings(only(queuePolicy).condition)).toContain('${aws_s3_bucket.binaries.arn}');
  });

  it('keys the match table by SHA256 alone, as the local stack and tests create it', () => {
    const table = only(root.resource.aws_dynamodb_table.matches);
    const local = matchTableDefinition('any');

    expect([table.hash_key, table.range_key]).toEqual(['SHA256', undefined]);
    expect(local.KeySchema).toEqual([{ AttributeName: 'SHA256', KeyType: 'HASH' }]);
    expect(
      local.AttributeDefinitions?.map((a) => ({ name: a.AttributeName, type: a.AttributeType })),
    ).toEqual(table.attribute);
  });

  it('defines the verdict ledger as the local stack and tests create it, encrypted, with PITR', () => {
    const table = only(root.resource.aws_dynamodb_table.verdicts);
    const local = verdictTableDefinition('any');
    const keysOf = (schema: { AttributeName?: string; KeyType?: string }[] = []) => [
      schema.find((key) => key.KeyType === 'HASH')?.AttributeName,
      schema.find((key) => key.KeyType === 'RANGE')?.AttributeName,
    ];

    expect(keysOf(local.KeySchema)).toEqual([table.hash_key, table.range_key]);
    expect(
      local.AttributeDefinitions?.map((a) => ({ name: a.AttributeName, type: a.AttributeType })),
    ).toEqual(table.attribute);
    expect(
      (table.global_secondary_index as Block[]).map((index) => ({
        name: index.name,
        keys: [index.hash_key, index.range_key],
        projection: index.projection_type,
      })),
    ).toEqual(
      (local.GlobalSecondaryIndexes ?? []).map((index) => ({
        name: index.IndexName,
        keys: keysOf(index.KeySchema),
        projection: index.Projection?.ProjectionType,
      })),
    );
    expect(only(table.server_side_encryption).enabled).toBe(true);
    expect(only(table.point_in_time_recovery).enabled).toBe(true);
    expect(only(table.ttl)).toEqual({
      attribute_name: 'ExpiresAt',
      enabled: '${var.verdict_ttl_days > 0}',
    });
    expect(table.name).toBe('${local.names.verdict_table}');
  });

  it('gives every alarm a description that says what to do', () => {
    const alarms = [
      ...Object.values(root.resource.aws_cloudwatch_metric_alarm as Block),
      ...Object.values(lambdaModule.resource.aws_cloudwatch_metric_alarm as Block),
    ].map(only);
    const metrics = alarms.flatMap(alarmMetrics);

    expect(metrics).toEqual(
      expect.arrayContaining([
        'Errors',
        'Throttles',
        'ApproximateAgeOfOldestMessage',
        'ApproximateNumberOfMessagesVisible',
        'AnalyzedBinaries',
        'BatchEnqueueFailures',
        'YaraRules',
        'AsyncEventsDropped',
        '${each.value}',
        '${each.key}',
      ]),
    );
    for (const alarm of alarms) {
      expect(alarm.alarm_description).toMatch(/\. [A-Z].*(run|raise|check|fix|find|switch)/i);
    }
  });
});

describe('custom metrics', () => {
  const locals = () => Object.assign({}, ...root.locals) as Record<string, unknown>;

  /** The dimension names of what Powertools Metrics writes for a function (as the code runs it). */
  function emittedDimensionNames(): string[] {
    const metrics = createMetrics(
      'a_function',
      createLogger('test', () => undefined),
    );
    addMetric(metrics, 'AnalyzedBinaries', 1);
    const emf = metrics.serializeMetrics();
    expect(emf).toHaveProperty('service', 'a_function');
    return emf._aws.CloudWatchMetrics.flatMap((directive) => directive.Dimensions.flat());
  }

  /** The alarms of the root module on BinaryAlert's own metrics, with the metrics each watches. */
  function customMetricAlarms(): { name: string; alarm: Block; metrics: string[] }[] {
    return Object.entries(root.resource.aws_cloudwatch_metric_alarm as Record<string, Block[]>)
      .map(([name, blocks]) => ({ name, alarm: only(blocks) }))
      .filter(({ alarm }) => alarm.namespace === '${local.metric_namespace}')
      .map(({ name, alarm }) => ({
        name,
        alarm,
        metrics:
          alarm.metric_name === '${each.key}'
            ? Object.keys(alarm.for_each as Block)
            : [alarm.metric_name as string],
      }));
  }

  it('uses the namespace the code writes, and one service per function, its deployed name', () => {
    expect(locals().metric_namespace).toBe(METRIC_NAMESPACE);
    expect(locals().functions).toEqual(
      Object.fromEntries(FUNCTIONS.map((fn) => [fn, `\${module.${fn}.function_name}`])),
    );
    for (const fn of FUNCTIONS) {
      expect(only(root.module[fn]).function_name).toBe(`\${local.names.${fn}_function}`);
    }
  });

  it('alarms select each metric by the dimensions its emitting function writes', () => {
    const alarms = customMetricAlarms();
    const dimensionNames = emittedDimensionNames();

    expect(alarms.map(({ name }) => name).sort()).toEqual([
      'batch_enqueue_failures',
      'no_analyzed_binaries',
      'unscanned_binaries',
      'yara_rules',
    ]);
    for (const { name, alarm, metrics } of alarms) {
      for (const metric of metrics) {
        expect({ name, metric, known: metric in METRICS }).toEqual({ name, metric, known: true });
        const emitter = METRICS[metric as MetricName].emitter;
        expect({ name, dimensions: alarm.dimensions }).toEqual({
          name,
          dimensions: { service: `\${local.functions.${emitter}}` },
        });
        expect(Object.keys(alarm.dimensions as Block)).toEqual(dimensionNames);
      }
    }
  });

  it('graphs each metric with the service of its emitting function', () => {
    const widgets = locals().custom_metric_widgets as {
      title: string;
      emitter: string;
      metrics: string[];
    }[];
    const dimensionNames = emittedDimensionNames();

    expect(widgets.length).toBeGreaterThan(0);
    for (const widget of widgets) {
      for (const metric of widget.metrics) {
        expect({
          widget: widget.title,
          metric,
          emitter: METRICS[metric as MetricName]?.emitter,
        }).toEqual({ widget: widget.title, metric, emitter: widget.emitter });
      }
    }
    // The widgets' metric lists are built by one expression; it must add exactly those dimensions.
    expect(dimensionNames).toEqual(['service']);
    expect(strings(locals().dashboard_widgets).join('\n')).toContain(
      '[local.metric_namespace, metric, "service", local.functions[widget.emitter]]',
    );
  });
});
