// Reading the Terraform without providers: parse the HCL of a module into JSON and evaluate the
// small arithmetic expressions the contract tests need (no terraform init is possible here).
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parse } from '@cdktf/hcl2json';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Block = Record<string, any>;

/**
 * Parses every .tf file of a directory and merges the blocks by kind and name. `replace` swaps a
 * file's text before parsing (how a test plants a breach).
 */
export async function parseModule(
  dir: string,
  replace: (file: string, text: string) => string = (_file, text) => text,
): Promise<Block> {
  const lists: Record<string, unknown[]> = {}; // locals, terraform, provider
  const named: Record<string, Record<string, unknown>> = {};
  for (const file of readdirSync(dir).filter((name) => name.endsWith('.tf'))) {
    const parsed = await parse(file, replace(file, readFileSync(path.join(dir, file), 'utf8')));
    for (const [kind, blocks] of Object.entries(parsed)) {
      if (Array.isArray(blocks)) {
        (lists[kind] ??= []).push(...(blocks as unknown[]));
        continue;
      }
      const byName = (named[kind] ??= {});
      for (const [name, value] of Object.entries(blocks as Record<string, unknown>)) {
        if (kind === 'resource' || kind === 'data') {
          byName[name] = { ...(byName[name] as object | undefined), ...(value as object) };
        } else if (byName[name] !== undefined) {
          throw new Error(`${dir}: ${kind} "${name}" is declared twice`);
        } else {
          byName[name] = value;
        }
      }
    }
  }
  return { ...lists, ...named };
}

export type Value = number | string | boolean;

/** What `var.x` and `local.x` resolve to while evaluating. */
export interface Scope {
  variables: Record<string, unknown>;
  locals: Record<string, unknown>;
}

/** The value at a path of keys in parsed HCL, or undefined where the path ends early. */
export function dig(block: unknown, ...keys: string[]): unknown {
  let value = block;
  for (const key of keys) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

/** The locals of a parsed module, merged from its `locals` blocks. */
export function localsOf(module: Block): Record<string, unknown> {
  return Object.assign({}, ...((module.locals ?? []) as Block[])) as Record<string, unknown>;
}

/**
 * Evaluates an attribute value as Terraform would for the subset the contract tests use: numbers,
 * strings, booleans, `var.x`, `local.x`, + - * /, == !=, a ? b : c, parentheses, tostring(),
 * min() and max(). Anything else throws, so a test never silently passes on what it cannot read.
 */
export function evaluate(value: unknown, scope: Scope, seen: string[] = []): Value {
  if (typeof value === 'number' || typeof value === 'boolean') return value;
  if (typeof value !== 'string') throw new Error(`cannot evaluate ${JSON.stringify(value)}`);
  const whole = /^\$\{(.*)\}$/s.exec(value);
  if (!whole) {
    if (value.includes('${')) throw new Error(`cannot evaluate the template ${value}`);
    return value;
  }
  return new Parser(whole[1]!, scope, seen).parseAll();
}

const TOKEN = /\s*(\d+(?:\.\d+)?|"(?:[^"\\]|\\.)*"|[A-Za-z_][\w.]*|==|!=|[-+*/?:(),])/y;

class Parser {
  private readonly tokens: string[] = [];
  private position = 0;

  constructor(
    private readonly source: string,
    private readonly scope: Scope,
    private readonly seen: string[],
  ) {
    TOKEN.lastIndex = 0;
    while (TOKEN.lastIndex < source.trimEnd().length) {
      const start = TOKEN.lastIndex;
      const match = TOKEN.exec(source);
      if (!match) throw new Error(`cannot read "${source}" at ${start}`);
      this.tokens.push(match[1]!);
    }
  }

  parseAll(): Value {
    const value = this.conditional();
    if (this.position !== this.tokens.length) this.fail('unexpected');
    return value;
  }

  private fail(what: string): never {
    throw new Error(`${what} "${this.tokens[this.position] ?? 'end'}" in "${this.source}"`);
  }

  private take(expected?: string): string {
    const token = this.tokens[this.position];
    if (token === undefined || (expected !== undefined && token !== expected)) {
      this.fail(`expected ${expected ?? 'a value'}, got`);
    }
    this.position += 1;
    return token;
  }

  private peek(): string | undefined {
    return this.tokens[this.position];
  }

  private conditional(): Value {
    const condition = this.equality();
    if (this.peek() !== '?') return condition;
    this.take('?');
    const whenTrue = this.conditional();
    this.take(':');
    const whenFalse = this.conditional();
    if (typeof condition !== 'boolean') this.fail('condition is not a boolean before');
    return condition ? whenTrue : whenFalse;
  }

  private equality(): Value {
    let left = this.additive();
    while (this.peek() === '==' || this.peek() === '!=') {
      const operator = this.take();
      const right = this.additive();
      left = operator === '==' ? left === right : left !== right;
    }
    return left;
  }

  private additive(): Value {
    let left = this.multiplicative();
    while (this.peek() === '+' || this.peek() === '-') {
      const operator = this.take();
      const right = this.number(this.multiplicative());
      left = operator === '+' ? this.number(left) + right : this.number(left) - right;
    }
    return left;
  }

  private multiplicative(): Value {
    let left = this.unary();
    while (this.peek() === '*' || this.peek() === '/') {
      const operator = this.take();
      const right = this.number(this.unary());
      left = operator === '*' ? this.number(left) * right : this.number(left) / right;
    }
    return left;
  }

  private unary(): Value {
    if (this.peek() === '-') {
      this.take('-');
      return -this.number(this.unary());
    }
    return this.primary();
  }

  private primary(): Value {
    const token = this.take();
    if (token === '(') {
      const value = this.conditional();
      this.take(')');
      return value;
    }
    if (/^\d/.test(token)) return Number(token);
    if (token.startsWith('"')) return JSON.parse(token) as string;
    if (token === 'true' || token === 'false') return token === 'true';
    if (this.peek() === '(') return this.call(token);
    const [kind, name, ...rest] = token.split('.');
    if (rest.length > 0 || !name) this.fail('cannot evaluate the reference');
    if (kind === 'var') {
      if (!(name in this.scope.variables)) this.fail('undefined variable');
      return evaluate(this.scope.variables[name], this.scope);
    }
    if (kind === 'local') {
      if (this.seen.includes(name)) this.fail('cyclic local');
      if (!(name in this.scope.locals)) this.fail('undefined local');
      return evaluate(this.scope.locals[name], this.scope, [...this.seen, name]);
    }
    return this.fail('cannot evaluate the reference');
  }

  private call(name: string): Value {
    this.take('(');
    const args: Value[] = [this.conditional()];
    while (this.peek() === ',') {
      this.take(',');
      args.push(this.conditional());
    }
    this.take(')');
    switch (name) {
      case 'tostring':
        return String(args[0]);
      case 'min':
        return Math.min(...args.map((arg) => this.number(arg)));
      case 'max':
        return Math.max(...args.map((arg) => this.number(arg)));
      default:
        return this.fail(`cannot evaluate the function ${name} near`);
    }
  }

  private number(value: Value): number {
    if (typeof value === 'number') return value;
    if (typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value)) return Number(value);
    return this.fail(`${JSON.stringify(value)} is not a number near`);
  }
}
