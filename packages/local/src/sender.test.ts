import { spawn } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { once } from 'node:events';

import { peerPid } from './sender';

describe('peerPid', () => {
  it('finds the process on the other end of a loopback connection, and only that one', async () => {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const accepted = once(server, 'connection') as Promise<[Socket]>;
    // A client in a process of its own that keeps its connection open until it is killed.
    const client = spawn(process.execPath, [
      '-e',
      `require('node:net').connect(${port}, '127.0.0.1'); setInterval(() => {}, 1000);`,
    ]);
    try {
      const [socket] = await accepted;

      const found = await peerPid(socket.remotePort, socket.localPort, [process.pid, client.pid!]);
      const notAmong = await peerPid(socket.remotePort, socket.localPort, [process.pid]);
      const wrongPort = await peerPid(socket.localPort, socket.remotePort, [client.pid!]);

      expect(found).toBe(client.pid);
      expect(notAmong).toBeUndefined(); // this process holds the server's end, not the client's
      expect(wrongPort).toBeUndefined();
      socket.destroy();
    } finally {
      client.kill('SIGKILL');
      server.close();
    }
  });

  it('knows no sender without ports or once the process is gone', async () => {
    expect(await peerPid(undefined, 80, [process.pid])).toBeUndefined();
    expect(await peerPid(1, 1, [2 ** 22 + 1])).toBeUndefined();
  });
});
