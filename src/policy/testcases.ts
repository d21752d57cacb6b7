/**
 * Runs the `tests:` cases written in policy files. Each case goes through the same canonicalize,
 * evaluate and body inspection as a real request, so a passing case means the proxy would decide the
 * same way.
 */
import type { RawRequest } from '../request/canonicalize.js';
import { decideGiven } from './given.js';
import type { CompiledPolicy, Decision, Identity, PolicyTestCase } from './types.js';

export interface TestCaseResult {
  case: PolicyTestCase;
  ok: boolean;
  /** The decision, when the request could be built and evaluated. */
  decision: Decision | null;
  /** Why the case failed ('' when it passed). */
  message: string;
}

/** `null` identity is anonymous; an unknown id is not a silent anonymous caller but a failing case. */
export function resolveIdentity(id: string | null, policy: CompiledPolicy): Identity | null | { error: string } {
  if (id === null) return null;
  const c = policy.identities.get(id);
  if (!c) return { error: `unknown identity "${id}"` };
  return { id: c.id, ...(c.owner !== undefined ? { owner: c.owner } : {}), groups: c.groups };
}

/** A Node-style flat header list from `{ name: value }`. */
function rawHeaderList(headers: Readonly<Record<string, string>>): string[] {
  return Object.entries(headers).flat();
}

export async function runTestCase(t: PolicyTestCase, policy: CompiledPolicy): Promise<TestCaseResult> {
  const fail = (message: string, decision: Decision | null = null): TestCaseResult => ({ case: t, ok: false, decision, message });
  const identity = resolveIdentity(t.identity, policy);
  if (identity !== null && 'error' in identity) return fail(identity.error);
  const raw: RawRequest = { method: t.method, target: t.url, rawHeaders: rawHeaderList(t.headers) };
  const given = await decideGiven(raw, identity, t.body === null ? null : Buffer.from(t.body), policy);
  if (!given.ok) return fail(`the proxy would refuse this request (400): ${given.message}`);
  const decision = given.decision;
  const by = decision.rule === null ? 'default' : `rule ${decision.rule}`;
  if (decision.action !== t.expect) return fail(`expected ${t.expect} got ${decision.action} (${by})`, decision);
  if (t.rule !== undefined && decision.rule !== t.rule) {
    return fail(`expected ${t.expect} by ${t.rule === null ? 'default' : `rule ${t.rule}`} got ${decision.action} by ${by}`, decision);
  }
  return { case: t, ok: true, decision, message: '' };
}

export async function runTestCases(policy: CompiledPolicy): Promise<TestCaseResult[]> {
  const results: TestCaseResult[] = [];
  for (const t of policy.tests) results.push(await runTestCase(t, policy));
  return results;
}
