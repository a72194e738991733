/** The path of an up-to-date esbuild bundle of manage.ts, built first when a source changed. */
export function cliBundle(): Promise<string>;
/** Runs manage.ts from its bundle (what ./manage.ts does). */
export function run(): void;
