import { BatchEventSchema, enqueueBucket } from './enqueue';
import { config, deps } from './deps';

interface LambdaContext {
  getRemainingTimeInMillis(): number;
}

/** Lambda entry point: enqueues the bucket (or the event's prefix) and returns the number of keys enqueued. */
export async function handler(event: unknown, context: LambdaContext): Promise<number> {
  const request = BatchEventSchema.parse(event ?? {});
  const result = await enqueueBucket(deps, config, request, () =>
    context.getRemainingTimeInMillis(),
  );
  return result.enqueuedKeys;
}
