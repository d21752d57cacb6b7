/**
 * A request held for approval was decided under the policy in force when it arrived. Before it is
 * forwarded, it is decided again under the policy in force now: an emergency deny loaded while it
 * waited must win over an approver's click.
 */
import { setBodyView } from '../policy/body-view.js';
import { evaluate } from '../policy/evaluate.js';
import type { CanonicalRequest, CompiledPolicy, Decision } from '../policy/types.js';
import { canonicalize } from '../request/canonicalize.js';

/** The decision `policy` gives the request `canon` (with its buffered body), or a reason it cannot be read under it. */
export async function decideUnder(canon: CanonicalRequest, body: Buffer, policy: CompiledPolicy, limit: number): Promise<Decision | { refused: string }> {
  // Canonicalized again: the new policy may inspect other headers or query parameters.
  const query = canon.query === '' ? '' : `?${canon.query}`;
  const c = canonicalize(
    {
      method: canon.method,
      target: `${canon.encodedPath}${query}`,
      rawHeaders: canon.headers.flat,
      destination: { scheme: canon.scheme, host: canon.host, port: canon.port },
      hostHeader: 'ignore',
    },
    canon.identity,
    policy,
  );
  if (!c.ok) return { refused: c.message };
  const first = evaluate(c.request, policy);
  if (!first.needsBody) return first;
  const complete = body.length <= limit;
  const view = await setBodyView(c.request, complete ? body : body.subarray(0, limit), complete, policy, limit);
  if (!view.ok) return { refused: view.message };
  return evaluate(c.request, policy);
}
