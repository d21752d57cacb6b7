import type { SlackConfig } from './approvals/slack/channel.js';
import type { TeamsConfig } from './approvals/teams/channel.js';
import type { StateKeySource } from './approvals/state-seal.js';
import type { OidcSettings } from './inbox/oidc.js';
import type { TrustedHeadersConfig } from './inbox/trusted-headers.js';
import type { UpstreamOptions } from './proxy/upstream-options.js';

export interface HostPort {
  host: string;
  port: number;
}

/**
 * What one Airlock process does: `all` (proxy, approvals API, channels: one machine), `proxy` (a
 * sidecar: decide, hold, forward; no approvals API or channels) or `approvals` (the approvals API,
 * channels, sweeps and the inbox for a cluster's proxies; no proxy listener; needs Redis).
 */
export type Role = 'all' | 'proxy' | 'approvals';
export const ROLES: readonly Role[] = ['all', 'proxy', 'approvals'];

/** Everything `airlock serve` needs, after flags and environment have been read. */
export interface ServeConfig {
  role: Role;
  policies: string;
  listen: HostPort;
  admin: HostPort;
  /** Identity of callers without credentials (one-agent sidecars), or null. */
  identity: string | null;
  /** `stdout` or a file path. */
  audit: string;
  /** Ed25519 private key (PEM file) signing the audit chain's head, or null for no signatures. */
  auditSigningKey: string | null;
  /** How often the head is signed when lines were written since. */
  auditSignIntervalMs: number;
  upstream: UpstreamOptions;
  policyPollMs: number;
  /** On SIGTERM, how long requests in flight get to finish before their connections are closed. */
  shutdownGraceMs: number;
  /** How long a changed policy file must have been left alone before it is put in force. */
  policySettleMs: number;
  /** Approval store: null keeps approvals in memory (one instance); a URL shares them through Redis. */
  redis: string | null;
  /** The web inbox (approvals and all roles), when an OpenID Connect provider is configured. */
  inbox: InboxConfig | null;
  /** REDIS_PASSWORD: Redis's password kept out of the URL (from a Secret), or null. */
  redisPassword: string | null;
  /** Prefix of every key Airlock writes in Redis (several deployments can share one Redis). */
  redisKeyPrefix: string;
  /** CA certificates (PEM file) trusted for a rediss:// Redis, or null for the system's. */
  redisCaFile: string | null;
  /** Where the key that seals approval state comes from (required with Redis; see approvals/state-seal.ts). */
  stateKey: StateKeySource;
  /** Largest body of a request held for approval (buffered and stored with it). */
  maxHeldBodyBytes: number;
  /** Most of a body read for rules that inspect it. */
  maxInspectedBodyBytes: number;
  /** A client must send a request's headers within this long. */
  clientHeadersTimeoutMs: number;
  /** A body Airlock reads (held or inspected) must arrive within this long. */
  clientBodyTimeoutMs: number;
  /** Most client connections the proxy listener accepts at once. */
  maxConnections: number;
  /** A tunnel with nothing flowing for this long is closed. */
  tunnelIdleMs: number;
  /** Most tunnels one identity (or anonymous client address) may hold open at once. */
  maxTunnelsPerIdentity: number;
  /** This instance's id among replicas sharing Redis. */
  replica: string;
  /** Slack approvals, when SLACK_BOT_TOKEN is set. */
  slack: SlackConfig | null;
  /** Microsoft Teams approvals, when TEAMS_APP_ID is set. */
  teams: TeamsConfig | null;
  /** Extra CA certificates (PEM file) trusted for upstream TLS, besides the system's. */
  upstreamCaFile: string | null;
  /** Addresses the destination guard lets through besides the policy's `destinations.allow` (e.g. loopback for local testing). */
  allowDestinations: string[];
  /** The interception CA (certificate and key files); without it HTTPS to hosts whose rules inspect requests is refused. */
  ca: { certFile?: string; keyFile?: string };
}

/**
 * Slack settings from the environment only: tokens and secrets never appear in a process list.
 * SLACK_BOT_TOKEN turns Slack on; SLACK_APP_TOKEN selects Socket Mode, else SLACK_SIGNING_SECRET is
 * needed for HTTP delivery.
 */
export function slackFromEnv(env: NodeJS.ProcessEnv): SlackConfig | null {
  const botToken = env.SLACK_BOT_TOKEN;
  if (!botToken) return null;
  if (!env.SLACK_APP_TOKEN && !env.SLACK_SIGNING_SECRET) {
    throw new Error('SLACK_BOT_TOKEN is set but neither SLACK_APP_TOKEN (Socket Mode) nor SLACK_SIGNING_SECRET (HTTP delivery) is');
  }
  return {
    botToken,
    ...(env.SLACK_APP_TOKEN ? { appToken: env.SLACK_APP_TOKEN } : {}),
    ...(env.SLACK_SIGNING_SECRET ? { signingSecret: env.SLACK_SIGNING_SECRET } : {}),
    ...(env.SLACK_API_URL ? { apiUrl: env.SLACK_API_URL } : {}),
    ...(env.SLACK_CHANNEL ? { defaultChannel: env.SLACK_CHANNEL } : {}),
  };
}

