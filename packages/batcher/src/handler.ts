import type { Context } from 'aws-lambda';
import { loadConfig } from './config';
import { createDeps } from './deps';
import { BatchEventSchema, enqueueBucket } from './enqueue';

// Once per container: a missing or malformed variable fails the cold start naming it.
const config = loadConfig();
const deps = createDeps(config);

/** Lambda entry point: enqueues the bucket (or the event's prefix) and returns the number of keys enqueued. */
export async function handler(
  event: unknown,
  context: Pick<Context, 'getRemainingTimeInMillis'>,
): Promise<number> {
  const request = BatchEventSchema.parse(event ?? {});
  const result = await enqueueBucket(deps, config, request, () =>
    context.getRemainingTimeInMillis(),
  );
  return result.enqueuedKeys;
}
