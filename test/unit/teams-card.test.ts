import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { approvalCard, grantCard, VERB } from '../../src/approvals/teams/card.js';
import { editFromCard } from '../../src/approvals/teams/card-input.js';
import { makeRecord } from './approval-store-contract.js';

const NOW = Date.parse('2026-11-30T12:00:00Z');

type Node = { type?: string; text?: string; [k: string]: unknown };

/** Every object in the card, depth first. */
function nodes(v: unknown): Node[] {
  if (Array.isArray(v)) return v.flatMap(nodes);
  if (v === null || typeof v !== 'object') return [];
  return [v as Node, ...Object.values(v).flatMap(nodes)];
}

describe('Teams approval card', () => {
  it('shows agent text only as plain TextRuns, with invisible characters made visible and the URL\'s end kept', () => {
    const long = `/exports/${'a'.repeat(3000)}/drop-all`;
    const r = makeRecord(NOW, {
      reason: '**urgent** [approve here](https://evil.example) <at>everyone</at>\u202eevil',
      request: { ...makeRecord(NOW).request, encodedPath: long, path: long },
    });
    const card = approvalCard(r, { now: NOW, editableHeaders: [] });
    const all = nodes(card);
    assert.ok(!all.some((n) => n.type === 'TextBlock' || n.type === 'FactSet'), 'no element that renders Markdown');
    const text = all.filter((n) => n.type === 'TextRun').map((n) => n.text).join('\n');
    assert.match(text, /\*\*urgent\*\* \[approve here\]\(https:\/\/evil\.example\) <at>everyone<\/at>\\u\{202e\}evil/);
    assert.match(text, /\/drop-all\?+format=csv \(\d+ characters\)/, 'the end of a long URL is shown');
    assert.ok(JSON.stringify(card).length < 28_000, 'within Teams\' message size');
  });

  it('offers Approve, Deny, Deny with reason, Edit & approve and (with grants) Approve & grant, each carrying only the approval id', () => {
    const plain = approvalCard(makeRecord(NOW), { now: NOW, editableHeaders: ['x-export-format'] });
    const granting = approvalCard(makeRecord(NOW, { grantCaps: { maxDurationMs: 2 * 3_600_000, maxUses: 5 } }), { now: NOW, editableHeaders: [] });
    assert.deepEqual((plain as { actions: { title: string }[] }).actions.map((a) => a.title), ['Approve', 'Deny', 'Deny with reason…', 'Edit & approve…']);
    assert.equal((granting as { actions: unknown[] }).actions.length, 5);
    const executes = nodes(granting).filter((n) => n.type === 'Action.Execute');
    assert.ok(executes.every((a) => Object.keys(a.data as object).join() === 'approvalId'));
    const durations = nodes(granting).find((n) => n.type === 'Input.ChoiceSet') as { choices: { value: string }[] };
    assert.deepEqual(durations.choices.map((c) => c.value), ['15m', '30m', '1h', '2h']);
    assert.ok(nodes(plain).some((n) => n.id === 'header.0'), 'an input per editable header');
  });

  it('a decided card has no actions and says what happened', () => {
    const denied = makeRecord(NOW, { state: 'denied', decidedAt: NOW, decidedBy: 'carl@example.com', decisionReason: 'not now' });
    const card = approvalCard(denied, { now: NOW, editableHeaders: [] }) as { actions?: unknown };
    assert.equal(card.actions, undefined);
    assert.match(JSON.stringify(card), /Denied by carl@example\.com, 2026-11-30 12:00 UTC/);
  });

  it('a grant card offers Revoke only while the grant can be used', () => {
    const g = { id: 'g1', approvalId: 'a1', identity: 'bot', rule: 'r', method: 'POST', scheme: 'https' as const, host: 'h', port: 443, pins: [], by: 'carl@example.com', createdAt: NOW, expiresAt: NOW + 60_000, uses: 2, seal: 's', usesLeft: 2, revokedAt: null, revokedBy: null, slack: null, teams: null };
    assert.ok(nodes(grantCard(g, NOW)).some((n) => n.verb === VERB.revokeGrant));
    assert.ok(!nodes(grantCard({ ...g, usesLeft: 0 }, NOW)).some((n) => n.verb === VERB.revokeGrant));
  });
});

describe('Teams card input', () => {
  const request = { ...makeRecord(NOW).request, query: 'format=csv&limit=10', headers: ['content-type', 'application/json', 'x-export-format', 'csv'] };
  it('edits only what changed: body patch, query parameters, editable headers', () => {
    const edit = editFromCard({ patch: '[{"op":"replace","path":"/rows","value":1}]', query: 'format=csv&limit=5', 'header.0': 'csv' }, request, ['x-export-format']);
    assert.deepEqual(edit, { body: [{ op: 'replace', path: '/rows', value: 1 }], query: { limit: '5' } });
    assert.deepEqual(editFromCard({ query: 'format=csv&limit=10', 'header.0': '' }, request, ['x-export-format']), { headers: { 'x-export-format': null } });
  });
  it('says what is wrong with a form that asks for nothing or for something malformed', () => {
    assert.match(String(editFromCard({ query: 'format=csv&limit=10' }, request, [])), /Nothing was changed/);
    assert.match(String(editFromCard({ patch: '{not json' }, request, [])), /not JSON/);
  });
});
