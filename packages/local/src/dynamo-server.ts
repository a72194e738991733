// DynamoDB served locally: dynalite, plus the BatchExecuteStatement it lacks (partiql.ts). The
// statements run in dynalite's own process, straight against its store through its own request
// validation and UpdateItem: an HTTP request per statement cost more than the update itself.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { crc32 } from 'node:zlib';
import dynalite from 'dynalite';
import dynaliteDb from 'dynalite/db';
import dynaliteValidations from 'dynalite/validations';
import describeTable from 'dynalite/actions/describeTable';
import updateItem from 'dynalite/actions/updateItem';
import describeTableValidation from 'dynalite/validations/describeTable';
import updateItemValidation from 'dynalite/validations/updateItem';

import { refusal } from './guard';
import { serveBatchExecuteStatement, type DynamoCall } from './partiql';
import { sendJsonError } from './protocol';

type DynaliteOptions = NonNullable<Parameters<typeof dynalite>[0]>;

const OPERATIONS = {
  UpdateItem: { action: updateItem, validation: updateItemValidation },
  DescribeTable: { action: describeTable, validation: describeTableValidation },
};

type Expressions = Record<string, unknown> & {
  UpdateExpression?: string;
  ConditionExpression?: string;
  ExpressionAttributeNames?: Record<string, string>;
  ExpressionAttributeValues?: Record<string, Record<string, unknown>>;
};

/** Where a statement's value goes in a parsed expression kept for reuse. */
class Placeholder {
  constructor(readonly ref: string) {}
}

/** A copy of `tree` with `replace`'s answer wherever it has one (plain objects and arrays only). */
function rebuild(tree: unknown, replace: (node: object) => unknown): unknown {
  if (typeof tree !== 'object' || tree === null) return tree;
  const replaced = replace(tree);
  if (replaced !== undefined) return replaced;
  if (Array.isArray(tree)) return tree.map((node) => rebuild(node, replace));
  const copy: Record<string, unknown> = {};
  for (const [name, node] of Object.entries(tree)) copy[name] = rebuild(node, replace);
  return copy;
}

/**
 * dynalite's validateExpressions, reusing parses: the statements of a batch differ in their values
 * only, and dynalite's expression parser cost more than the whole update. A parse is kept by its
 * expressions, names and value types, with placeholders where the values were (its parser puts
 * the very value objects in the tree), and filled with each statement's values; a tree the values
 * cannot all be found in is never kept. At most MAX_TEMPLATES kept (a hostile client sends new ones).
 */
function reusingParses(
  parse: (data: Expressions) => string | undefined,
): (data: Expressions) => string | undefined {
  const MAX_TEMPLATES = 64;
  const templates = new Map<string, { updates: unknown; condition: unknown }>();
  return (data) => {
    const values = data.ExpressionAttributeValues ?? {};
    let key = `${data.UpdateExpression}\u0000${data.ConditionExpression}`;
    for (const [ref, name] of Object.entries(data.ExpressionAttributeNames ?? {})) {
      key += `\u0000${ref}\u0000${name}`;
    }
    for (const [ref, value] of Object.entries(values)) {
      key += `\u0001${ref}\u0001${Object.keys(value).join()}`;
    }
    const template = templates.get(key);
    if (template) {
      for (const [ref, value] of Object.entries(values)) {
        const invalid = dynaliteValidations.validateAttributeValue(value);
        if (invalid)
          return `ExpressionAttributeValues contains invalid value: ${invalid} for key ${ref}`;
      }
      const fill = (node: object) => (node instanceof Placeholder ? values[node.ref] : undefined);
      data._updates = rebuild(template.updates, fill);
      data._condition = rebuild(template.condition, fill);
      return undefined;
    }
    const invalid = parse(data);
    if (invalid !== undefined) return invalid;
    const refs = new Map(Object.entries(values).map(([ref, value]) => [value as object, ref]));
    const found = new Set<string>();
    const mark = (node: object) => {
      const ref = refs.get(node);
      if (ref === undefined) return undefined;
      found.add(ref);
      return new Placeholder(ref);
    };
    const kept = {
      updates: rebuild(data._updates, mark),
      condition: rebuild(data._condition, mark),
    };
    if (found.size === refs.size) {
      if (templates.size >= MAX_TEMPLATES) templates.clear();
      templates.set(key, kept);
    }
    return undefined;
  };
}

