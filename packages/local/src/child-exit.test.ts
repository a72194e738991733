import { fork, spawn } from 'node:child_process';

import { exitWhenSpawnFails } from './child-exit';

describe('exitWhenSpawnFails', () => {
  it('reports a child that could not be started as an exit, and prints why', async () => {
    // Prepare
    const printed: string[] = [];
    const child = spawn('/nonexistent/binaryalert-worker', [], { stdio: 'ignore' });

    // Act
    exitWhenSpawnFails(child, 'worker', (text) => printed.push(text));
    const code = await new Promise<number | null>((resolve) =>
      child.once('exit', (exitCode) => resolve(exitCode)),
    );

    // Assert
    expect(code).toBe(-2); // -ENOENT, as Node reports it
    expect(printed).toEqual([expect.stringMatching(/^\[local\] worker: spawn .* ENOENT$/)]);
  });

  it('keeps a failed send to a dead child from being thrown, and does not fake an exit', async () => {
    // Prepare: a child that is gone before the send.
    const printed: string[] = [];
    const child = fork('-e', ['0'], { execArgv: [], stdio: 'ignore' });
    exitWhenSpawnFails(child, 'worker', (text) => printed.push(text));
    const exits: unknown[] = [];
    child.on('exit', (...args) => exits.push(args));
    await new Promise((resolve) => child.once('close', resolve));

    // Act: Node emits 'error' for a send without a callback on a closed channel.
    child.send({ hello: 1 });
    await new Promise((resolve) => setTimeout(resolve, 50));

    // Assert: printed, not thrown; the one real exit only.
    expect(printed).toEqual([expect.stringMatching(/channel closed/i)]);
    expect(exits).toEqual([[0, null]]);
  });
});
