/**
 * The web inbox, under /inbox on the approvals service's admin listener: sign-in with OpenID Connect,
 * the pending approvals the signed-in person may decide, each with everything Airlock knows, Approve
 * and Deny (with reason) forms protected by a per-session CSRF token, decided and expired history,
 * and live updates (server-sent events). The same rules as the API: per-rule approvers, no
 * self-approval, not the agent's owner.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseEdit, type EditSpec } from '../approvals/edit.js';
import type { GrantAsk } from '../approvals/grants.js';
import { approverNameFor, grantAsk, asVotedOn, refusalToVote, type ApprovalService, type Redecide, type VoteOutcome } from '../approvals/service.js';
import type { ApprovalRecord, ApprovalState } from '../approvals/types.js';
import { approvalView } from '../approvals/view.js';
import type { Logger } from '../log.js';
import type { CompiledPolicy } from '../policy/types.js';
import { CSS, JS } from './assets.js';
import { detailPage, errorPage, listPage, page, type InboxView } from './html.js';
import type { LoginTransaction, OidcSignIn } from './oidc.js';
import type { TrustedHeaders } from './trusted-headers.js';
import { cookies, CookieSigner, LOGIN_COOKIE, newSession, SESSION_COOKIE, SESSION_MS, setCookie, type Session } from './session.js';

export const INBOX_PREFIX = '/inbox';

export interface InboxDeps {
  approvals: ApprovalService;
  policy(): CompiledPolicy;
  /** OpenID Connect sign-in; null when only an authenticating proxy signs people in. */
  oidc: OidcSignIn | null;
  /** An authenticating proxy's identity headers; null when not configured. */
  trusted: TrustedHeaders | null;
  signer: CookieSigner;
  /** Decides an approver's edited request again (approve with edits). */
  redecide: Redecide;
  /** The inbox's public origin (the OIDC redirect goes to `${baseUrl()}/inbox/callback`). */
  baseUrl(): string;
  log: Logger;
  now?: () => number;
}

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
};
const MAX_FORM = 16 * 1024;
const STATES: ReadonlySet<string> = new Set<ApprovalState>(['pending', 'approved', 'denied', 'expired', 'cancelled', 'executed']);

function send(res: ServerResponse, status: number, html: string, extra: Record<string, string | string[]> = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8', ...extra });
  res.end(html);
}

function redirect(res: ServerResponse, to: string, extra: Record<string, string | string[]> = {}): void {
  res.writeHead(303, { ...SECURITY_HEADERS, location: to, ...extra });
  res.end();
}

function readForm(req: IncomingMessage): Promise<URLSearchParams | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_FORM) chunks.push(c);
    });
    req.on('end', () => resolve(size > MAX_FORM ? null : new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', () => resolve(null));
  });
}

