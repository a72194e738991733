import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorText } from '@binaryalert/core';

import { isGetObject, slowStream, type FaultInjector } from './faults';
import { refusal } from './guard';
import {
  frontService,
  RequestTooLargeError,
  sendJsonError,
  sendQueryError,
  sendTooLarge,
  signingService,
} from './protocol';
import { proxy } from './proxy';
import { s3Target } from './s3/http';
import { serveSqs } from './sqs-front';

export type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/** Where the front server sends each kind of request. */
export interface FrontRoutes {
  /** Internal loopback ports of the emulators the front proxies to (read per request: a
   * restarted emulator may listen on another one). */
  readonly s3Port: number;
  readonly sqsPort: number;
  readonly dynamoPort: number;
  sns: Handler;
  lambda: Handler;
  /** Empties a queue at once (local-aws-sqs would wait 60 s); false when there is no such queue. */
  purgeQueue: (queueUrl: string) => boolean;
  /** Faults to inject (soak and failure tests); none when absent. */
  faults?: FaultInjector;
  onError: (error: unknown, req: IncomingMessage) => void;
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
  // BatchExecuteStatement too: the DynamoDB emulator serves it (dynamo-server.ts).
  await proxy(req, res, routes.dynamoPort);
}

/** The one request handler on the stack's port, each request to its service (frontService). */
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
    switch (frontService(req)) {
      case 'dynamodb':
        return proxyDynamo(req, res, routes);
      case 'sqs':
        return serveSqs(req, res, routes);
      case 'sns':
        return routes.sns(req, res);
      case 'lambda':
        return routes.lambda(req, res);
      case 's3':
        return proxyS3(req, res, routes);
      case 'unknown': {
        const target = req.headers['x-amz-target'];
        if (typeof target === 'string') {
          sendJsonError(
            res,
            400,
            'UnknownOperationException',
            `not served by the local stack: ${target}`,
          );
        } else {
          sendQueryError(
            res,
            400,
            'InvalidAction',
            `service ${signingService(req)} is not served by the local stack`,
          );
        }
      }
    }
  };
  return (req, res) => {
    route(req, res).catch((error: unknown) => {
      if (error instanceof RequestTooLargeError && !res.headersSent) {
        sendTooLarge(req, res, error);
        return;
      }
      routes.onError(error, req);
      if (!res.headersSent) {
        sendJsonError(res, 500, 'InternalFailure', errorText(error));
      } else {
        res.destroy();
      }
    });
  };
}
