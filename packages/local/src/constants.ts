// The local stack's defaults, in a module of their own so the CLI can show them in --help without
// loading the emulators.

/** The dummy credentials the local stack documents (s3rver's own pair; any pair is accepted). */
export const LOCAL_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;
export const LOCAL_ACCOUNT_ID = '123456789012';
export const DEFAULT_LOCAL_PORT = 4566;
export const DEFAULT_DATA_DIR = '.binaryalert-local';
export const DEFAULT_LOCAL_ENDPOINT = `http://127.0.0.1:${DEFAULT_LOCAL_PORT}`;
