// A minimal AWS Lambda Runtime API client, so the seed's Node.js handlers run
// as a `bootstrap` exactly like our Rust functions (custom runtime,
// provided.al2023) and are driven by the same harness (`lambda-bench`).
//
// Usage: node runtime.mjs ./authorizer.mjs     (exports `init()` and `handler(event)`)
//
// Loop: GET /2018-06-01/runtime/invocation/next, call the handler, then POST
// .../invocation/{id}/response or .../invocation/{id}/error. An init failure
// is POSTed to /runtime/init/error and the process exits non-zero.
//
// `invocation/next` is a long poll that Lambda answers when an event
// arrives: it has no timeout by design. Every other call has one
// (RESPONSE_TIMEOUT_MS).
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const RESPONSE_TIMEOUT_MS = 10_000;
const api = process.env.AWS_LAMBDA_RUNTIME_API;
if (!api) {
  console.error('AWS_LAMBDA_RUNTIME_API is not set: run this under Lambda or a Runtime API emulator');
  process.exit(2);
}
const [host, port] = api.split(':');
const base = '/2018-06-01/runtime';
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function call(method, urlPath, body, timeoutMs) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request(
      {
        host,
        port: Number(port || 80),
        method,
        path: urlPath,
        agent,
        headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    if (timeoutMs) req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${urlPath}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    if (payload) req.write(payload);
    req.end();
  });
}

function errorBody(err) {
  // The shape Lambda's own Node.js runtime sends; no stack (it may carry data).
  return { errorType: String(err?.name ?? 'Error'), errorMessage: String(err?.message ?? err) };
}

const modulePath = process.argv[2];
if (!modulePath) {
  console.error('usage: node runtime.mjs HANDLER_MODULE');
  process.exit(2);
}

let handler;
try {
  const mod = await import(pathToFileURL(path.resolve(modulePath)).href);
  if (typeof mod.init === 'function') await mod.init(process.env);
  handler = mod.handler;
  if (typeof handler !== 'function') throw new Error(`${modulePath} exports no handler`);
} catch (err) {
  console.error(`init failed: ${err?.message ?? err}`);
  await call('POST', `${base}/init/error`, errorBody(err), RESPONSE_TIMEOUT_MS).catch(() => {});
  process.exit(1);
}

for (;;) {
  const next = await call('GET', `${base}/invocation/next`);
  if (next.status !== 200) {
    console.error(`invocation/next answered ${next.status}`);
    process.exit(1);
  }
  const id = next.headers['lambda-runtime-aws-request-id'];
  const trace = next.headers['lambda-runtime-trace-id'];
  if (trace) process.env._X_AMZN_TRACE_ID = trace;
  else delete process.env._X_AMZN_TRACE_ID;
  const context = {
    awsRequestId: id,
    deadlineMs: Number(next.headers['lambda-runtime-deadline-ms'] ?? 0),
    invokedFunctionArn: next.headers['lambda-runtime-invoked-function-arn'],
  };
  let result;
  let failed = null;
  try {
    result = await handler(JSON.parse(next.body.toString('utf8')), context);
  } catch (err) {
    failed = err;
  }
  if (failed) await call('POST', `${base}/invocation/${id}/error`, errorBody(failed), RESPONSE_TIMEOUT_MS);
  else await call('POST', `${base}/invocation/${id}/response`, result ?? null, RESPONSE_TIMEOUT_MS);
}
