import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { createSecureContext, rootCertificates } from 'node:tls';
import { readFile } from 'node:fs/promises';
import { createAdminServer } from './admin/server.js';
import { MemoryStore } from './approvals/memory-store.js';
import { ApprovalService, type Redecide } from './approvals/service.js';
import { loadStateSealer, type StateSealer } from './approvals/state-seal.js';
import { probeRunner } from './approvals/probes.js';
import type { ApprovalStore } from './approvals/types.js';
import { createAuditSink, type AuditSink } from './audit/sink.js';
import { loadHeadSigner } from './audit/signing.js';
import type { HostPort, InboxConfig, ServeConfig } from './config.js';
import type { Logger } from './log.js';
import { createMetrics, type Metrics } from './metrics/metrics.js';
import type { CompiledPolicy, PolicyError } from './policy/types.js';
import { canonicalIp } from './net/address.js';
import { compileGuard, type Guard } from './proxy/destination-guard.js';
import { tunnelLimits } from './proxy/tunnel-limits.js';
import { createPolicyHolder, type PolicyHolder } from './policy/watch.js';
import type { Interception } from './proxy/context.js';
import { createProxyServer } from './proxy/listener.js';
import { redecider } from './proxy/policy-in-force.js';
import { createGuardedAgents } from './proxy/guarded-agents.js';
import { createPassThrough } from './proxy/pass-through.js';
import { createUpstreamAgent } from './proxy/upstream.js';
import { openTracing } from './tracing/tracing.js';

export interface Airlock {
  /** The proxy listener; null in the approvals role, which has none. */
  proxy: HostPort | null;
  admin: HostPort;
  policies: PolicyHolder;
  metrics: Metrics;
  audit: AuditSink;
  approvals: ApprovalService;
  /** Stop accepting, let requests in flight finish (up to `graceMs`), flush the audit trail. */
  close(graceMs?: number): Promise<void>;
}

export class PolicyLoadError extends Error {
  constructor(readonly errors: readonly PolicyError[]) {
    super(`policy folder has ${errors.length} error(s)`);
  }
}

function listen(server: Server, at: HostPort): Promise<HostPort> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.off('error', reject);
      const a = server.address() as AddressInfo;
      resolve({ host: a.address, port: a.port });
    });
  });
}

const LOOPBACK_NAMES = new Set(['localhost', '0.0.0.0', '::', '::1']);

/** Addresses that reach this machine, so the proxy can refuse to forward to its own ports. */
function ownAddresses(extra: string[]): Set<string> {
  const all = new Set([...LOOPBACK_NAMES, ...extra]);
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) all.add(a.address.toLowerCase());
  return all;
}

function isLocalHost(host: string, own: Set<string>): boolean {
  // IPv4-mapped and other IPv6 spellings of an IPv4 address are compared as that address.
  const ip = canonicalIp(host) ?? host;
  return own.has(ip) || own.has(host) || host.endsWith('.localhost') || ip.startsWith('127.');
}

function closeServer(server: Server, graceMs: number, forceAlso: () => void = () => {}): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => {
      server.closeAllConnections();
      forceAlso();
    }, graceMs);
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/**
 * Redis is waited for briefly at start. If it doesn't answer, Airlock starts anyway with a store that
 * keeps reconnecting: requests that need approval fail closed until it answers, everything else flows.
 */
async function openRedisStore(config: ServeConfig, url: string, log: Logger): Promise<ApprovalStore> {
  const { RedisStore } = await import('./approvals/redis-store.js');
  const tlsCa = config.redisCaFile === null ? undefined : await readFile(config.redisCaFile, 'utf8');
  const opts = {
    replica: config.replica,
    logger: log,
    keyPrefix: config.redisKeyPrefix,
    ...(config.redisPassword === null ? {} : { password: config.redisPassword }),
    ...(tlsCa === undefined ? {} : { tlsCa }),
  };
  try {
    return await RedisStore.connect(url, opts);
  } catch (err) {
    log.warn({ err }, 'approval store not reachable at start; requests that need approval fail closed until it is');
    return RedisStore.connect(url, { ...opts, readyTimeoutMs: 0 });
  }
}

