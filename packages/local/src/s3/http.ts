// The HTTP side of the local S3 API: the request target, headers to and from ObjectHeaders,
// ranges, conditional requests and the XML/empty/error responses.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';

import { AwsChunkedDecoder, isAwsChunked, remainingContentEncoding } from '../awsChunked';
import { S3Error } from './errors';
import type { ObjectHeaders, ObjectInfo } from './store';
import { elements, xmlDocument } from './xml';

/** S3's limit on an object's user metadata: its names and values, in bytes. */
const MAX_METADATA_BYTES = 2048;

/** Largest request document read into memory (DeleteObjects: 1,000 keys of 1,024 bytes). */
const MAX_XML_BYTES = 4 << 20;

export interface S3Request {
  req: IncomingMessage;
  res: ServerResponse;
  bucket: string;
  /** undefined for bucket-level requests. */
  key: string | undefined;
  query: URLSearchParams;
  requestId: string;
}

/**
 * Bucket and key from the raw request target, never normalized: `/b/../x` is the key `../x` in
 * bucket `b`, as S3 reads it. Virtual-hosted requests (`<bucket>.localhost`) name the bucket in Host.
 */
export function s3Target(req: IncomingMessage): {
  bucket: string;
  key: string | undefined;
  query: URLSearchParams;
} {
  const raw = req.url ?? '/';
  const mark = raw.indexOf('?');
  const path = mark === -1 ? raw : raw.slice(0, mark);
  const query = new URLSearchParams(mark === -1 ? '' : raw.slice(mark + 1));
  const decode = (text: string): string => {
    try {
      return decodeURIComponent(text);
    } catch {
      throw new S3Error(400, 'InvalidURI', "Couldn't parse the specified URI.");
    }
  };
  if (!path.startsWith('/'))
    throw new S3Error(400, 'InvalidURI', "Couldn't parse the specified URI.");
  const vhost = /^(.+)\.localhost(:\d+)?$/i.exec(req.headers.host ?? '');
  if (vhost?.[1]) {
    const key = path.slice(1);
    return { bucket: vhost[1].toLowerCase(), key: key ? decode(key) : undefined, query };
  }
  const slash = path.indexOf('/', 1);
  if (slash === -1) return { bucket: decode(path.slice(1)), key: undefined, query };
  const key = path.slice(slash + 1);
  return { bucket: decode(path.slice(1, slash)), key: key ? decode(key) : undefined, query };
}

export function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

export function objectHeaders(req: IncomingMessage): ObjectHeaders {
  const metadata: Record<string, string> = {};
  let metadataBytes = 0;
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.startsWith('x-amz-meta-') && value !== undefined) {
      const field = name.slice('x-amz-meta-'.length);
      metadata[field] = Array.isArray(value) ? value.join(',') : value;
      // As received: Node reads header bytes as latin1, one character each.
      metadataBytes += Buffer.byteLength(field + metadata[field], 'latin1');
    }
  }
  if (metadataBytes > MAX_METADATA_BYTES) {
    throw new S3Error(
      400,
      'MetadataTooLarge',
      'Your metadata headers exceed the maximum allowed metadata size.',
      { Size: String(metadataBytes), MaxSizeAllowed: String(MAX_METADATA_BYTES) },
    );
  }
  const encoding = remainingContentEncoding(header(req, 'content-encoding'));
  const fields: Omit<ObjectHeaders, 'metadata'> = {
    contentType: header(req, 'content-type') ?? 'binary/octet-stream',
    ...(encoding ? { contentEncoding: encoding } : {}),
  };
  const optional = {
    contentDisposition: 'content-disposition',
    contentLanguage: 'content-language',
    cacheControl: 'cache-control',
    expires: 'expires',
  } as const;
  for (const [field, name] of Object.entries(optional)) {
    const value = header(req, name);
    if (value !== undefined) fields[field as keyof typeof optional] = value;
  }
  return { ...fields, metadata };
}

