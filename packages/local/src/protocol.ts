import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { gunzipSync } from 'node:zlib';

/**
 * Largest request body read into memory, as sent and once gunzipped: DynamoDB's 16 MB request
 * limit, above what any SQS, SNS or Lambda request can be.
 */
export const MAX_BODY_BYTES = 16 << 20;

/** A request body over MAX_BODY_BYTES (answered with sendTooLarge). */
export class RequestTooLargeError extends Error {
  override readonly name = 'RequestTooLargeError';
  constructor() {
    super(`the request body is over ${MAX_BODY_BYTES} bytes (or is once gunzipped)`);
  }
}

/**
 * Reads a whole request body (gzip-decoded when the client compressed it); RequestTooLargeError
 * as soon as it (or what it inflates to) is over `limit`, the rest left unread.
 */
export function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      stop();
      req.pause();
      reject(new RequestTooLargeError());
    };
    const onEnd = (): void => {
      stop();
      const body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] !== 'gzip') return resolve(body);
      try {
        resolve(gunzipSync(body, { maxOutputLength: limit }));
      } catch (error) {
        const tooLarge = (error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
        reject(tooLarge ? new RequestTooLargeError() : (error as Error));
      }
    };
    const onError = (error: Error): void => {
      stop();
      reject(error);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/** Answers a RequestTooLargeError with 413 in the request's protocol; the rest of the body is
 * read and dropped (so the client sees the answer), then the connection closed. */
export function sendTooLarge(req: IncomingMessage, res: ServerResponse, error: Error): void {
  req.resume();
  res.shouldKeepAlive = false;
  if (typeof req.headers['x-amz-target'] === 'string') {
    sendJsonError(res, 413, 'RequestEntityTooLarge', error.message);
  } else {
    sendQueryError(res, 413, 'RequestEntityTooLarge', error.message);
  }
}

/** What routing reads of a request: its target and headers (a parsed IncomingMessage or head). */
export type RequestHead = Pick<IncomingMessage, 'url' | 'headers'>;

/** The AWS service named in a SigV4 credential scope (Authorization header or presigned query). */
export function signingService(req: RequestHead): string | undefined {
  const auth = req.headers.authorization;
  const fromHeader = typeof auth === 'string' ? /Credential=([^,\s]+)/.exec(auth)?.[1] : undefined;
  let credential = fromHeader;
  if (!credential) {
    const query = new URL(req.url ?? '/', 'http://local').searchParams;
    credential = query.get('X-Amz-Credential') ?? undefined;
  }
  return credential?.split('/')[3];
}

export function escapeXml(value: string): string {
  return value
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** Sends a query-protocol (XML) success response: `<{action}Response><{action}Result>...`. */
export function sendQueryResult(
  res: ServerResponse,
  xmlns: string,
  action: string,
  resultXml: string | undefined,
): void {
  const result = resultXml === undefined ? '' : `<${action}Result>${resultXml}</${action}Result>`;
  const body =
    `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${xmlns}">${result}` +
    `<ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></${action}Response>`;
  res.writeHead(200, { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Sends a query-protocol (XML) error response. */
export function sendQueryError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
): void {
  const body =
    `<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse><Error><Type>Sender</Type><Code>${escapeXml(code)}</Code>` +
    `<Message>${escapeXml(message)}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`;
  res.writeHead(status, { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Sends an awsJson / restJson response. */
export function sendJson(
  res: ServerResponse,
  status: number,
  value: unknown,
  contentType = 'application/x-amz-json-1.0',
  headers: Record<string, string> = {},
): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'x-amzn-requestid': randomUUID(),
    ...headers,
  });
  res.end(body);
}

/** Sends an awsJson error (`__type` plus the x-amzn-ErrorType header the SDK reads). */
export function sendJsonError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  contentType = 'application/x-amz-json-1.0',
): void {
  sendJson(res, status, { __type: code, message }, contentType, { 'x-amzn-errortype': code });
}

/**
 * Turns query-protocol parameters into nested objects and arrays: `A.member.1.B=x` ->
 * `{ A: [{ B: 'x' }] }`, `A.entry.1.key=k&A.entry.1.value=v` -> `{ A: [{ key, value }] }`.
 * Names are the client's: `__proto__` or `constructor` are own properties, never a prototype.
 */
export function parseQueryParams(params: URLSearchParams): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  const set = (container: object, key: string | number, value: unknown): void => {
    Object.defineProperty(container, key, {
      value,
      writable: true,
      enumerable: true,
      configurable: true,
    });
  };
  for (const [name, value] of params) {
    const parts = name.split('.').filter((part) => part !== 'member' && part !== 'entry');
    let node: Record<string, unknown> | unknown[] = root;
    parts.forEach((part, index) => {
      const last = index === parts.length - 1;
      const nextIsIndex = /^\d+$/.test(parts[index + 1] ?? '');
      const key: string | number = /^\d+$/.test(part) ? Number(part) - 1 : part;
      const container = node as Record<string | number, unknown>;
      if (last) {
        set(container, key, value);
        return;
      }
      if (!Object.hasOwn(container, key) || typeof container[key] !== 'object') {
        set(container, key, nextIsIndex ? [] : {});
      }
      node = container[key] as Record<string, unknown> | unknown[];
    });
  }
  return root;
}

/** Which service of the stack's one port a request is for; `unknown` is answered as an error. */
export type FrontService = 'dynamodb' | 'sqs' | 'sns' | 'lambda' | 's3' | 'unknown';

/**
 * JSON-protocol requests by X-Amz-Target, Lambda by its REST path, query-protocol requests by the
 * service in the SigV4 credential scope, the rest (unsigned too) to S3.
 */
export function frontService(req: RequestHead): FrontService {
  const target = req.headers['x-amz-target'];
  if (typeof target === 'string') {
    if (target.startsWith('DynamoDB_')) return 'dynamodb';
    if (target.startsWith('AmazonSQS.')) return 'sqs';
    if (target.startsWith('AmazonSimpleNotificationService.')) return 'sns';
    return 'unknown';
  }
  if ((req.url ?? '').startsWith('/2015-03-31/functions')) return 'lambda';
  const service = signingService(req);
  if (service === undefined) return 's3';
  return (
    (['sqs', 'sns', 'dynamodb', 'lambda', 's3'] as const).find((known) => known === service) ??
    'unknown'
  );
}
