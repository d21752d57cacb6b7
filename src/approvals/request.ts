import { hash } from 'node:crypto';
import type { RpcCall } from '../inspect/jsonrpc.js';
import type { CanonicalRequest } from '../policy/types.js';
import { upstreamHeaders } from '../request/canonicalize.js';
import type { StoredRequest } from './types.js';

/**
 * Headers that differ between two sends of the same request without changing what it does, and
 * `prefer` (respond-async asks Airlock to answer 202; the retry doesn't send it). They are left out
 * of the digest, so an agent's identical retry matches its approval.
 */
const VOLATILE = new Set(['date', 'user-agent', 'traceparent', 'tracestate', 'x-request-id', 'x-correlation-id', 'x-amzn-trace-id', 'content-length', 'prefer']);

/** The request as it will be forwarded once approved: canonical target, upstream headers, buffered body. */
export function storedRequest(canon: CanonicalRequest, body: Buffer): StoredRequest {
  return {
    method: canon.method,
    scheme: canon.scheme,
    host: canon.host,
    port: canon.port,
    path: canon.path,
    encodedPath: canon.encodedPath,
    query: canon.query,
    headers: upstreamHeaders(canon),
    body: body.toString('base64'),
    classification: canon.classification,
    ...(canon.body?.findings?.length ? { findings: [...canon.body.findings] } : {}),
  };
}

/**
 * What an approval is bound to: method, URL, the headers that are forwarded (names lower-case, in
 * name order; the values of one name in the order sent), and the body. Any change to these is a
 * different request that needs its own approval.
 */
export function requestDigest(r: StoredRequest): string {
  const pairs: [string, string][] = [];
  for (let i = 0; i < r.headers.length; i += 2) {
    const name = r.headers[i] as string;
    if (!VOLATILE.has(name)) pairs.push([name, r.headers[i + 1] as string]);
  }
  // Stable sort: only the order of names is normalised, not the order of repeated values.
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return hash('sha256', JSON.stringify([r.method, r.scheme, r.host, r.port, r.encodedPath, r.query, pairs, r.body]), 'hex');
}

/** JSON with object keys sorted at every depth: one text for one value, whatever the key order sent. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/**
 * What the approval of an MCP tool call is bound to: the server (scheme, host, port, path), the tool
 * and its arguments in canonical JSON. Not the JSON-RPC id, `_meta` or the session: a model's retry of
 * the same call differs in those, and must join or spend the same approval.
 */
export function toolCallDigest(r: StoredRequest, call: RpcCall): string {
  return hash('sha256', JSON.stringify(['tools/call', r.scheme, r.host, r.port, r.encodedPath, call.tool, canonicalJson(call.arguments ?? null)]), 'hex');
}