/** The web inbox; its modules (openid-client) are loaded only when an identity provider is configured. */
async function openInbox(
  config: InboxConfig,
  approvals: ApprovalService,
  policy: () => CompiledPolicy,
  sealer: StateSealer,
  redecide: Redecide,
  origin: () => string,
  log: Logger,
): Promise<(req: IncomingMessage, res: ServerResponse, path: string) => Promise<void>> {
  const [{ createInbox }, { OidcSignIn }, { CookieSigner }, { TrustedHeaders }] = await Promise.all([
    import('./inbox/routes.js'),
    import('./inbox/oidc.js'),
    import('./inbox/session.js'),
    import('./inbox/trusted-headers.js'),
  ]);
  return createInbox({
    approvals,
    policy,
    oidc: config.oidc ? new OidcSignIn(config.oidc) : null,
    trusted: config.trusted ? new TrustedHeaders(config.trusted) : null,
    signer: new CookieSigner(sealer.derive('inbox-cookies')),
    redecide,
    baseUrl: origin,
    log,
  });
}

/**
 * TLS interception when a CA is configured: without one, HTTPS to hosts whose rules inspect requests
 * is refused. Like Redis and Slack, its modules (tens of MiB) are loaded only when configured.
 */
async function openInterception(config: ServeConfig): Promise<Interception | null> {
  if (config.ca.certFile === undefined && config.ca.keyFile === undefined) return null;
  const { loadCaFromEnv } = await import('./tls/ca.js');
  const { LeafCache } = await import('./tls/leaf-cache.js');
  const ca = await loadCaFromEnv({ AIRLOCK_CA_CERT: config.ca.certFile, AIRLOCK_CA_KEY: config.ca.keyFile });
  return ca ? { leaves: new LeafCache(ca) } : null;
}

