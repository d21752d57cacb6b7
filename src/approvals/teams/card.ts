/**
 * The Adaptive Card that asks for an approval in Microsoft Teams, the same card once decided, and the
 * card that announces a grant. Pure functions: the Teams channel posts and updates what they return.
 *
 * Everything in a held request comes from the agent (URL, headers, body, stated reason). It is only
 * ever shown in `TextRun`s of `RichTextBlock`s, which Teams renders as plain text (no Markdown: no
 * link, mention or styling can be smuggled in), with control and invisible formatting characters made
 * visible, and cut to fit (a card must stay under Teams' 28 KB message limit). The URL keeps its end
 * (`…/drop-all` cannot hide), and the query and body are shown with secrets redacted.
 *
 * Buttons are `Action.Execute` (Universal Actions): Teams sends an `adaptiveCard/action` invoke with the
 * verb and `data.approvalId`; who clicked comes from the authenticated activity, never from the card.
 */
import type { IAdaptiveCard, IRichTextBlock, ITextRun } from '@microsoft/teams.cards';
import { describeFinding } from '../../inspect/finding.js';
import { elideMiddle, visibleChar } from '../../text/visible.js';
import { describeHistory } from '../impact.js';
import { grantDurationChoices, type GrantState } from '../grants.js';
import { approvalsSoFar, bodyShown, displayUrl, duration, editChanges, headerOf, hostPort, outcomeSentence, outcomeTitle } from '../present.js';
import { asDecided, type ApprovalRecord } from '../types.js';

/** The verbs of the card's actions (`activity.value.action.verb`). */
export const VERB = {
  approve: 'airlock.approve',
  deny: 'airlock.deny',
  edit: 'airlock.edit',
  grant: 'airlock.grant',
  revokeGrant: 'airlock.revokeGrant',
  refresh: 'airlock.refresh',
} as const;

/** Ids of the inputs whose values come back in `activity.value.action.data`. */
export const INPUT = {
  reason: 'reason',
  patch: 'patch',
  query: 'query',
  /** `header.0`, `header.1`, … in the order of the rule's editable headers. */
  header: (i: number) => `header.${i}`,
  grantFor: 'grantFor',
  grantUses: 'grantUses',
  grantPin: 'grantPin',
} as const;

const MAX = { title: 150, url: 1000, value: 300, text: 1000, reason: 1000, block: 2000 } as const;
const MAX_NAMES = 10;

/** Agent text as shown: every invisible character visible, cut with `…` to `max` characters. */
function shown(s: string, max: number, multiline = false): string {
  let out = '';
  for (const ch of s) {
    const piece = visibleChar(ch, multiline);
    if (out.length + piece.length > max - 1) return `${out}…`;
    out += piece;
  }
  return out;
}

function run(text: string, style: Partial<Omit<ITextRun, 'type' | 'text'>> = {}): ITextRun {
  return { type: 'TextRun', text, ...style } as ITextRun;
}

function rich(inlines: ITextRun[], extra: Partial<IRichTextBlock> = {}): IRichTextBlock {
  return { type: 'RichTextBlock', inlines, ...extra } as IRichTextBlock;
}

/** A label and its value on one line (or the value below it when `block`). */
function fact(label: string, value: string, opts: { mono?: boolean; block?: boolean } = {}): IRichTextBlock {
  return rich([run(`${label}${opts.block ? '\n' : ' '}`, { weight: 'Bolder' }), run(value, opts.mono ? { fontType: 'Monospace' } : {})]);
}

