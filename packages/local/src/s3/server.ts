import { createServer, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

import { closeServer, keepIdleConnections, listenLoopback } from '../loopback';
import { frontService } from '../protocol';
import { proxy } from '../proxy';
import { createS3Handler } from './api';
import { ObjectStore, type ObjectCreatedEvent } from './store';

export interface S3Server {
  port: number;
  endpoint: string;
  store: ObjectStore;
  /** Serves a client connection accepted elsewhere, `prefix` being what was read from it. */
  adopt: (socket: Socket, prefix: Buffer) => void;
  close: () => Promise<void>;
}

export interface S3ServerOptions {
  /** Where the store keeps its buckets (created when missing). */
  dir: string;
  /** Port on 127.0.0.1 (default 0: a free port). */
  port?: number;
  /** Buckets that exist from the start. */
  buckets?: string[];
  /**
   * The local stack's port, which hands its S3 connections to this server: a later request of
   * such a connection for another service (a client that shares connections) is sent back there.
   */
  frontPort?: number;
  onCreated?: (event: ObjectCreatedEvent) => void;
  onError?: (error: unknown, req: IncomingMessage) => void;
}

/** The local S3 store served over HTTP on 127.0.0.1. */
export async function startS3Server(options: S3ServerOptions): Promise<S3Server> {
  const store = await ObjectStore.open(options.dir, options.onCreated);
  for (const bucket of options.buckets ?? []) await store.createBucket(bucket);
  const s3 = createS3Handler(store, options.onError);
  const { frontPort, onError } = options;
  const server = createServer(
    frontPort === undefined
      ? s3
      : (req, res) => {
          if (frontService(req) === 's3') {
            s3(req, res);
            return;
          }
          proxy(req, res, frontPort).catch((error: unknown) => {
            onError?.(error, req);
            res.destroy();
          });
        },
  );
  // Uploads of several GB over a slow link must not be cut by Node's 5-minute request timeout.
  server.requestTimeout = 0;
  keepIdleConnections(server);
  const port = await listenLoopback(server, options.port ?? 0);
  const adopt = (socket: Socket, prefix: Buffer): void => {
    // Before Node's parser reads the socket: the bytes the front read come first.
    if (prefix.length > 0) socket.unshift(prefix);
    server.emit('connection', socket);
  };
  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    store,
    adopt,
    close: () => closeServer(server),
  };
}
