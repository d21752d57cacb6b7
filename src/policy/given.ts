/**
 * Deciding a request given as data (`airlock policy test`, `airlock policy explain`): the steps the
 * proxy takes, without a connection. Canonicalize; evaluate; when a rule for the request inspects
 * the body, read the given one (none: an empty one) into the same view and evaluate again. Pure.
 */
import { bodyNeededForOverride, setBodyView } from './body-view.js';
import { canonicalize, type RawRequest } from '../request/canonicalize.js';
import { evaluate } from './evaluate.js';
import type { CanonicalRequest, CompiledPolicy, Decision, Identity } from './types.js';

/** The proxy's default --max-inspected-body. */
export const DEFAULT_INSPECTED_BODY = 1024 * 1024;

export type Given = { ok: true; request: CanonicalRequest; decision: Decision } | { ok: false; message: string };

export async function decideGiven(raw: RawRequest, identity: Identity | null, body: Buffer | null, policy: CompiledPolicy, limit = DEFAULT_INSPECTED_BODY): Promise<Given> {
  // A client sending a body says how long it is; a request given without saying so is read the same way.
  const framed = body !== null && body.length > 0 && !raw.rawHeaders.some((h, i) => i % 2 === 0 && /^(content-length|transfer-encoding)$/i.test(h));
  const c = canonicalize(framed ? { ...raw, rawHeaders: [...raw.rawHeaders, 'Content-Length', String(body.length)] } : raw, identity, policy);
  if (!c.ok) return c;
  const request = c.request;
  const first = evaluate(request, policy);
  if (!first.needsBody && !bodyNeededForOverride(request)) return { ok: true, request, decision: first };
  // No body given is an empty one, still inspected: GraphQL over GET is in the URL.
  const bytes = body ?? Buffer.alloc(0);
  const complete = bytes.length <= limit;
  const v = await setBodyView(request, complete ? bytes : bytes.subarray(0, limit), complete, policy, limit);
  if (!v.ok) return v;
  return { ok: true, request, decision: evaluate(request, policy) };
}
