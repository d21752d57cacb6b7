import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  approvalOutcomeMessage,
  approvalRequestMessage,
  approverLabel,
  denyReasonModal,
  escapeMrkdwn,
} from '../../src/approvals/slack/message.js';
import type { ApprovalRecord, ApprovalState } from '../../src/approvals/types.js';

const NOW = Date.parse('2026-11-21T09:40:00.000Z');
const ID = '7c0b8e0e-2d7f-4a44-9a0e-0d9d2b1a6f3e';

function record(over: Partial<ApprovalRecord> = {}, request: Partial<ApprovalRecord['request']> = {}): ApprovalRecord {
  const body = Buffer.from('{"customers": "all", "api_key": "k-123"}');
  return {
    id: ID,
    state: 'pending',
    digest: '9f2c1a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7',
    identity: 'billing-bot',
    owner: 'alice@example.com',
    rule: 'confidential-export',
    ruleDescription: 'Exports of confidential data need two data owners',
    reason: 'month-end revenue report',
    eligible: { api: ['bob@example.com'], slack: ['U024BE7LH', 'S0123ABCD'] },
    required: 2,
    channel: '#ai-approvals',
    teamsConversation: null,
    request: {
      method: 'POST',
      scheme: 'https',
      host: 'exports.data.internal',
      port: 443,
      path: '/exports/customers',
      encodedPath: '/exports/customers',
      query: 'month=11&token=s3cr3t',
      headers: ['content-type', 'application/json', 'x-data-classification', 'confidential'],
      body: body.toString('base64'),
      classification: 'confidential',
      ...request,
    },
    createdAt: NOW - 5 * 60_000,
    expiresAt: NOW + 25 * 60_000,
    approvals: [],
    decidedAt: null,
    decidedBy: null,
    decisionReason: null,
    holder: 'replica-1',
    executedAt: null,
    executedBy: null,
    seal: null,
    forwarded: null,
    edit: null,
    impact: null,
    escalation: null,
    escalatedAt: null,
    probes: null,
    grantCaps: null,
    slack: null,
    teams: null,
    ...over,
  };
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
const asJson = (v: unknown): Json => JSON.parse(JSON.stringify(v)) as Json;

/** Every object in a tree (blocks, text objects, elements). */
function objects(v: Json, out: Array<Record<string, Json>> = []): Array<Record<string, Json>> {
  if (Array.isArray(v)) for (const x of v) objects(x, out);
  else if (v !== null && typeof v === 'object') {
    out.push(v);
    for (const x of Object.values(v)) objects(x, out);
  }
  return out;
}

/** Every string Slack would render: text objects' `text`, plus the notification text. */
function texts(m: { text: string; blocks: unknown[] }): string[] {
  return [m.text, ...objects(asJson(m.blocks)).filter((o) => typeof o.text === 'string').map((o) => o.text as string)];
}

const allText = (m: { text: string; blocks: unknown[] }): string => texts(m).join('\n');

function buttons(m: { blocks: unknown[] }): Array<Record<string, Json>> {
  return objects(asJson(m.blocks)).filter((o) => o.type === 'button');
}

/** Checks Slack's published limits on a message. */
function assertWithinLimits(m: { text: string; blocks: unknown[] }): void {
  const blocks = asJson(m.blocks) as Array<Record<string, Json>>;
  assert.ok(blocks.length <= 50, 'at most 50 blocks');
  assert.ok(m.text.length <= 3000, 'fallback text');
  for (const b of blocks) {
    if (b.type === 'header') assert.ok(((b.text as Record<string, Json>).text as string).length <= 150, 'header');
    if (b.type === 'section') {
      const t = b.text as Record<string, Json> | undefined;
      if (t) assert.ok((t.text as string).length <= 3000, `section text ${(t.text as string).length}`);
      const fields = (b.fields ?? []) as Array<Record<string, Json>>;
      assert.ok(fields.length <= 10, 'at most 10 fields');
      for (const f of fields) assert.ok((f.text as string).length <= 2000, `field ${(f.text as string).length}`);
    }
    if (b.type === 'context') {
      const elements = b.elements as Array<Record<string, Json>>;
      assert.ok(elements.length <= 10);
      for (const e of elements) assert.ok((e.text as string).length <= 3000, 'context');
    }
  }
  for (const b of buttons(m)) {
    assert.ok((b.value as string).length <= 2000, 'button value');
    assert.ok(((b.text as Record<string, Json>).text as string).length <= 75, 'button text');
    assert.ok((b.action_id as string).length <= 255, 'action_id');
  }
}

/** Every `<…>` Slack would parse: only dates and the mentions Airlock itself writes. */
function assertOnlyOwnMarkup(m: { text: string; blocks: unknown[] }, mentions: readonly string[]): void {
  for (const t of texts(m)) {
    for (const [token] of t.matchAll(/<[^>]*>/g)) {
      const ok = /^<!date\^\d+\^\{date_short_pretty\} at \{time\}\|[\d: -]+UTC>$/.test(token) || mentions.includes(token);
      assert.ok(ok, `unexpected Slack markup ${token}`);
    }
  }
}

describe('approvalRequestMessage', () => {
  it('asks with Approve, Deny, Deny with reason and Edit & approve, each carrying the approval id', () => {
    const m = approvalRequestMessage(record(), { now: NOW });
    const blocks = asJson(m.blocks) as Array<Record<string, Json>>;
    assert.equal(blocks.filter((b) => b.type === 'actions').length, 1);
    assert.equal(blocks.at(-1)?.type, 'actions');
    assert.deepEqual(
      buttons(m).map((b) => [b.action_id, b.value, b.style ?? null]),
      [
        ['airlock_approve', ID, 'primary'],
        ['airlock_deny', ID, 'danger'],
        ['airlock_deny_reason', ID, null],
        ['airlock_edit', ID, null],
      ],
    );
    assert.match(m.text, /^Approval needed: `POST exports\.data\.internal` by billing-bot \(rule `confidential-export`\)$/);
    assertWithinLimits(m);
  });

  it('shows everything needed to decide', () => {
    const m = approvalRequestMessage(record(), { now: NOW });
    const all = allText(m);
    assert.match(all, /Approval needed: POST exports\.data\.internal/); // header
    assert.match(all, /```POST https:\/\/exports\.data\.internal\/exports\/customers\?month=11&amp;token=REDACTED```/);
    assert.match(all, /\*Agent\*\nbilling-bot\nowner: alice@example\.com/);
    assert.match(all, /\*Data classification\*\nconfidential/);
    assert.match(all, /\*Rule\*\n`confidential-export`\nExports of confidential data need two data owners/);
    assert.match(all, /\*Approvals\*\n0 of 2 approvals/);
    assert.match(all, /\*The agent's stated reason\* \(its own words, not checked by Airlock\)\n```month-end revenue report```/);
    assert.match(all, /\*Body\* \(40 bytes · application\/json · secrets redacted\)\n```\{"customers":"all","api_key":"REDACTED"\}```/);
    assert.match(all, /\*Digest\*\n`sha256:9f2c1a3b4c5d…`/);
    assert.match(all, /digest `sha256:9f2c1a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7`/);
    assert.match(all, /Approval `7c0b8e0e-2d7f-4a44-9a0e-0d9d2b1a6f3e`/);
    const expires = Math.floor((NOW + 25 * 60_000) / 1000);
    assert.ok(all.includes(`*Expires*\n<!date^${expires}^{date_short_pretty} at {time}|2026-11-21 10:05 UTC> (30 min after it was held)`));
    assert.match(all, /\*Who can decide\*\n<@U024BE7LH>, <!subteam\^S0123ABCD>, bob@example\.com/);
    assert.doesNotMatch(all, /s3cr3t|k-123/);
  });

  it('lists what the detectors found, escaped, without values', () => {
    const findings = [
      { detector: 'payment-card' as const, count: 3, where: ['/rows/0/card', '/rows/<!channel>/x'] },
      { detector: 'secret' as const, count: 1, where: ['offset:12'], kinds: ['GITHUB_TOKEN'] },
    ];
    const all = allText(approvalRequestMessage(record({}, { findings }), { now: NOW }));
    assert.ok(all.includes('*Found by detectors*\npayment-card ×3 at /rows/0/card, /rows/&lt;!channel&gt;/x, …\nsecret (GITHUB_TOKEN) ×1 at offset:12'), all);
    assert.doesNotMatch(allText(approvalRequestMessage(record(), { now: NOW })), /Found by detectors/);
  });

  it('marks every mrkdwn text verbatim, so Slack links and mentions nothing by itself', () => {
    const m = approvalRequestMessage(record(), { now: NOW });
    const mrkdwn = objects(asJson(m.blocks)).filter((o) => o.type === 'mrkdwn');
    assert.ok(mrkdwn.length > 5);
    for (const o of mrkdwn) assert.equal(o.verbatim, true);
  });

  it('counts approvals so far, Slack approvers as mentions and API approvers as text', () => {
    const r = record({ approvals: [{ approver: 'slack:U0BOB1234', at: NOW - 60_000 }] });
    const m = approvalRequestMessage(r, { now: NOW });
    assert.match(allText(m), /\*Approvals\*\n1 of 2 approvals: <@U0BOB1234>/);
    assert.match(m.text, /^Approval needed \(1 of 2\):/);
    assert.equal(buttons(m).length, 4);
    const api = approvalRequestMessage(record({ approvals: [{ approver: 'bob@example.com', at: NOW }] }), { now: NOW });
    assert.match(allText(api), /1 of 2 approvals: bob@example\.com/);
  });

  it('escapes everything the agent wrote, so it cannot mention, link or break out of a code block', () => {
    const hostile = '<!channel> <!here> <@U999EVIL> <https://evil.example|Approve here> & more';
    const r = record(
      {
        identity: `bot ${hostile}`,
        owner: '<@U999EVIL>',
        reason: `${hostile}\n\`\`\`\n*Approved by the security team*\n\`\`\``,
        ruleDescription: '<!everyone>',
        approvals: [{ approver: '<!channel>@example.com', at: NOW }],
        eligible: { api: ['<!here>'], slack: ['U024BE7LH'] },
      },
      {
        encodedPath: '/x/<!channel>',
        query: 'q=<@U999EVIL>',
        headers: ['Content-Type', 'text/plain; <!channel>'],
        body: Buffer.from(`${hostile} \`\`\` end`).toString('base64'),
        classification: '<!subteam^S1>',
      },
    );
    const m = approvalRequestMessage(r, { now: NOW });
    assertOnlyOwnMarkup(m, ['<@U024BE7LH>']);
    const all = allText(m);
    assert.match(all, /&lt;!channel&gt; &lt;!here&gt; &lt;@U999EVIL&gt; &lt;https:\/\/evil\.example\|Approve here&gt; &amp; more/);
    // The reason's own ``` cannot end the code block: every section holds exactly two fences.
    for (const t of texts(m)) {
      const fences = t.match(/```/g)?.length ?? 0;
      assert.ok(fences === 0 || fences === 2, `fences in ${JSON.stringify(t)}`);
    }
    assertWithinLimits(m);
  });

  it('makes control and invisible formatting characters visible', () => {
    const m = approvalRequestMessage(record({ reason: 'safe\u202Eexe.txt\u0007', identity: 'bot\u200b' }), { now: NOW });
    const all = allText(m);
    assert.match(all, /safe\\u\{202e\}exe\.txt\\u\{7\}/);
    assert.match(all, /bot\\u\{200b\}/);
    // No raw bidi override or control character (zero-width spaces are Airlock's own, after backticks).
    assert.equal(all.includes('\u202e') || all.includes('\u0007'), false);
  });

  it('says when the agent gave no reason, and leaves out an empty body', () => {
    const m = approvalRequestMessage(record({ reason: null }, { body: '' }), { now: NOW });
    const all = allText(m);
    assert.match(all, /The agent gave no reason/);
    assert.doesNotMatch(all, /\*Body\*/);
  });

  it('shows binary bodies as a size, and truncated bodies as such', () => {
    const bin = approvalRequestMessage(record({}, { body: Buffer.from([0, 1, 2, 255]).toString('base64'), headers: [] }), { now: NOW });
    assert.match(allText(bin), /\*Body\* \(4 bytes · no content type\)\n```&lt;4 bytes of binary data&gt;```/);
    const long = approvalRequestMessage(record({}, { body: Buffer.from('x'.repeat(5000)).toString('base64'), headers: ['content-type', 'text/plain'] }), { now: NOW });
    assert.match(allText(long), /\*Body\* \(5000 bytes · text\/plain · first 512 bytes shown\)\n```x{512}```/);
  });

  it('stays within Slack limits whatever the size of the input', () => {
    const huge = '<&>'.repeat(40_000);
    const r = record(
      {
        identity: huge,
        owner: huge,
        reason: huge,
        rule: 'r'.repeat(5000),
        ruleDescription: huge,
        approvals: Array.from({ length: 500 }, (_, i) => ({ approver: i % 2 ? `U${String(i).padStart(8, '0')}` : `${huge.slice(0, 300)}${i}@x`, at: NOW })),
        eligible: { api: Array.from({ length: 1000 }, (_, i) => `api-${i}-${huge.slice(0, 100)}`), slack: Array.from({ length: 1000 }, (_, i) => `U${i}AAAAAAA`) },
        required: 1000,
      },
      {
        encodedPath: `/${'p'.repeat(20_000)}`,
        query: `token=${'s'.repeat(20_000)}&${'a=<b>&'.repeat(2000)}`,
        headers: ['content-type', huge],
        body: Buffer.from(`{"a": "${huge}"}`).toString('base64'),
        classification: huge,
      },
    );
    const request = approvalRequestMessage(r, { now: NOW });
    assertWithinLimits(request);
    assert.doesNotMatch(allText(request), /sss/);
    for (const state of ['approved', 'denied', 'expired', 'cancelled', 'executed'] as const) {
      const m = approvalOutcomeMessage({ ...r, state, decidedAt: NOW, decidedBy: huge, decisionReason: huge, executedAt: NOW }, { now: NOW });
      assertWithinLimits(m);
    }
  });

  it('cuts long text without splitting an escape, and ends it with an ellipsis', () => {
    const m = approvalRequestMessage(record({ reason: '&'.repeat(10_000) }), { now: NOW });
    const reason = texts(m).find((t) => t.startsWith("*The agent's stated reason*"));
    assert.ok(reason);
    assert.match(reason, /(&amp;)+…```$/);
    assert.ok(reason.length <= 3000);
  });
});

describe('approvalOutcomeMessage', () => {
  const decided = (state: ApprovalState, over: Partial<ApprovalRecord> = {}) =>
    approvalOutcomeMessage(record({ state, decidedAt: NOW, ...over }), { now: NOW });
  const at = `<!date^${Math.floor(NOW / 1000)}^{date_short_pretty} at {time}|2026-11-21 09:40 UTC>`;

  it('keeps the summary, removes the buttons and says who decided', () => {
    const approvals = [
      { approver: 'slack:U024BE7LH', at: NOW - 1000 },
      { approver: 'bob@example.com', at: NOW },
    ];
    const cases: Array<[ApprovalState, Partial<ApprovalRecord>, string]> = [
      ['approved', { approvals }, `*Approved* by <@U024BE7LH>, bob@example.com, ${at}.`],
      ['executed', { approvals, executedAt: NOW + 1000 }, `*Approved* by <@U024BE7LH>, bob@example.com, ${at}. *Sending* since `],
      ['executed', { approvals, executedAt: NOW + 1000, forwarded: { status: 201, at: NOW + 1100 } }, `*Approved* by <@U024BE7LH>, bob@example.com, ${at}. *Sent* `],
      ['denied', { decidedBy: 'slack:U024BE7LH', decisionReason: 'not this month' }, `*Denied* by <@U024BE7LH>, ${at}.`],
      ['denied', { decidedBy: 'bob@example.com', decisionReason: 'no' }, `*Denied* by bob@example.com, ${at}.`],
      ['cancelled', { decidedBy: 'billing-bot' }, `*Withdrawn* by billing-bot, ${at}`],
      ['expired', { approvals: approvals.slice(0, 1), decidedAt: null }, '*Expired* <!date^'],
      ['expired', { approvals }, '*Lapsed*: approved by <@U024BE7LH>, bob@example.com'],
    ];
    for (const [state, over, line] of cases) {
      const m = decided(state, over);
      assert.equal(buttons(m).length, 0, state);
      assert.equal((asJson(m.blocks) as Array<Record<string, Json>>).some((b) => b.type === 'actions'), false, state);
      const all = allText(m);
      assert.ok(all.includes(line), `${state}: ${line}\n${all}`);
      assert.match(all, /```POST https:\/\/exports\.data\.internal\/exports\/customers\?month=11&amp;token=REDACTED```/, state);
      assert.doesNotMatch(all, /Who can decide/, state);
      assertWithinLimits(m);
    }
  });

  it('shows the denial reason in a code block, escaped', () => {
    const m = decided('denied', { decidedBy: 'slack:U024BE7LH', decisionReason: 'not <!channel> this ``` month' });
    const all = allText(m);
    assert.match(all, /\*Reason for the denial\*\n```not &lt;!channel&gt; this `\u200b`\u200b`\u200b month```/);
    assert.match(m.text, /^Denied: `POST exports\.data\.internal`/);
    assertOnlyOwnMarkup(m, ['<@U024BE7LH>']);
  });

  it('renders a record still pending (a vote that did not decide) as the request, buttons included', () => {
    const r = record({ approvals: [{ approver: 'slack:U024BE7LH', at: NOW }] });
    assert.deepEqual(approvalOutcomeMessage(r, { now: NOW }), approvalRequestMessage(r, { now: NOW }));
  });
});

describe('denyReasonModal', () => {
  it('asks for a required, multiline reason and remembers the approval and message', () => {
    const v = denyReasonModal(ID, 'C0123', '1732181700.000100') as unknown as Record<string, Json>;
    assert.equal(v.type, 'modal');
    assert.equal(v.callback_id, 'airlock_deny_reason_modal');
    assert.deepEqual(JSON.parse(v.private_metadata as string), { id: ID, channel: 'C0123', ts: '1732181700.000100' });
    assert.equal((v.submit as Record<string, Json>).text, 'Deny');
    assert.ok(((v.title as Record<string, Json>).text as string).length <= 24);
    const input = (v.blocks as Array<Record<string, Json>>).find((b) => b.type === 'input');
    assert.ok(input);
    assert.equal(input.block_id, 'reason');
    assert.equal(input.optional, false);
    const element = input.element as Record<string, Json>;
    assert.equal(element.type, 'plain_text_input');
    assert.equal(element.action_id, 'text');
    assert.equal(element.multiline, true);
  });
});

describe('helpers', () => {
  it('escapeMrkdwn escapes Slack control characters', () => {
    assert.equal(escapeMrkdwn('a & <b> <!channel>'), 'a &amp; &lt;b&gt; &lt;!channel&gt;');
    assert.equal(escapeMrkdwn('line\nbreak'), 'line\\nbreak');
    assert.equal(escapeMrkdwn('line\nbreak', Infinity, true), 'line\nbreak');
    assert.equal(escapeMrkdwn('<<<<', 10), '&lt;&lt;…');
  });

  it('approverLabel mentions Slack users and writes others as text', () => {
    assert.equal(approverLabel('slack:U024BE7LH'), '<@U024BE7LH>');
    assert.equal(approverLabel('W024BE7LH'), '<@W024BE7LH>');
    assert.equal(approverLabel('bob@example.com'), 'bob@example.com');
    assert.equal(approverLabel('<@U1>'), '&lt;@U1&gt;');
  });
});

describe('approvalOutcomeMessage: refused by the policy in force', () => {
  it('says the policy refused it, with the rule and reason, not that the agent withdrew it', () => {
    const r = record({ state: 'cancelled', decidedAt: NOW, decidedBy: '(policy in force)', decisionReason: 'the policy in force denies this request (rule freeze): frozen' });
    const m = approvalOutcomeMessage(r, { now: NOW });
    const all = allText(m);
    assert.match(m.text, /Refused by policy/);
    assert.match(all, /\*Refused by the policy in force\*, .*: it was not sent\./);
    assert.match(all, /rule freeze/);
    assert.doesNotMatch(all, /Withdrawn/);
  });
});

describe('long URLs', () => {
  it('keep their end in view: the middle is elided and the length said', () => {
    const path = `/exports/${'a'.repeat(3500)}/drop-all`;
    const all = allText(approvalRequestMessage(record({}, { path, encodedPath: path, query: '' }), { now: NOW }));
    const request = /\*Request\*\n```([^`]*)```/.exec(all)?.[1] ?? '';
    assert.match(request, /^POST https:\/\/exports\.data\.internal\/exports\/a+…a+\/drop-all \(\d+ characters\)$/);
    assert.ok(request.length <= 3000);
  });
});
