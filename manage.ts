#!/usr/bin/env -S pnpm exec tsx
// The one BinaryAlert CLI: every command lives in packages/cli.
import { runCli } from '@binaryalert/cli';

// The AWS SDK warns on every start that its releases from 2027 need Node 22. The CLI runs on the
// Node it was installed with; the Lambda runtime is lambda_runtime in terraform.tfvars.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

runCli(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
