/**
 * A request held for approval was decided under the policy in force when it arrived. Before it is
 * forwarded, it is decided again under the policy in force now: an emergency deny loaded while it
 * waited must win over an approver's click. The same re-decision reads a request an approver edited.
 */
import { setBodyView } from '../policy/body-view.js';
import { evaluate } from '../policy/evaluate.js';
import type { Redecide } from '../approvals/service.js';
import type { CanonicalRequest, CompiledPolicy, Decision, Identity } from '../policy/types.js';
import { canonicalize } from '../request/canonicalize.js';

/** A request by its canonical parts, as stored with an approval or held in memory. */
export interface RequestTarget {
  method: string;
  scheme: 'http' | 'https';
  host: string;
  port: number;
  encodedPath: string;
  query: string;
  /** Flat [name, value, …] header list. */
  headers: readonly string[];
}

/** `target` canonicalized and decided under `policy`, with its buffered body; or why it cannot be read under it. */
export async function decideTarget(
  target: RequestTarget,
  identity: Identity | null,
  body: Buffer,
  policy: CompiledPolicy,
  limit: number,
): Promise<{ canon: CanonicalRequest; decision: Decision } | { refused: string }> {
  // Canonicalized again: the policy may inspect other headers or query parameters.
  const query = target.query === '' ? '' : `?${target.query}`;
  const c = canonicalize(
    {
      method: target.method,
      target: `${target.encodedPath}${query}`,
      rawHeaders: [...target.headers],
      destination: { scheme: target.scheme, host: target.host, port: target.port },
      hostHeader: 'ignore',
    },
    identity,
    policy,
  );
  if (!c.ok) return { refused: c.message };
  const first = evaluate(c.request, policy);
  if (!first.needsBody) return { canon: c.request, decision: first };
  const complete = body.length <= limit;
  const view = await setBodyView(c.request, complete ? body : body.subarray(0, limit), complete, policy, limit);
  if (!view.ok) return { refused: view.message };
  return { canon: c.request, decision: evaluate(c.request, policy) };
}

/** The decision `policy` gives the request `canon` (with its buffered body), or a reason it cannot be read under it. */
export async function decideUnder(canon: CanonicalRequest, body: Buffer, policy: CompiledPolicy, limit: number): Promise<Decision | { refused: string }> {
  const r = await decideTarget({ ...canon, headers: canon.headers.flat }, canon.identity, body, policy, limit);
  return 'refused' in r ? r : r.decision;
}

/** How an approver's edit is decided again: under the policy in force, as the identity that asked. */
export function redecider(policy: () => CompiledPolicy, limit: number): Redecide {
  return async (request, identityId) => {
    const p = policy();
    const identity = identityId === null ? null : (p.identities.get(identityId) ?? { id: identityId, groups: [] });
    const r = await decideTarget(request, identity, Buffer.from(request.body, 'base64'), p, limit);
    if ('refused' in r) return r;
    const findings = r.canon.body?.findings;
    return { decision: r.decision, classification: r.canon.classification, findings: findings?.length ? [...findings] : undefined };
  };
}
