// The local Lambda runtime's code versions: each function's zip, unpacked into a directory of
// its own per version; every distinct zip (by SHA-256) becomes the function's next version, and
// the record of versions survives restarts (`versions.json`), as published versions do on AWS.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';

/** A zip that cannot be unpacked into a function's code directory. */
export class DeploymentError extends Error {
  override readonly name = 'DeploymentError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** One version of a function's code, unpacked. */
export interface Deployment {
  version: number;
  sha256: string;
  codeDir: string;
}

interface VersionRecord {
  [functionName: string]: { version: number; sha256: string };
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/** Unpacks a zip into `dir`, refusing entries that would land outside it. */
async function unzipTo(zipPath: string, dir: string): Promise<void> {
  const zip = await new Promise<yauzl.ZipFile>((ok, fail) =>
    yauzl.open(zipPath, { lazyEntries: true }, (error, file) => (error ? fail(error) : ok(file))),
  );
  await new Promise<void>((ok, fail) => {
    zip.on('error', fail);
    zip.on('end', ok);
    zip.on('entry', (entry: yauzl.Entry) => {
      const target = resolve(dir, entry.fileName);
      if (!target.startsWith(resolve(dir) + sep)) {
        fail(new DeploymentError(`zip entry escapes the code directory: ${entry.fileName}`));
        return;
      }
      if (entry.fileName.endsWith('/')) {
        mkdir(target, { recursive: true }).then(() => zip.readEntry(), fail);
        return;
      }
      zip.openReadStream(entry, (error, stream) => {
        if (error) {
          fail(error);
          return;
        }
        mkdir(dirname(target), { recursive: true })
          .then(() => pipeline(stream, createWriteStream(target)))
          .then(() => zip.readEntry(), fail);
      });
    });
    zip.readEntry();
  });
}

/** The current version of each function's code, unpacked from its zip when the zip changes. */
export class CodeVersions {
  private readonly deployments = new Map<string, Deployment>();
  private readonly zipStamps = new Map<string, string>();
  private readonly deploying = new Map<string, Promise<Deployment>>();
  private versions: VersionRecord = {};

  /** `recordPath` keeps the version numbers; versions unpack under `codeRoot/<function>/<n>`. */
  constructor(
    private readonly recordPath: string,
    private readonly codeRoot: string,
  ) {}

  /** Loads the persisted version record (none yet: every function starts at version 1). */
  async load(): Promise<void> {
    try {
      this.versions = JSON.parse(await readFile(this.recordPath, 'utf8')) as VersionRecord;
    } catch {
      this.versions = {};
    }
  }

  /** The deployment last returned for a function, if any. */
  current(name: string): Deployment | undefined {
    return this.deployments.get(name);
  }

  /** The function's current deployment, unpacking a new version when its zip changed. */
  async deploy(name: string, zipPath: string): Promise<Deployment> {
    const inFlight = this.deploying.get(name);
    if (inFlight) return inFlight;
    const promise = this.deployNow(name, zipPath).finally(() => this.deploying.delete(name));
    this.deploying.set(name, promise);
    return promise;
  }

  private async deployNow(name: string, zipPath: string): Promise<Deployment> {
    let info;
    try {
      info = await stat(zipPath);
    } catch (error) {
      throw new DeploymentError(`deployment package missing: ${zipPath}`, { cause: error });
    }
    const stamp = `${info.size}:${info.mtimeMs}`;
    const current = this.deployments.get(name);
    if (current && this.zipStamps.get(name) === stamp) return current;

    const sha256 = await sha256File(zipPath);
    const known = this.versions[name];
    let version: number;
    if (known && known.sha256 === sha256) version = known.version;
    else version = (known?.version ?? 0) + 1;
    const codeDir = join(this.codeRoot, name, String(version));
    if (current?.sha256 !== sha256) {
      await rm(codeDir, { recursive: true, force: true });
      await mkdir(codeDir, { recursive: true });
      try {
        await unzipTo(zipPath, codeDir);
      } catch (error) {
        throw new DeploymentError(`cannot unpack ${zipPath}`, { cause: error });
      }
      this.versions[name] = { version, sha256 };
      await writeFile(this.recordPath, JSON.stringify(this.versions, null, 2));
    }
    const deployment = current?.sha256 === sha256 ? current : { version, sha256, codeDir };
    this.deployments.set(name, deployment);
    this.zipStamps.set(name, stamp);
    return deployment;
  }
}
