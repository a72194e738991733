'use strict';
// One warm "container" of the local Lambda runtime: loads the function's handler from
// LAMBDA_TASK_ROOT once (module state survives between invocations, as in a warm container)
// and runs each invocation the parent sends over IPC.
const path = require('node:path');

const taskRoot = process.env.LAMBDA_TASK_ROOT;
const handlerSpec = process.env._HANDLER || 'index.handler';
const dot = handlerSpec.lastIndexOf('.');
const moduleName = handlerSpec.slice(0, dot);
const exportName = handlerSpec.slice(dot + 1);

let handlerFn;
function loadHandler() {
  if (!handlerFn) {
    // eslint-disable-next-line import/no-dynamic-require
    const mod = require(path.join(taskRoot, moduleName));
    const fn = mod[exportName];
    if (typeof fn !== 'function') {
      const error = new Error(`${handlerSpec} is undefined or not exported`);
      error.name = 'Runtime.HandlerNotFound';
      throw error;
    }
    handlerFn = fn;
  }
  return handlerFn;
}

function describe(error) {
  if (error instanceof Error) {
    return {
      errorType: error.name || 'Error',
      errorMessage: error.message,
      trace: String(error.stack || '').split('\n'),
    };
  }
  return { errorType: 'Error', errorMessage: String(error), trace: [] };
}

process.on('message', (msg) => {
  if (!msg || msg.type !== 'invoke') return;
  const context = {
    functionName: msg.context.functionName,
    functionVersion: msg.context.functionVersion,
    invokedFunctionArn: msg.context.invokedFunctionArn,
    memoryLimitInMB: String(msg.context.memoryLimitInMB),
    awsRequestId: msg.context.awsRequestId,
    logGroupName: `/aws/lambda/${msg.context.functionName}`,
    logStreamName: msg.context.logStreamName,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, msg.context.deadline - Date.now()),
  };
  new Promise((resolve, reject) => {
    const fn = loadHandler();
    const returned = fn(msg.event, context, (error, value) =>
      error ? reject(error) : resolve(value),
    );
    if (returned && typeof returned.then === 'function') returned.then(resolve, reject);
  }).then(
    (result) =>
      process.send({ type: 'result', id: msg.id, result: result === undefined ? null : result }),
    (error) => process.send({ type: 'error', id: msg.id, error: describe(error) }),
  );
});

process.send({ type: 'ready' });

// The stack is gone (even killed with SIGKILL): a container without its runtime ends.
process.on('disconnect', () => process.exit(0));
