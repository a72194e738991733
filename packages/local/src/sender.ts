// Which local process sent a request: the peer of a loopback TCP connection, found in Linux's
// /proc (the connection's socket inode, then the process holding it). The local stack uses it to
// name the Lambda invocation that published each alert, for post-mortems of repeated alerts.
import { readdir, readFile, readlink } from 'node:fs/promises';

/** A /proc/net/tcp address `0100007F:1F90` -> its port. */
function portOf(address: string | undefined): number {
  return parseInt(address?.split(':')[1] ?? '', 16);
}

/**
 * The inode of the socket whose local port is `clientPort` and whose peer's port is `serverPort`
 * (the client's end of a connection the server sees from `clientPort`), from /proc/net/tcp{,6}.
 */
async function clientSocketInode(
  clientPort: number,
  serverPort: number,
): Promise<string | undefined> {
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(table, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      if (portOf(fields[1]) === clientPort && portOf(fields[2]) === serverPort) return fields[9];
    }
  }
  return undefined;
}

/**
 * The pid among `candidates` holding the client end of the loopback connection the server sees
 * from `clientPort` on its own `serverPort`; undefined when none does (another process, a process
 * already gone, or no /proc).
 */
export async function peerPid(
  clientPort: number | undefined,
  serverPort: number | undefined,
  candidates: Iterable<number>,
): Promise<number | undefined> {
  if (clientPort === undefined || serverPort === undefined) return undefined;
  const inode = await clientSocketInode(clientPort, serverPort);
  if (inode === undefined || inode === '0') return undefined;
  const socket = `socket:[${inode}]`;
  for (const pid of candidates) {
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')) === socket) return pid;
    }
  }
  return undefined;
}
