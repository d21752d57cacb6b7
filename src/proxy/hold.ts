import type { GrantState } from '../approvals/grants.js';
import type { ApprovalRecord } from '../approvals/types.js';
import { requestDigest, storedRequest, toolCallDigest } from '../approvals/request.js';
import { readBody } from '../request/body.js';
import type { CanonicalRequest, Decision } from '../policy/types.js';
import type { Exchange } from './exchange.js';
import { decideTarget, decideUnder } from './policy-in-force.js';
import { sendJson } from './respond.js';

/** The agent's stated intent, shown to approvers and audited; never forwarded (x-airlock-* headers are not). */
export const REASON_HEADER = 'x-airlock-reason';
const MAX_REASON = 500;

/** On the answer to a request forwarded after approval: which approval, and whether an approver changed the request. */
export const APPROVAL_ID_HEADER = 'airlock-approval-id';
export const MODIFIED_HEADER = 'airlock-modified';
/** On the answer to a request that went without asking, covered by an approver's grant. */
export const GRANT_ID_HEADER = 'airlock-grant-id';

/** Where an agent polls an approval it is waiting for, on the proxy listener itself. */
export const STATUS_PREFIX = '/.airlock/approvals/';
/**
 * The host of absolute status URLs. `.invalid` never resolves (RFC 2606): through the proxy
 * (HTTP_PROXY) Airlock answers it itself and never dials it; without the proxy it fails at once
 * instead of reaching some other server. The path alone works on the proxy listener directly.
 */
export const STATUS_HOST = 'airlock.invalid';

/** Where an agent polls (or withdraws) its approval: absolute, so a client resolving it against the upstream's URL still lands here. */
export function statusUrl(id: string): string {
  return `http://${STATUS_HOST}${STATUS_PREFIX}${encodeURIComponent(id)}`;
}

function wantsAsync(prefer: string | string[] | undefined): boolean {
  const values = Array.isArray(prefer) ? prefer : prefer === undefined ? [] : [prefer];
  return values.some((v) => v.split(',').some((p) => p.trim().toLowerCase() === 'respond-async'));
}

function statedReason(value: string | string[] | undefined): string | null {
  const v = Array.isArray(value) ? value.join(' ') : value;
  return v === undefined || v.trim() === '' ? null : v.trim().slice(0, MAX_REASON);
}

/**
 * A request that needs approval. Its body is buffered (up to the limit) and stored with the approval,
 * so any replica can forward it. Then, depending on the approval's state:
 * - already approved for this identity and digest (the agent's retry): forwarded once;
 * - pending, with `Prefer: respond-async`: `202` with the approval id and a status URL;
 * - pending: the connection is held until a decision, up to the rule's `wait` — approved → forwarded
 *   once (at most once: see ApprovalService.claim), denied → 403 `approval_denied`, expired → 403 `approval_expired`, still pending →
 *   403 `approval_pending` with `Retry-After` (an identical retry joins the same approval).
 * The store being unreachable at any point fails closed with 503; nothing is forwarded unapproved.
 */