/** One dynalite operation, validated and run as its HTTP handler would, without the HTTP. */
function callIn(store: unknown): DynamoCall {
  const validateExpressions = reusingParses(dynaliteValidations.validateExpressions);
  return (operation, input) =>
    new Promise((resolve, reject) => {
      const { action, validation } = OPERATIONS[operation];
      const answer = (error: unknown, output?: unknown) => {
        const refused = error as { statusCode?: number; body?: Record<string, unknown> } | null;
        if (refused?.statusCode) resolve({ status: refused.statusCode, body: refused.body ?? {} });
        else if (error) reject(error instanceof Error ? error : new Error('dynalite failed'));
        else resolve({ status: 200, body: output ?? {} });
      };
      const parse = dynaliteValidations.validateExpressions;
      try {
        const data = dynaliteValidations.checkTypes(input, validation.types);
        // dynalite's validation calls the module's validateExpressions, synchronously.
        dynaliteValidations.validateExpressions = validateExpressions;
        try {
          dynaliteValidations.checkValidations(data, validation.types, validation.custom, store);
        } finally {
          dynaliteValidations.validateExpressions = parse;
        }
        action(store, data, answer);
      } catch (error) {
        answer(error);
      }
    });
}

interface Store {
  getTable: (name: string, checkStatus: unknown, done?: unknown) => void;
  tableDb: Record<'put' | 'del' | 'batch', (...args: unknown[]) => void>;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

/**
 * dynalite reads a table's description from LevelDB for every request and every statement (half
 * its reads in a delta re-scan): kept here once ACTIVE, and dropped whenever a description is
 * written. A read that a write began or ended during is not kept.
 */
function keepingTableDescriptions(store: Store): void {
  const read = store.getTable.bind(store);
  const tables = new Map<string, unknown>();
  let writes = 0;
  for (const method of ['put', 'del', 'batch'] as const) {
    const write = store.tableDb[method].bind(store.tableDb);
    store.tableDb[method] = (...args: unknown[]) => {
      writes += 1;
      tables.clear();
      const last = args.length - 1;
      const done = args[last];
      if (typeof done === 'function') {
        args[last] = (...results: unknown[]) => {
          writes += 1;
          tables.clear();
          (done as (...results: unknown[]) => void)(...results);
        };
      }
      write(...args);
    };
  }
  store.getTable = (name, checkStatus, done) => {
    const callback = (typeof checkStatus === 'function' ? checkStatus : done) as (
      error: unknown,
      table?: unknown,
    ) => void;
    const kept = tables.get(name);
    if (kept) {
      // Item reads and writes (no flag) only read the description: they share the frozen copy;
      // table operations (describe, update, delete: with the flag) may change theirs.
      const copy = typeof checkStatus === 'function' ? kept : structuredClone(kept);
      process.nextTick(callback, null, copy);
      return;
    }
    const writesBefore = writes;
    read(
      name,
      // dynalite checks the status when called without the flag
      typeof checkStatus === 'function' ? true : checkStatus,
      (error: unknown, table?: unknown) => {
        if (
          !error &&
          writes === writesBefore &&
          (table as { TableStatus?: string }).TableStatus === 'ACTIVE'
        ) {
          tables.set(name, deepFreeze(structuredClone(table)));
        }
        callback(error, table);
      },
    );
  };
}

interface IndexDescription {
  KeySchema: { AttributeName: string }[];
  Projection: { ProjectionType?: string; NonKeyAttributes?: string[] };
}
interface TableDescription {
  KeySchema: { AttributeName: string }[];
  LocalSecondaryIndexes?: IndexDescription[];
  GlobalSecondaryIndexes?: IndexDescription[];
}
type Item = Record<string, unknown>;

/** Whether an item write leaves its entry in a keys-only or INCLUDE index as it was. */
function sameIndexEntry(
  index: IndexDescription,
  table: TableDescription,
  before: Item,
  after: Item,
): boolean {
  if (index.Projection.ProjectionType === 'ALL' || !index.Projection.ProjectionType) return false;
  const projected = [
    ...index.KeySchema.map((key) => key.AttributeName),
    ...table.KeySchema.map((key) => key.AttributeName),
    ...(index.Projection.NonKeyAttributes ?? []),
  ];
  return projected.every((name) => JSON.stringify(before[name]) === JSON.stringify(after[name]));
}

const SKIPS = Symbol('skips unchanged index entries');

/**
 * dynalite rewrites every secondary-index entry of an item on each write of it; DynamoDB writes
 * an index only where the item's projection into it changed. A carried verdict keeps its SHA-256,
 * so its keys-only index entry is left alone here too (a LevelDB write less per carry).
 */
function skippingUnchangedIndexEntries(): void {
  const update = dynaliteDb.updateIndexes;
  if (SKIPS in update) return;
  const skipping: typeof update = (store, table, before, after, done) => {
    if (!before || !after) return update(store, table, before, after, done);
    const description = table as TableDescription;
    const changed = (indexes?: IndexDescription[]) =>
      indexes?.filter(
        (index) => !sameIndexEntry(index, description, before as Item, after as Item),
      );
    return update(
      store,
      {
        ...description,
        LocalSecondaryIndexes: changed(description.LocalSecondaryIndexes),
        GlobalSecondaryIndexes: changed(description.GlobalSecondaryIndexes),
      },
      before,
      after,
      done,
    );
  };
  dynaliteDb.updateIndexes = Object.assign(skipping, { [SKIPS]: true });
}

/**
 * dynalite checksums every response body (x-amz-crc32, which the aws CLI verifies) in JavaScript,
 * a tenth of its CPU when it answers with content signatures: node's zlib computes the same CRC-32.
 */
function checksummingNatively(): void {
  const bufferCrc32 = createRequire(require.resolve('dynalite'))('buffer-crc32') as {
    unsigned: (data: string | Buffer) => number;
  };
  bufferCrc32.unsigned = (data) => crc32(data);
}

/** dynalite's server and its store (which dynalite does not expose: caught as it is created). */
function dynaliteWithStore(options: DynaliteOptions): { server: Server; store: unknown } {
  const create = dynaliteDb.create;
  let store: unknown;
  dynaliteDb.create = (settings) => (store = create(settings));
  try {
    const server = dynalite(options);
    return { server, store };
  } finally {
    dynaliteDb.create = create;
  }
}

/**
 * An HTTP server answering as DynamoDB does for what dynalite serves and for BatchExecuteStatement.
 * Not listening yet; closing it closes dynalite's store.
 */
export function createDynamoServer(options: DynaliteOptions): Server {
  const { server, store } = dynaliteWithStore(options);
  keepingTableDescriptions(store as Store);
  skippingUnchangedIndexEntries();
  checksummingNatively();
  const [serveDynalite] = server.listeners('request') as ((
    req: IncomingMessage,
    res: ServerResponse,
  ) => void)[];
  server.removeAllListeners('request');
  const call = callIn(store);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    // Clients reach this port straight (Lambda workers): the front's guard applies here too.
    const refused = refusal(req);
    if (refused) {
      req.resume();
      sendJsonError(res, 403, 'AccessDenied', refused);
      return;
    }
    if (req.headers['x-amz-target'] !== 'DynamoDB_20120810.BatchExecuteStatement') {
      const ours = new Set(req.listeners('error'));
      serveDynalite!(req, res);
      // dynalite rethrows a request's error (`throw err`), so a client that went away in the
      // middle of its body ended this process: that request is dropped instead.
      for (const listener of req.listeners('error')) {
        if (!ours.has(listener)) req.off('error', listener as (error: Error) => void);
      }
      req.on('error', () => res.destroy());
      return;
    }
    // As dynalite checks every request it serves: signed with SigV4 (not verified).
    if (!/^AWS4-/.test(req.headers.authorization?.trim() ?? '')) {
      req.resume();
      sendJsonError(
        res,
        400,
        'com.amazon.coral.service#MissingAuthenticationTokenException',
        'Request is missing Authentication Token',
        'application/x-amz-json-1.0',
      );
      return;
    }
    serveBatchExecuteStatement(req, res, call).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(error));
    });
  });
  return server;
}
