import { createHash, randomBytes } from 'node:crypto';
import { Agent, createServer as createHttpServer, request, type Server } from 'node:http';
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import {
  GetObjectCommand,
  HeadObjectCommand,
  NotFound,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';

import { startS3 } from './emulators';
import { closeFront, MAX_PEEKED_HEAD_BYTES, parseRequestHead, routeConnections } from './handoff';
import { listenLoopback } from './loopback';
import type { SupervisedEmulator } from './supervisor';
import { tempDir } from './testing/fixtures';

jest.setTimeout(60_000);

describe('parseRequestHead', () => {
  it('reads the request line and headers, names in lower case, repeated ones joined', () => {
    const head = parseRequestHead(
      Buffer.from(
        'PUT /bucket/key?x-id=PutObject HTTP/1.1\r\nHost: 127.0.0.1:4566\r\nX-Amz-Target:  A.B \r\nx-amz-target: C\r\n\r\n',
      ),
    );
    expect(head).toEqual({
      method: 'PUT',
      url: '/bucket/key?x-id=PutObject',
      headers: { host: '127.0.0.1:4566', 'x-amz-target': 'A.B, C' },
    });
  });

  it.each([
    ['no HTTP version', 'GET /\r\n\r\n'],
    ['HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\n'],
    ['a lower-case method', 'get / HTTP/1.1\r\n\r\n'],
    ['a header without a colon', 'GET / HTTP/1.1\r\nHost\r\n\r\n'],
    ['a folded header line', 'GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n'],
    ['binary garbage', '\u0000\u00ff\u0016\u0003\r\n\r\n'],
  ])('refuses %s (Node then answers it)', (_name, text) => {
    expect(parseRequestHead(Buffer.from(text, 'latin1'))).toBeUndefined();
  });
});

/**
 * A port that hands S3 connections to the real store's child process, as the stack's front does;
 * everything else is answered here with "served here" (and counted), standing in for the front's
 * own services.
 */
describe('a port handing S3 connections to the store process', () => {
  let dir: { path: string; remove: () => Promise<void> };
  let store: SupervisedEmulator;
  let front: Server;
  let port: number;
  let servedHere: string[];
  /** What the store's supervisor printed (its restarts). */
  let printed: string[];
  /** Connections the port handed to the store's process. */
  let handedOff: number;
  const bucket = 'handoff-bucket';
  const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };

  beforeEach(async () => {
    dir = await tempDir('ba-handoff-');
    servedHere = [];
    printed = [];
    handedOff = 0;
    front = createHttpServer((req, res) => {
      servedHere.push(`${req.method ?? ''} ${req.url ?? ''}`);
      req.resume();
      req.on('end', () => res.end('served here'));
    });
    routeConnections(front, () => (handed, prefix) => {
      const taken = store.handOff(handed, prefix);
      if (taken) handedOff += 1;
      return taken;
    });
    port = await listenLoopback(front, 0);
    store = await startS3(
      dir.path,
      [bucket],
      (text) => printed.push(text),
      () => undefined,
      port,
    );
  });

  afterEach(async () => {
    await store.close();
    await closeFront(front);
    await dir.remove();
  });

  const s3Client = (agent?: Agent) =>
    new S3Client({
      endpoint: `http://127.0.0.1:${port}`,
      region: 'us-east-1',
      credentials,
      forcePathStyle: true,
      ...(agent ? { requestHandler: { httpAgent: agent } } : {}),
    });

  /** Waits until a store other than the `killed` one answers S3 through the port. */
  const storeBackAfter = async (killed: number): Promise<void> => {
    const deadline = Date.now() + 20_000;
    while (store.pid === killed || !(await statusOk(port))) {
      if (Date.now() > deadline) throw new Error('the store did not come back');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };

  /** Waits until `check` holds, polling, or fails after `ms` with `what`. */
  const waitUntil = async (check: () => boolean, what: string, ms = 20_000): Promise<void> => {
    const deadline = Date.now() + ms;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting: ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  /** Waits until the supervisor has seen the store exit (so the port no longer hands over). */
  const storeSeenStopped = () =>
    waitUntil(() => printed.some((line) => line.includes('S3 stopped')), 'the store seen stopped');

  const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

  it('loses no byte of 40 concurrent 2 MiB uploads, each on a connection of its own', async () => {
    // Prepare: 40 sockets at once, so that handles queue behind each other's hand-off (Node sends
    // one at a time and waits for the child's acknowledgement) while their bodies keep coming.
    const agent = new Agent({ keepAlive: true, maxSockets: 40 });
    const s3 = s3Client(agent);
    const bodies = Array.from({ length: 40 }, () => randomBytes(2 * 1024 * 1024));
    try {
      // Act
      await Promise.all(
        bodies.map((body, i) =>
          s3.send(new PutObjectCommand({ Bucket: bucket, Key: `upload-${i}`, Body: body })),
        ),
      );
      const read = await Promise.all(
        bodies.map(async (_body, i) => {
          const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `upload-${i}` }));
          return sha256(await got.Body!.transformToByteArray());
        }),
      );

      // Assert: every object whole, and none of it served by this process.
      expect(read).toEqual(bodies.map(sha256));
      expect(servedHere).toEqual([]);
    } finally {
      s3.destroy();
      agent.destroy();
    }
  });

  it('sends a later request for another service on a handed-off connection back to the port', async () => {
    // Prepare: one connection shared by an S3 and an SQS client, S3 first.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const s3 = s3Client(agent);
    const sqs = new SQSClient({
      endpoint: `http://127.0.0.1:${port}`,
      region: 'us-east-1',
      credentials,
      requestHandler: { httpAgent: agent },
      maxAttempts: 1,
    });
    const sockets = new Set<unknown>();
    agent.on('free', (socket) => sockets.add(socket));
    try {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'first', Body: 'first' }));

      // Act: the stand-in answers "served here", which is no SQS answer.
      const sent = sqs.send(
        new SendMessageCommand({ QueueUrl: `http://127.0.0.1:${port}/1/q`, MessageBody: 'x' }),
      );

      // Assert: it reached this process, over the same connection as the upload.
      await expect(sent).rejects.toThrow();
      expect(servedHere).toEqual(['POST /']);
      expect(sockets.size).toBe(1);
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'first' }));
      expect(await got.Body!.transformToString()).toBe('first');
    } finally {
      s3.destroy();
      sqs.destroy();
      agent.destroy();
    }
  });

  /** Writes `chunks` one by one on a fresh connection and returns all it answered. */
  const exchange = (chunks: Buffer[], delayMs = 0): Promise<string> =>
    new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      let answer = '';
      socket.on('data', (data: Buffer) => (answer += data.toString('latin1')));
      socket.on('close', () => resolve(answer));
      socket.on('error', reject);
      socket.on('connect', () => {
        void (async () => {
          for (const chunk of chunks) {
            socket.write(chunk);
            if (delayMs > 0) await new Promise((wait) => setTimeout(wait, delayMs));
          }
        })();
      });
    });

  it('hands over a head that arrives a byte at a time, with the bytes already read', async () => {
    // Prepare: an unsigned GET of a bucket listing (S3 answers it: the guard lets GETs through).
    const head = `GET /${bucket}?list-type=2 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`;

    // Act
    const answer = await exchange(
      [...Buffer.from(head, 'latin1')].map((byte) => Buffer.from([byte])),
      1,
    );

    // Assert: the store's listing answered it; this process never saw it.
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer).toContain('<ListBucketResult');
    expect(servedHere).toEqual([]);
  });

  it.each([1, 2, 3])(
    'hands over a head whose blank line is split %i byte(s) from its end across two reads',
    async (split) => {
      // Prepare
      const head = Buffer.from(
        `GET /${bucket}?list-type=2 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`,
        'latin1',
      );

      // Act: the second read starts inside the final CRLF CRLF.
      const answer = await exchange(
        [head.subarray(0, head.length - split), head.subarray(head.length - split)],
        20,
      );

      // Assert
      expect(answer).toMatch(/^HTTP\/1\.1 200 /);
      expect(answer).toContain('<ListBucketResult');
      expect(servedHere).toEqual([]);
    },
  );

  it.each([
    [
      'garbage',
      [Buffer.from('\u0016\u0003\u0001 not http at all\r\n\r\n', 'latin1')],
      /^HTTP\/1\.1 400 /,
    ],
    [
      'a head longer than the peek limit',
      [Buffer.from(`GET / HTTP/1.1\r\nX-Long: ${'a'.repeat(MAX_PEEKED_HEAD_BYTES)}\r\n\r\n`)],
      /^HTTP\/1\.1 431 /,
    ],
  ])('leaves %s to this process, whose HTTP server answers it', async (_name, chunks, status) => {
    // Act
    const answer = await exchange(chunks);

    // Assert
    expect(answer).toMatch(status);
    expect(servedHere).toEqual([]);
  });

  it('forgets a connection that closes before a whole head, and goes on serving', async () => {
    // Act
    await new Promise<void>((resolve) => {
      const socket = connect(port, '127.0.0.1', () =>
        socket.end('PUT /handoff-bucket/half HTTP/1.1\r\nHost: x'),
      );
      socket.on('close', () => resolve());
      socket.resume();
    });

    // Assert: nothing was served, and the port still works both ways.
    const s3 = s3Client();
    try {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'after', Body: 'after' }));
      expect(
        await exchange([
          Buffer.from(
            'GET /2015-03-31/functions/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
          ),
        ]),
      ).toContain('served here');
    } finally {
      s3.destroy();
    }
  });

  it('cuts a connection still sending its first head when the port closes, and never serves it', async () => {
    // Prepare: a client half-way through its head.
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (data: Buffer) => (answer += data.toString('latin1')));
    socket.on('error', () => undefined);
    const closed = new Promise((resolve) => socket.on('close', resolve));
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(`GET /${bucket} HTTP/1.1\r\nHost: localhost\r\n`);
    await new Promise((resolve) => setTimeout(resolve, 100));

    // Act
    await closeFront(front);
    socket.write('\r\n');

    // Assert: the client's connection ends unanswered (it stayed open, and was answered, before).
    const outcome = await Promise.race([
      closed.then(() => 'closed'),
      new Promise((resolve) => setTimeout(() => resolve('still open'), 5_000)),
    ]);
    expect(outcome).toBe('closed');
    expect(answer).toBe('');
    expect(servedHere).toEqual([]);
  });

  it('never stores part of an upload whose handed-off connection dies with the store', async () => {
    // Prepare: an 8 MiB upload that sends its first 2 MiB, then waits.
    const s3 = new S3Client({
      endpoint: `http://127.0.0.1:${port}`,
      region: 'us-east-1',
      credentials,
      forcePathStyle: true,
      maxAttempts: 1,
    });
    const body = new Readable({ read: () => undefined });
    const chunk = randomBytes(1024 * 1024);
    body.push(chunk);
    body.push(chunk);
    const put = s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'cut',
        Body: body,
        ContentLength: 8 * chunk.length,
      }),
    );
    const outcome = put.then(
      () => 'stored',
      () => 'failed',
    );
    const first = store.pid!;
    try {
      // Handed to the store (a connection served here would be answered by the stand-in instead).
      await waitUntil(() => handedOff === 1, 'the upload handed off');
      await new Promise((resolve) => setTimeout(resolve, 200));

      // Act: the store dies mid-body; the rest of the body follows.
      process.kill(first, 'SIGKILL');
      for (let i = 2; i < 8; i++) body.push(chunk);
      body.push(null);

      // Assert: the client hears of it, and once the store is back the key does not exist.
      expect(await outcome).toBe('failed');
      expect(servedHere).toEqual([]);
      await storeBackAfter(first);
      await expect(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'cut' }))).rejects.toThrow(
        NotFound,
      );
    } finally {
      s3.destroy();
    }
  });

  it('serves S3 connections itself while the store is down, and hands them over again after', async () => {
    // Prepare: stop the child; the supervisor restarts it after a backoff.
    const first = store.pid!;
    process.kill(first, 'SIGKILL');
    await storeSeenStopped();

    // Act: a connection now is not handed over (no child listens), so this process serves it.
    const down = await exchange([
      Buffer.from(`GET /${bucket} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`),
    ]);

    // Assert
    expect(down).toContain('served here');
    expect(servedHere).toEqual([`GET /${bucket}`]);
    const s3 = s3Client();
    try {
      await storeBackAfter(first);
      servedHere = [];
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'back', Body: 'back' }));
      expect(servedHere).toEqual([]);
    } finally {
      s3.destroy();
    }
  });

  it('closes the connections handed to a store that dies before taking them', async () => {
    // Prepare: a store that cannot take anything (stopped), then three S3 connections handed to
    // it: the first is written to its channel and waits for its acknowledgement, the others queue.
    const first = store.pid!;
    process.kill(first, 'SIGSTOP');
    const head = `GET /${bucket}?list-type=2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`;
    const answers = [1, 2, 3].map(() => exchange([Buffer.from(head, 'latin1')]));
    await waitUntil(() => handedOff === 3, 'three connections handed off');

    // Act: the store dies without having read them.
    process.kill(first, 'SIGKILL');

    // Assert: each client sees its connection end, unanswered (before the fix they hung forever).
    const ended = Promise.allSettled(answers);
    const bound = new Promise((resolve) => setTimeout(() => resolve('still open'), 15_000));
    const outcome = await Promise.race([ended, bound]);
    expect(outcome).not.toBe('still open');
    for (const answer of outcome as PromiseSettledResult<string>[]) {
      expect(answer.status === 'rejected' || answer.value === '').toBe(true);
    }
    expect(servedHere).toEqual([]);
    await storeBackAfter(first);
    const s3 = s3Client();
    try {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'after', Body: 'after' }));
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'after' }));
      expect(await got.Body!.transformToString()).toBe('after');
    } finally {
      s3.destroy();
    }
  });
});

/** Whether an S3 listing through the port is answered by the store (not by the stand-in). */
function statusOk(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path: '/',
      headers: { host: 'localhost', connection: 'close' },
    });
    req.on('response', (res) => {
      let text = '';
      res.on('data', (data: Buffer) => (text += data.toString()));
      res.on('end', () => resolve(res.statusCode === 200 && text.includes('ListAllMyBuckets')));
    });
    req.on('error', () => resolve(false));
    req.end();
  });
}
