import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { formatPolicyError } from '../../src/policy/errors.js';
import { decideGiven } from '../../src/policy/given.js';
import { loadPolicySources } from '../../src/policy/load.js';

const POLICY = `version: 1
defaults: { action: deny }
classification:
  header: X-Data-Classification
  levels: [public, internal, confidential, restricted]
  missing: internal
  detect: { payment-card: restricted, email: confidential, secret: restricted }
approvers:
  owners: { api: [bob@example.com] }
rules:
  - id: exports-internal
    match: { methods: [POST, GET], hosts: [exports.internal], classification: { in: [public, internal] } }
    action: allow
  - id: exports-confidential
    match: { methods: [POST, GET], hosts: [exports.internal], classification: { in: [confidential] } }
    action: approve
    approval: { approvers: [owners] }
  - id: exports-restricted
    match: { methods: [POST, GET], hosts: [exports.internal], classification: { atLeast: restricted } }
    action: deny
  - id: everything-else
    match: { hosts: [other.internal] }
    action: allow
`;

const r = loadPolicySources([{ file: 'p.yaml', text: POLICY }]);
if (!r.ok) assert.fail(r.errors.map(formatPolicyError).join('\n'));
const policy = r.policy;

async function decide(body: string | Buffer | null, headers: string[] = [], url = 'http://exports.internal/exports', method = 'POST'): Promise<string> {
  const bytes = body === null ? null : Buffer.from(body);
  const rawHeaders = bytes === null ? headers : ['Content-Type', 'application/json', 'Content-Length', String(bytes.length), ...headers];
  const g = await decideGiven({ method, target: url, rawHeaders }, null, bytes, policy, 4096);
  if (!g.ok) return `400 ${g.message}`;
  return `${g.decision.action} ${g.decision.rule ?? '-'} ${g.request.classification}`;
}

describe('classification from content', () => {
  it('a card number in an unlabelled export raises it from the missing level to the detector’s', async () => {
    assert.equal(await decide('{"rows":[{"name":"a"}]}'), 'allow exports-internal internal');
    assert.equal(await decide('{"rows":[{"card":"4111 1111 1111 1111"}]}'), 'deny exports-restricted restricted');
    assert.equal(await decide('{"rows":[{"to":"alice@example.com"}]}'), 'approve exports-confidential confidential');
  });

  it('a header can never lower it, and findings never lower a header', async () => {
    assert.equal(await decide('{"card":"4111 1111 1111 1111"}', ['X-Data-Classification', 'public']), 'deny exports-restricted restricted');
    assert.equal(await decide('{"to":"alice@example.com"}', ['X-Data-Classification', 'restricted']), 'deny exports-restricted restricted');
    assert.equal(await decide('{"n":1}', ['X-Data-Classification', 'confidential']), 'approve exports-confidential confidential');
  });

  it('the query counts too', async () => {
    assert.equal(await decide(null, [], 'http://exports.internal/lookup?pan=4111111111111111', 'GET'), 'deny exports-restricted restricted');
    assert.equal(await decide(null, [], 'http://exports.internal/lookup?id=42', 'GET'), 'allow exports-internal internal');
  });

  it('a compressed body is scanned decoded', async () => {
    const gz = gzipSync('{"card":"4111 1111 1111 1111"}');
    assert.equal(await decide(gz, ['Content-Encoding', 'gzip']), 'deny exports-restricted restricted');
  });

  it('a body that cannot be read counts as the highest level', async () => {
    assert.equal(await decide(`{"pad":"${'x'.repeat(5000)}"}`), 'deny exports-restricted restricted');
    assert.equal(await decide('{"a":1,"a":2}'), 'deny exports-restricted restricted');
  });

  it('findings are on the request, without the values', async () => {
    const g = await decideGiven(
      { method: 'POST', target: 'http://exports.internal/x', rawHeaders: ['Content-Type', 'application/json', 'Content-Length', '60'] },
      null,
      Buffer.from('{"rows":[{"card":"4111 1111 1111 1111","mail":"a@example.com"}]}'),
      policy,
    );
    assert.ok(g.ok);
    assert.deepEqual(g.request.body?.findings, [
      { detector: 'payment-card', count: 1, where: ['/rows/0/card'] },
      { detector: 'email', count: 1, where: ['/rows/0/mail'] },
    ]);
  });

  it('requests no classification rule concerns are not read', async () => {
    const g = await decideGiven(
      { method: 'POST', target: 'http://other.internal/x', rawHeaders: ['Content-Type', 'application/json', 'Content-Length', '30'] },
      null,
      Buffer.from('{"card":"4111 1111 1111 1111"}'),
      policy,
    );
    assert.ok(g.ok);
    assert.ok(!g.decision.needsBody);
    assert.equal(g.request.body, undefined);
  });
});

describe('classification.detect in policy files', () => {
  const load = (detect: string) =>
    loadPolicySources([{ file: 'd.yaml', text: `version: 1\nclassification:\n  header: X-C\n  levels: [low, high]\n  detect: ${detect}\n` }]);

  it('names a level of the scheme, at its position', () => {
    const bad = load('{ iban: secret }');
    assert.equal(bad.ok, false);
    if (!bad.ok) assert.match(bad.errors.map(formatPolicyError).join('\n'), /d\.yaml:5:\d+.*classification\.detect\.iban "secret" is not one of the levels \[low, high\]/);
  });

  it('names a known detector', () => {
    const bad = load('{ passport: high }');
    assert.equal(bad.ok, false);
    if (!bad.ok) assert.match(bad.errors.map(formatPolicyError).join('\n'), /d\.yaml:5:.*passport/);
  });

  it('is the same in every file that declares classification', () => {
    const two = loadPolicySources([
      { file: 'a.yaml', text: 'version: 1\nclassification: { header: X-C, levels: [low, high], detect: { email: high } }\n' },
      { file: 'b.yaml', text: 'version: 1\nclassification: { header: X-C, levels: [low, high] }\n' },
    ]);
    assert.equal(two.ok, false);
    if (!two.ok) assert.match(two.errors.map(formatPolicyError).join('\n'), /classification differs/);
  });
});
