// The 7-Zip worker thread's entry (started by sevenzip.ts): 7-Zip in WebAssembly runs synchronously,
// so it runs here, off the thread that serves the invocation's other objects. One archive per
// worker; the answer is one message.
import { parentPort, workerData } from 'node:worker_threads';

import { errorText } from './errors';
import { extractEncryptedSevenZip, type SevenZipLimits } from './sevenzip-extract';

/** What the main thread sends (as workerData). */
export interface SevenZipRequest {
  archive: string;
  archiveBytes: number;
  limits: SevenZipLimits;
}

const request = workerData as SevenZipRequest;
extractEncryptedSevenZip(request.archive, request.archiveBytes, request.limits).then(
  (extraction) => parentPort?.postMessage({ extraction }),
  (error: unknown) => parentPort?.postMessage({ error: errorText(error) }),
);