/**
 * Teams settings from the environment only (the secret never in a process list). TEAMS_APP_ID turns
 * Teams on and then needs TEAMS_APP_SECRET and TEAMS_TENANT_ID.
 */
export function teamsFromEnv(env: NodeJS.ProcessEnv): TeamsConfig | null {
  const appId = env.TEAMS_APP_ID;
  if (!appId) return null;
  const missing = ['TEAMS_APP_SECRET', 'TEAMS_TENANT_ID'].filter((name) => !env[name]);
  if (missing.length > 0) throw new Error(`TEAMS_APP_ID is set but ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not`);
  return {
    appId,
    appSecret: env.TEAMS_APP_SECRET!,
    tenantId: env.TEAMS_TENANT_ID!,
    ...(env.TEAMS_CONVERSATION ? { defaultConversation: env.TEAMS_CONVERSATION } : {}),
    ...(env.TEAMS_SERVICE_URL ? { serviceUrl: env.TEAMS_SERVICE_URL } : {}),
    ...(env.TEAMS_OPENID_METADATA_URL ? { openIdMetadataUrl: env.TEAMS_OPENID_METADATA_URL } : {}),
    ...(env.TEAMS_TOKEN_URL ? { tokenUrl: env.TEAMS_TOKEN_URL } : {}),
  };
}

export interface InboxConfig {
  /** OpenID Connect sign-in, or null when only an authenticating proxy signs people in. */
  oidc: OidcSettings | null;
  /** Identity headers from an authenticating proxy, accepted from its addresses only; or null. */
  trusted: TrustedHeadersConfig | null;
  /** Public origin of the admin listener as browsers reach it (e.g. https://airlock.example.com); default: the listener's own address. */
  url: string | null;
}

/** The inbox's OpenID Connect client, from the environment (the secret never in a process list); null when not configured. */
export function inboxFromEnv(env: NodeJS.ProcessEnv): InboxConfig | null {
  const issuer = env.AIRLOCK_OIDC_ISSUER;
  const proxies = env.AIRLOCK_INBOX_TRUSTED_PROXIES;
  if (!issuer && !proxies) return null;
  const clientId = env.AIRLOCK_OIDC_CLIENT_ID;
  const clientSecret = env.AIRLOCK_OIDC_CLIENT_SECRET;
  if (issuer && (!clientId || !clientSecret)) throw new Error('AIRLOCK_OIDC_ISSUER is set but AIRLOCK_OIDC_CLIENT_ID or AIRLOCK_OIDC_CLIENT_SECRET is not');
  const trusted = proxies
    ? {
        from: proxies.split(',').map((s) => s.trim()).filter(Boolean),
        emailHeader: (env.AIRLOCK_INBOX_EMAIL_HEADER || 'x-forwarded-email').toLowerCase(),
        nameHeader: (env.AIRLOCK_INBOX_NAME_HEADER || 'x-forwarded-preferred-username').toLowerCase(),
        groupsHeader: (env.AIRLOCK_INBOX_GROUPS_HEADER || 'x-forwarded-groups').toLowerCase(),
      }
    : null;
  const url = env.AIRLOCK_INBOX_URL ? env.AIRLOCK_INBOX_URL.replace(/\/+$/, '') : null;
  if (url !== null && !/^https?:\/\/[^/]+$/.test(url)) throw new Error(`AIRLOCK_INBOX_URL must be an origin such as https://airlock.example.com, got "${url}"`);
  return { oidc: issuer ? { issuer, clientId: clientId!, clientSecret: clientSecret! } : null, trusted, url };
}

/** Secrets of the approval store, from the environment only (never in a process list). */
export function storeSecretsFromEnv(env: NodeJS.ProcessEnv, stateKeyFile: string | undefined): Pick<ServeConfig, 'redisPassword' | 'stateKey'> {
  return {
    redisPassword: env.REDIS_PASSWORD || null,
    stateKey: { ...(stateKeyFile ? { file: stateKeyFile } : {}), ...(env.AIRLOCK_STATE_KEY ? { value: env.AIRLOCK_STATE_KEY } : {}) },
  };
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1000, kib: 1024, mb: 1000 ** 2, mib: 1024 ** 2, gb: 1000 ** 3, gib: 1024 ** 3 };

/** `1048576`, `512KiB`, `1MiB`, `2MB`, `1GiB`. Throws a message naming the flag. */
export function parseSize(value: string, what: string): number {
  const m = /^(\d+)\s*([a-z]*)$/i.exec(value.trim());
  const unit = SIZE_UNITS[(m?.[2] ?? '').toLowerCase()];
  if (!m || unit === undefined) throw new Error(`${what}: expected a size such as 1MiB, 512KiB, 1GiB or 1048576, got "${value}"`);
  return Number(m[1]) * unit;
}

/** `HOST:PORT`, `[v6]:PORT` or `:PORT` (all interfaces). Throws a message naming the flag. */
export function parseHostPort(value: string, what: string): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`${what}: expected HOST:PORT (e.g. 127.0.0.1:8080), got "${value}"`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export function formatHostPort(a: HostPort): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
