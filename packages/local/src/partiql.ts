// DynamoDB's BatchExecuteStatement, which dynalite lacks. Each statement must be what the Lambda
// code sends: a parameterized single-item PartiQL UPDATE (`UPDATE "t" SET "a" = ? REMOVE "b"
// WHERE "k" = ? AND <condition>`). It runs as the conditional UpdateItem it means, by dynalite (in
// its process, dynamo-server.ts), so conditions are judged by dynalite as for any UpdateItem. Anything else is answered with the
// statement's ValidationError rather than guessed at.
import type { IncomingMessage, ServerResponse } from 'node:http';

import { readBody, RequestTooLargeError, sendJson, sendJsonError, sendTooLarge } from './protocol';

/** BatchExecuteStatement's limit. */
const MAX_STATEMENTS = 25;

type Token =
  | { kind: 'name'; text: string }
  | { kind: 'param' }
  | { kind: 'op'; text: string }
  | { kind: 'word'; text: string };

type Operand = { name: string } | { param: number };
type Condition =
  | { and: Condition[] }
  | { or: Condition[] }
  | { not: Condition }
  | { compare: string; left: Operand; right: Operand };

export interface UpdateStatement {
  table: string;
  set: { name: string; param: number }[];
  remove: string[];
  where: Condition;
}

class StatementError extends Error {}

function tokenize(statement: string): Token[] {
  const tokens: Token[] = [];
  let at = 0;
  while (at < statement.length) {
    const c = statement[at]!;
    if (/\s/.test(c)) {
      at += 1;
    } else if (c === '"') {
      let text = '';
      at += 1;
      for (;;) {
        if (at >= statement.length) throw new StatementError('unterminated quoted identifier');
        if (statement[at] === '"' && statement[at + 1] === '"') {
          text += '"';
          at += 2;
        } else if (statement[at] === '"') {
          at += 1;
          break;
        } else {
          text += statement[at];
          at += 1;
        }
      }
      tokens.push({ kind: 'name', text });
    } else if (c === '?') {
      tokens.push({ kind: 'param' });
      at += 1;
    } else if (/[<>=()]/.test(c)) {
      const two = statement.slice(at, at + 2);
      const text = ['<=', '>=', '<>'].includes(two) ? two : c;
      tokens.push({ kind: 'op', text });
      at += text.length;
    } else if (/[A-Za-z_]/.test(c)) {
      const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(statement.slice(at))![0];
      tokens.push({ kind: 'word', text: word.toUpperCase() });
      at += word.length;
    } else {
      // Literals, document paths, functions: the Lambda code sends parameters only.
      throw new StatementError(
        `unsupported by the local stack at "${statement.slice(at, at + 20)}"`,
      );
    }
  }
  return tokens;
}

/** Parses a parameterized single-item UPDATE; throws StatementError on anything else. */
export function parseUpdateStatement(statement: string): UpdateStatement {
  const tokens = tokenize(statement);
  let at = 0;
  let params = 0;
  const peek = () => tokens[at];
  const word = (text: string) => {
    const token = peek();
    if (token?.kind === 'word' && token.text === text) {
      at += 1;
      return true;
    }
    return false;
  };
  const name = (): string => {
    const token = tokens[at++];
    if (token?.kind !== 'name')
      throw new StatementError('expected a quoted attribute or table name');
    return token.text;
  };
  const op = (text: string) => {
    const token = tokens[at++];
    if (token?.kind !== 'op' || token.text !== text) throw new StatementError(`expected ${text}`);
  };
  const operand = (): Operand => {
    const token = tokens[at++];
    if (token?.kind === 'param') return { param: params++ };
    if (token?.kind === 'name') return { name: token.text };
    throw new StatementError('expected an attribute or ?');
  };
  const factor = (): Condition => {
    if (word('NOT')) return { not: factor() };
    const token = peek();
    if (token?.kind === 'op' && token.text === '(') {
      at += 1;
      const inner = disjunction();
      op(')');
      return inner;
    }
    const left = operand();
    const compare = tokens[at++];
    if (compare?.kind !== 'op' || !['=', '<>', '<', '<=', '>', '>='].includes(compare.text)) {
      throw new StatementError('expected a comparison');
    }
    return { compare: compare.text, left, right: operand() };
  };
  const conjunction = (): Condition => {
    const parts = [factor()];
    while (word('AND')) parts.push(factor());
    return parts.length === 1 ? parts[0]! : { and: parts };
  };
  const disjunction = (): Condition => {
    const parts = [conjunction()];
    while (word('OR')) parts.push(conjunction());
    return parts.length === 1 ? parts[0]! : { or: parts };
  };

  if (!word('UPDATE')) throw new StatementError('only UPDATE statements are served locally');
  const table = name();
  const set: UpdateStatement['set'] = [];
  const remove: string[] = [];
  for (;;) {
    if (word('SET')) {
      const attribute = name();
      op('=');
      if (tokens[at++]?.kind !== 'param') throw new StatementError('SET takes a ? parameter');
      set.push({ name: attribute, param: params++ });
    } else if (word('REMOVE')) {
      remove.push(name());
    } else break;
  }
  if (set.length + remove.length === 0) throw new StatementError('UPDATE without SET or REMOVE');
  if (!word('WHERE')) throw new StatementError('UPDATE without WHERE');
  const where = disjunction();
  if (at !== tokens.length) throw new StatementError('unexpected text after the condition');
  return { table, set, remove, where };
}

