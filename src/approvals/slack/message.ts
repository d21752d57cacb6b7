/**
 * The Slack message that asks for an approval, the same message once decided, and the "deny with
 * reason" modal. Pure functions: the Slack channel posts and updates what they return.
 *
 * Everything in a held request comes from the agent (URL, headers, body, stated reason), so every
 * piece of it is
 * - escaped for mrkdwn (`&` `<` `>`): no `<!channel>`, `<@U…>` or `<https://…|disguised>` link can be
 *   smuggled in, and every mrkdwn text object is `verbatim` (Slack auto-links nothing);
 * - made visible where it could hide: control characters and Unicode bidi/invisible formatting
 *   characters become `\u{…}` escapes, as in the CLI;
 * - shown in code blocks where it is free text (URL, reason, body), so it cannot be styled to look
 *   like Airlock's own words; backticks in it are defused so it cannot close the block;
 * - cut to fit Slack's limits (section text 3,000 characters, field 2,000, header 150, 50 blocks).
 *
 * The URL's query and the body are shown with secrets redacted (`redactQuery`, `bodyPreview`).
 */
import type { types as Slack } from '@slack/bolt';
import { describeFinding } from '../../inspect/finding.js';
import { elideMiddle, visibleChar } from '../../text/visible.js';
import { describeHistory } from '../impact.js';
import { EDIT_ACTION } from './edit-modal.js';
import { GRANT_ACTION } from './grants.js';
import { approvalsSoFar, bodyShown, displayUrl, duration, editChanges, hostPort, outcomeSentence, outcomeTitle } from '../present.js';
import { asDecided, type ApprovalRecord } from '../types.js';

type KnownBlock = Slack.KnownBlock;
type SectionBlock = Slack.SectionBlock;
type MrkdwnElement = Slack.MrkdwnElement;
type Button = Slack.Button;
type View = Slack.View;

export const APPROVE_ACTION = 'airlock_approve';
export const DENY_ACTION = 'airlock_deny';
export const DENY_REASON_ACTION = 'airlock_deny_reason';
export const DENY_REASON_MODAL = 'airlock_deny_reason_modal';
/** The modal's input: `view.state.values.reason.text.value`. */
export const DENY_REASON_BLOCK = 'reason';
export const DENY_REASON_INPUT = 'text';
/** The approvals API keeps at most this much of a reason. */
export const MAX_REASON_CHARS = 1000;

/** Slack's limits (https://api.slack.com/reference/block-kit/blocks). */
const LIMIT = { section: 3000, field: 2000, header: 150, context: 3000, fallback: 3000, buttonValue: 2000 } as const;
/** Names listed before "and N more". */
const MAX_NAMES = 10;
const ZWSP = '\u200b';

// ---------------------------------------------------------------------------------------------------
// Text

/** Bidi overrides/isolates/marks, zero-width characters and line/paragraph separators. */
type Mode = 'line' | 'multiline' | 'code';

/** One character as it is shown: visible if it could hide, entity-escaped if mrkdwn would parse it. */
function showChar(ch: string, mode: Mode): string {
  if (ch === '&') return '&amp;';
  if (ch === '<') return '&lt;';
  if (ch === '>') return '&gt;';
  // In a code block, a zero-width space after each backtick: three in a row can no longer end it.
  if (ch === '`') return mode === 'code' ? `\`${ZWSP}` : ch;
  if (ch === '\n' || ch === '\t') return mode !== 'line' ? ch : ch === '\n' ? '\\n' : '\\t';
  return visibleChar(ch);
}

function show(s: string, max: number, mode: Mode): string {
  let out = '';
  /** Length of `out` at the last character boundary that leaves room for an ellipsis. */
  let cut = 0;
  for (const ch of s) {
    const piece = showChar(ch, mode);
    if (out.length + piece.length > max) return `${out.slice(0, cut)}…`;
    out += piece;
    if (out.length <= max - 1) cut = out.length;
  }
  return out;
}

