/** One line of text for an error and its causes, for the console and the logs. */
export function describeError(error: unknown): string {
  if (error instanceof Error)
    return error.cause ? `${error.message} (${describeError(error.cause)})` : error.message;
  return String(error);
}
