/**
 * The demo's "AI agent": a plain Node.js program that calls the demo API with fetch. It knows nothing
 * about Airlock except HTTP_PROXY, which undici's EnvHttpProxyAgent reads, as it would in an agent's
 * container. Started by demo/run.ts with DEMO_API (the upstream's origin) and DEMO_RESULT (a file
 * where it writes what it saw, for the runner to check).
 */
import { writeFile } from 'node:fs/promises';
import { EnvHttpProxyAgent, fetch } from 'undici';

export interface CallResult {
  name: string;
  method: string;
  path: string;
  status: number;
  body: string;
}

const api = process.env.DEMO_API;
const resultFile = process.env.DEMO_RESULT;
if (!api || !resultFile) throw new Error('demo/agent.ts is started by demo/run.ts (DEMO_API and DEMO_RESULT are not set)');

const dispatcher = new EnvHttpProxyAgent();
const results: CallResult[] = [];

async function call(name: string, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<void> {
  const res = await fetch(`${api}${path}`, { method, headers, body, dispatcher });
  const text = await res.text();
  console.log(`← ${res.status} ${text}`);
  results.push({ name, method, path, status: res.status, body: text });
}

try {
  console.log(`→ GET ${api}/v1/customers   (read customers)`);
  await call('read', 'GET', '/v1/customers');

  console.log(`→ DELETE ${api}/v1/customers/42   (delete a customer)`);
  await call('delete', 'DELETE', '/v1/customers/42');

  console.log(`→ POST ${api}/v1/exports   (export, X-Airlock-Reason: monthly report) … held, waiting for a human`);
  await call('export', 'POST', '/v1/exports', { 'content-type': 'application/json', 'x-airlock-reason': 'monthly report' }, JSON.stringify({ dataset: 'customers', month: '2026-10' }));
} finally {
  await dispatcher.close();
  await writeFile(resultFile, JSON.stringify(results));
}
