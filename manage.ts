#!/usr/bin/env -S pnpm exec tsx
// The one BinaryAlert CLI: every command lives in packages/cli.
import { runCli } from '@binaryalert/cli';

runCli(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
