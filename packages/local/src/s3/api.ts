import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { AwsChunkedDecoder, isAwsChunked, remainingContentEncoding } from '../awsChunked';
import { refusal } from '../guard';
import { S3Error } from './errors';
import type { ObjectHeaders, ObjectInfo, ObjectStore } from './store';
import { childElements, elements, elementText, xmlDocument } from './xml';

/** Largest request document read into memory (DeleteObjects: 1,000 keys of 1,024 bytes). */
const MAX_XML_BYTES = 4 << 20;
const LIST_MAX_KEYS = 1000;

interface S3Request {
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

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

function objectHeaders(req: IncomingMessage): ObjectHeaders {
  const metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.startsWith('x-amz-meta-') && value !== undefined) {
      metadata[name.slice('x-amz-meta-'.length)] = Array.isArray(value) ? value.join(',') : value;
    }
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
function bodyOf(req: IncomingMessage): { body: Readable; size: number | undefined } {
  const declared = (name: string): number | undefined => {
    const value = header(req, name);
    return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
  };
  if (!isAwsChunked(req.headers)) return { body: req, size: declared('content-length') };
  const decoded = req.pipe(new AwsChunkedDecoder());
  req.on('error', (error) => decoded.destroy(error));
  return { body: decoded, size: declared('x-amz-decoded-content-length') };
}

async function readXml(req: IncomingMessage): Promise<string> {
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

function sendXml(r: S3Request, status: number, root: string, body: string): void {
  const text = xmlDocument(root, body);
  r.res.writeHead(status, {
    'content-type': 'application/xml',
    'content-length': Buffer.byteLength(text),
    'x-amz-request-id': r.requestId,
  });
  r.res.end(r.req.method === 'HEAD' ? undefined : text);
}

function sendEmpty(
  r: S3Request,
  status: number,
  headers: Record<string, string | number> = {},
): void {
  r.res.writeHead(status, { 'content-length': 0, 'x-amz-request-id': r.requestId, ...headers });
  r.res.end();
}

function infoHeaders(info: ObjectInfo): Record<string, string | number> {
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
function parseRange(
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
function checkConditions(r: S3Request, info: ObjectInfo): boolean {
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

async function getObject(store: ObjectStore, r: S3Request, key: string): Promise<void> {
  const head = store.head(r.bucket, key);
  const range = parseRange(header(r.req, 'range'), head.size);
  if (r.req.method === 'HEAD') {
    if (!checkConditions(r, head)) return;
    const length = range ? range.end - range.start + 1 : head.size;
    r.res.writeHead(range ? 206 : 200, {
      ...infoHeaders(head),
      'content-length': length,
      'x-amz-request-id': r.requestId,
      ...(range ? { 'content-range': `bytes ${range.start}-${range.end}/${head.size}` } : {}),
    });
    r.res.end();
    return;
  }
  const { info, stream } = await store.read(r.bucket, key, head.size === 0 ? undefined : range);
  let proceed = false;
  try {
    proceed = checkConditions(r, info);
  } finally {
    if (!proceed) stream.destroy();
  }
  if (!proceed) return;
  const length = range ? range.end - range.start + 1 : info.size;
  r.res.writeHead(range ? 206 : 200, {
    ...infoHeaders(info),
    'content-length': length,
    'x-amz-request-id': r.requestId,
    ...(range ? { 'content-range': `bytes ${range.start}-${range.end}/${info.size}` } : {}),
  });
  await pipeline(stream, r.res);
}

async function putObject(store: ObjectStore, r: S3Request, key: string): Promise<void> {
  const copySource = header(r.req, 'x-amz-copy-source');
  if (copySource !== undefined) {
    const source = decodeURIComponent(copySource.replace(/^\//, '').split('?')[0] ?? '');
    const slash = source.indexOf('/');
    if (slash <= 0)
      throw new S3Error(
        400,
        'InvalidArgument',
        'Copy Source must mention the source bucket and key: sourcebucket/sourcekey',
      );
    const replace = header(r.req, 'x-amz-metadata-directive') === 'REPLACE';
    const copied = await store.copy(
      { bucket: source.slice(0, slash), key: source.slice(slash + 1) },
      r.bucket,
      key,
      replace ? objectHeaders(r.req) : undefined,
    );
    sendXml(
      r,
      200,
      'CopyObjectResult',
      elements({ LastModified: copied.lastModified.toISOString(), ETag: copied.etag }),
    );
    return;
  }
  const { body, size } = bodyOf(r.req);
  const contentMd5 = header(r.req, 'content-md5');
  const stored = await store.put(r.bucket, key, body, objectHeaders(r.req), {
    ...(contentMd5 === undefined ? {} : { contentMd5 }),
    ...(size === undefined ? {} : { expectedSize: size }),
  });
  sendEmpty(r, 200, { etag: stored.etag });
}

function listObjects(store: ObjectStore, r: S3Request): void {
  const q = r.query;
  const v2 = q.get('list-type') === '2';
  const maxKeys = Math.min(
    LIST_MAX_KEYS,
    Math.max(0, Number.parseInt(q.get('max-keys') ?? '1000', 10) || 0),
  );
  const prefix = q.get('prefix') ?? '';
  const delimiter = q.get('delimiter') || undefined;
  const urlEncoded = q.get('encoding-type') === 'url';
  const encode = (text: string): string =>
    urlEncoded ? encodeURIComponent(text).replace(/%2F/g, '/').replace(/%20/g, '+') : text;
  let after: string | undefined;
  const token = q.get('continuation-token');
  if (v2 && token) {
    after = Buffer.from(token, 'base64url').toString('utf8');
    if (Buffer.from(after, 'utf8').toString('base64url') !== token) {
      throw new S3Error(400, 'InvalidArgument', 'The continuation token provided is incorrect');
    }
  } else if (v2) after = q.get('start-after') || undefined;
  else after = q.get('marker') || undefined;
  const page = store.list(r.bucket, {
    prefix,
    ...(delimiter ? { delimiter } : {}),
    ...(after === undefined ? {} : { after }),
    maxKeys,
  });
  const contents = page.contents
    .map(
      (o) =>
        `<Contents>${elements({ Key: encode(o.key), LastModified: o.lastModified.toISOString(), ETag: o.etag, Size: o.size, StorageClass: 'STANDARD' })}</Contents>`,
    )
    .join('');
  const prefixes = page.commonPrefixes
    .map((p) => `<CommonPrefixes>${elements({ Prefix: encode(p) })}</CommonPrefixes>`)
    .join('');
  const next = page.isTruncated && page.last !== undefined ? page.last : undefined;
  const head = elements({
    Name: r.bucket,
    Prefix: encode(prefix),
    ...(v2
      ? {
          ...(token ? { ContinuationToken: token } : {}),
          ...(next !== undefined
            ? { NextContinuationToken: Buffer.from(next, 'utf8').toString('base64url') }
            : {}),
          ...(q.get('start-after') ? { StartAfter: encode(q.get('start-after')!) } : {}),
          KeyCount: page.contents.length + page.commonPrefixes.length,
        }
      : {
          Marker: encode(q.get('marker') ?? ''),
          ...(next !== undefined ? { NextMarker: encode(next) } : {}),
        }),
    MaxKeys: maxKeys,
    ...(delimiter ? { Delimiter: encode(delimiter) } : {}),
    ...(urlEncoded ? { EncodingType: 'url' } : {}),
    IsTruncated: page.isTruncated,
  });
  sendXml(r, 200, 'ListBucketResult', head + contents + prefixes);
}

async function deleteObjects(store: ObjectStore, r: S3Request): Promise<void> {
  const xml = await readXml(r.req);
  const objects = childElements(xml, 'Object', ['Key']);
  if (objects.length > 1000 || objects.some((o) => o.Key === undefined)) {
    throw new S3Error(
      400,
      'MalformedXML',
      'The XML you provided was not well-formed or did not validate against our published schema',
    );
  }
  const quiet = elementText(xml, 'Quiet') === 'true';
  const results = await Promise.all(
    objects.map(async ({ Key: key = '' }) => {
      try {
        await store.delete(r.bucket, key);
        return quiet ? '' : `<Deleted>${elements({ Key: key })}</Deleted>`;
      } catch (error) {
        const e =
          error instanceof S3Error ? error : new S3Error(500, 'InternalError', String(error));
        return `<Error>${elements({ Key: key, Code: e.code, Message: e.message })}</Error>`;
      }
    }),
  );
  sendXml(r, 200, 'DeleteResult', results.join(''));
}

async function multipart(store: ObjectStore, r: S3Request, key: string): Promise<boolean> {
  const { req, query } = r;
  const uploadId = query.get('uploadId');
  if (req.method === 'POST' && query.has('uploads')) {
    const id = await store.createUpload(r.bucket, key, objectHeaders(req));
    sendXml(
      r,
      200,
      'InitiateMultipartUploadResult',
      elements({ Bucket: r.bucket, Key: key, UploadId: id }),
    );
    return true;
  }
  if (uploadId === null) return false;
  if (req.method === 'PUT') {
    if (header(req, 'x-amz-copy-source') !== undefined) {
      throw new S3Error(501, 'NotImplemented', 'UploadPartCopy is not served by the local stack');
    }
    const { body, size } = bodyOf(req);
    const etag = await store.uploadPart(
      r.bucket,
      key,
      uploadId,
      Number(query.get('partNumber')),
      body,
      size,
    );
    sendEmpty(r, 200, { etag });
    return true;
  }
  if (req.method === 'POST') {
    const xml = await readXml(req);
    const parts = childElements(xml, 'Part', ['PartNumber', 'ETag']).map((p) => ({
      partNumber: Number(p.PartNumber),
      etag: p.ETag ?? '',
    }));
    const done = await store.completeUpload(r.bucket, key, uploadId, parts);
    sendXml(
      r,
      200,
      'CompleteMultipartUploadResult',
      elements({ Bucket: r.bucket, Key: key, ETag: done.etag }),
    );
    return true;
  }
  if (req.method === 'DELETE') {
    await store.abortUpload(r.bucket, key, uploadId);
    sendEmpty(r, 204);
    return true;
  }
  return false;
}

/** Sub-resources this store serves; any other (?acl, ?policy, ?tagging, ...) is refused as not implemented. */
const SERVED = new Set([
  'list-type',
  'prefix',
  'delimiter',
  'max-keys',
  'continuation-token',
  'start-after',
  'encoding-type',
  'fetch-owner',
  'marker',
  'delete',
  'uploads',
  'uploadId',
  'partNumber',
  'location',
  'versioning',
  'x-id',
  'X-Amz-Algorithm',
  'X-Amz-Credential',
  'X-Amz-Date',
  'X-Amz-Expires',
  'X-Amz-SignedHeaders',
  'X-Amz-Signature',
  'X-Amz-Security-Token',
  'X-Amz-Content-Sha256',
  'x-amz-checksum-mode',
  'response-content-type',
  'response-content-disposition',
  'response-cache-control',
  'response-content-encoding',
  'response-content-language',
  'response-expires',
]);

async function route(store: ObjectStore, r: S3Request): Promise<void> {
  const { req, key, query } = r;
  const method = req.method ?? 'GET';
  const unserved = [...query.keys()].find((name) => !SERVED.has(name));
  if (unserved)
    throw new S3Error(501, 'NotImplemented', `?${unserved} is not served by the local stack`);
  if (r.bucket === '') {
    if (method !== 'GET')
      throw new S3Error(
        405,
        'MethodNotAllowed',
        'The specified method is not allowed against this resource.',
      );
    const buckets = store
      .listBuckets()
      .map(
        (b) =>
          `<Bucket>${elements({ Name: b.name, CreationDate: b.created.toISOString() })}</Bucket>`,
      )
      .join('');
    sendXml(
      r,
      200,
      'ListAllMyBucketsResult',
      `<Owner>${elements({ ID: 'local', DisplayName: 'local' })}</Owner><Buckets>${buckets}</Buckets>`,
    );
    return;
  }
  if (key === undefined) {
    if (method === 'PUT') {
      await readXml(req); // CreateBucketConfiguration: the region is the stack's
      await store.createBucket(r.bucket);
      sendEmpty(r, 200, { location: `/${r.bucket}` });
      return;
    }
    if (!store.hasBucket(r.bucket)) {
      throw new S3Error(404, 'NoSuchBucket', 'The specified bucket does not exist', {
        BucketName: r.bucket,
      });
    }
    if (method === 'HEAD') return sendEmpty(r, 200);
    if (method === 'DELETE') {
      await store.deleteBucket(r.bucket);
      return sendEmpty(r, 204);
    }
    if (method === 'POST' && query.has('delete')) return deleteObjects(store, r);
    if (method === 'GET' && query.has('location')) return sendXml(r, 200, 'LocationConstraint', '');
    if (method === 'GET' && query.has('versioning'))
      return sendXml(r, 200, 'VersioningConfiguration', '');
    if (method === 'GET') return listObjects(store, r);
    throw new S3Error(
      405,
      'MethodNotAllowed',
      'The specified method is not allowed against this resource.',
    );
  }
  if (await multipart(store, r, key)) return;
  switch (method) {
    case 'GET':
    case 'HEAD':
      return getObject(store, r, key);
    case 'PUT':
      return putObject(store, r, key);
    case 'DELETE':
      await store.delete(r.bucket, key);
      return sendEmpty(r, 204);
    default:
      throw new S3Error(
        405,
        'MethodNotAllowed',
        'The specified method is not allowed against this resource.',
      );
  }
}

function sendError(
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

/**
 * The S3 REST API over an ObjectStore: buckets, objects (PUT incl. aws-chunked, GET with Range and
 * If-Match, HEAD, DELETE, DeleteObjects, CopyObject), ListObjects V1/V2 and multipart uploads.
 * `onError` sees failures that are not S3 errors (I/O), answered as 500 InternalError.
 */
export function createS3Handler(
  store: ObjectStore,
  onError: (error: unknown, req: IncomingMessage) => void = () => undefined,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const requestId = randomUUID().replace(/-/g, '').slice(0, 16).toUpperCase();
    const refused = refusal(req);
    if (refused) {
      req.resume();
      sendError(res, req, new S3Error(403, 'AccessDenied', refused), requestId);
      return;
    }
    const run = async (): Promise<void> => {
      const { bucket, key, query } = s3Target(req);
      await route(store, { req, res, bucket, key, query, requestId });
    };
    run().catch((error: unknown) => {
      const s3Error =
        error instanceof S3Error
          ? error
          : new S3Error(
              500,
              'InternalError',
              'We encountered an internal error. Please try again.',
            );
      if (!(error instanceof S3Error)) onError(error, req);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      // The rest of a refused upload is read and dropped, so the client sees the answer.
      req.resume();
      sendError(res, req, s3Error, requestId);
    });
  };
}
