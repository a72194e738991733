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
