import { createServer, type IncomingMessage } from 'node:http';

import { closeServer, listenLoopback } from '../loopback';
import { createS3Handler } from './api';
import { ObjectStore, type ObjectCreatedEvent } from './store';

export interface S3Server {
  port: number;
  endpoint: string;
  store: ObjectStore;
  close: () => Promise<void>;
}

export interface S3ServerOptions {
  /** Where the store keeps its buckets (created when missing). */
  dir: string;
  /** Port on 127.0.0.1 (default 0: a free port). */
  port?: number;
  /** Buckets that exist from the start. */
  buckets?: string[];
  onCreated?: (event: ObjectCreatedEvent) => void;
  onError?: (error: unknown, req: IncomingMessage) => void;
}

/** The local S3 store served over HTTP on 127.0.0.1. */
export async function startS3Server(options: S3ServerOptions): Promise<S3Server> {
  const store = await ObjectStore.open(options.dir, options.onCreated);
  for (const bucket of options.buckets ?? []) await store.createBucket(bucket);
  const server = createServer(createS3Handler(store, options.onError));
  // Uploads of several GB over a slow link must not be cut by Node's 5-minute request timeout.
  server.requestTimeout = 0;
  const port = await listenLoopback(server, options.port ?? 0);
  return { port, endpoint: `http://127.0.0.1:${port}`, store, close: () => closeServer(server) };
}
