import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { runCli } from './program';
import { PreflightError, preflight } from './preflight';

// STS has no local implementation: it is mocked at the SDK-client boundary. Terraform is a real
// PATH lookup: absent, or a stand-in script that prints a version and records every call.
const sts = mockClient(STSClient);
let dir: string;
let bin: string;
let callsFile: string;
let savedPath: string | undefined;

async function fakeTerraform(version: string): Promise<void> {
  const script = path.join(bin, 'terraform');
  await writeFile(
    script,
    `#!/bin/sh\necho "$*" >> "${callsFile}"\n` +
      `[ "$1" = version ] && echo '{"terraform_version":"${version}"}'\nexit 0\n`,
  );
  await chmod(script, 0o755);
}

async function terraformCalls(): Promise<string[]> {
  const text = await readFile(callsFile, 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean);
}

/** A PATH holding `bin` and the directories of sh/node, but no terraform. */
function pathWithoutTerraform(): string {
  return [bin, '/usr/bin', '/bin', path.dirname(process.execPath)].join(path.delimiter);
}

beforeEach(async () => {
  sts.reset();
  dir = await mkdtemp(path.join(tmpdir(), 'binaryalert-preflight-'));
  bin = path.join(dir, 'bin');
  callsFile = path.join(dir, 'calls.txt');
  await mkdir(bin);
  savedPath = process.env.PATH;
});
afterEach(async () => {
  process.env.PATH = savedPath;
  await rm(dir, { recursive: true, force: true });
});

function credentialsProviderError(message: string): Error {
  return Object.assign(new Error(message), { name: 'CredentialsProviderError' });
}

describe('preflight', () => {
  it('reports the account and the Terraform version when both are fine', async () => {
    await fakeTerraform('1.9.8');
    sts.on(GetCallerIdentityCommand).resolves({
      Account: '123456789012',
      Arn: 'arn:aws:iam::123456789012:user/ir',
    });

    const report = await preflight({ region: 'eu-west-1', env: { PATH: pathWithoutTerraform() } });

    expect(report).toEqual({
      account: '123456789012',
      arn: 'arn:aws:iam::123456789012:user/ir',
      terraformVersion: '1.9.8',
    });
    expect(sts).toHaveReceivedCommandTimes(GetCallerIdentityCommand, 1);
    const client = sts.call(0).thisValue as STSClient;
    expect(await client.config.region()).toBe('eu-west-1');
  });

  it('fails with one sentence when terraform is not on PATH', async () => {
    sts.on(GetCallerIdentityCommand).resolves({ Account: '1', Arn: 'a' });

    const failure = preflight({ region: 'us-east-1', env: { PATH: pathWithoutTerraform() } });

    await expect(failure).rejects.toThrow(PreflightError);
    await expect(failure).rejects.toThrow(
      /^Terraform is not installed or not on PATH: install Terraform .* and run this again\.$/,
    );
  });

  it('refuses a Terraform older than terraform/versions.tf requires', async () => {
    await fakeTerraform('1.4.7');

    await expect(
      preflight({ region: 'us-east-1', aws: false, env: { PATH: pathWithoutTerraform() } }),
    ).rejects.toThrow('Terraform 1.4.7 is older than the 1.5.0 terraform/versions.tf requires');
  });

  it('says no credentials were found when the credential chain yields none', async () => {
    sts
      .on(GetCallerIdentityCommand)
      .rejects(credentialsProviderError('Could not load credentials from any providers'));

    await expect(preflight({ region: 'us-east-1', terraform: false })).rejects.toThrow(
      'No AWS credentials found (Could not load credentials from any providers): run `aws configure` or `aws sso login`, or set AWS_PROFILE, and run this again.',
    );
  });

  it('says AWS refused the credentials when the token expired', async () => {
    sts.on(GetCallerIdentityCommand).rejects(
      Object.assign(new Error('The security token included in the request is expired'), {
        name: 'ExpiredToken',
      }),
    );

    await expect(preflight({ region: 'ap-south-2', terraform: false })).rejects.toThrow(
      'AWS refused the credentials in ap-south-2 (ExpiredToken: The security token included in the request is expired)',
    );
  });

  it('names the region when its STS endpoint does not resolve', async () => {
    sts.on(GetCallerIdentityCommand).rejects(
      Object.assign(new Error('getaddrinfo ENOTFOUND sts.xx-nowhere-1.amazonaws.com'), {
        code: 'ENOTFOUND',
      }),
    );

    await expect(preflight({ region: 'xx-nowhere-1', terraform: false })).rejects.toThrow(
      'Cannot resolve the STS endpoint of xx-nowhere-1 (ENOTFOUND): check aws_region in terraform.tfvars and the network.',
    );
  });

  it('gives up on an STS that never answers after the timeout, not after minutes', async () => {
    // Never settles, as a stalled credential process or connection would.
    sts.on(GetCallerIdentityCommand).callsFake(() => new Promise(() => undefined));

    await expect(
      preflight({ region: 'us-east-1', terraform: false, timeoutMs: 200 }),
    ).rejects.toThrow('AWS STS in us-east-1 did not answer within 0.2 s');
  });
});

