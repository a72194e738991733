import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

describe('the public entry', () => {
  it('exports the constants without loading an emulator', async () => {
    // A fresh process: jest's own module registry would hide what Node loads.
    const script = `
      const local = require(${JSON.stringify(join(__dirname, 'index.ts'))});
      const loaded = Object.keys(require.cache).filter((p) => /dynalite|s3rver|local-aws-sqs|client-dynamodb/.test(p));
      process.stdout.write(JSON.stringify({ endpoint: local.DEFAULT_LOCAL_ENDPOINT, loaded }));
    `;
    const { stdout } = await run(process.execPath, ['--import', 'tsx', '-e', script], {
      env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    });
    expect(JSON.parse(stdout)).toEqual({ endpoint: 'http://127.0.0.1:4566', loaded: [] });
  });
});
