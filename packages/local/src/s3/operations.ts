// The S3 operations of the local API that take more than a line: GET/HEAD and PUT/Copy of an
// object, ListObjects V1/V2, DeleteObjects and the multipart upload calls.
import { pipeline } from 'node:stream/promises';

import { S3Error } from './errors';
import {
  bodyOf,
  checkConditions,
  header,
  infoHeaders,
  objectHeaders,
  parseRange,
  readXml,
  sendEmpty,
  sendXml,
  type S3Request,
} from './http';
import type { ObjectStore } from './store';
import { childElements, elements, elementText, malformedXml } from './xml';

const LIST_MAX_KEYS = 1000;

export async function getObject(store: ObjectStore, r: S3Request, key: string): Promise<void> {
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

export async function putObject(store: ObjectStore, r: S3Request, key: string): Promise<void> {
  const copySource = header(r.req, 'x-amz-copy-source');
  if (copySource !== undefined) {
    let source: string;
    try {
      source = decodeURIComponent(copySource.replace(/^\//, '').split('?')[0] ?? '');
    } catch {
      throw new S3Error(400, 'InvalidArgument', 'Invalid copy source encoding.');
    }
    const slash = source.indexOf('/');
    if (slash <= 0)
      throw new S3Error(
        400,
        'InvalidArgument',
        'Copy Source must mention the source bucket and key: sourcebucket/sourcekey',
      );
    const replace = header(r.req, 'x-amz-metadata-directive') === 'REPLACE';
    const from = { bucket: source.slice(0, slash), key: source.slice(slash + 1) };
    if (from.bucket === r.bucket && from.key === key && !replace) {
      // S3 refuses it; allowed here, it sent the object to be analyzed again.
      throw new S3Error(
        400,
        'InvalidRequest',
        "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
      );
    }
    const copied = await store.copy(
      from,
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
  const ifNoneMatch = header(r.req, 'if-none-match');
  const ifMatch = header(r.req, 'if-match');
  if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== '*') {
    throw new S3Error(501, 'NotImplemented', 'If-None-Match on a write takes only *', {
      Header: 'If-None-Match',
    });
  }
  const stored = await store.put(r.bucket, key, body, objectHeaders(r.req), {
    ...(contentMd5 === undefined ? {} : { contentMd5 }),
    ...(size === undefined ? {} : { expectedSize: size }),
    ...(ifNoneMatch === undefined ? {} : { ifNoneMatch: true }),
    ...(ifMatch === undefined ? {} : { ifMatch }),
  });
  sendEmpty(r, 200, { etag: stored.etag });
}

export function listObjects(store: ObjectStore, r: S3Request): void {
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

export async function deleteObjects(store: ObjectStore, r: S3Request): Promise<void> {
  const xml = await readXml(r.req);
  const objects = childElements(xml, 'Object', ['Key']);
  if (objects.length === 0 || objects.length > 1000 || objects.some((o) => o.Key === undefined)) {
    throw malformedXml();
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

export async function multipart(store: ObjectStore, r: S3Request, key: string): Promise<boolean> {
  const { req, query } = r;
  const uploadId = query.get('uploadId');
  if (req.method === 'POST' && query.has('uploads')) {
    const id = await store.uploads.create(r.bucket, key, objectHeaders(req));
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
    const contentMd5 = header(req, 'content-md5');
    const etag = await store.uploads.uploadPart(
      r.bucket,
      key,
      uploadId,
      Number(query.get('partNumber')),
      body,
      {
        ...(contentMd5 === undefined ? {} : { contentMd5 }),
        ...(size === undefined ? {} : { expectedSize: size }),
      },
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
    await store.uploads.abort(r.bucket, key, uploadId);
    sendEmpty(r, 204);
    return true;
  }
  return false;
}
