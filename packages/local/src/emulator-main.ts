// Entry of an emulator's child process (see supervisor.ts): starts one emulator on 127.0.0.1,
// reports its port and events to the parent over IPC, and exits when the parent goes away.
import { join } from 'node:path';

import { errorText } from '@binaryalert/core';
import { createDynamoServer } from './dynamo-server';
import { closeServer, listenLoopback } from './loopback';
import { startS3Server } from './s3/server';
import type { ObjectCreatedEvent } from './s3/store';

export type EmulatorKind = 's3' | 'dynamodb';

/** What a child tells its supervisor. */
export type EmulatorMessage =
  { type: 'listening'; port: number } | { type: 'objectCreated'; event: ObjectCreatedEvent };

interface Settings {
  dataDir: string;
  port: number;
  buckets?: string[];
}

function send(message: EmulatorMessage): void {
  process.send?.(message);
}

async function main(kind: string, settings: Settings): Promise<() => Promise<void>> {
  switch (kind) {
    case 's3': {
      const server = await startS3Server({
        dir: join(settings.dataDir, 's3'),
        port: settings.port,
        buckets: settings.buckets ?? [],
        onCreated: (event) => send({ type: 'objectCreated', event }),
        onError: (error, req) =>
          process.stderr.write(`${req.method} ${req.url} failed: ${errorText(error)}\n`),
      });
      send({ type: 'listening', port: server.port });
      return server.close;
    }
    case 'dynamodb': {
      const server = createDynamoServer({
        path: join(settings.dataDir, 'dynamodb'),
        createTableMs: 0,
        deleteTableMs: 0,
        updateTableMs: 0,
      });
      send({ type: 'listening', port: await listenLoopback(server, settings.port) });
      return () => closeServer(server);
    }
    default:
      throw new Error(`unknown emulator ${kind}`);
  }
}

const [kind = '', settings = '{}'] = process.argv.slice(2);
main(kind, JSON.parse(settings) as Settings).then(
  (close) => {
    const stop = (): void => void close().finally(() => process.exit(0));
    process.on('message', (message: { type?: string }) => {
      if (message?.type === 'close') stop();
    });
    // The stack is gone (even killed with SIGKILL): an orphan emulator would hold the data dir.
    process.on('disconnect', stop);
  },
  (error: unknown) => {
    process.stderr.write(`cannot start: ${errorText(error)}\n`);
    process.exit(1);
  },
);
