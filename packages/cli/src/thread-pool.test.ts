describe('sizeThreadPool', () => {
  const original = process.env.UV_THREADPOOL_SIZE;
  afterEach(() => {
    if (original === undefined) delete process.env.UV_THREADPOOL_SIZE;
    else process.env.UV_THREADPOOL_SIZE = original;
  });

  /** The module as a fresh process would evaluate it, with UV_THREADPOOL_SIZE as given. */
  function freshModule(userValue: string | undefined): typeof import('./thread-pool') {
    if (userValue === undefined) delete process.env.UV_THREADPOOL_SIZE;
    else process.env.UV_THREADPOOL_SIZE = userValue;
    let loaded: typeof import('./thread-pool') | undefined;
    jest.isolateModules(() => {
      loaded = jest.requireActual<typeof import('./thread-pool')>('./thread-pool');
    });
    if (!loaded) throw new Error('thread-pool did not load');
    return loaded;
  }

  it('sizes the pool to the last size asked for when the user set none', () => {
    const { sizeThreadPool } = freshModule(undefined);

    sizeThreadPool(8); // main.ts's default for every command
    sizeThreadPool(1); // scan --concurrency 1

    expect(process.env.UV_THREADPOOL_SIZE).toBe('1');
  });

  it("keeps the user's UV_THREADPOOL_SIZE", () => {
    const { sizeThreadPool } = freshModule('16');

    sizeThreadPool(2);

    expect(process.env.UV_THREADPOOL_SIZE).toBe('16');
  });

  it('never asks libuv for fewer than one thread', () => {
    const { sizeThreadPool } = freshModule(undefined);

    sizeThreadPool(0.5);

    expect(process.env.UV_THREADPOOL_SIZE).toBe('1');
  });
});
