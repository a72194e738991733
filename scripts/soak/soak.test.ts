import { formatSoakReport, runSoak } from './soak';

// The e2e-sized soak: 200 uploads through the local stack with faults at 3%, one kill of the
// whole stack and two of its S3 store and DynamoDB together. `pnpm soak` runs the full 2,000.
jest.setTimeout(900_000);

describe('pnpm soak, e2e-sized', () => {
  it('gives every surviving object a verdict, alerts each EICAR once and dead-letters only poison', async () => {
    const report = await runSoak({ objects: 200, faultRate: 0.03, seed: 7 });
    const summary = formatSoakReport(report);
    console.log(summary); // the figures in the CI log, both counts of repeated alerts included

    expect({ failures: report.failures, summary }).toEqual({ failures: [], summary });
    expect(report.verdicted).toBe(report.verdictsExpected);
    expect(report.alertsDuplicated).toBe(0);
    // Each sender killed right after SNS stored its alert caused one repeat, told apart by the
    // run's records (a kill the verdict failed to recognise would count as a duplicate above).
    expect(report.workerKills.afterPublish).toBeGreaterThan(0);
    expect(report.alertsRepeatedAfterKill).toBeGreaterThanOrEqual(report.workerKills.afterPublish);
    expect(report.alertsMissed).toBe(0);
    expect(report.deadLetters.otherKeys).toEqual([]);
    expect(report.outsideDataDir).toEqual([]);
    expect(report.emulatorKills).toBe(2);
    expect((report.faults.s3GetError ?? 0) + (report.faults.dynamoThrottle ?? 0)).toBeGreaterThan(
      0,
    );
  });
});
