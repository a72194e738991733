import { FUNCTION_NAMES } from '../packages/deployment/src';
import { actionsUsedBy, workspaceModulesOf, type Plant } from './sdk-calls';

// A call planted two modules deep in another workspace package: the analyzer reaches
// decodeS3Key only through core's s3ObjectRef, never by name.
const PLANTED_IN_CORE_HELPER: Plant = {
  file: 'packages/core/src/s3-event.ts',
  header: "import { DeleteObjectCommand } from '@aws-sdk/client-s3';",
  after: 'export function decodeS3Key(encodedKey: string): string {',
  code: "  void new DeleteObjectCommand({ Bucket: 'b', Key: encodedKey });",
};

describe('the SDK calls a function makes', () => {
  it('follows imports into other workspace packages: a call planted in a core helper is found', async () => {
    const untouched = await actionsUsedBy('analyzer');
    const planted = await actionsUsedBy('analyzer', PLANTED_IN_CORE_HELPER);

    expect(untouched).not.toContain('s3:DeleteObject');
    expect(planted).toEqual([...untouched, 's3:DeleteObject'].sort());
  });

  it('counts a shared helper only for the functions whose code calls it', async () => {
    // The dispatcher forwards records without decoding their keys.
    expect(await actionsUsedBy('dispatcher', PLANTED_IN_CORE_HELPER)).toEqual(
      await actionsUsedBy('dispatcher'),
    );
  });

  it('names a command it has no IAM action for instead of passing it over', async () => {
    const plant: Plant = {
      ...PLANTED_IN_CORE_HELPER,
      header: "import { PutBucketPolicyCommand } from '@aws-sdk/client-s3';",
      code: "  void new PutBucketPolicyCommand({ Bucket: 'b', Policy: encodedKey });",
    };

    await expect(actionsUsedBy('analyzer', plant)).rejects.toThrow(
      'analyzer sends PutBucketPolicyCommand: add its IAM action to sdk-calls.ts',
    );
  });

  // The Lambda code is exactly what runs on AWS: emulator quirks are fixed in packages/local.
  it.each(FUNCTION_NAMES)('%s bundles no workaround for a local emulator', async (fn) => {
    const mentions = (await workspaceModulesOf(fn)).flatMap(({ file, code }) =>
      [
        ...code.matchAll(
          /forcePathStyle|s3rver|local-aws-sqs|dynalite|\bAttributeNames:\s*\[\s*['"]ApproximateReceiveCount/g,
        ),
      ].map((match) => `${file}: ${match[0]}`),
    );

    expect(mentions).toEqual([]);
  });
});
