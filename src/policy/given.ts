/**
 * Deciding a request given as data (`airlock policy test`, `airlock policy explain`): the steps the
 * proxy takes, without a connection. Canonicalize; evaluate; when a rule for the request inspects
 * the body, read the given one (none: an empty one) into the same view and evaluate again. Pure.
 */
import { inspectBody } from '../inspect/body.js';
import { canonicalize, type RawRequest } from '../request/canonicalize.js';
import { evaluate } from './evaluate.js';
import type { CanonicalRequest, CompiledPolicy, Decision, Identity } from './types.js';

/** The proxy's default --max-inspected-body. */
export const DEFAULT_INSPECTED_BODY = 1024 * 1024;

export type Given = { ok: true; request: CanonicalRequest; decision: Decision } | { ok: false; message: string };

export function decideGiven(raw: RawRequest, identity: Identity | null, body: Buffer | null, policy: CompiledPolicy, limit = DEFAULT_INSPECTED_BODY): Given {
  const c = canonicalize(raw, identity, policy);
  if (!c.ok) return c;
  const request = c.request;
  const first = evaluate(request, policy);
  if (!first.needsBody) return { ok: true, request, decision: first };
  // No body given is an empty one, still inspected: GraphQL over GET is in the URL.
  const bytes = body ?? Buffer.alloc(0);
  const complete = bytes.length <= limit;
  const v = inspectBody(complete ? bytes : bytes.subarray(0, limit), complete, request.headers, request.query, { limit, inspectedForm: policy.inspectedForm, graphql: policy.inspectsGraphql });
  if (!v.ok) return { ok: false, message: v.message };
  request.body = v.body;
  return { ok: true, request, decision: evaluate(request, policy) };
}
