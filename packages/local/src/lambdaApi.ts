import type { IncomingMessage, ServerResponse } from 'node:http';

import type { InvokeOutcome, LambdaRuntime } from './lambda';
import { readBody, sendJson, sendJsonError } from './protocol';

const JSON_TYPE = 'application/json';

/** Function name from a path segment: a name, `name:qualifier` or a function ARN. */
function functionNameOf(segment: string): string {
  const decoded = decodeURIComponent(segment);
  const arn = /^arn:[^:]+:lambda:[^:]+:[^:]+:function:([^:]+)/.exec(decoded);
  if (arn?.[1]) return arn[1];
  return decoded.split(':')[0] ?? decoded;
}

/**
 * Lambda's REST API for Invoke (RequestResponse, Event, DryRun) and GetFunction, backed by the
 * local runtime. `onAsyncResult` sees the outcome of each Event invocation.
 */
export function createLambdaHandler(
  runtime: LambdaRuntime,
  onAsyncResult: (functionName: string, outcome: InvokeOutcome) => void,
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://local');
    const match = /^\/2015-03-31\/functions\/([^/]+)(\/invocations)?\/?$/.exec(url.pathname);
    if (!match?.[1]) {
      sendJsonError(
        res,
        404,
        'ResourceNotFoundException',
        `not served locally: ${url.pathname}`,
        JSON_TYPE,
      );
      return;
    }
    const name = functionNameOf(match[1]);
    const body = await readBody(req);
    if (!runtime.has(name)) {
      sendJsonError(
        res,
        404,
        'ResourceNotFoundException',
        `Function not found: ${name}`,
        JSON_TYPE,
      );
      return;
    }
    if (!match[2]) {
      // GetFunction: enough for tools that check a function exists and read its version.
      const deployment = await runtime.deploy(name);
      sendJson(
        res,
        200,
        {
          Configuration: {
            FunctionName: name,
            Version: String(deployment.version),
            CodeSha256: deployment.sha256,
          },
        },
        JSON_TYPE,
      );
      return;
    }
    let event: unknown = null;
    if (body.length > 0) {
      try {
        event = JSON.parse(body.toString('utf8'));
      } catch {
        sendJsonError(
          res,
          400,
          'InvalidRequestContentException',
          'Could not parse request body into json',
          JSON_TYPE,
        );
        return;
      }
    }
    const type = String(req.headers['x-amz-invocation-type'] ?? 'RequestResponse');
    if (type === 'DryRun') {
      res.writeHead(204).end();
      return;
    }
    if (type === 'Event') {
      const deployment = await runtime.deploy(name);
      void runtime.invoke(name, event).then((outcome) => onAsyncResult(name, outcome));
      res
        .writeHead(202, {
          'x-amz-executed-version': String(deployment.version),
          'content-length': '0',
        })
        .end();
      return;
    }
    const outcome = await runtime.invoke(name, event);
    const payload = JSON.stringify(outcome.ok ? outcome.payload : outcome.error);
    res.writeHead(200, {
      'content-type': JSON_TYPE,
      'content-length': Buffer.byteLength(payload),
      'x-amz-executed-version': outcome.version,
      ...(outcome.ok ? {} : { 'x-amz-function-error': 'Unhandled' }),
    });
    res.end(payload);
  };
}
