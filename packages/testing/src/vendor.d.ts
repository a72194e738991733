// Type declarations for the local AWS emulators, which ship none. Shared by every package
// (the root tsconfig includes this file), so declare each module only here.

declare module 'dynalite' {
  import type { Server } from 'node:http';

  interface DynaliteOptions {
    path?: string;
    createTableMs?: number;
    deleteTableMs?: number;
    updateTableMs?: number;
    maxItemSizeKb?: number;
    verbose?: boolean;
  }
  function dynalite(options?: DynaliteOptions): Server;
  export = dynalite;
}
