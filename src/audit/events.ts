/** The audit event shape. Secrets are scrubbed by the sink (redact.ts) before anything is written. */

export interface AuditEvent {
  event: 'request' | 'tunnel' | 'tunnel_closed' | 'policy_loaded' | 'policy_rejected' | string;
  request_id?: string;
  identity?: string | null;
  owner?: string | null;
  method?: string;
  scheme?: string;
  host?: string;
  port?: number;
  path?: string;
  query?: string;
  rules?: readonly string[];
  decision?: string;
  reason?: string;
  rule?: string | null;
  report?: readonly { rule: string; action: string }[];
  status?: number;
  error?: string;
  duration_ms?: number;
  client?: string;
  via?: 'proxy' | 'tunnel' | 'route';
  policy_version?: string;
  [extra: string]: unknown;
}

export { redactQuery } from './redact.js';