/** The request body as sent: aws-chunked framing (SigV4 streaming) decoded. */
export function bodyOf(req: IncomingMessage): { body: Readable; size: number | undefined } {
  const declared = (name: string): number | undefined => {
    const value = header(req, name);
    return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
  };
  if (!isAwsChunked(req.headers)) return { body: req, size: declared('content-length') };
  const decoded = req.pipe(new AwsChunkedDecoder());
  req.on('error', (error) => decoded.destroy(error));
  return { body: decoded, size: declared('x-amz-decoded-content-length') };
}

export async function readXml(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of bodyOf(req).body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_XML_BYTES)
      throw new S3Error(400, 'MaxMessageLengthExceeded', 'Your request was too big.');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function sendXml(r: S3Request, status: number, root: string, body: string): void {
  const text = xmlDocument(root, body);
  r.res.writeHead(status, {
    'content-type': 'application/xml',
    'content-length': Buffer.byteLength(text),
    'x-amz-request-id': r.requestId,
  });
  r.res.end(r.req.method === 'HEAD' ? undefined : text);
}

export function sendEmpty(
  r: S3Request,
  status: number,
  headers: Record<string, string | number> = {},
): void {
  r.res.writeHead(status, { 'content-length': 0, 'x-amz-request-id': r.requestId, ...headers });
  r.res.end();
}

export function infoHeaders(info: ObjectInfo): Record<string, string | number> {
  const headers: Record<string, string | number> = {
    etag: info.etag,
    'last-modified': info.lastModified.toUTCString(),
    'accept-ranges': 'bytes',
    'content-type': info.contentType ?? 'binary/octet-stream',
  };
  if (info.contentEncoding) headers['content-encoding'] = info.contentEncoding;
  if (info.contentDisposition) headers['content-disposition'] = info.contentDisposition;
  if (info.contentLanguage) headers['content-language'] = info.contentLanguage;
  if (info.cacheControl) headers['cache-control'] = info.cacheControl;
  if (info.expires) headers.expires = info.expires;
  for (const [name, value] of Object.entries(info.metadata)) headers[`x-amz-meta-${name}`] = value;
  return headers;
}

/** `bytes=a-b`, `bytes=a-` or `bytes=-n` against `size`; undefined for no (or a multi-) range. */
export function parseRange(
  value: string | undefined,
  size: number,
): { start: number; end: number } | undefined {
  if (!value) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (!match || (match[1] === '' && match[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (match[1] === '') {
    start = Math.max(0, size - Number(match[2]));
    end = size - 1;
  } else {
    start = Number(match[1]);
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  }
  if (start >= size || end < start) {
    throw new S3Error(416, 'InvalidRange', 'The requested range is not satisfiable', {
      RangeRequested: value,
      ActualObjectSize: String(size),
    });
  }
  return { start, end };
}

/** If-Match / If-None-Match as S3 applies them to GET and HEAD. */
export function checkConditions(r: S3Request, info: ObjectInfo): boolean {
  const ifMatch = header(r.req, 'if-match');
  if (
    ifMatch &&
    !ifMatch.split(',').some((tag) => tag.trim() === info.etag || tag.trim() === '*')
  ) {
    throw new S3Error(
      412,
      'PreconditionFailed',
      'At least one of the pre-conditions you specified did not hold',
      {
        Condition: 'If-Match',
      },
    );
  }
  const ifNoneMatch = header(r.req, 'if-none-match');
  if (
    ifNoneMatch &&
    ifNoneMatch.split(',').some((tag) => tag.trim() === info.etag || tag.trim() === '*')
  ) {
    sendEmpty(r, 304, { etag: info.etag });
    return false;
  }
  return true;
}

export function sendError(
  res: ServerResponse,
  req: IncomingMessage,
  error: S3Error,
  requestId: string,
): void {
  const text = xmlDocument(
    'Error',
    elements({ Code: error.code, Message: error.message, ...error.detail, RequestId: requestId }),
  ).replace(' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"', '');
  res.writeHead(error.status, {
    'content-type': 'application/xml',
    'content-length': req.method === 'HEAD' ? 0 : Buffer.byteLength(text),
    'x-amz-request-id': requestId,
  });
  res.end(req.method === 'HEAD' ? undefined : text);
}