/**
 * The UpdateItem a parsed statement means: the key from the top-level `"k" = ?` terms of the WHERE
 * (every key attribute must be there), the rest as the condition, and the item must exist (an
 * UPDATE never creates one).
 */
export function updateItemInput(
  parsed: UpdateStatement,
  parameters: unknown[],
  keyNames: string[],
): Record<string, unknown> {
  const names: Record<string, string> = {};
  const values: Record<string, unknown> = {};
  const used = new Set<number>();
  const nameRef = (attribute: string) => {
    const ref = `#n${Object.keys(names).length}`;
    names[ref] = attribute;
    return ref;
  };
  const valueRef = (index: number) => {
    if (index >= parameters.length) throw new StatementError('fewer parameters than ?');
    const ref = `:p${index}`;
    values[ref] = parameters[index];
    used.add(index);
    return ref;
  };
  const operandText = (operand: Operand) =>
    'name' in operand ? nameRef(operand.name) : valueRef(operand.param);
  const text = (condition: Condition): string => {
    if ('and' in condition) return `(${condition.and.map(text).join(' AND ')})`;
    if ('or' in condition) return `(${condition.or.map(text).join(' OR ')})`;
    if ('not' in condition) return `(NOT ${text(condition.not)})`;
    return `${operandText(condition.left)} ${condition.compare} ${operandText(condition.right)}`;
  };

  const conjuncts = 'and' in parsed.where ? parsed.where.and : [parsed.where];
  const key: Record<string, unknown> = {};
  const rest: Condition[] = [];
  for (const conjunct of conjuncts) {
    if (
      'compare' in conjunct &&
      conjunct.compare === '=' &&
      'name' in conjunct.left &&
      'param' in conjunct.right &&
      keyNames.includes(conjunct.left.name) &&
      !(conjunct.left.name in key)
    ) {
      if (conjunct.right.param >= parameters.length) {
        throw new StatementError('fewer parameters than ?');
      }
      key[conjunct.left.name] = parameters[conjunct.right.param];
      used.add(conjunct.right.param);
    } else rest.push(conjunct);
  }
  if (keyNames.some((keyName) => !(keyName in key))) {
    throw new StatementError(
      'Where clause does not contain a mandatory equality on all key attributes',
    );
  }
  const sets = parsed.set.map(({ name, param }) => `${nameRef(name)} = ${valueRef(param)}`);
  const removes = parsed.remove.map(nameRef);
  const updateExpression = [
    sets.length > 0 ? `SET ${sets.join(', ')}` : '',
    removes.length > 0 ? `REMOVE ${removes.join(', ')}` : '',
  ]
    .filter(Boolean)
    .join(' ');
  const condition = [`attribute_exists(${nameRef(keyNames[0]!)})`, ...rest.map(text)].join(' AND ');
  if (used.size !== parameters.length) {
    throw new StatementError('more parameters than ?');
  }
  return {
    TableName: parsed.table,
    Key: key,
    UpdateExpression: updateExpression,
    ConditionExpression: condition,
    ExpressionAttributeNames: names,
    ...(Object.keys(values).length > 0 ? { ExpressionAttributeValues: values } : {}),
  };
}

