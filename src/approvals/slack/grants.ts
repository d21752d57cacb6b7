/**
 * Grants in Slack: "Approve & grant…" opens a modal (how long, how many uses, which fields to pin)
 * within the rule's caps; every grant is announced by a message with a Revoke button, updated when it
 * is used, revoked or used up.
 */
import type { types as Slack } from '@slack/bolt';
import { grantDurationChoices, type GrantState } from '../grants.js';
import type { ApprovalRecord } from '../types.js';
import { approverLabel, escapeMrkdwn, slackDate } from './message.js';

type KnownBlock = Slack.KnownBlock;
type View = Slack.View;

export const GRANT_ACTION = 'airlock_grant';
export const GRANT_MODAL = 'airlock_grant_modal';
export const REVOKE_GRANT_ACTION = 'airlock_revoke_grant';
export const GRANT_FOR_BLOCK = 'grant_for';
export const GRANT_USES_BLOCK = 'grant_uses';
export const GRANT_PIN_BLOCK = 'grant_pin';
const INPUT = 'value';



/** The "Approve & grant…" modal for `r` (its rule's caps in `r.grantCaps`). */
export function grantModal(r: ApprovalRecord, channel: string): View {
  const caps = r.grantCaps!;
  const options = grantDurationChoices(caps.maxDurationMs);
  return {
    type: 'modal',
    callback_id: GRANT_MODAL,
    private_metadata: JSON.stringify({ id: r.id, channel }),
    title: { type: 'plain_text', text: 'Approve and grant' },
    submit: { type: 'plain_text', text: 'Approve and grant' },
    close: { type: 'plain_text', text: 'Cancel' },
    blocks: [
      {
        type: 'input',
        block_id: GRANT_FOR_BLOCK,
        label: { type: 'plain_text', text: 'For how long' },
        element: {
          type: 'static_select',
          action_id: INPUT,
          initial_option: { text: { type: 'plain_text', text: options[0]! }, value: options[0]! },
          options: options.map((o) => ({ text: { type: 'plain_text', text: o }, value: o })),
        },
      },
      {
        type: 'input',
        block_id: GRANT_USES_BLOCK,
        label: { type: 'plain_text', text: `How many uses (at most ${caps.maxUses})` },
        element: { type: 'plain_text_input', action_id: INPUT, initial_value: String(caps.maxUses) },
      },
      {
        type: 'input',
        block_id: GRANT_PIN_BLOCK,
        optional: true,
        label: { type: 'plain_text', text: 'Pin these fields (one per line)' },
        hint: { type: 'plain_text', text: 'Body JSON Pointers (/table) or query parameters (?db): later requests must carry the same values. Empty: any request of this rule to this host.' },
        element: { type: 'plain_text_input', action_id: INPUT, multiline: true },
      },
      {
        type: 'context',
        elements: [{ type: 'mrkdwn', text: 'You approve this request, and let the same agent do the same action without asking, within these limits. It can be revoked at any time.', verbatim: true }],
      },
    ],
  };
}

type Values = Record<string, Record<string, { value?: string | null; selected_option?: { value?: string } | null }>>;

/** The grant asked for in a submitted modal: what the approvals API takes as `grant`. */
export function grantFromModal(values: Values, privateMetadata: string): { id: string; channel: string; grant: { for: string; uses: number; pin: string[] } } | { block: string; error: string } {
  const meta = JSON.parse(privateMetadata) as { id: string; channel: string };
  const duration = values[GRANT_FOR_BLOCK]?.[INPUT]?.selected_option?.value ?? '';
  const usesText = values[GRANT_USES_BLOCK]?.[INPUT]?.value?.trim() ?? '';
  const uses = Number(usesText);
  if (!/^\d+$/.test(usesText) || uses < 1) return { block: GRANT_USES_BLOCK, error: 'A whole number of at least 1.' };
  const pin = (values[GRANT_PIN_BLOCK]?.[INPUT]?.value ?? '').split('\n').map((l) => l.trim()).filter(Boolean);
  return { id: meta.id, channel: meta.channel, grant: { for: duration, uses, pin } };
}

/** The message announcing a grant: what it covers, what is left, and Revoke while it can be used. */
export function grantMessage(g: GrantState, now: number): { text: string; blocks: KnownBlock[] } {
  const who = g.identity === null ? '_anonymous callers_' : escapeMrkdwn(g.identity, 200);
  const pins = g.pins.length === 0 ? 'any request of the rule to this host' : g.pins.map((p) => `\`${escapeMrkdwn(p.field, 100)}\` = \`${escapeMrkdwn(p.value, 200)}\``).join(', ');
  const usable = g.revokedAt === null && g.usesLeft > 0 && now < g.expiresAt;
  const state =
    g.revokedAt !== null
      ? `*Revoked* by ${escapeMrkdwn(approverLabel(g.revokedBy ?? ''), 200)} ${slackDate(g.revokedAt)}; ${g.usesLeft} of ${g.uses} uses were left.`
      : g.usesLeft <= 0
        ? `*Used up*: all ${g.uses} uses taken.`
        : now >= g.expiresAt
          ? `*Expired* ${slackDate(g.expiresAt)} with ${g.usesLeft} of ${g.uses} uses left.`
          : `${g.usesLeft} of ${g.uses} uses left, until ${slackDate(g.expiresAt)}.`;
  const blocks: KnownBlock[] = [
    {
      type: 'section',
      text: {
        type: 'mrkdwn',
        text: `🔑 *Grant* by ${escapeMrkdwn(approverLabel(g.by), 200)}: ${who} may \`${escapeMrkdwn(`${g.method} ${g.scheme}://${g.host}:${g.port}`, 300)}\` (rule \`${escapeMrkdwn(g.rule, 100)}\`) without asking, where ${pins}.\n${state}`,
        verbatim: true,
      },
    },
    { type: 'context', elements: [{ type: 'mrkdwn', text: `Grant \`${g.id}\`, given with approval \`${g.approvalId}\``, verbatim: true }] },
  ];
  if (usable) {
    blocks.push({
      type: 'actions',
      block_id: 'airlock_grant_actions',
      elements: [{ type: 'button', text: { type: 'plain_text', text: 'Revoke' }, action_id: REVOKE_GRANT_ACTION, value: g.id, style: 'danger' }],
    });
  }
  return { text: `Grant for ${g.identity ?? 'anonymous callers'} (rule ${g.rule})`, blocks };
}
