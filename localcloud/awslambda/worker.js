// One Node.js Lambda execution environment: loads the handler once and runs it per request.
//
// Arguments: the clock offset in seconds, the handler ("index.handler"), the task folder, then the
// folders modules may come from besides it (the layers' nodejs/node_modules, and the packages Lambda's
// Node.js runtime provides: the AWS SDK for JavaScript v3). Module lookup never leaves those folders,
// so a dependency missing from the deployed artifact fails here as it would in AWS. Requests and
// responses are JSON lines on stdin and on file descriptor 1; the handler's console output goes to
// stderr, which the runtime collects.
"use strict";

const fs = require("fs");
const http = require("http");
const https = require("https");
const Module = require("module");
const path = require("path");
const readline = require("readline");
const { pathToFileURL } = require("url");

const [offsetArg, handlerSpec, taskDir, ...libraryDirs] = process.argv.slice(2);
const roots = [taskDir, ...libraryDirs].map((dir) => path.resolve(dir));

// Ctrl-C in the terminal reaches the whole process group: the local cloud stops its environments itself.
process.on("SIGINT", () => {});

// Protocol lines go straight to fd 1; everything the handler prints goes to stderr.
const reply = (message) => fs.writeSync(1, JSON.stringify(message) + "\n");
const { Console } = require("console");
globalThis.console = new Console({ stdout: process.stderr, stderr: process.stderr });
process.stdout.write = process.stderr.write.bind(process.stderr);

// Only the task folder, the layers and the runtime's packages: not node_modules folders above them.
const lookupPaths = Module._nodeModulePaths;
Module._nodeModulePaths = (from) =>
  lookupPaths(from).filter((candidate) => roots.some((root) => candidate.startsWith(root + path.sep)));
// The layers and the runtime's packages are found as Lambda finds them: through NODE_PATH.
process.env.NODE_PATH = libraryDirs.map((dir) => path.resolve(dir)).join(path.delimiter);
Module._initPaths();

// The local clock: Date reads real time plus the offset each request carries.
let offsetMs = Number(offsetArg) * 1000;
const RealDate = Date;
class LocalDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(RealDate.now() + offsetMs);
    else super(...args);
  }
  static now() {
    return RealDate.now() + offsetMs;
  }
  static [Symbol.hasInstance](value) {
    return value instanceof RealDate; // dates Node's internals make are dates too
  }
}
globalThis.Date = LocalDate;

// The local endpoint serves plain HTTP. A custom resource answers its ResponseURL (on that endpoint)
// with https.request({hostname, path}), as CDK's handlers do: such a request goes to the endpoint.
const endpoint = new URL(process.env.AWS_ENDPOINT_URL);
const httpsRequest = https.request;
https.request = function request(options, ...rest) {
  if (options && typeof options === "object" && !(options instanceof URL) && options.hostname === endpoint.hostname
      && !options.port) {
    return http.request({ ...options, port: endpoint.port, protocol: "http:", agent: undefined }, ...rest);
  }
  return httpsRequest.call(this, options, ...rest);
};

async function load() {
  const dot = handlerSpec.lastIndexOf(".");
  const moduleName = handlerSpec.slice(0, dot);
  const functionName = handlerSpec.slice(dot + 1);
  const base = path.resolve(taskDir, moduleName);
  const file = [".js", ".mjs", ".cjs"].map((ext) => base + ext).find((candidate) => fs.existsSync(candidate));
  if (!file) {
    throw Object.assign(new Error(`Error: Cannot find module '${moduleName}'`), { kind: "Runtime.ImportModuleError" });
  }
  let loaded;
  try {
    loaded = file.endsWith(".mjs") ? await import(pathToFileURL(file).href) : require(file);
  } catch (error) {
    if (error.code !== "ERR_REQUIRE_ESM") throw Object.assign(error, { kind: "Runtime.ImportModuleError" });
    loaded = await import(pathToFileURL(file).href);
  }
  const handler = loaded[functionName] ?? loaded.default?.[functionName];
  if (typeof handler !== "function") {
    throw Object.assign(new Error(`${handlerSpec} is undefined or not exported`), { kind: "Runtime.HandlerNotFound" });
  }
  return handler;
}

function contextFor(request) {
  const deadline = RealDate.now() + request.timeout * 1000;
  const name = process.env.AWS_LAMBDA_FUNCTION_NAME;
  return {
    functionName: name,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: request.function_arn,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: request.request_id,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadline - RealDate.now()),
  };
}

// An async handler's promise, or a callback handler's callback (whichever answers first).
function run(handler, event, context) {
  return new Promise((resolve, reject) => {
    const callback = (error, result) => (error ? reject(error) : resolve(result));
    try {
      const returned = handler(event, context, callback);
      if (handler.length < 3 || (returned && typeof returned.then === "function")) {
        Promise.resolve(returned).then(resolve, reject);
      }
    } catch (error) {
      reject(error);
    }
  });
}

function failure(error) {
  if (error instanceof Error) return { ok: false, error_type: error.name, error_message: error.message };
  return { ok: false, error_type: typeof error, error_message: String(error) };
}

async function main() {
  let handler;
  const started = process.hrtime.bigint();
  try {
    handler = await load();
  } catch (error) {
    console.error(error);
    reply({ ready: false, error_type: error.kind || "Runtime.ImportModuleError", error_message: String(error.message) });
    process.exit(1);
  }
  reply({ ready: true, init_ms: Number(process.hrtime.bigint() - started) / 1e6 });
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const request = JSON.parse(line);
    offsetMs = Number(request.clock_offset || 0) * 1000;
    try {
      const result = await run(handler, request.event, contextFor(request));
      reply({ ok: true, result: result === undefined ? null : result });
    } catch (error) {
      console.error(error);
      reply(failure(error));
    }
  }
}

main();