/**
 * `s` escaped for Slack mrkdwn (`&` → `&amp;`, `<` → `&lt;`, `>` → `&gt;`), with control and invisible
 * formatting characters made visible as `\u{…}` (newlines and tabs too, unless `multiline`), and cut
 * with `…` so the result is at most `max` characters (never inside an escape).
 */
export function escapeMrkdwn(s: string, max = Infinity, multiline = false): string {
  return show(s, max, multiline ? 'multiline' : 'line');
}

/** A fenced code block of agent text, at most `max` characters in all; it cannot close itself early. */
function codeBlock(s: string, max: number): string {
  const text = s === '' ? ' ' : s;
  const lead = text.startsWith('`') ? ZWSP : '';
  return `\`\`\`${lead}${show(text, max - 6 - lead.length, 'code')}\`\`\``;
}

/** A request line in a code block: never cut at the end (where `/drop-all` would hide), but in the middle. */
function urlBlock(s: string, max: number): string {
  const lead = s.startsWith('`') ? ZWSP : '';
  return `\`\`\`${lead}${elideMiddle([...s].map((ch) => showChar(ch, 'code')), max - 6 - lead.length)}\`\`\``;
}

/**
 * Composed mrkdwn cut to `max` characters: a safety net (pieces are sized to fit), which never leaves
 * half an entity, half a `<…>` token or half a surrogate pair.
 */
function fit(s: string, max: number): string {
  if (s.length <= max) return s;
  let end = max - 1;
  const amp = s.lastIndexOf('&', end - 1);
  if (amp >= 0 && !s.slice(amp, end).includes(';') && end - amp < 6) end = amp;
  const open = s.lastIndexOf('<', end - 1);
  if (open >= 0 && !s.slice(open, end).includes('>')) end = open;
  const code = s.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end--;
  return `${s.slice(0, end)}…`;
}

/** Inline code for short trusted tokens (rule id, digest); plain escaped text if it holds a backtick. */
function code(s: string, max = 200): string {
  const e = escapeMrkdwn(s, max - 2);
  return e.includes('`') ? e : `\`${e}\``;
}

function plain(text: string, max: number): Slack.PlainTextElement {
  let out = '';
  for (const ch of text) {
    const piece = visibleChar(ch);
    if (out.length + piece.length > max - 1) return { type: 'plain_text', text: `${out}…`, emoji: true };
    out += piece;
  }
  return { type: 'plain_text', text: out, emoji: true };
}

function mrkdwn(text: string): MrkdwnElement {
  return { type: 'mrkdwn', text, verbatim: true };
}

function section(text: string): SectionBlock {
  return { type: 'section', text: mrkdwn(fit(text, LIMIT.section)) };
}

// ---------------------------------------------------------------------------------------------------
// People and times

const SLACK_USER = /^(?:slack:)?([UW][A-Z0-9]{2,})$/;
const SLACK_GROUP = /^(?:slack:)?(S[A-Z0-9]{2,})$/;

/**
 * How an approver (or decider) is shown: a Slack user (`slack:U024BE7LH` as the Slack channel records
 * votes, or a bare `U…`/`W…` id) as a mention `<@U024BE7LH>`; anyone else (API approvers, named by
 * email; an agent identity) as escaped text.
 */
export function approverLabel(name: string): string {
  const user = SLACK_USER.exec(name);
  return user ? `<@${user[1]}>` : escapeMrkdwn(name, 200);
}

/** Eligible deciders: users as mentions, user groups (`S…`) as group mentions, others as text. */
function eligibleLabel(entry: string): string {
  const group = SLACK_GROUP.exec(entry);
  return group ? `<!subteam^${group[1]}>` : approverLabel(entry);
}

