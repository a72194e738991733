import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Listens on 127.0.0.1:port (0 = a free port) and resolves with the port taken. */
export async function listenLoopback(server: Server, port: number): Promise<number> {
  server.listen(port, '127.0.0.1');
  await Promise.race([
    once(server, 'listening'),
    once(server, 'error').then(([error]) => {
      throw error;
    }),
  ]);
  return (server.address() as AddressInfo).port;
}

/** Closes a server and cuts its open connections (a long poll would otherwise hold it open). */
export async function closeServer(server: Server): Promise<void> {
  if (!server.listening) return;
  server.closeAllConnections();
  await new Promise<void>((ok) => server.close(() => ok()));
}

/**
 * Keeps idle keep-alive connections open for 65 s, as AWS endpoints keep them far longer than
 * Node's 5 s default. With 5 s, a client reusing a connection just as the server closes it gets
 * a reset; the dispatcher invokes the analyzer with maxAttempts 1 (never twice), so one such reset
 * left a batch invisible until its visibility timeout (seen in the retro tests).
 */
export function keepIdleConnections(server: Server): void {
  server.keepAliveTimeout = 65_000;
  // Above the keep-alive time, so a head still arriving is not cut by an idle connection's clock.
  server.headersTimeout = 66_000;
}
