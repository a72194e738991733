import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

import {
  parseQueryParams,
  readBody,
  sendJson,
  sendJsonError,
  sendQueryError,
  sendQueryResult,
} from './protocol';

const SNS_XMLNS = 'http://sns.amazonaws.com/doc/2010-03-31/';

/** A message attribute as SNS delivers it to HTTP/S subscribers (`{Type, Value}`). */
export interface DeliveredAttribute {
  Type: string;
  Value: string;
}

/** The local Lambda invocation that sent a Publish (local stack only: for post-mortems). */
export interface PublishSender {
  functionName: string;
  /** The invocation's request id (its function's log lines carry it as function_request_id). */
  invocation: string;
  pid: number;
}

/** One SNS Publish received by the local stack. */
export interface PublishedMessage {
  messageId: string;
  time: string;
  /** Who sent it, when the stack could tell (a Lambda invocation of its own). */
  sender?: PublishSender;
  topicArn: string;
  subject?: string;
  message: string;
  /** The message attributes (what subscription filter policies match), by name. */
  messageAttributes: Record<string, DeliveredAttribute>;
}

/**
 * Message attributes of a Publish: query protocol `MessageAttributes.entry.N.{Name,Value.*}`
 * (parsed into a list) or JSON protocol `{name: {DataType, StringValue|BinaryValue}}`.
 */
export function messageAttributesOf(
  params: Record<string, unknown>,
): Record<string, DeliveredAttribute> {
  const raw = params.MessageAttributes;
  const entries: [unknown, unknown][] = Array.isArray(raw)
    ? raw.map((entry) => [
        (entry as { Name?: unknown } | null)?.Name,
        (entry as { Value?: unknown } | null)?.Value,
      ])
    : raw !== null && typeof raw === 'object'
      ? Object.entries(raw)
      : [];
  const attributes: Record<string, DeliveredAttribute> = {};
  for (const [name, value] of entries) {
    const v = value as { DataType?: unknown; StringValue?: unknown; BinaryValue?: unknown } | null;
    const text = typeof v?.StringValue === 'string' ? v.StringValue : v?.BinaryValue;
    if (typeof name !== 'string' || typeof v?.DataType !== 'string' || typeof text !== 'string')
      continue;
    attributes[name] = { Type: v.DataType, Value: text };
  }
  return attributes;
}

/** SNS's limit on a message: its bytes and its attributes' names, types and values. */
const MAX_MESSAGE_BYTES = 256 * 1024;
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;

/**
 * Why SNS would refuse to publish this message, or undefined: the local stack must fail a Publish
 * that AWS fails (an alert over the limit would otherwise be delivered here and lost there).
 */
export function publishRefusal(
  message: string,
  subject: unknown,
  attributes: Record<string, DeliveredAttribute>,
): string | undefined {
  if (message === '') return 'Invalid parameter: Empty message';
  const bytes = Object.entries(attributes).reduce(
    (sum, [name, { Type, Value }]) => sum + Buffer.byteLength(name + Type + Value),
    Buffer.byteLength(message),
  );
  if (bytes > MAX_MESSAGE_BYTES) return 'Invalid parameter: Message too long';
  if (subject === undefined) return undefined;
  // Less than 100 characters, none of them a line break or control character.
  if (
    typeof subject !== 'string' ||
    subject === '' ||
    [...subject].length >= 100 ||
    CONTROL_CHARACTER.test(subject)
  ) {
    return 'Invalid parameter: Subject';
  }
  return undefined;
}

/**
 * Handles SNS requests (the query protocol SDK v3 and the aws CLI send, and the JSON protocol):
 * `Publish` to one of `topicArns` is handed to `onPublish`; other actions are refused.
 */
export function createSnsHandler(
  topicArns: string[],
  /** Resolves once the message is stored; the Publish is answered only then. */
  onPublish: (message: PublishedMessage) => Promise<void> | void,
  /** Fault injection: when it answers true, the Publish fails with 500 InternalError. */
  failPublish: () => boolean = () => false,
  /** Which local invocation sent the request (asked before the Publish is stored and answered,
   * while its sender still waits for the answer). */
  senderOf: (req: IncomingMessage) => Promise<PublishSender | undefined> = () =>
    Promise.resolve(undefined),
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (req, res) => {
    const body = await readBody(req);
    const target = req.headers['x-amz-target'];
    const json = typeof target === 'string';
    const params: Record<string, unknown> = json
      ? (JSON.parse(body.toString('utf8') || '{}') as Record<string, unknown>)
      : parseQueryParams(new URLSearchParams(body.toString('utf8')));
    const action = json ? target.split('.').pop() : params.Action;
    const fail = (status: number, code: string, message: string): void =>
      json ? sendJsonError(res, status, code, message) : sendQueryError(res, status, code, message);

    if (action === 'ListTopics') {
      if (json) sendJson(res, 200, { Topics: topicArns.map((TopicArn) => ({ TopicArn })) });
      else
        sendQueryResult(
          res,
          SNS_XMLNS,
          'ListTopics',
          `<Topics>${topicArns.map((arn) => `<member><TopicArn>${arn}</TopicArn></member>`).join('')}</Topics>`,
        );
      return;
    }
    if (action !== 'Publish') {
      fail(
        400,
        'InvalidAction',
        `the local stack's SNS supports Publish and ListTopics, not ${String(action)}`,
      );
      return;
    }
    const topicArn = [params.TopicArn, params.TargetArn].find((v) => typeof v === 'string') ?? '';
    if (!topicArns.includes(topicArn)) {
      fail(404, 'NotFound', `Topic does not exist: ${topicArn}`);
      return;
    }
    if (typeof params.Message !== 'string') {
      fail(400, 'InvalidParameter', 'Invalid parameter: Message');
      return;
    }
    const refused = publishRefusal(params.Message, params.Subject, messageAttributesOf(params));
    if (refused) {
      fail(400, 'InvalidParameter', refused);
      return;
    }
    if (failPublish()) {
      fail(500, 'InternalError', 'injected fault: publish failed');
      return;
    }
    const time = new Date().toISOString();
    const sender = await senderOf(req);
    const published: PublishedMessage = {
      messageId: randomUUID(),
      time,
      ...(sender ? { sender } : {}),
      topicArn,
      ...(typeof params.Subject === 'string' ? { subject: params.Subject } : {}),
      message: params.Message,
      messageAttributes: messageAttributesOf(params),
    };
    await onPublish(published);
    if (json) sendJson(res, 200, { MessageId: published.messageId });
    else
      sendQueryResult(res, SNS_XMLNS, 'Publish', `<MessageId>${published.messageId}</MessageId>`);
  };
}