/** Labels joined with ", " within `max` characters, the rest summed up as "and N more". */
function names(labels: readonly string[], max: number): string {
  const shown: string[] = [];
  let length = 0;
  for (const [i, label] of labels.entries()) {
    const rest = labels.length - i;
    // Keep room for ", and N more".
    if (shown.length >= MAX_NAMES || length + label.length + 2 + (rest > 1 ? 20 : 0) > max) {
      return `${shown.join(', ')}${shown.length > 0 ? ', and' : ''} ${rest} more`.trim();
    }
    shown.push(label);
    length += label.length + 2;
  }
  return shown.join(', ');
}

/** Slack's date formatting: shown in the reader's time zone, with a UTC fallback. */
export function slackDate(ms: number): string {
  const fallback = `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  return `<!date^${Math.floor(ms / 1000)}^{date_short_pretty} at {time}|${fallback}>`;
}

// ---------------------------------------------------------------------------------------------------
// The request

/** The impact facts (impact.ts) as short lines. */
function impactLines(r: ApprovalRecord): string[] {
  const i = r.impact;
  if (i === null) return [];
  const lines = [`• destination ${code(i.destination, 300)}, body ${i.bodyBytes} bytes`];
  for (const a of i.arrays) lines.push(`• ${a.count} record${a.count === 1 ? '' : 's'} in ${code(a.path === '' ? '(the body)' : a.path, 200)}`);
  if (i.classificationWhy !== null) lines.push(`• classified ${escapeMrkdwn(i.classification ?? 'none', 100)}: ${escapeMrkdwn(i.classificationWhy, 500)}`);
  lines.push(`• ${escapeMrkdwn(describeHistory(i.history), 200)}`);
  return lines;
}

function approvalsLine(r: ApprovalRecord, max: number): string {
  return approvalsSoFar(r, (people) => names(people.map(approverLabel), max - 40));
}

/**
 * The request as reviewers need it, shared by the request and outcome messages: `blocks` (header,
 * request, facts, the agent's reason, the body) and `context` (ids and digest), which goes last.
 */
function summary(record: ApprovalRecord, title: string, now: number, withDeciders: boolean): { blocks: KnownBlock[]; context: KnownBlock } {
  // After an edit: the edited request, its rule and approvers, and what changed.
  const r = asDecided(record);
  const req = r.request;
  const blocks: KnownBlock[] = [{ type: 'header', text: plain(`${title}: ${req.method} ${hostPort(req)}`, LIMIT.header) }];

  const requestLabel = '*Request*\n';
  blocks.push(section(requestLabel + urlBlock(`${req.method} ${displayUrl(req)}`, LIMIT.section - requestLabel.length)));

  const fieldMax = LIMIT.field;
  const agent = r.identity === null ? '_unidentified agent_' : escapeMrkdwn(r.identity, 300);
  // The owner is named, not mentioned: being the owner is no reason to be pinged (nor to decide).
  const owner = r.owner === null ? '' : `\nowner: ${escapeMrkdwn(r.owner, 300)}`;
  const description = r.ruleDescription ? `\n${escapeMrkdwn(r.ruleDescription, fieldMax - 300)}` : '';
  const left = r.expiresAt - now;
  const expiry = left > 0 ? `${duration(r.expiresAt - r.createdAt)} after it was held` : 'passed';
  const fields: MrkdwnElement[] = [
    mrkdwn(fit(`*Agent*\n${agent}${owner}`, fieldMax)),
    mrkdwn(fit(`*Data classification*\n${req.classification === null ? '_not declared_' : escapeMrkdwn(req.classification, 200)}`, fieldMax)),
    mrkdwn(fit(`*Rule*\n${code(r.rule)}${description}`, fieldMax)),
    ...(req.findings?.length ? [mrkdwn(fit(`*Found by detectors*\n${req.findings.map((f) => escapeMrkdwn(describeFinding(f), 300)).join('\n')}`, fieldMax))] : []),
    mrkdwn(fit(`*Approvals*\n${approvalsLine(r, fieldMax - 20)}`, fieldMax)),
    mrkdwn(`*Expires*\n${slackDate(r.expiresAt)} (${expiry})`),
    mrkdwn(`*Digest*\n${code(`sha256:${r.digest.slice(0, 12)}…`)}`),
  ];
  if (withDeciders) {
    const eligible = [...new Set([...r.eligible.slack, ...r.eligible.api])].map(eligibleLabel);
    if (eligible.length > 0) fields.push(mrkdwn(fit(`*Who can decide*\n${names(eligible, fieldMax - 30)}`, fieldMax)));
  }
  blocks.push({ type: 'section', fields });
  const esc = record.escalation;
  if (esc !== null) {
    const asked = names([...new Set([...esc.eligible.slack, ...esc.eligible.api])].map(eligibleLabel), 1500);
    const groups = esc.groups.map((g) => code(g, 100)).join(', ');
    const line =
      record.escalatedAt !== null
        ? `*Escalated* ${slackDate(record.escalatedAt)}: nobody decided in time, so ${groups} (${asked}) ${record.state === 'pending' ? 'are asked too and may decide' : 'were asked too'}.`
        : record.state === 'pending'
          ? `*Escalation*: if nobody decides by ${slackDate(esc.at)}, ${groups} will be asked too.`
          : '';
    if (line !== '') blocks.push(section(fit(line, LIMIT.section)));
  }
  const facts = impactLines(record);
  if (facts.length > 0) blocks.push(section(fit(`*Impact*\n${facts.join('\n')}`, LIMIT.section)));
  if (record.probes !== null && record.probes.length > 0) {
    const lines = record.probes.map((p) => {
      const fields = (p.fields ?? []).map((f) => `${code(f.pointer, 100)} = ${code(f.value, 200)}`).join(', ');
      return p.state === 'ok' ? `• ${escapeMrkdwn(p.name, 60)}: ${p.status}${fields ? ` — ${fields}` : ''}` : `• ${escapeMrkdwn(p.name, 60)}: _failed_ (${escapeMrkdwn(p.error ?? 'no answer', 300)})`;
    });
    blocks.push(section(fit(`*Impact probes* (Airlock's own requests; they decide nothing)\n${lines.join('\n')}`, LIMIT.section)));
  }
  if (record.edit !== null) {
    const e = record.edit;
    const changed = editChanges(e);
    blocks.push(section(fit(`*Edited by ${escapeMrkdwn(approverLabel(e.by), 200)}* ${slackDate(e.at)}; approvals restarted\n${codeBlock(changed.join('\n'), 2000)}`, LIMIT.section)));
  }

  if (r.reason === null || r.reason.trim() === '') {
    blocks.push({ type: 'context', elements: [mrkdwn('The agent gave no reason (header `X-Airlock-Reason`).')] });
  } else {
    const label = "*The agent's stated reason* (its own words, not checked by Airlock)\n";
    blocks.push(section(label + codeBlock(r.reason, LIMIT.section - label.length)));
  }

  const body = bodyShown(req, (text, max) => escapeMrkdwn(text, max));
  if (body !== null) {
    const label = `*Body* (${body.notes})\n`;
    blocks.push(section(label + codeBlock(body.text, LIMIT.section - label.length)));
  }

  const context: KnownBlock = {
    type: 'context',
    elements: [mrkdwn(`Approval ${code(r.id, 100)} · held ${slackDate(r.createdAt)} · digest ${code(`sha256:${r.digest}`, 100)}`)],
  };
  return { blocks, context };
}

