/**
 * The inbox's pages, rendered on the server from the approvals API's View (approvals/view.ts: query
 * secrets and body already redacted). Everything that came from an agent is HTML-escaped; pages load
 * only /inbox/app.css and /inbox/app.js (the Content-Security-Policy allows nothing else).
 */
import { grantDurationChoices } from '../approvals/grants.js';
import type { ApprovalView } from '../approvals/view.js';
import { describeFinding } from '../inspect/finding.js';
import { elideMiddle } from '../text/visible.js';

type View = ApprovalView;
export type InboxView = ApprovalView;

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export function esc(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

export function page(title: string, user: { name: string; email: string; csrf: string } | null, body: string): string {
  const who = user
    ? `<form method="post" action="/inbox/logout" class="who"><span>${esc(user.name)} &lt;${esc(user.email)}&gt;</span><input type="hidden" name="csrf" value="${esc(user.csrf)}"><button>Sign out</button></form>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · Airlock</title><link rel="stylesheet" href="/inbox/app.css"><script src="/inbox/app.js" defer></script></head>
<body><header><a href="/inbox" class="brand">Airlock approvals</a>${who}</header><main>${body}</main></body></html>`;
}

const URL_SHOWN = 160;

function url(v: View): string {
  const u = v.request.url;
  // Head…tail with the full length when it is long; the whole URL in the title.
  return `<code class="url" title="${esc(u)}">${esc(elideMiddle([...u], URL_SHOWN))}</code>`;
}

const STATES = ['pending', 'approved', 'executed', 'denied', 'expired', 'cancelled'];

export function listPage(views: readonly View[], state: string, mine: boolean): string {
  const tabs = STATES.map((s) => `<a href="/inbox?state=${s}"${s === state ? ' aria-current="page"' : ''}>${s}</a>`).join(' ');
  const rows = views
    .map(
      (v) => `<li class="item" data-id="${esc(v.id)}"><a href="/inbox/a/${encodeURIComponent(v.id)}">
<span class="method">${esc(v.request.method)}</span> ${url(v)}</a>
<div class="meta">${esc(v.identity ?? 'anonymous agent')} · rule <code>${esc(v.rule)}</code> · ${v.approvals.length} of ${v.required} · expires <time>${esc(v.expires_at)}</time></div></li>`,
    )
    .join('\n');
  const empty = state === 'pending' ? (mine ? 'Nothing is waiting for you.' : 'Nothing is pending.') : `No ${esc(state)} requests.`;
  return `<nav class="tabs">${tabs}</nav>${state === 'pending' ? '<h1>Waiting for your decision</h1>' : `<h1>${esc(state)}</h1>`}
<ul class="list" id="list">${rows || `<li class="empty">${empty}</li>`}</ul>`;
}

function facts(v: View): string {
  const rows: [string, string][] = [
    ['Agent', `${esc(v.identity ?? 'anonymous')}${v.owner ? ` <span class="muted">(owner ${esc(v.owner)})</span>` : ''}`],
    ['Rule', `<code>${esc(v.rule)}</code>${v.rule_description ? ` — ${esc(v.rule_description)}` : ''}`],
    ['Classification', esc(v.request.classification ?? 'not declared') + (v.impact?.classification_why ? ` <span class="muted">(${esc(v.impact.classification_why)})</span>` : '')],
    ['Body', `${v.request.body_bytes} bytes`],
  ];
  if (v.impact) {
    rows.push(['Destination', `<code>${esc(v.impact.destination)}</code>`]);
    for (const a of v.impact.arrays) rows.push(['Records', `${a.count} in <code>${esc(a.path || '(the body)')}</code>`]);
    const h = v.impact.history;
    rows.push(['History', h.first_time ? 'first request of this agent under this rule in 30 days' : `in 30 days: ${h.approved} approved, ${h.denied} denied, ${h.expired} expired`]);
  }
  for (const f of v.request.findings ?? []) rows.push(['Found', esc(describeFinding(f))]);
  for (const p of v.probes ?? []) {
    const what = p.state === 'ok' ? `${p.status ?? ''}${(p.fields ?? []).map((f) => `, <code>${esc(f.pointer)}</code> = <code>${esc(f.value)}</code>`).join('')}` : `<strong>failed</strong>: ${esc(p.error ?? 'no answer')}`;
    rows.push([`Probe ${esc(p.name)}`, what]);
  }
  rows.push(['Approvals', `${v.approvals.length} of ${v.required}${v.approvals.length ? `: ${v.approvals.map((a) => esc(a.approver)).join(', ')}` : ''}`]);
  rows.push(['Expires', `<time>${esc(v.expires_at)}</time>`]);
  if (v.edit) rows.push(['Edited', `by ${esc(v.edit.by)} <time>${esc(v.edit.at)}</time>: <code>${esc(JSON.stringify(v.edit.changes))}</code>`]);
  if (v.decided_by) rows.push(['Decided by', `${esc(v.decided_by)}${v.decision_reason ? `: ${esc(v.decision_reason)}` : ''}`]);
  return `<dl class="facts">${rows.map(([k, val]) => `<dt>${k}</dt><dd>${val}</dd>`).join('')}</dl>`;
}

/** Edit before approving, and (where the rule allows it) grant: folded away under the Approve button. */
function approveExtras(caps: { maxDurationMs: number; maxUses: number } | null): string {
  const edit = `<details class="more"><summary>Edit before approving</summary>
<label>Body changes (JSON Patch)<textarea name="patch" rows="3" placeholder='[{"op":"replace","path":"/rows","value":10000}]'></textarea></label>
<label>Query parameters to set (name=value, one per line; -name removes)<textarea name="query" rows="2"></textarea></label>
<label>Editable headers to set (name: value, one per line; -name removes)<textarea name="headers" rows="2"></textarea></label>
</details>`;
  if (caps === null) return edit;
  const options = grantDurationChoices(caps.maxDurationMs).map((d) => `<option>${d}</option>`).join('');
  return `${edit}<details class="more"><summary>Also grant the same action for a while</summary>
<label>For <select name="grant_for"><option value="">no grant</option>${options}</select></label>
<label>Uses (at most ${caps.maxUses}) <input name="grant_uses" type="number" min="1" max="${caps.maxUses}" value="${caps.maxUses}"></label>
<label>Pin fields (one per line: /body/pointer or ?query)<textarea name="grant_pin" rows="2"></textarea></label>
</details>`;
}

/** One approval; `refusal` says why the signed-in person may not decide it (null: they may). */
export function detailPage(v: View, csrf: string, refusal: string | null, notice: string | null, grantCaps: { maxDurationMs: number; maxUses: number } | null = null): string {
  const reason = v.reason ? `<blockquote class="reason"><p class="muted">The agent's stated reason (its own words, not checked):</p>${esc(v.reason)}</blockquote>` : '<p class="muted">The agent gave no reason.</p>';
  const body = v.request.body_preview ? `<details open><summary>Body (secrets masked)</summary><pre>${esc(v.request.body_preview)}</pre></details>` : '';
  const actions =
    v.state !== 'pending'
      ? `<p class="state state-${esc(v.state)}">This request is ${esc(v.state)}.</p>`
      : refusal !== null
        ? `<p class="refusal">You cannot decide this request: ${esc(refusal)}</p>`
        : `<div class="actions">
<form method="post" action="/inbox/a/${encodeURIComponent(v.id)}/approve" class="approve-form"><input type="hidden" name="csrf" value="${esc(csrf)}"><button class="approve">Approve</button>${approveExtras(grantCaps)}</form>
<form method="post" action="/inbox/a/${encodeURIComponent(v.id)}/deny"><input type="hidden" name="csrf" value="${esc(csrf)}"><input name="reason" required maxlength="1000" placeholder="Why deny it?" aria-label="Reason for denying"><button class="deny">Deny</button></form>
</div>`;
  return `${notice ? `<p class="notice" role="status">${esc(notice)}</p>` : ''}<h1><span class="method">${esc(v.request.method)}</span> ${url(v)}</h1>
<p class="state state-${esc(v.state)}" id="state" data-id="${esc(v.id)}">${esc(v.state)}</p>
${facts(v)}${reason}${body}${actions}`;
}

export function errorPage(message: string): string {
  return `<h1>Not possible</h1><p class="refusal">${esc(message)}</p><p><a href="/inbox">Back to the inbox</a></p>`;
}
