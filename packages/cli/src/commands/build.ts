import path from 'node:path';
import type { Command } from 'commander';

import { buildLambdaZips, REPO_ROOT } from '../build';
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
        outDir: flags.outDir ?? path.join(REPO_ROOT, 'dist', 'lambda'),
        rulesDir: flags.rulesDir,
        log: (line) => process.stdout.write(`${line}\n`),
      });
      for (const zip of zips)
        process.stdout.write(`${zip.sha256}  ${path.relative(process.cwd(), zip.path)}\n`);
    });
};