describe('the commands that change AWS run the pre-flight first', () => {
  let stderr: string;
  let stdout: string;
  beforeEach(() => {
    stderr = '';
    stdout = '';
    jest.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      stderr += String(chunk);
      return true;
    });
    jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      stdout += String(chunk);
      return true;
    });
  });
  afterEach(() => jest.restoreAllMocks());

  it.each([['apply'], ['destroy'], ['deploy'], ['deploy-rules']])(
    '%s stops before running terraform when the credentials are missing',
    async (command) => {
      await fakeTerraform('1.11.4');
      process.env.PATH = pathWithoutTerraform();
      sts
        .on(GetCallerIdentityCommand)
        .rejects(credentialsProviderError('Could not load credentials from any providers'));

      const code = await runCli([command]);

      expect(code).toBe(1);
      expect(stderr).toBe(
        'error: No AWS credentials found (Could not load credentials from any providers): run `aws configure` or `aws sso login`, or set AWS_PROFILE, and run this again.\n',
      );
      // Only the version check ran: no init, apply, destroy, build or test.
      expect(await terraformCalls()).toEqual(['version -json']);
      expect(stdout).toBe('');
    },
  );

  it.each([['apply'], ['destroy'], ['deploy']])(
    '%s stops with one sentence when terraform is missing, before asking STS',
    async (command) => {
      process.env.PATH = pathWithoutTerraform();

      const code = await runCli([command]);

      expect(code).toBe(1);
      expect(stderr).toMatch(/^error: Terraform is not installed or not on PATH: [^\n]*\n$/);
      expect(sts).toHaveReceivedCommandTimes(GetCallerIdentityCommand, 0);
    },
  );

  it('deploy-rules --local needs neither AWS credentials nor Terraform', async () => {
    process.env.PATH = pathWithoutTerraform();
    sts.on(GetCallerIdentityCommand).rejects(credentialsProviderError('none'));
    const rulesDir = path.join(dir, 'rules');
    await mkdir(rulesDir);
    await writeFile(
      path.join(rulesDir, 'one.yara'),
      'rule one { strings: $a = "x1y2" condition: $a }\n',
    );

    // Nothing listens on port 1: the release itself fails, after the point a pre-flight would run.
    const code = await runCli([
      'deploy-rules',
      '--local',
      'http://127.0.0.1:1',
      '--rules-dir',
      rulesDir,
      '--no-retro',
    ]);

    expect(code).toBe(1);
    expect(sts).toHaveReceivedCommandTimes(GetCallerIdentityCommand, 0);
    expect(stderr).toMatch(/ECONNREFUSED/);
    expect(stderr).not.toContain('Terraform');
    expect(stderr).not.toContain('credentials');
  });
});
