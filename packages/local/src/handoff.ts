// Hands S3 connections of the stack's one port to the store's process, so that upload bytes do not
// pass through the front's process on their way to disk (its proxy hop cost about as much CPU per
// byte as the store itself: README, Performance).
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

import { frontService, type RequestHead } from './protocol';

/** Longer first request heads go the ordinary way (Node's own limit is 16 KiB). */
export const MAX_PEEKED_HEAD_BYTES = 32 * 1024;
/** A connection that has not sent a whole head by then goes the ordinary way too. */
export const PEEK_TIMEOUT_MS = 10_000;

/** A connection's first request head, as parsed for routing. */
export type ParsedHead = RequestHead & { method: string };

/**
 * Hands a connection and the bytes already read from it to another process; false if it cannot
 * (or, judging by its first request's `head`, should not).
 */
export type HandOff = (socket: Socket, prefix: Buffer, head: ParsedHead) => boolean;

const HEAD_END = Buffer.from('\r\n\r\n');

/**
 * The request line and headers of a complete HTTP/1.x request head, as much as routing needs;
 * undefined when it does not parse (Node's parser then answers it).
 */
export function parseRequestHead(head: Buffer): ParsedHead | undefined {
  const lines = head.toString('latin1').split('\r\n');
  const requestLine = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(lines[0] ?? '');
  if (!requestLine) return undefined;
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    if (line === '') break;
    const colon = line.indexOf(':');
    if (colon <= 0 || /[\s]/.test(line[0] ?? '')) return undefined;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return { method: requestLine[1] as string, url: requestLine[2] as string, headers };
}

/**
 * Stops a socket's reads at the libuv handle, so that nothing more is taken from the kernel before
 * the handle is sent to another process: what the handle reads after `send` is dropped (Node sets
 * its onread to a no-op), `pause()` stops the handle only once the stream's buffer is full, and
 * the stream would start the handle again (its read-ahead after each chunk) while Node queues the
 * handle behind another one waiting for the child's acknowledgement. So the handle is stopped and
 * the stream's `_read` (what starts it) is a no-op until `resumeReading`. False when this Node has
 * no such handle method: the connection is then served here.
 */
function stopReading(socket: Socket): boolean {
  const handle = (socket as unknown as { _handle?: { readStop?: () => number; reading?: boolean } })
    ._handle;
  if (typeof handle?.readStop !== 'function') return false;
  socket.pause();
  socket._read = () => undefined;
  handle.reading = false;
  if (handle.readStop() === 0) return true;
  resumeReading(socket);
  return false;
}

/** Undoes stopReading's `_read` (the prototype's starts the handle again when the stream reads). */
function resumeReading(socket: Socket): void {
  delete (socket as { _read?: unknown })._read;
}

/**
 * What the stack's port does with a new connection: reads its first request head; an S3 request
 * goes with its connection to `handOff` (the store's process, which sends any later non-S3 request
 * of that connection back here), anything else, or anything unusual (no whole head soon, a head
 * that does not parse, a hand-off refused), to `serve` (this process's HTTP server) with the bytes
 * read put back. Nothing read from the connection is lost either way.
 */
export function acceptConnection(
  socket: Socket,
  serve: (socket: Socket) => void,
  handOff: HandOff | undefined,
  /** Called once the connection went one way or the other (or closed). */
  onDecided?: () => void,
): void {
  if (!handOff) {
    serve(socket);
    onDecided?.();
    return;
  }
  const chunks: Buffer[] = [];
  let length = 0;
  let settled = false;
  const settle = (decide: (prefix: Buffer) => void): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.off('error', onError);
    socket.off('close', onEnd);
    decide(Buffer.concat(chunks, length));
    onDecided?.();
  };
  const serveHere = (prefix: Buffer): void => {
    socket.pause();
    if (prefix.length > 0) socket.unshift(prefix);
    serve(socket);
    socket.resume();
  };
  // The last bytes read so far: a head's end may straddle two chunks.
  let tail = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    // Only the new bytes (and the tail before them) are searched, and the chunks are joined once,
    // when the head is whole: a head dripped a byte at a time costs no more than one sent at once.
    const window = tail.length === 0 ? chunk : Buffer.concat([tail, chunk]);
    const found = window.indexOf(HEAD_END);
    const windowStart = length - tail.length;
    chunks.push(chunk);
    length += chunk.length;
    if (found < 0) {
      if (length > MAX_PEEKED_HEAD_BYTES) settle(serveHere);
      else tail = Buffer.from(window.subarray(Math.max(0, window.length - (HEAD_END.length - 1))));
      return;
    }
    const end = windowStart + found;
    const whole = chunks.length === 1 ? chunk : Buffer.concat(chunks, length);
    const head = parseRequestHead(whole.subarray(0, end + HEAD_END.length));
    if (!head || frontService(head) !== 's3' || !stopReading(socket)) {
      settle(serveHere);
      return;
    }
    settle((prefix) => {
      if (handOff(socket, prefix, head)) return;
      resumeReading(socket);
      serveHere(prefix);
    });
  };
  // Gone before a whole head: there is nothing to answer.
  const onEnd = (): void => settle(() => socket.destroy());
  const onError = (): void => settle(() => socket.destroy());
  const timer = setTimeout(() => settle(serveHere), PEEK_TIMEOUT_MS);
  timer.unref();
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('error', onError);
  socket.on('close', onEnd);
}

/** Per port: its connections still being read for their first head (closeFront cuts them). */
const peekingConnections = new WeakMap<Server, Set<Socket>>();

/**
 * Routes each new connection of `server` through acceptConnection: S3 ones to `handOff()` (when
 * it returns one), the rest to the server's own HTTP handling, and none once the server stopped.
 */
export function routeConnections(server: Server, handOff: () => HandOff | undefined): void {
  const serve = server.listeners('connection')[0] as (socket: Socket) => void;
  server.removeAllListeners('connection');
  const peeking = new Set<Socket>();
  peekingConnections.set(server, peeking);
  server.on('connection', (socket: Socket) => {
    peeking.add(socket);
    acceptConnection(
      socket,
      (accepted) => (server.listening ? serve.call(server, accepted) : accepted.destroy()),
      handOff(),
      () => peeking.delete(socket),
    );
  });
}

/**
 * Stops the port and cuts the connections served here. Connections handed to the store's process
 * are its own to close: Node's `close` callback would wait for them (it asks that process, and
 * never hears back once it has exited), so it is not waited for; the listening socket's
 * descriptor is closed within `close()`, so the port is free at once.
 */
export function closeFront(server: Server): Promise<void> {
  if (server.listening) {
    server.closeAllConnections();
    server.close();
  }
  // The HTTP server does not know these yet: a client half-way through its first head.
  for (const socket of peekingConnections.get(server) ?? []) socket.destroy();
  return Promise.resolve();
}
