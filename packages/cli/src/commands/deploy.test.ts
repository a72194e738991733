// program before the command module: command modules import program, which registers them.
import { deploy, type DeployedRules, type DeploySteps } from './deploy';

/** Steps that record the order they ran in; `failing` names one that rejects. */
function recordingSteps(options: {
  release?: Omit<DeployedRules, 'retroAnalyzed'>;
  failing?: keyof DeploySteps;
}): { steps: DeploySteps; ran: string[]; retroAsked: boolean[] } {
  const ran: string[] = [];
  const retroAsked: boolean[] = [];
  const release = options.release ?? { version: 2, published: true, added: 1, changed: 0 };
  const step = (name: keyof DeploySteps) => () => {
    ran.push(name);
    return options.failing === name
      ? Promise.reject(new Error(`${name} failed`))
      : Promise.resolve();
  };
  return {
    ran,
    retroAsked,
    steps: {
      test: step('test'),
      build: step('build'),
      apply: step('apply'),
      releaseRules: async ({ retro }) => {
        await step('releaseRules')();
        retroAsked.push(retro);
        return { ...release, retroAnalyzed: retro && release.added + release.changed > 0 };
      },
      log: () => undefined,
    },
  };
}

describe('deploy', () => {
  it('tests, builds and applies, then releases the rules it deployed', async () => {
    const { steps, ran, retroAsked } = recordingSteps({});

    const outcome = await deploy(steps);

    expect(ran).toEqual(['test', 'build', 'apply', 'releaseRules']);
    expect(retroAsked).toEqual([true]);
    expect(outcome).toEqual({
      version: 2,
      published: true,
      added: 1,
      changed: 0,
      retroAnalyzed: true,
    });
  });

  it('passes --no-retro on to the release', async () => {
    const { steps, retroAsked } = recordingSteps({});

    const outcome = await deploy(steps, { retro: false });

    expect(retroAsked).toEqual([false]);
    expect(outcome.retroAnalyzed).toBe(false);
  });

  it('stops before building and applying when the tests fail', async () => {
    const { steps, ran } = recordingSteps({ failing: 'test' });

    await expect(deploy(steps)).rejects.toThrow('test failed');

    expect(ran).toEqual(['test']);
  });

  it('releases nothing when apply fails (the bucket may not exist yet)', async () => {
    const { steps, ran } = recordingSteps({ failing: 'apply' });

    await expect(deploy(steps)).rejects.toThrow('apply failed');

    expect(ran).toEqual(['test', 'build', 'apply']);
  });

  it('does not run the tests with --skip-tests', async () => {
    const { steps, ran } = recordingSteps({});

    await deploy(steps, { skipTests: true });

    expect(ran).toEqual(['build', 'apply', 'releaseRules']);
  });
});
