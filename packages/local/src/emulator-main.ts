// Entry of an emulator's child process (see supervisor.ts): starts one emulator on 127.0.0.1,
// reports its port and events to the parent over IPC, and exits when the parent goes away.
import { Socket } from 'node:net';
import { join } from 'node:path';

import { errorText } from '@binaryalert/core';
import { createDynamoServer } from './dynamo-server';
import { closeServer, keepIdleConnections, listenLoopback } from './loopback';
import { startS3Server } from './s3/server';
import type { ObjectCreatedEvent } from './s3/store';

export type EmulatorKind = 's3' | 'dynamodb';

/** What a supervisor tells its child: stop, or serve this client connection (S3's only). */
export type EmulatorCommand = { type: 'close' } | { type: 'connection'; prefix: string };

/** What a child tells its supervisor. */
export type EmulatorMessage =
  { type: 'listening'; port: number } | { type: 'objectCreated'; event: ObjectCreatedEvent };

interface Settings {
  dataDir: string;
  port: number;
  buckets?: string[];
  /** The stack's port: other services' requests on a connection handed to S3 go back there. */
  frontPort?: number;
}

interface Running {
  port: number;
  close: () => Promise<void>;
  adopt?: (socket: Socket, prefix: Buffer) => void;
}

function send(message: EmulatorMessage): void {
  process.send?.(message);
}

async function main(kind: string, settings: Settings): Promise<Running> {
  switch (kind) {
    case 's3': {
      const server = await startS3Server({
        dir: join(settings.dataDir, 's3'),
        port: settings.port,
        buckets: settings.buckets ?? [],
        ...(settings.frontPort === undefined ? {} : { frontPort: settings.frontPort }),
        onCreated: (event) => send({ type: 'objectCreated', event }),
        onError: (error, req) =>
          process.stderr.write(`${req.method} ${req.url} failed: ${errorText(error)}\n`),
      });
      return { port: server.port, close: server.close, adopt: server.adopt };
    }
    case 'dynamodb': {
      const server = createDynamoServer({
        path: join(settings.dataDir, 'dynamodb'),
        createTableMs: 0,
        deleteTableMs: 0,
        updateTableMs: 0,
      });
      // The Lambda workers call it directly, keeping their connections as they would on AWS.
      keepIdleConnections(server);
      const port = await listenLoopback(server, settings.port);
      return { port, close: () => closeServer(server) };
    }
    default:
      throw new Error(`unknown emulator ${kind}`);
  }
}

const [kind = '', settings = '{}'] = process.argv.slice(2);
main(kind, JSON.parse(settings) as Settings).then(
  ({ port, close, adopt }) => {
    const stop = (): void => void close().finally(() => process.exit(0));
    process.on('message', (message: EmulatorCommand, handle: unknown) => {
      if (message?.type === 'close') stop();
      else if (message?.type === 'connection' && handle instanceof Socket) {
        if (adopt) adopt(handle, Buffer.from(message.prefix, 'base64'));
        else handle.destroy();
      }
    });
    // The stack is gone (even killed with SIGKILL): an orphan emulator would hold the data dir.
    process.on('disconnect', stop);
    // Only now: the supervisor hands connections over once it hears this.
    send({ type: 'listening', port });
  },
  (error: unknown) => {
    process.stderr.write(`cannot start: ${errorText(error)}\n`);
    process.exit(1);
  },
);
