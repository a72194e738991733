import path from 'node:path';
import type { Command } from 'commander';

import { LAMBDA_DIST_DIR } from '@binaryalert/deployment';
import { buildLambdaZips } from '../build';
import type { CommandRegistrar } from '../usage';

export { buildLambdaZips } from '../build';

export const registerBuild: CommandRegistrar = (program: Command) => {
  program
    .command('build')
    .description(
      'bundle the analyzer, dispatcher and batcher into reproducible Lambda zips (dist/lambda/)',
    )
    .option('--out-dir <dir>', 'write the zips here instead of dist/lambda')
    .option('--rules-dir <dir>', 'compile these rules into the analyzer zip instead of rules/')
    .action(async (flags: { outDir?: string; rulesDir?: string }) => {
      const zips = await buildLambdaZips({
        outDir: flags.outDir ?? LAMBDA_DIST_DIR,
        rulesDir: flags.rulesDir,
        log: (line) => process.stdout.write(`${line}\n`),
      });
      for (const zip of zips)
        process.stdout.write(`${zip.sha256}  ${path.relative(process.cwd(), zip.path)}\n`);
    });
};
