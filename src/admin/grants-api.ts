/**
 * Grants on the admin listener: `GET /v1/grants` lists the grants that can still be used,
 * `POST /v1/grants/{id}/revoke` ends one at once. Every call needs an approver token; revoking needs
 * to be an approver of the grant's rule (as in the policy in force).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { eligibleFor, type ApprovalService } from '../approvals/service.js';
import { grantView } from '../approvals/view.js';
import type { CompiledPolicy } from '../policy/types.js';
import { sendJson } from '../proxy/respond.js';
import { approverFor, fail, unauthorized } from './approvals-api.js';

export const GRANTS_PREFIX = '/v1/grants';

export async function handleGrantsApi(req: IncomingMessage, res: ServerResponse, path: string, approvals: ApprovalService, policy: CompiledPolicy): Promise<void> {
  const approver = approverFor(req.headers.authorization, policy);
  if (approver === null) return fail(res, unauthorized(req.headers.authorization));
  const rest = path.slice(GRANTS_PREFIX.length).split('/').filter(Boolean);
  try {
    if (req.method === 'GET' && rest.length === 0) {
      return sendJson(res, 200, { grants: (await approvals.listGrants()).map(grantView) });
    }
    if (req.method === 'POST' && rest.length === 2 && rest[1] === 'revoke') {
      const id = rest[0]!;
      const grant = (await approvals.listGrants()).find((g) => g.id === id);
      if (!grant) return fail(res, { status: 404, error: 'not_found', message: `no grant ${id} that can still be used` });
      const settings = policy.rules.find((r) => r.id === grant.rule)?.approval;
      if (!eligibleFor(policy, settings?.approvers ?? []).api.includes(approver) && grant.by !== approver) {
        return fail(res, { status: 403, error: 'forbidden', message: `${approver} is not an approver of rule ${grant.rule}` });
      }
      const revoked = await approvals.revokeGrant(id, approver);
      if (!revoked) return fail(res, { status: 409, error: 'conflict', message: `grant ${id} can no longer be used` });
      return sendJson(res, 200, { grant: grantView(revoked) });
    }
    return fail(res, { status: 404, error: 'not_found', message: `no such endpoint: ${req.method} ${path}` });
  } catch (err) {
    return fail(res, { status: 503, error: 'approval_unavailable', message: `the approval store is unreachable: ${(err as Error).message}` });
  }
}
