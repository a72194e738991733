import { appendFile } from 'node:fs/promises';

import { errorText } from '@binaryalert/core';
import type { DeliveredAttribute, PublishedMessage, PublishSender } from './sns';

/** One alert as stored in alerts.jsonl and sent to webhooks (message parsed when it is JSON). */
export interface AlertRecord {
  time: string;
  topicArn: string;
  subject?: string;
  message: unknown;
  /** SNS message attributes as HTTP/S subscribers get them (`rules`, `rule_files`, `sha256`). */
  messageAttributes: Record<string, DeliveredAttribute>;
  /** The local Lambda invocation that published it, when the stack could tell. */
  sender?: PublishSender;
}

export function alertRecord(published: PublishedMessage): AlertRecord {
  let message: unknown = published.message;
  try {
    message = JSON.parse(published.message);
  } catch {
    // plain-text message: keep it as sent
  }
  return {
    time: published.time,
    topicArn: published.topicArn,
    ...(published.subject === undefined ? {} : { subject: published.subject }),
    message,
    messageAttributes: published.messageAttributes,
    ...(published.sender ? { sender: published.sender } : {}),
  };
}

function field(value: unknown, ...path: string[]): unknown {
  let node = value;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** A few readable console lines for one alert (a BinaryAlert match summary or any message). */
export function formatAlert(alert: AlertRecord): string {
  const topic = alert.topicArn.split(':').pop() ?? alert.topicArn;
  const lines = [`ALERT ${alert.time} ${topic}${alert.subject ? `: ${alert.subject}` : ''}`];
  const location = field(alert.message, 'FileInfo', 'S3Location');
  if (typeof location === 'string') {
    lines.push(`  object:   ${location}`);
    const filepath = field(alert.message, 'FileInfo', 'S3Metadata', 'filepath');
    if (typeof filepath === 'string' && filepath) lines.push(`  filepath: ${filepath}`);
    const sha = field(alert.message, 'FileInfo', 'SHA256');
    if (typeof sha === 'string') lines.push(`  sha256:   ${sha}`);
    const rules = field(alert.message, 'MatchedRules');
    if (rules && typeof rules === 'object') {
      const names = Object.values(rules as Record<string, unknown>).map((rule) => {
        const file = field(rule, 'RuleFile');
        const name = field(rule, 'RuleName');
        return typeof file === 'string' && file ? `${file}:${String(name)}` : String(name);
      });
      lines.push(`  rules:    ${names.join(', ')}`);
    }
  } else {
    const text = typeof alert.message === 'string' ? alert.message : JSON.stringify(alert.message);
    lines.push(`  ${text.length > 2000 ? `${text.slice(0, 2000)}...` : text}`);
  }
  return lines.join('\n');
}

/** Appends one alert to the JSON-lines file. */
export async function appendAlert(path: string, alert: AlertRecord): Promise<void> {
  await appendFile(path, `${JSON.stringify(alert)}\n`);
}

/** POSTs one alert as JSON to each webhook; failures are reported, never thrown. */
export async function postToWebhooks(
  urls: string[],
  alert: AlertRecord,
  onFailure: (url: string, error: unknown) => void,
): Promise<void> {
  await Promise.all(
    urls.map(async (url) => {
      try {
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(alert),
          signal: AbortSignal.timeout(10_000),
        });
        if (!response.ok) onFailure(url, new Error(`HTTP ${response.status}`));
      } catch (error) {
        onFailure(url, error);
      }
    }),
  );
}

export interface AlertSinks {
  /** Every alert delivered so far in this run. */
  alerts: AlertRecord[];
  /** Delivers one SNS message: console, `alertsPath` and the webhooks; resolves once the alert
   * is in `alertsPath` (so a publish that was answered survives a kill -9 of the stack). */
  deliver: (published: PublishedMessage) => Promise<void>;
}

/** Where local SNS alerts go: the console, a JSON-lines file and webhooks; failures are printed. */
export function createAlertSinks(options: {
  alertsPath: string;
  webhooks: string[];
  print: (text: string) => void;
}): AlertSinks {
  const { alertsPath, webhooks, print } = options;
  const alerts: AlertRecord[] = [];
  return {
    alerts,
    deliver: async (published) => {
      const alert = alertRecord(published);
      alerts.push(alert);
      print(formatAlert(alert));
      if (webhooks.length > 0) {
        void postToWebhooks(webhooks, alert, (url, error) =>
          print(`[local] webhook ${url} failed: ${errorText(error)}`),
        );
      }
      await appendAlert(alertsPath, alert).catch((error: unknown) =>
        print(`[local] cannot append to ${alertsPath}: ${errorText(error)}`),
      );
    },
  };
}
