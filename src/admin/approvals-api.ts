import { hash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseEdit } from '../approvals/edit.js';
import type { GrantAsk } from '../approvals/grants.js';
import { asDecided } from '../approvals/types.js';
import { grantAsk, asVotedOn, refusalToVote, type ApprovalService, type Redecide } from '../approvals/service.js';
import type { ApprovalState } from '../approvals/types.js';
import { approvalView, grantView } from '../approvals/view.js';
import type { CompiledPolicy } from '../policy/types.js';
import { sendJson } from '../proxy/respond.js';

const STATES: ReadonlySet<string> = new Set<ApprovalState>(['pending', 'approved', 'denied', 'expired', 'cancelled', 'executed']);
const MAX_BODY = 16 * 1024;
export const API_PREFIX = '/v1/approvals';

type ApiError = { status: number; error: string; message: string };

export function fail(res: ServerResponse, e: ApiError): void {
  sendJson(res, e.status, { error: e.error, message: e.message }, e.status === 401 ? { 'www-authenticate': 'Bearer realm="airlock"' } : {});
}

/** The approver a bearer token belongs to, checked in constant time against the policy's digests. */
export function approverFor(authorization: string | undefined, policy: CompiledPolicy): string | null {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  if (!m) return null;
  const digest = Buffer.from(hash('sha256', m[1] as string, 'hex'), 'hex');
  let found: string | null = null;
  for (const [name, digests] of policy.approverTokens) {
    for (const d of digests) if (timingSafeEqual(d, digest)) found = name;
  }
  return found;
}

/** Why a caller is not an approver: no token at all, or one the policy in force does not know. */
export function unauthorized(authorization: string | undefined): ApiError {
  const sent = /^Bearer\s+\S+\s*$/i.test(authorization ?? '');
  return {
    status: 401,
    error: 'unauthorized',
    message: sent
      ? 'this token is no approver\'s: its SHA-256 is in no approverTokens entry of the policy in force (`airlock approvals token NAME --write policies/NAME.local.yaml` makes one that is)'
      : 'no approver token was sent: Authorization: Bearer <token> (`airlock approvals token NAME` makes one)',
  };
}

type JsonBody = { ok: true; value: Record<string, unknown> } | { ok: false; error: ApiError };

function readJson(req: IncomingMessage): Promise<JsonBody> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => {
      const bad = (message: string): void => resolve({ ok: false, error: { status: 400, error: 'bad_request', message } });
      if (size > MAX_BODY) return bad(`body larger than ${MAX_BODY} bytes`);
      const text = Buffer.concat(chunks).toString('utf8').trim();
      if (text === '') return resolve({ ok: true, value: {} });
      try {
        const v: unknown = JSON.parse(text);
        if (typeof v === 'object' && v !== null && !Array.isArray(v)) return resolve({ ok: true, value: v as Record<string, unknown> });
      } catch {
        // answered below
      }
      bad('body must be a JSON object');
    });
  });
}

/**
 * The approvals API on the admin listener (never on the agent-facing one). Every call needs the bearer
 * token of an approver; deciding also needs to be an approver of that request's rule, and neither the
 * requesting identity nor its owner.
 */