function sameToken(a: string | null, b: string): boolean {
  if (a === null) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function lines(text: string | null): string[] {
  return (text ?? '').split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
}

/** The edit asked for in the approve form (patch, query lines, header lines), null for none, or why it is malformed. */
function editFromForm(form: URLSearchParams): EditSpec | null | string {
  const spec: Record<string, unknown> = {};
  const patch = (form.get('patch') ?? '').trim();
  if (patch !== '') {
    try {
      spec.body = JSON.parse(patch);
    } catch {
      return 'The body changes are not JSON: give a JSON Patch, an array of operations.';
    }
  }
  for (const [field, sep] of [['query', '='], ['headers', ':']] as const) {
    const changes: Record<string, string | null> = {};
    for (const line of lines(form.get(field))) {
      if (line.startsWith('-')) changes[line.slice(1).trim()] = null;
      else {
        const at = line.indexOf(sep);
        if (at <= 0) return `"${line}": write name${sep}value, or -name to remove it.`;
        changes[line.slice(0, at).trim()] = line.slice(at + 1).trim();
      }
    }
    if (Object.keys(changes).length > 0) spec[field] = changes;
  }
  if (Object.keys(spec).length === 0) return null;
  return parseEdit(spec);
}


export function createInbox(deps: InboxDeps): (req: IncomingMessage, res: ServerResponse, path: string) => Promise<void> {
  const now = deps.now ?? Date.now;
  const secure = (): boolean => deps.baseUrl().startsWith('https:');

  /** Whether the signed-in person may decide `r`: as an API approver (by email) or by their identity-provider groups. */
  const refusalFor = (session: Session) => (r: ApprovalRecord, approver: string): string | null => refusalToVote(asVotedOn(deps.policy(), r), approver, session.groups);
  const view = (r: ApprovalRecord): InboxView => approvalView(r, `${INBOX_PREFIX}/a/`) as unknown as InboxView;

  async function login(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (deps.oidc === null) return send(res, 401, page('Sign in', null, errorPage('Sign in through your organisation\'s sign-in proxy: this inbox takes no other sign-in.')));
    const next = url.searchParams.get('next') ?? INBOX_PREFIX;
    const safeNext = next.startsWith(`${INBOX_PREFIX}`) && !next.startsWith('//') ? next : INBOX_PREFIX;
    const { url: to, transaction } = await deps.oidc.start(`${deps.baseUrl()}${INBOX_PREFIX}/callback`, safeNext, now());
    redirect(res, to, { 'set-cookie': setCookie(LOGIN_COOKIE, deps.signer.sign(transaction), { secure: secure(), maxAgeS: 600 }) });
  }

  async function callback(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const t = deps.signer.verify<LoginTransaction>(cookies(req.headers.cookie).get(LOGIN_COOKIE), now());
    if (t === null) return send(res, 400, page('Sign-in', null, errorPage('This sign-in has expired or was not started here: start again from /inbox.')));
    let who: { email: string; name: string; groups: string[] };
    try {
      if (deps.oidc === null) throw new Error('this inbox has no OpenID Connect sign-in');
      who = await deps.oidc.finish(new URL(`${deps.baseUrl()}${url.pathname}${url.search}`), t);
    } catch (err) {
      deps.log.warn({ err: { message: (err as Error).message } }, 'inbox sign-in failed');
      return send(res, 403, page('Sign-in', null, errorPage(`Sign-in failed: ${(err as Error).message}`)));
    }
    const session = newSession(who.email, who.name, who.groups, now());
    redirect(res, t.next, {
      'set-cookie': [
        setCookie(SESSION_COOKIE, deps.signer.sign(session), { secure: secure(), maxAgeS: SESSION_MS / 1000 }),
        setCookie(LOGIN_COOKIE, '', { secure: secure(), maxAgeS: 0 }),
      ],
    });
  }

  function events(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream', connection: 'keep-alive' });
    res.write(': connected\n\n');
    const off = deps.approvals.subscribe((c) => {
      if (c.notice !== undefined) res.write(`data: ${JSON.stringify({ id: c.id, state: c.state })}\n\n`);
    });
    const ping = setInterval(() => res.write(': ping\n\n'), 25_000);
    req.on('close', () => {
      off();
      clearInterval(ping);
    });
  }

  async function decide(req: IncomingMessage, res: ServerResponse, session: Session, id: string, verdict: 'approve' | 'deny'): Promise<void> {
    const form = await readForm(req);
    if (form === null || !sameToken(form.get('csrf'), session.csrf)) {
      return send(res, 403, page('Refused', session, errorPage('This form did not come from your inbox session (missing or wrong CSRF token); nothing was decided.')));
    }
    const reason = (form.get('reason') ?? '').trim().slice(0, 1000) || null;
    if (verdict === 'deny' && reason === null) return send(res, 400, page('Deny', session, errorPage('A denial needs a reason.')));
    const fail = (status: number, message: string): void => send(res, status, page('Not decided', session, errorPage(message)));
    const approver = approverNameFor(deps.policy(), session.email);
    const edit = verdict === 'approve' ? editFromForm(form) : null;
    if (typeof edit === 'string') return fail(400, edit);
    const current = await deps.approvals.get(id);
    if (current === null) return fail(404, `No approval ${id}.`);
    let ask: GrantAsk | null = null;
    if (verdict === 'approve' && (form.get('grant_for') ?? '') !== '') {
      const parsed = grantAsk(deps.policy(), current, { for: form.get('grant_for'), uses: Number(form.get('grant_uses')), pin: lines(form.get('grant_pin')) }, edit !== null);
      if ('error' in parsed) return fail(400, parsed.error);
      ask = parsed;
    }
    const outcome: VoteOutcome =
      edit !== null
        ? await deps.approvals.approveWithEdit(id, approver, edit, deps.policy(), deps.redecide, (r, a) => refusalToVote(r, a, session.groups))
        : await deps.approvals.vote(id, approver, verdict, reason, refusalFor(session));
    if (!outcome.ok) return fail(outcome.status, outcome.message);
    let done: string = verdict;
    if (ask !== null) {
      const approved = outcome.record.state === 'approved' || outcome.record.state === 'executed';
      const made = approved ? await deps.approvals.grant(outcome.record, approver, ask) : { ok: false as const, message: 'the approval is not complete yet' };
      done = made.ok ? 'grant' : 'approve';
      if (!made.ok) deps.log.info({ approval_id: id, reason: made.message }, 'inbox: approved without a grant');
    }
    redirect(res, `${INBOX_PREFIX}/a/${encodeURIComponent(id)}?done=${done}`);
  }

  return async (req, res, path) => {
    const url = new URL(req.url ?? '/', 'http://inbox');
    try {
      if (req.method === 'GET' && path === `${INBOX_PREFIX}/app.css`) {
        res.writeHead(200, { 'content-type': 'text/css; charset=utf-8', 'cache-control': 'max-age=300', 'x-content-type-options': 'nosniff' });
        return void res.end(CSS);
      }
      if (req.method === 'GET' && path === `${INBOX_PREFIX}/app.js`) {
        res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'max-age=300', 'x-content-type-options': 'nosniff' });
        return void res.end(JS);
      }
      if (req.method === 'GET' && path === `${INBOX_PREFIX}/login`) return await login(req, res, url);
      if (req.method === 'GET' && path === `${INBOX_PREFIX}/callback`) return await callback(req, res, url);

      let session = deps.signer.verify<Session>(cookies(req.headers.cookie).get(SESSION_COOKIE), now());
      // Behind an authenticating proxy the person is who it says on every request; the session cookie
      // then only carries the CSRF token (a new one when the person changes).
      const vouched = deps.trusted?.identify(req) ?? null;
      if (vouched !== null && (session?.email !== vouched.email || session.groups.join(',') !== vouched.groups.join(','))) {
        session = newSession(vouched.email, vouched.name, vouched.groups, now());
        res.setHeader('set-cookie', setCookie(SESSION_COOKIE, deps.signer.sign(session), { secure: secure(), maxAgeS: SESSION_MS / 1000 }));
      }
      if (deps.trusted !== null && deps.oidc === null && vouched === null) session = null;
      if (session === null) {
        if (req.method !== 'GET') return send(res, 401, page('Sign in', null, errorPage('Your session has ended: sign in again.')));
        return redirect(res, `${INBOX_PREFIX}/login?next=${encodeURIComponent(path + url.search)}`);
      }
      if (req.method === 'POST' && path === `${INBOX_PREFIX}/logout`) {
        const form = await readForm(req);
        if (form === null || !sameToken(form.get('csrf'), session.csrf)) return send(res, 403, page('Refused', session, errorPage('Missing or wrong CSRF token.')));
        return redirect(res, `${INBOX_PREFIX}/login`, { 'set-cookie': setCookie(SESSION_COOKIE, '', { secure: secure(), maxAgeS: 0 }) });
      }
      if (req.method === 'GET' && path === `${INBOX_PREFIX}/events`) return events(req, res);
      if (req.method === 'GET' && (path === INBOX_PREFIX || path === `${INBOX_PREFIX}/`)) {
        const state = url.searchParams.get('state') ?? 'pending';
        if (!STATES.has(state)) return send(res, 400, page('Inbox', session, errorPage(`No such state: ${state}`)));
        const approver = approverNameFor(deps.policy(), session.email);
        let records = await deps.approvals.list({ state: state as ApprovalState, limit: 200 });
        // Pending: what this person may decide. History: everything of the rules they approve for.
        const mayDecide = refusalFor(session);
        if (state === 'pending') records = records.filter((r) => mayDecide(r, approver) === null);
        else records = records.filter((r) => mayDecide({ ...r, identity: null, owner: null }, approver) === null || r.approvals.some((v) => v.approver === approver));
        return send(res, 200, page('Inbox', session, listPage(records.map(view), state, true)));
      }
      const m = /^\/inbox\/a\/([^/]+)(?:\/(approve|deny))?$/.exec(path);
      if (m) {
        const id = decodeURIComponent(m[1]!);
        if (req.method === 'POST' && m[2]) return await decide(req, res, session, id, m[2] as 'approve' | 'deny');
        if (req.method === 'GET' && !m[2]) {
          const r = await deps.approvals.get(id);
          if (r === null) return send(res, 404, page('Not found', session, errorPage(`No approval ${id}.`)));
          const done = url.searchParams.get('done');
          const notice = done === 'approve' ? 'Your approval is recorded.' : done === 'grant' ? 'Your approval and grant are recorded.' : done === 'deny' ? 'Denied.' : null;
          return send(res, 200, page('Approval', session, detailPage(view(r), session.csrf, refusalFor(session)(r, approverNameFor(deps.policy(), session.email)), notice, r.grantCaps)));
        }
      }
      send(res, 404, page('Not found', session, errorPage('No such page.')));
    } catch (err) {
      deps.log.warn({ err }, 'inbox request failed');
      if (!res.headersSent) send(res, 503, page('Unavailable', null, errorPage(`The approval store or the identity provider is unreachable: ${(err as Error).message}`)));
      else res.end();
    }
  };
}
