// SQS requests on their way to local-aws-sqs, and the fixes that make it answer as SQS does, so
// that the Lambda code needs no workaround for it.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

import { closeServer, listenLoopback } from './loopback';
import {
  readBody,
  RequestTooLargeError,
  sendJson,
  sendJsonError,
  sendQueryError,
  sendQueryResult,
  sendTooLarge,
} from './protocol';
import { proxy } from './proxy';

const SQS_XMLNS = 'http://queue.amazonaws.com/doc/2012-11-05/';

export interface SqsRoute {
  /** local-aws-sqs's loopback port (read per request: a restarted emulator may move). */
  readonly sqsPort: number;
  /** Empties a queue at once (local-aws-sqs would wait 60 s); false when there is no such
   * queue. Without it PurgeQueue goes to the emulator. */
  purgeQueue?: (queueUrl: string) => boolean;
}

/**
 * local-aws-sqs honours only the legacy `AttributeNames` for system attributes such as
 * ApproximateReceiveCount: copy `MessageSystemAttributeNames` (what current SDKs send) into it.
 */
export function withLegacyAttributeNames(body: Buffer, json: boolean): Buffer {
  if (json) {
    const parsed = JSON.parse(body.toString('utf8') || '{}') as {
      AttributeNames?: string[];
      MessageSystemAttributeNames?: string[];
    };
    if (!parsed.MessageSystemAttributeNames?.length) return body;
    parsed.AttributeNames = [
      ...new Set([...(parsed.AttributeNames ?? []), ...parsed.MessageSystemAttributeNames]),
    ];
    return Buffer.from(JSON.stringify(parsed));
  }
  const params = new URLSearchParams(body.toString('utf8'));
  const system = [...params].filter(([name]) =>
    /^MessageSystemAttributeName(\.member)?\.\d+$/.test(name),
  );
  if (system.length === 0) return body;
  const legacy = [...params]
    .filter(([name]) => /^AttributeName(\.member)?\.\d+$/.test(name))
    .map(([, v]) => v);
  const names = [...new Set([...legacy, ...system.map(([, value]) => value)])];
  names.forEach((name, index) => params.set(`AttributeName.${index + 1}`, name));
  return Buffer.from(params.toString());
}

/**
 * local-aws-sqs's long poll keeps collecting for the whole wait, so a message whose visibility
 * runs out during the poll is received again and returned twice in one response; SQS never does
 * that. Keep each message once, with its latest receipt handle (the one SQS would honour).
 */
export function withoutRepeatedMessages(body: Buffer, json: boolean): Buffer {
  if (json) {
    let parsed: { Messages?: { MessageId?: string }[] };
    try {
      parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
    } catch {
      return body; // an error page: pass it on as it is
    }
    if (!Array.isArray(parsed.Messages)) return body;
    const latest = new Map<string | undefined, { MessageId?: string }>();
    for (const message of parsed.Messages) latest.set(message.MessageId, message);
    if (latest.size === parsed.Messages.length) return body;
    return Buffer.from(JSON.stringify({ ...parsed, Messages: [...latest.values()] }));
  }
  const xml = body.toString('utf8');
  const messages = [
    ...xml.matchAll(/<Message>\s*<MessageId>([^<]*)<\/MessageId>[\s\S]*?<\/Message>\s*/g),
  ];
  const latest = new Map(messages.map((match) => [match[1], match[0]]));
  if (latest.size === messages.length) return body;
  const first = messages[0]!.index;
  const last = messages[messages.length - 1]!;
  const end = last.index + last[0].length;
  return Buffer.from(xml.slice(0, first) + [...latest.values()].join('') + xml.slice(end));
}

