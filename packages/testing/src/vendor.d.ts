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

// dynalite's own modules, for the local stack's BatchExecuteStatement (packages/local
// dynamo-server.ts), which runs statements in dynalite's process against its store.
declare module 'dynalite/db' {
  const db: {
    create: (options: object) => unknown;
    // dynalite's item writes call it through here (so it can be replaced).
    updateIndexes: (
      store: unknown,
      table: object,
      existingItem: object | null | undefined,
      item: object | null | undefined,
      done: (error?: unknown) => void,
    ) => void;
  };
  export = db;
}
declare module 'dynalite/validations' {
  const validations: {
    checkTypes: (data: unknown, types: object) => Record<string, unknown>;
    checkValidations: (data: unknown, types: object, custom: unknown, store: unknown) => void;
    validateExpressions: (data: Record<string, unknown>) => string | undefined;
    validateAttributeValue: (value: unknown) => string | undefined;
  };
  export = validations;
}
declare module 'dynalite/validations/*' {
  const validation: { types: object; custom?: unknown };
  export = validation;
}
declare module 'dynalite/actions/*' {
  function action(
    store: unknown,
    data: Record<string, unknown>,
    done: (error: unknown, output?: unknown) => void,
  ): void;
  export = action;
}
