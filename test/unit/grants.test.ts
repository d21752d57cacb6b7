import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { grantCovers, parseGrant, pinsOf, type Grant } from '../../src/approvals/grants.js';
import { StateSealer } from '../../src/approvals/state-seal.js';
import type { StoredRequest } from '../../src/approvals/types.js';
import { parseDuration } from '../../src/policy/duration.js';

function request(body: unknown, query = 'db=prod&limit=10', over: Partial<StoredRequest> = {}): StoredRequest {
  return {
    method: 'POST',
    scheme: 'https',
    host: 'db.internal',
    port: 443,
    path: '/query',
    encodedPath: '/query',
    query,
    headers: ['content-type', 'application/json'],
    body: Buffer.from(JSON.stringify(body)).toString('base64'),
    classification: null,
    ...over,
  };
}

const approved = request({ table: 'orders', filter: { region: 'eu' }, sql: 'select 1' });

function grant(fields: string[]): Grant {
  const pins = pinsOf(approved, fields);
  assert.ok(typeof pins !== 'string', String(pins));
  return { id: 'g1', approvalId: 'a1', identity: 'bot', rule: 'queries', method: 'POST', scheme: 'https', host: 'db.internal', port: 443, pins, by: 'bob', createdAt: 0, expiresAt: 1, uses: 1, seal: '' };
}

describe('grant matching', () => {
  it('covers the same action with the same pinned values, whatever else differs', () => {
    const g = grant(['/table', '/filter', '?db']);
    assert.ok(grantCovers(g, 'queries', request({ sql: 'select 2', filter: { region: 'eu' }, table: 'orders' }, 'limit=99&db=prod')));
    assert.ok(!grantCovers(g, 'queries', request({ table: 'customers', filter: { region: 'eu' } })), 'another table');
    assert.ok(!grantCovers(g, 'queries', request({ table: 'orders', filter: { region: 'us' } })), 'a pinned object differs');
    assert.ok(!grantCovers(g, 'queries', request({ table: 'orders', filter: { region: 'eu' } }, 'db=staging')), 'a pinned parameter differs');
    assert.ok(!grantCovers(g, 'queries', request({ filter: { region: 'eu' } })), 'the pinned field is missing');
    assert.ok(!grantCovers(g, 'other-rule', approved));
    for (const over of [{ method: 'PUT' }, { host: 'db2.internal' }, { port: 8443 }, { scheme: 'http' as const }]) assert.ok(!grantCovers(g, 'queries', { ...approved, ...over }), JSON.stringify(over));
    assert.ok(!grantCovers(g, 'queries', { ...approved, body: Buffer.from('not json').toString('base64') }));
  });

  it('covers nothing whose body repeats a key: the upstream may read the other copy of a pinned field', () => {
    const g = grant(['/table']);
    const twice = { ...approved, body: Buffer.from('{"table":"secrets","table":"orders"}').toString('base64') };
    assert.ok(!grantCovers(g, 'queries', twice));
    const nested = { ...approved, body: Buffer.from('{"table":"orders","filter":{"a":1,"a":2}}').toString('base64') };
    assert.ok(!grantCovers(grant(['/table']), 'queries', nested), 'anywhere in the document');
  });

  it('cannot pin a field the approved request lacks', () => {
    assert.equal(pinsOf(approved, ['/schema']), 'cannot pin /schema: the approved request has no such field');
    assert.equal(pinsOf(approved, ['?cursor']), 'cannot pin ?cursor: the approved request has no such field');
  });

  it('parses what an approver asks within the caps, and refuses past them rather than clamping', () => {
    const caps = { maxDurationMs: 3_600_000, maxUses: 20 };
    assert.deepEqual(parseGrant({ for: '30m', uses: 3, pin: ['/table', '?db'] }, caps, parseDuration), { durationMs: 1_800_000, uses: 3, pins: ['/table', '?db'] });
    assert.deepEqual(parseGrant({ for: '1h' }, caps, parseDuration), { durationMs: 3_600_000, uses: 20, pins: [] });
    const refusals: [unknown, RegExp][] = [
      [{ for: '61m' }, /longer than this rule allows/],
      [{ for: '10m', uses: 21 }, /more than this rule allows \(20\)/],
      [{ uses: 2 }, /grant.for is required/],
      [{ for: 'soon' }, /expected a duration/],
      [{ for: '10m', uses: 0 }, /at least 1/],
      [{ for: '10m', pin: ['table'] }, /JSON Pointers/],
      [{ for: '10m', forever: true }, /unknown field "forever"/],
    ];
    for (const [value, message] of refusals) assert.match(String(parseGrant(value, caps, parseDuration)), message);
    assert.equal(parseGrant({ for: '10m' }, undefined, parseDuration), 'this rule allows no grants (approval.grants)');
  });

  it('a grant altered in the store no longer verifies', () => {
    const sealer = StateSealer.fromKeys(['a-key-of-at-least-thirty-two-bytes!!'], 'test');
    const { seal: _seal, ...fields } = grant(['/table']);
    const g = { ...fields, seal: sealer.sealGrant(fields) };
    assert.ok(sealer.grantValid(g));
    for (const over of [{ uses: 100 }, { expiresAt: 10 }, { identity: 'other' }, { pins: [] }]) assert.ok(!sealer.grantValid({ ...g, ...over }), JSON.stringify(over));
  });
});
