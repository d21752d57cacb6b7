/** An approver's edited request is decided again under the policy, as the identity that asked. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StoredRequest } from '../../src/approvals/types.js';
import { loadPolicySources } from '../../src/policy/load.js';
import { redecider } from '../../src/proxy/policy-in-force.js';

const POLICY = `
version: 1
classification: { header: X-Data-Classification, levels: [public, internal, confidential], missing: confidential, detect: { email: confidential } }
identities:
  billing-bot: { owner: alice@example.com, groups: [finance] }
approvers:
  owners: { api: [bob@example.com] }
  dba: { api: [erin@example.com] }
rules:
  - id: big
    match: { methods: [POST], hosts: [data.internal], body: { json: { /rows: { gt: 1000 } } } }
    action: approve
    approval: { approvers: [owners], required: 1 }
  - id: finance-only
    match: { methods: [POST], hosts: [data.internal], query: { db: { equals: prod } }, identities: ["group:finance"] }
    action: approve
    approval: { approvers: [dba] }
  - id: no-secrets
    match: { methods: [POST], hosts: [data.internal], body: { json: { /table: { equals: secrets } } } }
    action: deny
  - id: small
    match: { methods: [POST], hosts: [data.internal] }
    action: allow
`;

function stored(body: unknown, query = ''): StoredRequest {
  const text = JSON.stringify(body);
  return {
    method: 'POST',
    scheme: 'https',
    host: 'data.internal',
    port: 443,
    path: '/export',
    encodedPath: '/export',
    query,
    headers: ['content-type', 'application/json', 'x-data-classification', 'internal', 'content-length', String(text.length), 'host', 'data.internal'],
    body: Buffer.from(text).toString('base64'),
    classification: 'internal',
  };
}

describe('deciding an edited request again', () => {
  const loaded = loadPolicySources([{ file: 'p.yaml', text: POLICY }]);
  assert.ok(loaded.ok);
  const redecide = redecider(() => loaded.policy, 1024 * 1024);

  it('reads the body rules, the identity\'s groups and the detectors again', async () => {
    const cases: [StoredRequest, string | null, string, string | null][] = [
      [stored({ table: 'orders', rows: 5000 }), 'billing-bot', 'big', 'internal'],
      [stored({ table: 'orders', rows: 10 }), 'billing-bot', 'small', 'internal'],
      [stored({ table: 'secrets', rows: 10 }), 'billing-bot', 'no-secrets', 'internal'],
      [stored({ table: 'orders', rows: 10 }, 'db=prod'), 'billing-bot', 'finance-only', 'internal'],
      [stored({ table: 'orders', rows: 10 }, 'db=prod'), 'other-bot', 'small', 'internal'],
      [stored({ table: 'orders', rows: 10, contact: 'ann@example.com' }), 'billing-bot', 'small', 'confidential'],
    ];
    for (const [request, identity, rule, classification] of cases) {
      const r = await redecide(request, identity);
      assert.ok(!('refused' in r), JSON.stringify(r));
      assert.equal(r.decision.rule, rule, JSON.stringify(request.query) + Buffer.from(request.body, 'base64').toString());
      assert.equal(r.classification, classification);
    }
  });

  it('refuses an edited request that cannot be read as one', async () => {
    const r = await redecide({ ...stored({ rows: 1 }), headers: ['content-type', 'application/json', 'x-data-classification', 'top-secret'] }, 'billing-bot');
    assert.ok('refused' in r);
    assert.match(r.refused, /unknown data classification/);
  });
});
