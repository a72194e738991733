import type { Context } from 'aws-lambda';
import { z } from 'zod';
import { loadConfig } from './config';
import { createDeps } from './deps';
import { dispatch, type DispatchResult } from './dispatch';

// Once per container: a missing or malformed variable fails the cold start naming it.
const config = loadConfig();
const deps = createDeps(config);

// Scheduled EventBridge events carry nothing the dispatcher needs; accept any object.
const EventSchema = z.looseObject({});

/** Lambda entry point: dispatches analyzer invocations until time or the invocation limit runs out. */
export async function handler(
  event: unknown,
  context: Pick<Context, 'getRemainingTimeInMillis'>,
): Promise<DispatchResult> {
  EventSchema.parse(event ?? {});
  return dispatch(deps, config, () => context.getRemainingTimeInMillis());
}
