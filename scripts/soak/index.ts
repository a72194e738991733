// pnpm soak [--objects N] [--fault-rate R] [--kill-rate R] [--emulator-kills N] [--seed S] [--keep]:
// see soak.ts.
import { formatSoakReport, runSoak } from './soak';

function flag(name: string, fallback: number): number {
  const index = process.argv.indexOf(name);
  if (index === -1) return fallback;
  const value = Number(process.argv[index + 1]);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} needs a number`);
  return value;
}

async function main(): Promise<void> {
  const report = await runSoak({
    objects: flag('--objects', 2000),
    faultRate: flag('--fault-rate', 0.02),
    ...(process.argv.includes('--kill-rate') ? { killRate: flag('--kill-rate', 0) } : {}),
    emulatorKills: flag('--emulator-kills', 2),
    seed: flag('--seed', 1),
    keep: process.argv.includes('--keep'),
    log: (line) => process.stdout.write(`${line}\n`),
  });
  process.stdout.write(`\n${formatSoakReport(report)}\n`);
  process.exitCode = report.failures.length === 0 ? 0 : 1;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
