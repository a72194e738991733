import type { SQSClient } from '@aws-sdk/client-sqs';
import type { BinaryAlertConfig, ResourceNames } from '@binaryalert/deployment';

import { startEventSourceMapping } from './eventSourceMapping';
import type { InvokeOutcome, LambdaRuntime } from './lambda';
import { startDispatchSchedule } from './scheduler';

export interface AnalyzerTriggerOptions {
  /** `analyzer_trigger` from terraform.tfvars. */
  trigger: BinaryAlertConfig['analyzer_trigger'];
  runtime: LambdaRuntime;
  sqs: SQSClient;
  queueUrl: string;
  queueArn: string;
  region: string;
  names: ResourceNames;
  /** Analyzer invocations that may run at once. */
  analyzerWorkers: number;
  /** Pause between dispatcher runs that found no work (default: the schedule's). */
  dispatchIntervalMs?: number;
  onFailure: (functionName: string, outcome: InvokeOutcome) => void;
  print: (text: string) => void;
}

/**
 * Starts what hands queued messages to the analyzer, as `analyzer_trigger` chooses on AWS: the
 * SQS event source mapping, or the dispatcher on its schedule. Returns the stop function.
 */
export function startAnalyzerTrigger(options: AnalyzerTriggerOptions): () => Promise<void> {
  const { runtime, names } = options;
  return options.trigger === 'sqs'
    ? startEventSourceMapping({
        runtime,
        sqs: options.sqs,
        queueUrl: options.queueUrl,
        queueArn: options.queueArn,
        region: options.region,
        analyzerFunction: names.analyzerFunction,
        maxConcurrency: options.analyzerWorkers,
        onFailure: options.onFailure,
        print: options.print,
      })
    : startDispatchSchedule({
        runtime,
        dispatcherFunction: names.dispatcherFunction,
        analyzerFunction: names.analyzerFunction,
        analyzerWorkers: options.analyzerWorkers,
        ...(options.dispatchIntervalMs === undefined
          ? {}
          : { intervalMs: options.dispatchIntervalMs }),
        onFailure: options.onFailure,
      });
}