export async function handleApprovalsApi(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  approvals: ApprovalService,
  policy: CompiledPolicy,
  redecide: Redecide,
): Promise<void> {
  const approver = approverFor(req.headers.authorization, policy);
  if (approver === null) return fail(res, unauthorized(req.headers.authorization));
  const rest = path.slice(API_PREFIX.length).split('/').filter(Boolean);
  const [id, action] = rest;
  try {
    if (req.method === 'GET' && rest.length === 0) {
      const url = new URL(req.url ?? '/', 'http://admin');
      const state = url.searchParams.get('state') ?? undefined;
      if (state !== undefined && !STATES.has(state)) {
        return fail(res, { status: 400, error: 'bad_request', message: `state must be one of ${[...STATES].join(', ')}` });
      }
      const limit = Math.min(500, Math.max(1, Number(url.searchParams.get('limit') ?? 100) || 100));
      const list = await approvals.list({ ...(state ? { state: state as ApprovalState } : {}), limit });
      return sendJson(res, 200, { approvals: list.map((r) => approvalView(r, `${API_PREFIX}/`)) });
    }
    if (req.method === 'GET' && id !== undefined && rest.length === 1) {
      const record = await approvals.get(id);
      if (!record) return fail(res, { status: 404, error: 'not_found', message: `no approval ${id}` });
      return sendJson(res, 200, { approval: approvalView(record, `${API_PREFIX}/`) });
    }
    if (req.method === 'POST' && id !== undefined && (action === 'approve' || action === 'deny') && rest.length === 2) {
      const body = await readJson(req);
      if (!body.ok) return fail(res, body.error);
      const given = body.value.reason;
      const reason = typeof given === 'string' && given.trim() !== '' ? given.trim().slice(0, 1000) : null;
      if (action === 'deny' && reason === null) {
        return fail(res, { status: 400, error: 'bad_request', message: 'a denial needs a reason: {"reason": "…"}' });
      }
      const mayVote = (r: Parameters<typeof refusalToVote>[0], a: string): string | null => refusalToVote(asVotedOn(policy, r), a);
      // A grant comes only with the approval that completes it, within the rule's caps.
      let ask: GrantAsk | null = null;
      if (body.value.grant !== undefined) {
        if (action !== 'approve') return fail(res, { status: 400, error: 'bad_request', message: 'only an approval can carry a grant' });
        const current = await approvals.get(id);
        if (!current) return fail(res, { status: 404, error: 'not_found', message: `no approval ${id}` });
        const parsed = grantAsk(policy, current, body.value.grant, body.value.edit !== undefined);
        if ('error' in parsed) return fail(res, { status: 400, error: 'bad_request', message: parsed.error });
        ask = parsed;
      }
      let outcome;
      if (body.value.edit !== undefined) {
        if (action !== 'approve') return fail(res, { status: 400, error: 'bad_request', message: 'only an approval can carry an edit' });
        const spec = parseEdit(body.value.edit);
        if (typeof spec === 'string') return fail(res, { status: 400, error: 'bad_request', message: spec });
        // The record passed to mayVote is already as voted on (edited, still eligible).
        outcome = await approvals.approveWithEdit(id, approver, spec, policy, redecide, refusalToVote);
      } else {
        outcome = await approvals.vote(id, approver, action, reason, mayVote);
      }
      if (!outcome.ok) {
        const error = outcome.status === 400 ? 'bad_request' : outcome.status === 403 ? 'forbidden' : outcome.status === 404 ? 'not_found' : 'conflict';
        return fail(res, { status: outcome.status, error, message: outcome.message });
      }
      if (ask === null) return sendJson(res, 200, { approval: approvalView(outcome.record, `${API_PREFIX}/`) });
      if (outcome.record.state !== 'approved' && outcome.record.state !== 'executed') {
        const grantError = `no grant: the approval is ${outcome.record.state} (${outcome.record.approvals.length} of ${asDecided(outcome.record).required}), and a grant comes only with the approval that completes it`;
        return sendJson(res, 200, { approval: approvalView(outcome.record, `${API_PREFIX}/`), grant: null, grant_error: grantError });
      }
      const made = await approvals.grant(outcome.record, approver, ask);
      if (!made.ok) return sendJson(res, 200, { approval: approvalView(outcome.record, `${API_PREFIX}/`), grant: null, grant_error: made.message });
      return sendJson(res, 200, { approval: approvalView(outcome.record, `${API_PREFIX}/`), grant: grantView(made.grant) });
    }
    return fail(res, { status: 404, error: 'not_found', message: `no such endpoint: ${req.method} ${path}` });
  } catch (err) {
    return fail(res, { status: 503, error: 'approval_unavailable', message: `the approval store is unreachable: ${(err as Error).message}` });
  }
}
