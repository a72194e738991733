import { abortOnInterrupt } from './interrupt';

describe('abortOnInterrupt', () => {
  it('aborts the signal on Ctrl-C and removes its listener once the task ends', async () => {
    const listenersBefore = process.listenerCount('SIGINT');

    const result = await abortOnInterrupt(async (signal) => {
      expect(signal.aborted).toBe(false);
      process.emit('SIGINT');
      await new Promise((resolve) => setImmediate(resolve));
      return signal.aborted;
    });

    expect(result).toBe(true);
    expect(process.listenerCount('SIGINT')).toBe(listenersBefore);
  });

  it('removes its listener when the task fails', async () => {
    const listenersBefore = process.listenerCount('SIGINT');

    await expect(abortOnInterrupt(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');

    expect(process.listenerCount('SIGINT')).toBe(listenersBefore);
  });
});