/** Notification text (also what screen readers and old clients show). No URL: nothing to unfurl. */
function fallback(r: ApprovalRecord, lead: string): string {
  const who = r.identity === null ? 'an unidentified agent' : escapeMrkdwn(r.identity, 200);
  return fit(`${lead}: ${code(`${r.request.method} ${hostPort(r.request)}`, 400)} by ${who} (rule ${code(r.rule)})`, LIMIT.fallback);
}

function button(text: string, actionId: string, value: string, style?: 'primary' | 'danger'): Button {
  return { type: 'button', text: { type: 'plain_text', text, emoji: true }, action_id: actionId, value, ...(style ? { style } : {}) };
}

/**
 * The message asking approvers to decide, with Approve / Deny / Deny with reason buttons (each with
 * the approval id as its value). Also re-rendered after a vote that does not yet decide ("1 of 2").
 */
export function approvalRequestMessage(r: ApprovalRecord, opts: { now: number }): { text: string; blocks: KnownBlock[] } {
  if (r.id.length > LIMIT.buttonValue) throw new Error('approval id too long for a Slack button value');
  const { blocks, context } = summary(r, 'Approval needed', opts.now, true);
  blocks.push(context, {
    type: 'actions',
    block_id: 'airlock_actions',
    elements: [
      button('Approve', APPROVE_ACTION, r.id, 'primary'),
      button('Deny', DENY_ACTION, r.id, 'danger'),
      button('Deny with reason…', DENY_REASON_ACTION, r.id),
      button('Edit & approve…', EDIT_ACTION, r.id),
      ...(r.grantCaps !== null ? [button('Approve & grant…', GRANT_ACTION, r.id)] : []),
    ],
  });
  const count = r.approvals.length > 0 ? ` (${r.approvals.length} of ${r.required})` : '';
  return { text: fallback(r, `Approval needed${count}`), blocks };
}

