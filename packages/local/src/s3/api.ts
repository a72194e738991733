import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

import { ChunkedEncodingError } from '../awsChunked';
import { refusal } from '../guard';
import { S3Error } from './errors';
import { readXml, s3Target, sendEmpty, sendError, sendXml, type S3Request } from './http';
import { deleteObjects, getObject, listObjects, multipart, putObject } from './operations';
import type { ObjectStore } from './store';
import { elements } from './xml';

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
          : error instanceof ChunkedEncodingError
            ? // The client's framing, not the store: S3 answers any broken aws-chunked body so.
              new S3Error(400, 'IncompleteBody', 'The request body terminated unexpectedly')
            : new S3Error(
                500,
                'InternalError',
                'We encountered an internal error. Please try again.',
              );
      if (!(error instanceof S3Error || error instanceof ChunkedEncodingError)) onError(error, req);
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