/** What dynalite answers (the fields read here). */
interface DynaliteReply {
  __type?: string;
  message?: string;
  Message?: string;
  Table?: { KeySchema?: { AttributeName: string }[] };
}

/** One dynalite operation (dynamo-server.ts runs it in dynalite's process): status and answer. */
export type DynamoCall = (
  operation: 'UpdateItem' | 'DescribeTable',
  input: Record<string, unknown>,
) => Promise<{ status: number; body: DynaliteReply }>;

/** BatchStatementError codes by the UpdateItem error they stand for. */
function batchErrorCode(type: string): string {
  const name = type.split('#').pop() ?? type;
  switch (name) {
    case 'ConditionalCheckFailedException':
      return 'ConditionalCheckFailed';
    case 'ProvisionedThroughputExceededException':
      return 'ProvisionedThroughputExceeded';
    case 'ResourceNotFoundException':
      return 'ResourceNotFound';
    case 'ValidationException':
      return 'ValidationError';
    case 'ThrottlingException':
      return 'ThrottlingError';
    default:
      return 'InternalServerError';
  }
}

/**
 * Serves one BatchExecuteStatement: every statement runs on its own (none undone when another
 * fails), and each gets its own response or error, as DynamoDB answers.
 */
export async function serveBatchExecuteStatement(
  req: IncomingMessage,
  res: ServerResponse,
  dynamo: DynamoCall,
): Promise<void> {
  let input: { Statements?: { Statement?: unknown; Parameters?: unknown }[] };
  try {
    input = JSON.parse((await readBody(req)).toString('utf8')) as typeof input;
  } catch (error) {
    if (error instanceof RequestTooLargeError) return sendTooLarge(req, res, error);
    sendJsonError(res, 400, 'com.amazon.coral.service#SerializationException', 'invalid JSON');
    return;
  }
  const statements = Array.isArray(input.Statements) ? input.Statements : [];
  if (statements.length < 1 || statements.length > MAX_STATEMENTS) {
    sendJsonError(
      res,
      400,
      'com.amazon.coral.validate#ValidationException',
      `1 validation error detected: Value at 'statements' failed to satisfy constraint: Member must have length between 1 and ${MAX_STATEMENTS}`,
    );
    return;
  }
  const keySchemas = new Map<string, Promise<string[]>>();
  const keyNames = (table: string) => {
    if (!keySchemas.has(table)) {
      keySchemas.set(
        table,
        dynamo('DescribeTable', { TableName: table }).then(({ status, body }) => {
          const keySchema = body.Table?.KeySchema;
          if (status !== 200 || !keySchema) {
            throw Object.assign(new StatementError(body.message ?? 'no such table'), {
              code: 'ResourceNotFound',
            });
          }
          return keySchema.map((element) => element.AttributeName);
        }),
      );
    }
    return keySchemas.get(table)!;
  };
  // Independent statements, run at once as DynamoDB does; the responses keep their order.
  const responses = await Promise.all(
    statements.map(async (entry): Promise<Record<string, unknown>> => {
      try {
        if (typeof entry.Statement !== 'string') throw new StatementError('Statement is required');
        const parameters = Array.isArray(entry.Parameters) ? (entry.Parameters as unknown[]) : [];
        const parsed = parseUpdateStatement(entry.Statement);
        const update = updateItemInput(parsed, parameters, await keyNames(parsed.table));
        const { status, body } = await dynamo('UpdateItem', update);
        return status === 200
          ? { TableName: parsed.table }
          : {
              TableName: parsed.table,
              Error: {
                Code: batchErrorCode(body.__type ?? ''),
                Message: body.message ?? body.Message ?? '',
              },
            };
      } catch (error) {
        if (!(error instanceof StatementError)) throw error;
        const code = (error as StatementError & { code?: string }).code ?? 'ValidationError';
        return { Error: { Code: code, Message: error.message } };
      }
    }),
  );
  sendJson(res, 200, { Responses: responses }, 'application/x-amz-json-1.0');
}
