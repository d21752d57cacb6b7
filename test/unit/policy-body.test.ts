import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inspectBody } from '../../src/inspect/body.js';
import { formatPolicyError } from '../../src/policy/errors.js';
import { evaluate } from '../../src/policy/evaluate.js';
import { explain } from '../../src/policy/explain.js';
import { loadPolicySources } from '../../src/policy/load.js';
import type { CompiledPolicy } from '../../src/policy/types.js';
import { canonicalize } from '../../src/request/canonicalize.js';

const POLICY = `version: 1
defaults: { action: deny }
approvers:
  owners: { api: [bob@example.com] }
rules:
  - id: exports
    match: { methods: [POST], hosts: [exports.internal], paths: ["/exports/**"] }
    action: allow
  - id: huge-exports
    match: { methods: [POST], hosts: [exports.internal], paths: ["/exports/**"], body: { json: { /rows: { gt: 1000 } } } }
    action: deny
    reason: Exports of more than 1,000 rows are not allowed
  - id: any-item-deleted
    match: { methods: [POST], hosts: [exports.internal], paths: ["/batch"], body: { json: { /items/*/op: { equals: delete } } } }
    action: approve
    approval: { approvers: [owners] }
  - id: reads-only
    match: { methods: [POST], hosts: [exports.internal], paths: ["/batch"], body: { json: { /items/*/op: { oneOf: [read, list] } } } }
    action: allow
  - id: admin-grants
    match: { methods: [POST], hosts: [users.internal], body: { form: { role: { equals: admin } } } }
    action: approve
    approval: { approvers: [owners] }
  - id: user-edits
    match: { methods: [POST], hosts: [users.internal] }
    action: allow
`;

function load(text: string): CompiledPolicy {
  const r = loadPolicySources([{ file: 'p.yaml', text }]);
  if (!r.ok) assert.fail(r.errors.map(formatPolicyError).join('\n'));
  return r.policy;
}

const policy = load(POLICY);

/** Decide as the proxy does: without the body first, then with it when asked. */
function decide(url: string, body: string | null, headers: string[] = ['Content-Type', 'application/json'], complete = true): string {
  const c = canonicalize({ method: 'POST', target: url, rawHeaders: headers }, null, policy);
  if (!c.ok) return `400 ${c.message}`;
  const first = evaluate(c.request, policy);
  if (!first.needsBody) return `${first.action} ${first.rule ?? '-'} (body not read)`;
  const v = inspectBody(Buffer.from(body ?? ''), complete, c.request.headers, c.request.query, { limit: 1024, inspectedForm: policy.inspectedForm, graphql: policy.inspectsGraphql });
  if (!v.ok) return `400 ${v.message}`;
  c.request.body = v.body;
  const d = evaluate(c.request, policy);
  return `${d.action} ${d.rule ?? '-'}`;
}

describe('body rules', () => {
  it('a JSON value decides; requests no body rule concerns never have their body read', () => {
    assert.equal(decide('http://exports.internal/exports/q3', '{"rows":5000000}'), 'deny huge-exports');
    assert.equal(decide('http://exports.internal/exports/q3', '{"rows":"5000000"}'), 'deny huge-exports', 'a numeric string counts');
    assert.equal(decide('http://exports.internal/exports/q3', '{"rows":10}'), 'allow exports');
    assert.equal(decide('http://exports.internal/exports/q3', '{}'), 'allow exports');
    assert.equal(decide('http://exports.internal/other', '{"rows":5000000}'), 'deny - (body not read)');
    assert.equal(decide('http://nothing.internal/', '{"rows":5000000}'), 'deny - (body not read)');
  });

  it('a wildcard path holds when any element satisfies the condition', () => {
    assert.equal(decide('http://exports.internal/batch', '{"items":[{"op":"read"},{"op":"delete"}]}'), 'approve any-item-deleted');
    assert.equal(decide('http://exports.internal/batch', '{"items":[{"op":"read"},{"op":"list"}]}'), 'allow reads-only');
    assert.equal(decide('http://exports.internal/batch', '{"items":[]}'), 'deny -');
    // An allow rule needs every element: one update among reads is not allowed by reads-only.
    assert.equal(decide('http://exports.internal/batch', '{"items":[{"op":"read"},{"op":"update"}]}'), 'deny -');
  });

  it('JSON sent without a JSON Content-Type is read all the same', () => {
    assert.equal(decide('http://exports.internal/exports/q3', '{"rows":5000000}', ['Content-Type', 'text/plain']), 'deny huge-exports');
  });

  it('form fields decide, and a polluted inspected field is a 400', () => {
    const form = ['Content-Type', 'application/x-www-form-urlencoded'];
    assert.equal(decide('http://users.internal/u/1', 'name=ann&role=admin', form), 'approve admin-grants');
    assert.equal(decide('http://users.internal/u/1', 'name=ann&role=viewer', form), 'allow user-edits');
    assert.match(decide('http://users.internal/u/1', 'role=viewer&ROLE=admin', form), /^400 form field "role" appears more than once/);
  });

  it('a body that cannot be read gets the most restrictive outcome any body rule could give', () => {
    // deny and approve body rules count as matched; allow body rules do not.
    assert.equal(decide('http://exports.internal/exports/q3', '{"rows":', ['Content-Type', 'application/json']), 'deny huge-exports');
    assert.equal(decide('http://exports.internal/exports/q3', '{"rows":1}', ['Content-Type', 'application/json'], false), 'deny huge-exports');
    assert.equal(decide('http://exports.internal/batch', '{"items":[{"op":"read"}],"items":[{"op":"delete"}]}'), 'approve any-item-deleted');
    assert.equal(decide('http://exports.internal/batch', 'x', ['Content-Encoding', 'compress']), 'approve any-item-deleted');
  });

  it('explains which body condition held, or why the body could not be read', () => {
    const c = canonicalize({ method: 'POST', target: 'http://exports.internal/exports/q3', rawHeaders: ['Content-Type', 'application/json'] }, null, policy);
    assert.ok(c.ok);
    const missing = explain(c.request, policy).rules.find((r) => r.id === 'huge-exports')!;
    assert.match(missing.criteria.at(-1)!.detail, /inspects the body, and none was given/);
    const v = inspectBody(Buffer.from('{"rows":5000000}'), true, c.request.headers, '', { limit: 1024, inspectedForm: new Set(), graphql: false });
    assert.ok(v.ok);
    c.request.body = v.body;
    const rule = explain(c.request, policy).rules.find((r) => r.id === 'huge-exports')!;
    assert.ok(rule.matched);
    assert.match(rule.criteria.at(-1)!.detail, /JSON \/rows is 5000000; rule wants gt 1000/);
  });

  it('names file:line:col of a bad JSON path', () => {
    const r = loadPolicySources([{ file: 'p.yaml', text: 'version: 1\nrules:\n  - id: r\n    match:\n      body: { json: { rows: { gt: 1 } } }\n    action: deny\n' }]);
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(formatPolicyError(r.errors[0]!), /^p\.yaml:5:\d+ JSON path "rows" must be empty or start with "\/"/);
  });
});
