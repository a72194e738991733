#!/usr/bin/env node
// The one BinaryAlert CLI (packages/cli/src/main.ts). Plain JavaScript that node runs directly:
// it starts the CLI from an esbuild bundle, rebuilt when a source changed (packages/cli/launcher.cjs).
// eslint-disable-next-line @typescript-eslint/no-require-imports, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-member-access
require('./packages/cli/launcher.cjs').run();
