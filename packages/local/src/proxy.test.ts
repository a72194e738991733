import { createServer, request, type Server } from 'node:http';

import { listenLoopback } from './loopback';
import { proxy } from './proxy';

describe('proxy', () => {
  let servers: Server[];

  beforeEach(() => {
    servers = [];
  });
  afterEach(() => {
    for (const server of servers) server.closeAllConnections();
    for (const server of servers) server.close();
  });

  const serve = async (handler: Parameters<typeof createServer>[1]): Promise<number> => {
    const server = createServer(handler);
    servers.push(server);
    return listenLoopback(server, 0);
  };

  it.each([
    ['streamed back', {}],
    ['rewritten', { rewriteResponse: (body: Buffer) => body }],
  ])(
    'settles when the client leaves before the emulator answers (response %s)',
    async (_name, options) => {
      // Prepare: an emulator that answers after 300 ms, as a long poll does.
      const emulatorPort = await serve((req, res) => {
        req.resume();
        setTimeout(() => res.end('{"Messages":[]}'), 300);
      });
      let proxied!: Promise<void>;
      const frontPort = await serve((req, res) => {
        proxied = proxy(req, res, emulatorPort, { body: Buffer.from('x'), ...options });
      });

      // Act: the client gives up at 100 ms.
      const client = request({ host: '127.0.0.1', port: frontPort, method: 'POST' });
      client.on('error', () => undefined);
      client.end('x');
      await new Promise((resolve) => setTimeout(resolve, 100));
      client.destroy();

      // Assert: the proxy's promise settles (before the fix, the rewritten one never did).
      const outcome = await Promise.race([
        proxied.then(
          () => 'resolved',
          () => 'rejected',
        ),
        new Promise((resolve) => setTimeout(() => resolve('pending'), 3_000)),
      ]);
      expect(outcome).not.toBe('pending');
    },
  );
});