/** Start the proxy and admin listeners with the policy folder in force. */
export async function startAirlock(config: ServeConfig, log: Logger): Promise<Airlock> {
  const role = config.role;
  if (role === 'approvals' && config.redis === null) {
    throw new Error('the approvals role shares approvals with the proxies through Redis: set REDIS_URL (or --redis)');
  }
  // First: a missing or weak key stops the start before anything is written.
  const sealer = await loadStateSealer(config.stateKey, config.redis !== null);
  const metrics = createMetrics();
  const signer = config.auditSigningKey === null ? undefined : await loadHeadSigner(config.auditSigningKey, config.audit);
  const audit = await createAuditSink({ destination: config.audit, metrics, ...(signer ? { signer, signIntervalMs: config.auditSignIntervalMs } : {}) });
  const holder = await createPolicyHolder(config.policies, config.policyPollMs, { log, metrics, audit }, config.policySettleMs);
  if (!('current' in holder)) {
    await audit.close();
    throw new PolicyLoadError(holder.errors);
  }
  const extraCa = config.upstreamCaFile ? await readFile(config.upstreamCaFile, 'utf8') : undefined;
  // One guard per policy version; the listeners' real addresses are only known once they listen.
  let ownListeners: { host: string; port: number }[] = [];
  let guards = new WeakMap<CompiledPolicy, Guard>();
  const guard = (): Guard => {
    const policy = holder.current();
    let g = guards.get(policy);
    if (!g) {
      g = compileGuard({ allow: [...config.allowDestinations, ...policy.destinationAllow], ownListeners });
      guards.set(policy, g);
    }
    return g;
  };
  // Upstream TLS trust, built once: Node's bundled roots plus --upstream-ca, never instead of verifying.
  const upstreamTls = extraCa ? createSecureContext({ ca: [...rootCertificates, extraCa] }) : undefined;
  const agent = createUpstreamAgent({ ...config.upstream, ...(upstreamTls ? { secureContext: upstreamTls } : {}) }, guard);
  const agents = createGuardedAgents(guard, upstreamTls);
  const passThrough = createPassThrough(agents, { connectTimeoutMs: config.upstream.connectTimeoutMs, upstreamTimeoutMs: config.upstream.headersTimeoutMs });
  // Without a CA, HTTPS to hosts whose rules inspect requests is refused (it can't be inspected).
  const interception = await openInterception(config);
  const store: ApprovalStore = config.redis ? await openRedisStore(config, config.redis, log) : new MemoryStore();
  metrics.watchApprovalStore(() => store.ready());
  // The OpenTelemetry SDK is loaded only when OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set.
  const tracing = await openTracing(process.env, config.replica, log);
  // Proxies (sidecars) hold and forward; sweeping for expiry and escalation, and the channels, are
  // the approvals service's (or a single Airlock's, in the role `all`).
  const approvals = new ApprovalService({ store, replica: config.replica, audit, metrics, log, sealer, probe: probeRunner(agent, process.env), sweeps: role !== 'proxy', tracing });
  const redecide = redecider(holder.current, config.maxInspectedBodyBytes);
  if (role === 'proxy' && config.slack) log.warn({}, 'Slack settings are ignored in the proxy role: the approvals service posts to Slack');
  if (role === 'proxy' && config.teams) log.warn({}, 'Teams settings are ignored in the proxy role: the approvals service posts to Teams');
  // Each channel's SDK is loaded only when it is configured.
  const slack = config.slack && role !== 'proxy' ? new (await import('./approvals/slack/channel.js')).SlackChannel(config.slack, approvals, holder.current, log, redecide) : null;
  const teams = config.teams && role !== 'proxy' ? new (await import('./approvals/teams/channel.js')).TeamsChannel(config.teams, approvals, holder.current, log, redecide) : null;
  for (const channel of [slack, teams]) {
    if (channel === null) continue;
    approvals.addChannel(channel);
    await channel.start();
  }
  const channels = (): ReadonlyMap<string, boolean> =>
    new Map([...(slack ? [['slack', slack.up()] as const] : []), ...(teams ? [['teams', teams.up()] as const] : [])]);
  metrics.watchChannels(channels);
  let own = new Set<string>();
  let ports = new Set<number>();
  const { server: proxyServer, destroyTunnels } = createProxyServer({
    policy: holder.current,
    staticIdentity: config.identity,
    agent,
    passThrough,
    approvals,
    tracing,
    maxHeldBodyBytes: config.maxHeldBodyBytes,
    maxInspectedBodyBytes: config.maxInspectedBodyBytes,
    connectTimeoutMs: config.upstream.connectTimeoutMs,
    tunnelLimits: tunnelLimits(config.tunnelIdleMs, config.maxTunnelsPerIdentity),
    clientHeadersTimeoutMs: config.clientHeadersTimeoutMs,
    clientBodyTimeoutMs: config.clientBodyTimeoutMs,
    upstreamTls,
    interception,
    guard,
    audit,
    metrics,
    log,
    isOwnListener: (host, port) => ports.has(port) && isLocalHost(host, own),
  });
  let proxyUp = false;
  // The inbox's public origin is its configured URL, or the admin listener's address once it listens.
  let adminOrigin = '';
  const inbox = config.inbox && role !== 'proxy' ? await openInbox(config.inbox, approvals, holder.current, sealer, redecide, () => adminOrigin, log) : null;
  const adminServer = createAdminServer({
    registry: metrics.registry,
    approvals,
    approvalsApi: role !== 'proxy',
    inbox,
    policy: holder.current,
    redecide,
    slack: slack ? (req, res) => slack.handleHttp(req, res) : null,
    teams: teams ? (req, res) => void teams.handleHttp(req, res) : null,
    channels,
    ready: () => (role === 'approvals' || proxyUp ? { ready: true } : { ready: false, reason: 'proxy listener not accepting connections' }),
  });
  // Past this many, new connections are closed at once: a flood cannot take every descriptor.
  proxyServer.maxConnections = config.maxConnections;
  const proxy = role === 'approvals' ? null : await listen(proxyServer, config.listen);
  const admin = await listen(adminServer, config.admin);
  adminOrigin = config.inbox?.url ?? `http://${admin.host.includes(':') ? `[${admin.host}]` : admin.host}:${admin.port}`;
  const listeners = proxy === null ? [admin] : [proxy, admin];
  own = ownAddresses([...listeners.map((l) => l.host), config.listen.host, config.admin.host]);
  ports = new Set(listeners.map((l) => l.port));
  ownListeners = listeners;
  guards = new WeakMap();
  proxyUp = proxy !== null;
  proxyServer.on('close', () => (proxyUp = false));
  holder.started();

  return {
    proxy,
    admin,
    policies: holder,
    metrics,
    audit,
    approvals,
    async close(graceMs = 10_000) {
      await holder.close();
      await slack?.stop();
      await teams?.stop();
      await approvals.close();
      await Promise.all([proxy === null ? Promise.resolve() : closeServer(proxyServer, graceMs, destroyTunnels), closeServer(adminServer, 0)]);
      await agent.close();
      agents.destroy();
      await store.close();
      await audit.close();
      // Every request has ended: their spans go with the rest (last: a collector that is down must not delay the audit trail).
      await tracing?.close();
    },
  };
}
