import {
  request,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import type { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { isGetObject, slowStream, type FaultInjector } from './faults';
import { refusal } from './guard';
import { s3Target } from './s3/api';
import {
  readBody,
  sendJson,
  sendJsonError,
  sendQueryError,
  sendQueryResult,
  signingService,
} from './protocol';

export type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/** Where the front server sends each kind of request. */
export interface FrontRoutes {
  /** Internal loopback ports of the emulators the front proxies to (read per request: a
   * restarted emulator may listen on another one). */
  readonly s3Port: number;
  readonly sqsPort: number;
  readonly dynamoPort: number;
  sns: Handler;
  cloudwatch: Handler;
  lambda: Handler;
  /** Empties a queue at once (local-aws-sqs would wait 60 s); false when there is no such queue. */
  purgeQueue: (queueUrl: string) => boolean;
  /** Faults to inject (soak and failure tests); none when absent. */
  faults?: FaultInjector;
  onError: (error: unknown, req: IncomingMessage) => void;
}

const SQS_XMLNS = 'http://queue.amazonaws.com/doc/2012-11-05/';
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'proxy-connection',
]);

/** Forwards a request to an emulator on 127.0.0.1:port and streams its response back. */
async function proxy(
  req: IncomingMessage,
  res: ServerResponse,
  port: number,
  options: {
    headers?: IncomingHttpHeaders;
    body?: Buffer | Readable;
    path?: string;
    /** Passes the response body through this on its way back (fault injection). */
    responseThrough?: Transform;
  } = {},
): Promise<void> {
  const headers: IncomingHttpHeaders = { ...(options.headers ?? req.headers) };
  for (const name of HOP_BY_HOP) delete headers[name];
  if (Buffer.isBuffer(options.body)) headers['content-length'] = String(options.body.length);
  const upstream = request({
    host: '127.0.0.1',
    port,
    method: req.method,
    path: options.path ?? req.url,
    headers,
  });
  const responded = new Promise<void>((resolve, reject) => {
    upstream.on('response', (upstreamRes) => {
      const outHeaders: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(upstreamRes.headers)) {
        if (value !== undefined && !HOP_BY_HOP.has(name)) outHeaders[name] = value;
      }
      res.writeHead(upstreamRes.statusCode ?? 502, outHeaders);
      (options.responseThrough
        ? pipeline(upstreamRes, options.responseThrough, res)
        : pipeline(upstreamRes, res)
      ).then(resolve, reject);
    });
    upstream.on('error', reject);
  });
  const body = options.body ?? req;
  if (Buffer.isBuffer(body)) {
    upstream.end(body);
    await responded;
  } else {
    // Both settle: a refused connection fails the body's pipeline and the response alike.
    await Promise.all([pipeline(body, upstream), responded]);
  }
}

/** S3 through the store; bodies in aws-chunked framing, virtual-hosted names and raw keys are
 * the store's to read. GetObject faults are injected here. */
async function proxyS3(
  req: IncomingMessage,
  res: ServerResponse,
  routes: FrontRoutes,
): Promise<void> {
  let key: string | undefined;
  try {
    key = routes.faults ? s3Target(req).key : undefined;
  } catch {
    key = undefined; // an unparsable target: the store answers it
  }
  const fault = routes.faults && isGetObject(req, key) ? routes.faults.s3Get(key) : undefined;
  if (fault === 'poison' || fault === 'error') {
    req.resume();
    const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code><Message>injected fault (${fault})</Message></Error>`;
    res.writeHead(500, {
      'content-type': 'application/xml',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
    return;
  }
  await proxy(
    req,
    res,
    routes.s3Port,
    fault === 'slow' ? { responseThrough: slowStream(routes.faults!.slowReadMs) } : {},
  );
}

/** DynamoDB through dynalite, throttled at the injected rate. */
async function proxyDynamo(
  req: IncomingMessage,
  res: ServerResponse,
  routes: FrontRoutes,
): Promise<void> {
  if (routes.faults?.dynamoThrottle()) {
    req.resume();
    sendJsonError(
      res,
      400,
      'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException',
      'injected fault: the level of configured provisioned throughput for the table was exceeded',
      'application/x-amz-json-1.0',
    );
    return;
  }
  await proxy(req, res, routes.dynamoPort);
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

/** SQS through local-aws-sqs, with PurgeQueue answered here so it takes effect at once. */
async function proxySqs(
  req: IncomingMessage,
  res: ServerResponse,
  routes: FrontRoutes,
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
  if (action !== 'PurgeQueue') {
    const headers = { ...req.headers };
    delete headers['content-encoding'];
    const forwarded = action === 'ReceiveMessage' ? withLegacyAttributeNames(body, json) : body;
    await proxy(req, res, routes.sqsPort, { headers, body: forwarded });
    return;
  }
  if (!queueUrl || !routes.purgeQueue(queueUrl)) {
    const message = 'The specified queue does not exist.';
    if (json) sendJsonError(res, 400, 'com.amazonaws.sqs#QueueDoesNotExist', message);
    else sendQueryError(res, 400, 'AWS.SimpleQueueService.NonExistentQueue', message);
    return;
  }
  if (json) sendJson(res, 200, {});
  else sendQueryResult(res, SQS_XMLNS, 'PurgeQueue', undefined);
}

/**
 * The one request handler on the stack's port: JSON-protocol requests by X-Amz-Target, Lambda by
 * its REST path, query-protocol requests by the service in the SigV4 credential scope, the rest
 * to S3.
 */
export function createFrontHandler(
  routes: FrontRoutes,
): (req: IncomingMessage, res: ServerResponse) => void {
  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const refused = refusal(req);
    if (refused) {
      req.resume();
      sendJsonError(res, 403, 'AccessDenied', refused);
      return;
    }
    const target = req.headers['x-amz-target'];
    if (typeof target === 'string') {
      if (target.startsWith('DynamoDB_')) return proxyDynamo(req, res, routes);
      if (target.startsWith('AmazonSQS.')) return proxySqs(req, res, routes);
      if (target.startsWith('GraniteServiceVersion20100801.')) return routes.cloudwatch(req, res);
      if (target.startsWith('AmazonSimpleNotificationService.')) return routes.sns(req, res);
      sendJsonError(
        res,
        400,
        'UnknownOperationException',
        `not served by the local stack: ${target}`,
      );
      return;
    }
    if ((req.url ?? '').startsWith('/2015-03-31/functions')) return routes.lambda(req, res);
    switch (signingService(req)) {
      case 'sqs':
        return proxySqs(req, res, routes);
      case 'sns':
        return routes.sns(req, res);
      case 'monitoring':
        return routes.cloudwatch(req, res);
      case 'dynamodb':
        return proxyDynamo(req, res, routes);
      case 'lambda':
        return routes.lambda(req, res);
      case undefined:
      case 's3':
        return proxyS3(req, res, routes);
      default:
        sendQueryError(
          res,
          400,
          'InvalidAction',
          `service ${signingService(req)} is not served by the local stack`,
        );
    }
  };
  return (req, res) => {
    route(req, res).catch((error: unknown) => {
      routes.onError(error, req);
      if (!res.headersSent) {
        sendJsonError(
          res,
          500,
          'InternalFailure',
          error instanceof Error ? error.message : String(error),
        );
      } else {
        res.destroy();
      }
    });
  };
}
