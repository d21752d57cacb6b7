import type { IncomingMessage, ServerResponse } from 'node:http';
import { identify } from '../request/identify.js';
import type { ProxyContext } from './context.js';
import { STATUS_PREFIX } from './hold.js';
import { sendJson } from './respond.js';

/**
 * `GET /.airlock/approvals/{id}` on the proxy listener: where an agent that got `202` polls its
 * approval. Read-only, and only the identity that made the request sees it (anyone else: 404), so it
 * tells an agent nothing about other agents' requests and can change nothing.
 */
export async function handleApprovalStatus(req: IncomingMessage, res: ServerResponse, ctx: ProxyContext): Promise<void> {
  const id = (req.url ?? '').slice(STATUS_PREFIX.length).split('?', 1)[0] ?? '';
  const notFound = (): void => sendJson(res, 404, { error: 'not_found', message: `no approval ${id} for this caller` });
  if (req.method !== 'GET' || id === '' || id.includes('/')) return notFound();
  const who = identify(req.headers['proxy-authorization'], ctx.staticIdentity, ctx.policy());
  if (!who.ok) return sendJson(res, 407, { error: 'proxy_auth_required', message: who.message }, { 'proxy-authenticate': 'Basic realm="airlock"' });
  let record;
  try {
    record = await ctx.approvals.get(id);
  } catch {
    return sendJson(res, 503, { error: 'approval_unavailable', message: 'the approval store is unreachable' });
  }
  if (record === null || record.identity !== (who.identity?.id ?? null)) return notFound();
  sendJson(res, 200, {
    approval_id: record.id,
    state: record.state,
    approvals: record.approvals.length,
    required: record.required,
    expires_at: new Date(record.expiresAt).toISOString(),
    decision_reason: record.decisionReason,
    next:
      record.state === 'approved'
        ? 'repeat the identical request: it is forwarded once'
        : record.state === 'pending'
          ? 'wait, then poll again'
          : 'final: a new identical request asks for approval again',
  });
}
