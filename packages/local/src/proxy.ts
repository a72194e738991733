import {
  request,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import type { Readable, Transform } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'proxy-connection',
]);

export interface ProxyOptions {
  headers?: IncomingHttpHeaders;
  body?: Buffer | Readable;
  path?: string;
  /** Passes the response body through this on its way back (fault injection). */
  responseThrough?: Transform;
  /** Reads the whole response body and sends back what this returns (emulator fixes). */
  rewriteResponse?: (body: Buffer) => Buffer;
}

/** Forwards a request to an emulator on 127.0.0.1:port and streams its response back. */
export async function proxy(
  req: IncomingMessage,
  res: ServerResponse,
  port: number,
  options: ProxyOptions = {},
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
      const { rewriteResponse } = options;
      if (rewriteResponse) {
        readAll(upstreamRes).then((body) => {
          const rewritten = rewriteResponse(body);
          outHeaders['content-length'] = String(rewritten.length);
          res.writeHead(upstreamRes.statusCode ?? 502, outHeaders);
          res.end(rewritten);
          // Not end's callback: it never runs when the client has gone (a long poll given up).
          finished(res).then(resolve, reject);
        }, reject);
        return;
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

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