function utc(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** Names joined, at most MAX_NAMES, the rest summed up. */
function people(list: readonly string[]): string {
  const shownNames = list.slice(0, MAX_NAMES).map((n) => shown(n, 200));
  return list.length > MAX_NAMES ? `${shownNames.join(', ')} and ${list.length - MAX_NAMES} more` : shownNames.join(', ');
}

const FORMAT = { date: utc, people, person: (n: string) => shown(n, 200), strong: (s: string) => s };

/** The request and what reviewers need to know about it, shared by the pending and decided cards. */
function summary(record: ApprovalRecord, title: string, now: number, withDeciders: boolean): IRichTextBlock[] {
  const r = asDecided(record);
  const req = r.request;
  const blocks: IRichTextBlock[] = [
    rich([run(shown(`${title}: ${req.method} ${hostPort(req)}`, MAX.title), { size: 'Large', weight: 'Bolder' })]),
    fact('Request', elideMiddle([...`${req.method} ${displayUrl(req)}`].map((ch) => visibleChar(ch)), MAX.url), { mono: true, block: true }),
    fact('Agent', r.identity === null ? '(unidentified agent)' : shown(r.identity, MAX.value)),
  ];
  // The owner is named, and may not decide.
  if (r.owner !== null) blocks.push(fact('Owner', shown(r.owner, MAX.value)));
  blocks.push(
    fact('Data classification', req.classification === null ? 'not declared' : shown(req.classification, MAX.value)),
    fact('Rule', `${shown(r.rule, MAX.value)}${r.ruleDescription ? ` — ${shown(r.ruleDescription, MAX.text)}` : ''}`),
  );
  if (req.findings?.length) blocks.push(fact('Found by detectors', req.findings.map((f) => shown(describeFinding(f), MAX.value)).join('\n'), { block: true }));
  blocks.push(fact('Approvals', approvalsSoFar(r, people)));
  const expiry = r.expiresAt > now ? `${duration(r.expiresAt - r.createdAt)} after it was held` : 'passed';
  blocks.push(fact('Expires', `${utc(r.expiresAt)} (${expiry})`));
  if (withDeciders) {
    const who = [...new Set([...(r.eligible.teams ?? []), ...r.eligible.api])];
    if (who.length > 0) blocks.push(fact('Who can decide', people(who)));
  }
  const esc = record.escalation;
  if (esc !== null) {
    const groups = esc.groups.join(', ');
    if (record.escalatedAt !== null) {
      blocks.push(fact('Escalated', `${utc(record.escalatedAt)}: nobody decided in time, so ${shown(groups, MAX.value)} ${record.state === 'pending' ? 'are asked too and may decide' : 'were asked too'}.`));
    } else if (record.state === 'pending') {
      blocks.push(fact('Escalation', `if nobody decides by ${utc(esc.at)}, ${shown(groups, MAX.value)} will be asked too.`));
    }
  }
  const i = record.impact;
  if (i !== null) {
    const lines = [`destination ${shown(i.destination, MAX.value)}, body ${i.bodyBytes} bytes`];
    for (const a of i.arrays) lines.push(`${a.count} record${a.count === 1 ? '' : 's'} in ${a.path === '' ? '(the body)' : shown(a.path, 200)}`);
    if (i.classificationWhy !== null) lines.push(`classified ${shown(i.classification ?? 'none', 100)}: ${shown(i.classificationWhy, 500)}`);
    lines.push(describeHistory(i.history));
    blocks.push(fact('Impact', lines.map((l) => `• ${l}`).join('\n'), { block: true }));
  }
  if (record.probes !== null && record.probes.length > 0) {
    const lines = record.probes.map((p) => {
      const fields = (p.fields ?? []).map((f) => `${shown(f.pointer, 100)} = ${shown(f.value, 200)}`).join(', ');
      return p.state === 'ok' ? `• ${shown(p.name, 60)}: ${p.status}${fields ? ` — ${fields}` : ''}` : `• ${shown(p.name, 60)}: failed (${shown(p.error ?? 'no answer', MAX.value)})`;
    });
    blocks.push(fact("Impact probes (Airlock's own requests; they decide nothing)", lines.join('\n'), { block: true }));
  }
  if (record.edit !== null) {
    const e = record.edit;
    blocks.push(fact(`Edited by ${shown(e.by, 200)} ${utc(e.at)}; approvals restarted`, shown(editChanges(e).join('\n'), MAX.block, true), { mono: true, block: true }));
  }
  blocks.push(
    r.reason === null || r.reason.trim() === ''
      ? rich([run('The agent gave no reason (header X-Airlock-Reason).', { isSubtle: true })])
      : fact("The agent's stated reason (its own words, not checked by Airlock)", shown(r.reason, MAX.reason, true), { block: true }),
  );
  const body = bodyShown(req, (text, max) => shown(text, max));
  if (body !== null) blocks.push(fact(`Body (${body.notes})`, shown(body.text, MAX.block, true), { mono: true, block: true }));
  return blocks;
}

function footer(r: ApprovalRecord): IRichTextBlock {
  return rich([run(`Approval ${r.id} · held ${utc(r.createdAt)} · digest sha256:${asDecided(r).digest}`, { isSubtle: true, size: 'Small' })], { separator: true });
}

function card(body: unknown[], actions: unknown[] = []): IAdaptiveCard {
  return { type: 'AdaptiveCard', version: '1.5', body, ...(actions.length > 0 ? { actions } : {}), msteams: { width: 'Full' } } as unknown as IAdaptiveCard;
}

function execute(title: string, verb: string, approvalId: string, style?: 'positive' | 'destructive'): Record<string, unknown> {
  return { type: 'Action.Execute', title, verb, data: { approvalId }, ...(style ? { style } : {}) };
}

function textInput(id: string, label: string, value: string | null, opts: { multiline?: boolean; placeholder?: string; required?: boolean } = {}): Record<string, unknown> {
  return {
    type: 'Input.Text',
    id,
    label,
    isMultiline: opts.multiline === true,
    maxLength: 3000,
    ...(value !== null && value !== '' ? { value: value.slice(0, 3000) } : {}),
    ...(opts.placeholder ? { placeholder: opts.placeholder } : {}),
    ...(opts.required ? { isRequired: true, errorMessage: 'Required.' } : {}),
  };
}

function showCard(title: string, body: unknown[], action: Record<string, unknown>): Record<string, unknown> {
  return { type: 'Action.ShowCard', title, card: { type: 'AdaptiveCard', body, actions: [action] } };
}

/**
 * The card asking approvers to decide, with Approve, Deny, Deny with reason, Edit & approve and (when
 * the rule allows grants) Approve & grant. A decided record gets its outcome card instead.
 */
export function approvalCard(r: ApprovalRecord, opts: { now: number; editableHeaders: readonly string[] }): IAdaptiveCard {
  if (r.state !== 'pending') return outcomeCard(r, opts.now);
  const req = asDecided(r).request;
  const body = [...summary(r, 'Approval needed', opts.now, true), footer(r)];
  const actions = [
    execute('Approve', VERB.approve, r.id, 'positive'),
    execute('Deny', VERB.deny, r.id, 'destructive'),
    showCard('Deny with reason…', [textInput(INPUT.reason, 'Why are you denying it? The agent receives this reason, and it is kept in the audit trail.', null, { multiline: true, required: true })], execute('Deny', VERB.deny, r.id, 'destructive')),
    showCard(
      'Edit & approve…',
      [
        textInput(INPUT.patch, 'Body changes (JSON Patch, RFC 6902). Empty: the body stays as it is.', null, { multiline: true, placeholder: '[{"op":"replace","path":"/rows","value":10000}]' }),
        textInput(INPUT.query, 'Query string (change or remove parameters; the others are kept as sent)', req.query),
        ...opts.editableHeaders.map((name, i) => textInput(INPUT.header(i), `Header ${name} (empty removes it)`, headerOf(req.headers, name) ?? null)),
        rich([run('The edited request is checked against the policy again; approvals restart and you approve the edited version.', { isSubtle: true })]),
      ],
      execute('Approve edited', VERB.edit, r.id, 'positive'),
    ),
  ];
  if (r.grantCaps !== null) {
    const choices = grantDurationChoices(r.grantCaps.maxDurationMs);
    actions.push(
      showCard(
        'Approve & grant…',
        [
          { type: 'Input.ChoiceSet', id: INPUT.grantFor, label: 'For how long', value: choices[0], choices: choices.map((c) => ({ title: c, value: c })) },
          { type: 'Input.Number', id: INPUT.grantUses, label: `How many uses (at most ${r.grantCaps.maxUses})`, min: 1, max: r.grantCaps.maxUses, value: r.grantCaps.maxUses },
          textInput(INPUT.grantPin, 'Fields that must stay the same, one per line (a body JSON Pointer such as /table, or ?param)', null, { multiline: true }),
        ],
        execute('Approve and grant', VERB.grant, r.id, 'positive'),
      ),
    );
  }
  return card(body, actions);
}

/** The card once decided: the summary stays, the buttons go, and a line says what happened. */
export function outcomeCard(r: ApprovalRecord, now: number): IAdaptiveCard {
  const body: unknown[] = [...summary(r, outcomeTitle(r).text, now, false), rich([run(outcomeSentence(r, now, FORMAT), { weight: 'Bolder' })], { separator: true })];
  if (r.decisionReason !== null && r.decisionReason.trim() !== '') {
    body.push(fact(r.state === 'denied' ? 'Reason for the denial' : 'Reason given', shown(r.decisionReason, MAX.reason, true), { block: true }));
  }
  body.push(footer(r));
  return card(body);
}

/** Notification text (what the activity feed and screen readers show). */
export function cardSummary(r: ApprovalRecord): string {
  const who = r.identity === null ? 'an unidentified agent' : shown(r.identity, 100);
  return shown(`${outcomeTitle(r).word}: ${r.request.method} ${hostPort(r.request)} by ${who} (rule ${r.rule})`, 300);
}

/** The card announcing a grant, with Revoke while it can still be used. */
export function grantCard(g: GrantState, now: number): IAdaptiveCard {
  const usable = g.revokedAt === null && g.usesLeft > 0 && now < g.expiresAt;
  const state =
    g.revokedAt !== null
      ? `Revoked by ${shown(g.revokedBy ?? 'an approver', 200)} ${utc(g.revokedAt)}.`
      : g.usesLeft <= 0
        ? 'Used up.'
        : now >= g.expiresAt
          ? `Expired ${utc(g.expiresAt)}.`
          : `${g.usesLeft} of ${g.uses} uses left, until ${utc(g.expiresAt)}.`;
  const body = [
    rich([run(shown(`Grant: ${g.method} ${g.host}${g.port === (g.scheme === 'https' ? 443 : 80) ? '' : `:${g.port}`}`, MAX.title), { size: 'Large', weight: 'Bolder' })]),
    fact('Agent', g.identity === null ? '(unidentified agent)' : shown(g.identity, MAX.value)),
    fact('Rule', shown(g.rule, MAX.value)),
    fact('Granted by', `${shown(g.by, 200)}, ${utc(g.createdAt)}, with approval ${g.approvalId}`),
    ...(g.pins.length > 0 ? [fact('Pinned', g.pins.map((p) => `${shown(p.field, 100)} = ${shown(p.value, 200)}`).join('\n'), { mono: true, block: true })] : []),
    fact('Now', state),
    rich([run(`Grant ${g.id}`, { isSubtle: true, size: 'Small' })], { separator: true }),
  ];
  return card(body, usable ? [{ type: 'Action.Execute', title: 'Revoke', verb: VERB.revokeGrant, data: { grantId: g.id }, style: 'destructive' }] : []);
}
