import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { asDecided } from '../approvals/types.js';
import { editView } from '../approvals/view.js';
import { identify } from '../request/identify.js';
import type { ProxyContext } from './context.js';
import { STATUS_HOST, STATUS_PREFIX } from './hold.js';
import { sendJson } from './respond.js';

const MENTIONS_HOST = /airlock(?:\.|%2e)invalid/i;

/**
 * The approval id a request to the status endpoint names, or null when it is not one: the path on the
 * proxy listener (`/.airlock/approvals/ID`), or the absolute URL through the proxy
 * (`http://airlock.invalid/.airlock/approvals/ID`, the host in any case, with or without a final dot
 * or port 80). `''` for any other URL on the reserved host: Airlock answers it (404), never forwards it.
 */
export function statusTarget(url: string | undefined): string | null {
  if (url === undefined) return null;
  let path: string;
  if (url.startsWith('/')) path = url;
  else {
    // Every proxied request passes here: only a URL that could name the host is parsed.
    if (!MENTIONS_HOST.test(url)) return null;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return null;
    }
    if (parsed.hostname.toLowerCase().replace(/\.$/, '') !== STATUS_HOST) return null;
    if (parsed.protocol !== 'http:' || parsed.port !== '') return '';
    path = `${parsed.pathname}${parsed.search}`;
  }
  if (!path.startsWith(STATUS_PREFIX)) return url.startsWith('/') ? null : '';
  const id = path.slice(STATUS_PREFIX.length).split('?', 1)[0] ?? '';
  try {
    return decodeURIComponent(id);
  } catch {
    return '';
  }
}

/**
 * `/.airlock/approvals/{id}` on the proxy listener, for the agent that made the request (anyone else
 * gets 404, so it tells nothing about other agents' requests): `GET` polls the approval after a `202`;
 * `DELETE` withdraws it while it is pending (`cancelled`). An agent can never approve anything here.
 */
export async function handleApprovalStatus(req: IncomingMessage, res: ServerResponse, ctx: ProxyContext, id: string): Promise<void> {
  const notFound = (): void => sendJson(res, 404, { error: 'not_found', message: `no approval ${id} for this caller` });
  if ((req.method !== 'GET' && req.method !== 'DELETE') || id === '' || id.includes('/')) return notFound();
  const who = identify(req.headers['proxy-authorization'], ctx.staticIdentity, ctx.policy());
  if (!who.ok) return sendJson(res, 407, { error: 'proxy_auth_required', message: who.message }, { 'proxy-authenticate': 'Basic realm="airlock"' });
  let record;
  try {
    record = await ctx.approvals.get(id);
  } catch {
    return sendJson(res, 503, { error: 'approval_unavailable', message: 'the approval store is unreachable' });
  }
  if (record === null || record.identity !== (who.identity?.id ?? null)) return notFound();
  if (req.method === 'DELETE') {
    let result;
    try {
      result = await ctx.approvals.withdraw(id, record.identity ?? 'anonymous', randomUUID());
    } catch {
      return sendJson(res, 503, { error: 'approval_unavailable', message: 'the approval store is unreachable' });
    }
    if (!result.ok) return sendJson(res, 409, { error: 'conflict', message: `the approval is already ${result.record?.state ?? 'gone'}` });
    record = result.record;
  }
  sendJson(res, 200, {
    approval_id: record.id,
    state: record.state,
    approvals: record.approvals.length,
    required: asDecided(record).required,
    // What an approver changed: the request that will be (or was) forwarded in place of the agent's.
    edit: editView(record),
    expires_at: new Date(record.expiresAt).toISOString(),
    decision_reason: record.decisionReason,
    next:
      record.state === 'approved'
        ? `repeat the identical request: it is forwarded once${record.edit ? ', as edited' : ''}`
        : record.state === 'pending'
          ? 'wait, then poll again'
          : 'final: a new identical request asks for approval again',
  });
}
