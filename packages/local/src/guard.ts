import type { IncomingMessage } from 'node:http';

/** Host names that can only mean this machine (the stack listens on 127.0.0.1 only). */
const LOOPBACK_HOST = /^(127\.0\.0\.1|localhost|[a-z0-9.-]+\.localhost|\[::1\])(:\d{1,5})?$/i;

/**
 * Why a request must be refused, or undefined when it may be served. The local stack accepts any
 * credentials, so it must not be reachable from a web page: a Host that is not loopback is DNS
 * rebinding; an Origin header, a form upload or an unsigned write can only come from a browser
 * (the SDKs and the aws CLI sign every request and never send Origin).
 */
export function refusal(req: IncomingMessage): string | undefined {
  const host = req.headers.host ?? '';
  if (!LOOPBACK_HOST.test(host))
    return `Host ${JSON.stringify(host)} is not this machine's loopback address`;
  if (req.headers.origin !== undefined)
    return 'requests from web pages (with an Origin header) are refused';
  const type = String(req.headers['content-type'] ?? '').toLowerCase();
  if (type.startsWith('multipart/form-data'))
    return 'form uploads (multipart/form-data POST) are refused';
  const signed =
    req.headers.authorization !== undefined || /[?&]X-Amz-Signature=/i.test(req.url ?? '');
  if (!signed && req.method !== 'GET' && req.method !== 'HEAD') {
    return `unsigned ${req.method ?? ''} requests are refused: sign them as the SDKs and the aws CLI do`;
  }
  return undefined;
}