/** What SQS accepts in a message body (XML's characters); local-aws-sqs accepted any. */
const NOT_IN_MESSAGES = /[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/u;

/**
 * The first character of a SendMessage or SendMessageBatch body that SQS refuses, as SQS names it
 * (`#x0`); undefined when every body is allowed (or the request is not one of those).
 */
export function refusedMessageCharacter(
  action: string | undefined,
  body: Buffer,
  json: boolean,
): string | undefined {
  if (action !== 'SendMessage' && action !== 'SendMessageBatch') return undefined;
  let bodies: unknown[];
  if (json) {
    let parsed: { MessageBody?: unknown; Entries?: { MessageBody?: unknown }[] };
    try {
      parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
    } catch {
      return undefined; // local-aws-sqs answers it
    }
    bodies = [
      parsed?.MessageBody,
      ...(Array.isArray(parsed?.Entries) ? parsed.Entries : []).map((e) => e?.MessageBody),
    ];
  } else {
    bodies = [...new URLSearchParams(body.toString('utf8'))]
      .filter(([name]) => /^(SendMessageBatchRequestEntry\.\d+\.)?MessageBody$/.test(name))
      .map(([, value]) => value);
  }
  for (const text of bodies) {
    const found = typeof text === 'string' ? NOT_IN_MESSAGES.exec(text) : null;
    if (found) return `#x${found[0].codePointAt(0)!.toString(16)}`;
  }
  return undefined;
}

/** Serves one SQS request (JSON or query protocol) through local-aws-sqs with the fixes above. */
export async function serveSqs(
  req: IncomingMessage,
  res: ServerResponse,
  route: SqsRoute,
): Promise<void> {
  const target = req.headers['x-amz-target'];
  const json = typeof target === 'string';
  const body = await readBody(req);
  let action: string | undefined;
  let queueUrl: string | undefined;
  if (json) {
    action = target.split('.').pop();
    if (action === 'PurgeQueue') {
      const parsed = JSON.parse(body.toString('utf8') || '{}') as { QueueUrl?: string };
      queueUrl = parsed.QueueUrl;
    }
  } else {
    const params = new URLSearchParams(body.toString('utf8'));
    action = params.get('Action') ?? undefined;
    queueUrl = params.get('QueueUrl') ?? undefined;
  }
  const refused = refusedMessageCharacter(action, body, json);
  if (refused) {
    const message = `Invalid binary character '${refused}' was found in the message body, the set of allowed characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF`;
    if (json) sendJsonError(res, 400, 'com.amazonaws.sqs#InvalidMessageContents', message);
    else sendQueryError(res, 400, 'InvalidMessageContents', message);
    return;
  }
  if (action !== 'PurgeQueue' || !route.purgeQueue) {
    const headers = { ...req.headers };
    delete headers['content-encoding'];
    if (action !== 'ReceiveMessage') {
      await proxy(req, res, route.sqsPort, { headers, body });
      return;
    }
    await proxy(req, res, route.sqsPort, {
      headers,
      body: withLegacyAttributeNames(body, json),
      rewriteResponse: (response) => withoutRepeatedMessages(response, json),
    });
    return;
  }
  if (!queueUrl || !route.purgeQueue(queueUrl)) {
    const message = 'The specified queue does not exist.';
    if (json) sendJsonError(res, 400, 'com.amazonaws.sqs#QueueDoesNotExist', message);
    else sendQueryError(res, 400, 'AWS.SimpleQueueService.NonExistentQueue', message);
    return;
  }
  if (json) sendJson(res, 200, {});
  else sendQueryResult(res, SQS_XMLNS, 'PurgeQueue', undefined);
}

export interface SqsServer {
  /** Base URL, e.g. http://127.0.0.1:41234; queue URLs name it. */
  endpoint: string;
  close(): Promise<void>;
}

/**
 * local-aws-sqs behind the same SQS front as the local stack's, on its own loopback port, for
 * tests of code that talks to SQS.
 */
export async function startSqsServer(): Promise<SqsServer> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createRequestHandler } = require('local-aws-sqs') as typeof import('local-aws-sqs');
  let sqsPort = 0;
  const front = createServer((req, res) => {
    serveSqs(req, res, { sqsPort }).catch((error: unknown) => {
      if (error instanceof RequestTooLargeError && !res.headersSent) sendTooLarge(req, res, error);
      else if (res.headersSent) res.destroy();
      else sendJsonError(res, 500, 'InternalFailure', String(error));
    });
  });
  const frontPort = await listenLoopback(front, 0);
  const { service, requestHandler } = createRequestHandler({
    port: frontPort,
    hostname: '127.0.0.1',
    emulateQueueCreationLifecycle: false,
  });
  const emulator = createServer((req, res) => void requestHandler(req, res));
  sqsPort = await listenLoopback(emulator, 0);
  return {
    endpoint: `http://127.0.0.1:${frontPort}`,
    async close() {
      await closeServer(front);
      await closeServer(emulator);
      // Releases local-aws-sqs's per-message visibility and retention timers.
      for (const queue of service.Queues) queue.clearRecords();
    },
  };
}
