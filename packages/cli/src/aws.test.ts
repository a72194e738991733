// program before aws.ts: aws.ts imports program, which registers the command modules.
import { runCli, UsageError } from './program';
import { awsClientSettings, createAwsClients, destroyAwsClients, LOCAL_ENDPOINT } from './aws';

describe('awsClientSettings', () => {
  const config = { aws_region: 'eu-west-1' };

  it('uses the configured region and the default credential chain for AWS', () => {
    expect(awsClientSettings(config)).toEqual({ region: 'eu-west-1' });
  });

  it('points at the local stack with its dummy credentials for a bare --local', () => {
    expect(awsClientSettings(config, true)).toEqual({
      region: 'eu-west-1',
      endpoint: LOCAL_ENDPOINT,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      forcePathStyle: true,
    });
  });

  it('accepts another local endpoint and rejects what is not an http(s) URL', () => {
    expect(awsClientSettings(config, 'http://127.0.0.1:5000/').endpoint).toBe(
      'http://127.0.0.1:5000',
    );
    expect(() => awsClientSettings(config, 'localhost:4566')).toThrow(UsageError);
    expect(() => awsClientSettings(config, 'not a url')).toThrow(UsageError);
  });

  it('builds clients that resolve to the local endpoint', async () => {
    const clients = createAwsClients(awsClientSettings(config, true));
    try {
      const endpoint = await clients.sqs.config.endpoint?.();
      expect(endpoint?.hostname).toBe('127.0.0.1');
      expect(endpoint?.port).toBe(4566);
      expect(await clients.s3.config.region()).toBe('eu-west-1');
    } finally {
      destroyAwsClients(clients);
    }
  });
});

describe('operating commands on the command line', () => {
  it('exit with 2 on a bad --local endpoint or --timeout', async () => {
    const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await runCli(['live-test', '--timeout', 'soon'])).toBe(2);
      expect(await runCli(['purge-queue', '--local', 'ftp://127.0.0.1:1'])).toBe(2);
    } finally {
      stderr.mockRestore();
    }
  });
});
