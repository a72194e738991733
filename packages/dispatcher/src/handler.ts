import { z } from 'zod';

import { dispatch, type DispatchResult } from './dispatch';
import { config, deps } from './deps';

// Scheduled EventBridge events carry nothing the dispatcher needs; accept any object.
const EventSchema = z.looseObject({});

interface LambdaContext {
  getRemainingTimeInMillis(): number;
}

/** Lambda entry point: dispatches analyzer invocations until time or the invocation limit runs out. */
export async function handler(event: unknown, context: LambdaContext): Promise<DispatchResult> {
  EventSchema.parse(event ?? {});
  return dispatch(deps, config, () => context.getRemainingTimeInMillis());
}
