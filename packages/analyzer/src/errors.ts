/** The object named by an event no longer exists (NoSuchKey / 404). Never retried. */
export class ObjectMissingError extends Error {
  override readonly name = 'ObjectMissingError';
  constructor(
    readonly objectId: string,
    options?: { cause?: unknown },
  ) {
    super(`${objectId} does not exist`, options);
  }
}

/** The analyzer may not read the object (AccessDenied / 403). Never retried. */
export class ObjectAccessDeniedError extends Error {
  override readonly name = 'ObjectAccessDeniedError';
  constructor(
    readonly objectId: string,
    options?: { cause?: unknown },
  ) {
    super(`access to ${objectId} is denied`, options);
  }
}

/** Downloading an object failed for another reason (network, throttling, disk). Retried. */
export class DownloadError extends Error {
  override readonly name = 'DownloadError';
  constructor(
    readonly objectId: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot download ${objectId}`, options);
  }
}

/** Recording matches in DynamoDB or publishing an alert failed. Retried. */
export class MatchBookkeepingError extends Error {
  override readonly name = 'MatchBookkeepingError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Recording an object's verdict in the verdict ledger failed. Retried. */
export class VerdictLedgerError extends Error {
  override readonly name = 'VerdictLedgerError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Some objects of a direct (plain S3 event) invocation were not analyzed; fails the invocation. */
export class AnalysisFailedError extends Error {
  override readonly name = 'AnalysisFailedError';
  constructor(
    readonly failedObjects: string[],
    options?: { cause?: unknown },
  ) {
    super(
      `analysis failed for ${failedObjects.length} object(s): ${failedObjects.join(', ')}`,
      options,
    );
  }
}

/**
 * Another analysis holds the claim on the same alert right now. Its message is retried once the
 * claim expires (`retryAfterMs`), not after the whole visibility timeout: the holder may have died.
 */
export class AlertInFlightError extends Error {
  override readonly name = 'AlertInFlightError';
  constructor(
    message: string,
    /** Milliseconds until the claim expires (at least 1 s). */
    readonly retryAfterMs: number,
  ) {
    super(message);
  }
}
