// The SDK commands a Lambda's code sends, read from its esbuild bundle: the modules it really
// loads, across workspace packages, after tree shaking (a helper in @binaryalert/core counts for
// the functions that call it, and only for them).
import * as path from 'node:path';
import * as esbuild from 'esbuild';
import type { FunctionName } from '../packages/deployment/src';

const ROOT = path.resolve(__dirname, '..');

// AWS SDK v3 commands the workers may send, and the IAM action each one needs.
export const IAM_ACTION_OF_COMMAND: Record<string, string> = {
  GetObjectCommand: 's3:GetObject',
  HeadObjectCommand: 's3:GetObject',
  DeleteObjectCommand: 's3:DeleteObject',
  ListObjectsV2Command: 's3:ListBucket',
  ReceiveMessageCommand: 'sqs:ReceiveMessage',
  DeleteMessageCommand: 'sqs:DeleteMessage',
  DeleteMessageBatchCommand: 'sqs:DeleteMessage',
  SendMessageCommand: 'sqs:SendMessage',
  SendMessageBatchCommand: 'sqs:SendMessage',
  ChangeMessageVisibilityCommand: 'sqs:ChangeMessageVisibility',
  ChangeMessageVisibilityBatchCommand: 'sqs:ChangeMessageVisibility',
  GetQueueAttributesCommand: 'sqs:GetQueueAttributes',
  InvokeCommand: 'lambda:InvokeFunction',
  PublishCommand: 'sns:Publish',
  PutMetricDataCommand: 'cloudwatch:PutMetricData',
  BatchGetItemCommand: 'dynamodb:BatchGetItem',
  GetItemCommand: 'dynamodb:GetItem',
  GetCommand: 'dynamodb:GetItem',
  PutItemCommand: 'dynamodb:PutItem',
  PutCommand: 'dynamodb:PutItem',
  UpdateItemCommand: 'dynamodb:UpdateItem',
  // PartiQL statements are authorized by their kind; the code sends UPDATEs only (ledger.ts).
  BatchExecuteStatementCommand: 'dynamodb:PartiQLUpdate',
  UpdateCommand: 'dynamodb:UpdateItem',
  QueryCommand: 'dynamodb:Query',
  ScanCommand: 'dynamodb:Scan',
  DeleteItemCommand: 'dynamodb:DeleteItem',
  DeleteCommand: 'dynamodb:DeleteItem',
};

/** Source text to splice into one workspace file while bundling (the planted-call proof). */
export interface Plant {
  /** Repository-relative path, e.g. packages/core/src/s3-event.ts */
  file: string;
  /** Prepended to the file (imports). */
  header: string;
  /** The text after which `code` is inserted. */
  after: string;
  code: string;
}

function plantPlugin(plant: Plant): esbuild.Plugin {
  const target = path.join(ROOT, plant.file);
  return {
    name: 'plant',
    setup(build) {
      build.onLoad({ filter: /\.ts$/ }, async (args) => {
        if (args.path !== target) return undefined;
        const { readFile } = await import('node:fs/promises');
        const source = await readFile(target, 'utf8');
        if (!source.includes(plant.after)) throw new Error(`${plant.file} has no "${plant.after}"`);
        const contents = `${plant.header}\n${source.replace(plant.after, `${plant.after}\n${plant.code}\n`)}`;
        return { contents, loader: 'ts' };
      });
    },
  };
}

/** The workspace modules bundled into `fn`'s zip (path and code, after tree shaking). */
export async function workspaceModulesOf(
  fn: FunctionName,
  plant?: Plant,
): Promise<{ file: string; code: string }[]> {
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: [path.join(ROOT, 'packages', fn, 'src', 'handler.ts')],
    write: false,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    // Unminified, esbuild heads each module's code with a `// <path>` comment.
    minify: false,
    treeShaking: true,
    loader: { '.node': 'empty' },
    plugins: plant ? [plantPlugin(plant)] : [],
    logLevel: 'silent',
  });
  // split with a capture group: [preamble, path1, code1, path2, code2, ...]
  const parts = result.outputFiles[0]!.text.split(/^\/\/ (\S+\.[cm]?[jt]s)$/m);
  const modules: { file: string; code: string }[] = [];
  for (let i = 1; i < parts.length; i += 2) {
    const file = parts[i]!;
    if (file.startsWith('packages/') && !file.includes('node_modules')) {
      modules.push({ file, code: parts[i + 1]! });
    }
  }
  return modules;
}

/** The SDK commands sent by the workspace code bundled into `fn`'s zip. */
export async function commandsSentBy(fn: FunctionName, plant?: Plant): Promise<string[]> {
  const commands = new Set<string>();
  for (const { code } of await workspaceModulesOf(fn, plant)) {
    for (const [, command] of code.matchAll(/new (?:[\w$]+\.)?(\w+?Command)\d*\(/g)) {
      commands.add(command!);
    }
  }
  return [...commands].sort();
}

/** The IAM actions `fn`'s code needs: one per SDK command its bundle sends. */
export async function actionsUsedBy(fn: FunctionName, plant?: Plant): Promise<string[]> {
  const commands = await commandsSentBy(fn, plant);
  return [
    ...new Set(
      commands.map((command) => {
        const action = IAM_ACTION_OF_COMMAND[command];
        if (!action) throw new Error(`${fn} sends ${command}: add its IAM action to sdk-calls.ts`);
        return action;
      }),
    ),
  ].sort();
}
