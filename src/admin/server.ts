import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { ApprovalService } from '../approvals/service.js';
import type { CompiledPolicy } from '../policy/types.js';
import { SLACK_EVENTS_PATH } from '../approvals/slack/endpoint.js';
import { TEAMS_MESSAGES_PATH } from '../approvals/teams/endpoint.js';
import type { Redecide } from '../approvals/service.js';
import { API_PREFIX, handleApprovalsApi } from './approvals-api.js';
import { GRANTS_PREFIX, handleGrantsApi } from './grants-api.js';
import { INBOX_PREFIX } from '../inbox/routes.js';

export interface AdminState {
  /** Ready once a policy is in force and the proxy listener accepts connections. */
  ready(): { ready: boolean; reason?: string };
  registry: Registry;
  approvals: ApprovalService;
  /** False in the proxy role: approvers use the approvals service, not a sidecar. */
  approvalsApi: boolean;
  /** The web inbox (/inbox), when configured. */
  inbox: ((req: IncomingMessage, res: ServerResponse, path: string) => Promise<void>) | null;
  policy(): CompiledPolicy;
  /** Decides an approver's edited request again (approve with edits). */
  redecide: Redecide;
  /** Slack's HTTP delivery (`POST /slack/events`), when Slack is configured without Socket Mode. */
  slack: ((req: IncomingMessage, res: ServerResponse) => void) | null;
  /** The Bot Framework's deliveries (`POST /teams/messages`), when Teams is configured. */
  teams: ((req: IncomingMessage, res: ServerResponse) => void) | null;
  /** Approval channels and whether each reaches its service: reported, never a reason to be unready. */
  channels(): ReadonlyMap<string, boolean>;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/** The operator-facing listener: health, readiness, metrics and the approvals API. Never agent-facing. */
export function createAdminServer(state: AdminState): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    if (path === SLACK_EVENTS_PATH && state.slack) {
      state.slack(req, res);
      return;
    }
    if (path === TEAMS_MESSAGES_PATH && state.teams) {
      state.teams(req, res);
      return;
    }
    const api = path === API_PREFIX || path.startsWith(`${API_PREFIX}/`) || path === GRANTS_PREFIX || path.startsWith(`${GRANTS_PREFIX}/`);
    if (api && !state.approvalsApi) {
      return json(res, 404, { error: 'not_found', message: 'this Airlock runs the proxy role: approvals are decided on the approvals service (airlock serve --role approvals)' });
    }
    if (path === API_PREFIX || path.startsWith(`${API_PREFIX}/`)) {
      void handleApprovalsApi(req, res, path, state.approvals, state.policy(), state.redecide);
      return;
    }
    if (path === INBOX_PREFIX || path.startsWith(`${INBOX_PREFIX}/`)) {
      if (state.inbox) return void state.inbox(req, res, path);
      const why = state.approvalsApi ? 'set AIRLOCK_OIDC_ISSUER (or AIRLOCK_INBOX_TRUSTED_PROXIES) to turn it on (docs/inbox.md)' : 'it is served by the approvals service (--role approvals)';
      return json(res, 404, { error: 'not_found', message: `the web inbox is not configured here: ${why}` });
    }
    if (path === GRANTS_PREFIX || path.startsWith(`${GRANTS_PREFIX}/`)) {
      void handleGrantsApi(req, res, path, state.approvals, state.policy());
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: 'method_not_allowed', message: 'use GET' });
    switch (path) {
      case '/healthz':
        return json(res, 200, { status: 'ok' });
      case '/readyz': {
        const r = state.ready();
        // A channel that is down does not make Airlock unready: allowed traffic and API approvals go on.
        const channels = Object.fromEntries([...state.channels()].map(([name, up]) => [name, up ? 'up' : 'down']));
        return json(res, r.ready ? 200 : 503, r.ready ? { status: 'ready', channels } : { status: 'not_ready', reason: r.reason, channels });
      }
      case '/metrics':
        state.registry.metrics().then(
          (text) => {
            res.writeHead(200, { 'content-type': state.registry.contentType });
            res.end(text);
          },
          (err: Error) => json(res, 500, { error: 'metrics_failed', message: err.message }),
        );
        return;
      default:
        return json(res, 404, { error: 'not_found', message: `no such endpoint: ${path}` });
    }
  });
}