/** The outcome sentence in mrkdwn: approvers as mentions, dates in the reader's time zone. */
function outcomeLine(r: ApprovalRecord, now: number): string {
  return outcomeSentence(r, now, {
    date: slackDate,
    people: (list) => names(list.map(approverLabel), 1500),
    person: approverLabel,
    strong: (text) => `*${text}*`,
  });
}

/**
 * The same message once the request is decided (approved, denied, expired, withdrawn, sent): the
 * summary stays, the buttons go, and a line says what happened, who decided and when (with the
 * reason given, if any). A pending record gets the request message (with its buttons) instead.
 */
export function approvalOutcomeMessage(r: ApprovalRecord, opts: { now: number }): { text: string; blocks: KnownBlock[] } {
  if (r.state === 'pending') return approvalRequestMessage(r, opts);
  const title = outcomeTitle(r);
  const { blocks, context } = summary(r, title.text, opts.now, false);
  blocks.push({ type: 'divider' }, section(outcomeLine(r, opts.now)));
  if (r.decisionReason !== null && r.decisionReason.trim() !== '') {
    const label = r.state === 'denied' ? '*Reason for the denial*\n' : '*Reason given*\n';
    blocks.push(section(label + codeBlock(r.decisionReason, LIMIT.section - label.length)));
  }
  blocks.push(context);
  return { text: fallback(r, title.word), blocks };
}

/**
 * The modal behind "Deny with reason…". `private_metadata` is `{"id", "channel", "ts"}` (the approval
 * and the message to update); the reason is `view.state.values.reason.text.value`.
 */
export function denyReasonModal(approvalId: string, channel: string, ts: string): View {
  return {
    type: 'modal',
    callback_id: DENY_REASON_MODAL,
    private_metadata: JSON.stringify({ id: approvalId, channel, ts }),
    title: { type: 'plain_text', text: 'Deny request' },
    submit: { type: 'plain_text', text: 'Deny' },
    close: { type: 'plain_text', text: 'Cancel' },
    blocks: [
      {
        type: 'input',
        block_id: DENY_REASON_BLOCK,
        optional: false,
        label: { type: 'plain_text', text: 'Why are you denying it?' },
        hint: { type: 'plain_text', text: 'The agent receives this reason, and it is kept in the audit trail.' },
        element: {
          type: 'plain_text_input',
          action_id: DENY_REASON_INPUT,
          multiline: true,
          max_length: MAX_REASON_CHARS,
          placeholder: { type: 'plain_text', text: 'e.g. not this month; ask the data owners first' },
        },
      },
      {
        type: 'context',
        elements: [{ type: 'mrkdwn', text: `Approval ${code(approvalId, 100)}. A denial is final.`, verbatim: true }],
      },
    ],
  };
}