export async function holdForApproval(x: Exchange, canon: CanonicalRequest, decision: Decision, alreadyRead: Buffer): Promise<void> {
  const { ctx, req, res } = x;
  const approvals = ctx.approvals;
  const rule = decision.rule;
  x.trace?.hold();
  const unavailable = (why: string): void =>
    x.refuse({ status: 503, code: 'approval_unavailable', message: `this request needs approval and ${why}: refused (fail closed)`, rule }, canon, decision);
  if (!approvals.available()) return unavailable('the approval store is unreachable');

  const body = await readBody(req, ctx.maxHeldBodyBytes, ctx.clientBodyTimeoutMs, alreadyRead);
  if (!body.ok) {
    if (body.reason === 'aborted') return;
    if (body.reason === 'timeout') return x.bodyTimedOut(canon, decision);
    const message = `a request held for approval may carry at most ${ctx.maxHeldBodyBytes} bytes of body`;
    x.refuse({ status: 413, code: 'body_too_large', message, rule, headers: { connection: 'close' } }, canon, decision);
    return;
  }
  const stored = storedRequest(canon, body.body);
  const settings = decision.approval!;
  const rpc = canon.body?.rpc ?? null;
  const toolCall = rpc !== null && !rpc.batch && rpc.calls[0]!.tool !== null ? rpc.calls[0]! : null;

  // A tool call is bound to the server, the tool and its canonical arguments, not to the JSON-RPC id
  // or _meta: the model's retry of the same call joins (or spends) the same approval.
  const digest = toolCall ? toolCallDigest(stored, toolCall) : requestDigest(stored);
  const identity = canon.identity?.id ?? null;
  let record: ApprovalRecord | null;
  let announced = false;
  let granted: GrantState | null = null;
  try {
    // An approval that answers for this request (the agent's retry) comes first; else an approver's
    // grant may cover it: it goes without asking (one use taken).
    const active = await approvals.hasActive(identity, digest);
    if (!active && rule !== null) granted = await approvals.useGrant(identity, rule, stored, x.requestId);
    if (granted === null) {
      // One agent may not flood approvers: past its cap, only requests that join an approval get through.
      const cap = (canon.identity && x.policy.identities.get(canon.identity.id)?.pendingApprovals) || x.policy.pendingApprovals;
      if (!active && (await approvals.countPending(identity, cap)) >= cap) {
        const message = `${identity === null ? 'anonymous callers' : `identity ${identity}`} already ${identity === null ? 'have' : 'has'} ${cap} requests waiting for approval; wait for decisions before asking for more`;
        ctx.audit.write({ event: 'approval_limited', request_id: x.requestId, identity, rule, limit: cap, reason: message });
        return x.refuse({ status: 429, code: 'too_many_requests', message, rule, headers: { 'retry-after': '60' } }, canon, decision);
      }
    }
  } catch (err) {
    ctx.log.warn({ err, request_id: x.requestId }, 'approval store failed');
    return unavailable('the approval store failed');
  }
  if (granted !== null) {
    x.trace?.approval(granted.approvalId, granted.id);
    res.setHeader(GRANT_ID_HEADER, granted.id);
    await x.forward(canon, body.body, decision);
    return;
  }
  try {
    ({ record } = await approvals.findOrCreate({
      requestId: x.requestId,
      request: stored,
      digest,
      identity: canon.identity,
      decision,
      policy: x.policy,
      reason: statedReason(canon.headers.get(REASON_HEADER)),
    }));
    x.trace?.approval(record.id);
    if (record.state === 'pending') {
      if (rpc !== null) {
        // An MCP client gives up after about a minute: the model is told now, and calls again later.
        const who = settings.approvers.join(', ');
        const message = `waiting for ${record.required > 1 ? `${record.required} approvals` : 'an approval'} from ${who} (${record.approvals.length} so far)`;
        return x.refuse({ status: 403, code: 'approval_pending', message, rule, approvalId: record.id }, canon, decision);
      }
      if (wantsAsync(canon.headers.get('prefer'))) return accepted(x, record, rule);
      const gone = new Promise<void>((resolve) => res.once('close', () => resolve()));
      const woken = await approvals.wait(record.id, Math.min(settings.waitMs, record.expiresAt - Date.now()), gone);
      if (res.destroyed) return;
      if (woken === 'shutdown') {
        // The approval goes on in the store: the agent's identical retry joins it, on any replica.
        const message = 'this Airlock is shutting down; repeat the identical request: it joins the pending approval';
        return x.refuse({ status: 503, code: 'approval_unavailable', message, rule, approvalId: record.id, headers: { 'retry-after': '1' } }, canon, decision);
      }
      if (woken === 'approved') announced = true;
      else record = woken;
    }
  } catch (err) {
    ctx.log.warn({ err, request_id: x.requestId }, 'approval store failed');
    return unavailable('the approval store failed');
  }
  if (record === null) return x.refuse({ status: 403, code: 'approval_expired', message: 'the approval no longer exists', rule }, canon, decision);

  const approvalId = record.id;
  switch (announced ? 'approved' : record.state) {
    case 'approved': {
      const inForce = ctx.policy();
      if (inForce !== x.policy) {
        const now = await decideUnder(canon, body.body, inForce, ctx.maxInspectedBodyBytes);
        if ('refused' in now || now.action === 'deny') {
          const message = 'refused' in now ? `the policy in force refuses this request: ${now.refused}` : `the policy in force denies this request (${now.rule === null ? 'its default' : `rule ${now.rule}`}): ${now.reason}`;
          try {
            await approvals.revoke(approvalId, message, x.requestId);
          } catch (err) {
            ctx.log.warn({ err, request_id: x.requestId }, 'approval store failed');
          }
          return x.refuse({ status: 403, code: 'denied', message, rule: 'refused' in now ? rule : now.rule, approvalId }, canon, decision);
        }
      }
      let claim;
      try {
        claim = await approvals.claim(approvalId, x.requestId, { identity, digest });
      } catch (err) {
        ctx.log.warn({ err, request_id: x.requestId }, 'approval store failed');
        return unavailable('the approval store failed');
      }
      if (claim.ok) {
        res.setHeader(APPROVAL_ID_HEADER, approvalId);
        const edit = claim.record.edit;
        if (edit === null) {
          approvals.forwarded(approvalId, await x.forward(canon, body.body, decision));
          return;
        }
        // Approved with edits: the edited request is what goes out, as the policy in force reads it.
        const editedBody = Buffer.from(edit.request.body, 'base64');
        const now = await decideTarget(edit.request, canon.identity, editedBody, ctx.policy(), ctx.maxInspectedBodyBytes);
        if ('refused' in now || now.decision.action === 'deny') {
          const message = 'refused' in now ? `the policy in force refuses the edited request: ${now.refused}` : `the policy in force denies the edited request: ${now.decision.reason}`;
          return x.refuse({ status: 403, code: 'denied', message, rule, approvalId }, canon, decision);
        }
        res.setHeader(MODIFIED_HEADER, 'true');
        approvals.forwarded(approvalId, await x.forward(now.canon, editedBody, decision));
        return;
      }
      if (claim.reason === 'forged') {
        const message = `this approval cannot be trusted (${claim.message}); nothing was forwarded`;
        return x.refuse({ status: 403, code: 'approval_denied', message, rule, approvalId }, canon, decision);
      }
      const message =
        claim.reason === 'lapsed' ? 'the approval lapsed before it was used' : 'this approval was already used by an identical request';
      return x.refuse({ status: 403, code: 'approval_expired', message, rule, approvalId }, canon, decision);
    }
    case 'denied':
    case 'cancelled': {
      const by = record.decidedBy ? ` by ${record.decidedBy}` : '';
      const why = record.decisionReason ? `: ${record.decisionReason}` : '';
      return x.refuse({ status: 403, code: 'approval_denied', message: `${record.state}${by}${why}`, rule, approvalId }, canon, decision);
    }
    case 'expired':
    case 'executed': {
      const escalated = record.escalatedAt !== null && record.approvals.length === 0 ? `nobody decided, even after it was escalated to ${record.escalation?.groups.join(', ')}; ` : '';
      return x.refuse({ status: 403, code: 'approval_expired', message: `the approval is ${record.state}; ${escalated}a new identical request asks again`, rule, approvalId }, canon, decision);
    }
    case 'pending': {
      const retryAfter = Math.max(1, Math.ceil(Math.min(30_000, record.expiresAt - Date.now()) / 1000));
      const message = `still waiting for approval (${record.approvals.length} of ${record.required}); repeat the identical request to get the decision`;
      return x.refuse({ status: 403, code: 'approval_pending', message, rule, approvalId, headers: { 'retry-after': String(retryAfter) } }, canon, decision);
    }
  }
}

/** `202 Accepted` for `Prefer: respond-async`: the only 2xx Airlock ever makes itself. */
function accepted(x: Exchange, record: ApprovalRecord, rule: string | null): void {
  x.ctx.metrics.proxyResponses.inc({ code: 'approval_pending' });
  // On record before the agent is answered.
  x.ctx.audit.commit();
  sendJson(
    x.res,
    202,
    {
      error: 'approval_pending',
      message: 'held for approval; repeat the identical request once it is approved',
      request_id: x.requestId,
      rule,
      approval_id: record.id,
      status_url: statusUrl(record.id),
      status_path: `${STATUS_PREFIX}${record.id}`,
      expires_at: new Date(record.expiresAt).toISOString(),
    },
    { 'preference-applied': 'respond-async', location: statusUrl(record.id), 'airlock-request-id': x.requestId },
  );
}
