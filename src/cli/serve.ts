import { Option, type Command } from 'commander';
import { hostname } from 'node:os';
import { formatHostPort, inboxFromEnv, parseHostPort, parseSize, ROLES, slackFromEnv, storeSecretsFromEnv, teamsFromEnv, type Role, type ServeConfig } from '../config.js';
import { createLogger } from '../log.js';
import { parseDuration } from '../policy/duration.js';
import { formatPolicyError } from '../policy/errors.js';
import { DEFAULT_UPSTREAM_OPTIONS } from '../proxy/upstream-options.js';

interface ServeFlags {
  role: string;
  policies: string;
  listen: string;
  admin: string;
  identity?: string;
  audit: string;
  auditSigningKey?: string;
  auditSignInterval: string;
  upstreamConnectTimeout: string;
  upstreamTimeout: string;
  policyPoll: string;
  policySettle: string;
  shutdownGrace: string;
  logLevel: string;
  redis?: string;
  redisKeyPrefix: string;
  redisCa?: string;
  stateKeyFile?: string;
  maxHeldBody: string;
  maxInspectedBody: string;
  tunnelIdleTimeout: string;
  clientHeadersTimeout: string;
  clientBodyTimeout: string;
  maxConnections: string;
  maxTunnels: string;
  replica?: string;
  upstreamCa?: string;
  caCert?: string;
  caKey?: string;
  allowDestination?: string;
}

/** pino's levels, and `silent`. */
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function duration(value: string, flag: string): number {
  const ms = parseDuration(value);
  if (ms === null) throw new Error(`${flag}: expected a duration like 500ms, 10s, 2m or 1m30s, got "${value}"`);
  return ms;
}

function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag}: expected a whole number of at least 1, got "${value}"`);
  return n;
}

export function toServeConfig(f: ServeFlags): ServeConfig {
  const timeout = duration(f.upstreamTimeout, '--upstream-timeout');
  if (!(ROLES as readonly string[]).includes(f.role)) throw new Error(`--role: expected one of ${ROLES.join(', ')}, got "${f.role}"`);
  return {
    role: f.role as Role,
    policies: f.policies,
    listen: parseHostPort(f.listen, '--listen'),
    admin: parseHostPort(f.admin, '--admin'),
    identity: f.identity || null,
    audit: f.audit,
    auditSigningKey: f.auditSigningKey || null,
    auditSignIntervalMs: duration(f.auditSignInterval, '--audit-sign-interval'),
    upstream: {
      ...DEFAULT_UPSTREAM_OPTIONS,
      connectTimeoutMs: duration(f.upstreamConnectTimeout, '--upstream-connect-timeout'),
      headersTimeoutMs: timeout,
      bodyTimeoutMs: timeout,
    },
    policyPollMs: duration(f.policyPoll, '--policy-poll'),
    policySettleMs: duration(f.policySettle, '--policy-settle'),
    shutdownGraceMs: duration(f.shutdownGrace, '--shutdown-grace'),
    redis: f.redis || null,
    redisKeyPrefix: redisKeyPrefix(f.redisKeyPrefix),
    redisCaFile: redisCa(f.redisCa, f.redis),
    ...storeSecretsFromEnv(process.env, f.stateKeyFile),
    inbox: inboxFromEnv(process.env),
    maxHeldBodyBytes: parseSize(f.maxHeldBody, '--max-held-body'),
    maxInspectedBodyBytes: parseSize(f.maxInspectedBody, '--max-inspected-body'),
    tunnelIdleMs: duration(f.tunnelIdleTimeout, '--tunnel-idle-timeout'),
    clientHeadersTimeoutMs: duration(f.clientHeadersTimeout, '--client-headers-timeout'),
    clientBodyTimeoutMs: duration(f.clientBodyTimeout, '--client-body-timeout'),
    maxConnections: positiveInt(f.maxConnections, '--max-connections'),
    maxTunnelsPerIdentity: positiveInt(f.maxTunnels, '--max-tunnels'),
    replica: f.replica || `${hostname()}-${process.pid}`,
    slack: slackFromEnv(process.env),
    teams: teamsFromEnv(process.env),
    upstreamCaFile: f.upstreamCa || null,
    allowDestinations: (f.allowDestination ?? '').split(',').map((a) => a.trim()).filter(Boolean),
    ca: { ...(f.caCert ? { certFile: f.caCert } : {}), ...(f.caKey ? { keyFile: f.caKey } : {}) },
  };
}

function redisKeyPrefix(prefix: string): string {
  if (!/^[A-Za-z0-9._:-]{1,64}$/.test(prefix)) throw new Error(`--redis-key-prefix: 1 to 64 letters, digits, '.', '_', ':' or '-', got "${prefix}"`);
  return prefix;
}

function redisCa(file: string | undefined, url: string | undefined): string | null {
  if (!file) return null;
  if (!url || !/^rediss(\+sentinel|\+cluster)?:\/\//i.test(url)) throw new Error('--redis-ca: the CA is for TLS: use a rediss:// (or rediss+sentinel://, rediss+cluster://) URL in --redis');
  return file;
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the proxy (agent-facing) and admin (operator-facing) listeners')
    .addOption(new Option('--role <role>', 'all: proxy, approvals API and channels in one process; proxy: a sidecar (decide, hold, forward); approvals: the approvals API, channels and sweeps for a cluster\'s proxies (needs Redis)').env('AIRLOCK_ROLE').default('all'))
    .addOption(new Option('--policies <dir>', 'policy folder').env('AIRLOCK_POLICIES').default('policies'))
    .addOption(new Option('--listen <host:port>', 'proxy listener').env('AIRLOCK_LISTEN').default('127.0.0.1:8080'))
    .addOption(new Option('--admin <host:port>', 'admin listener (health, metrics)').env('AIRLOCK_ADMIN_LISTEN').default('127.0.0.1:9090'))
    .addOption(new Option('--identity <id>', 'identity of callers without proxy credentials (one-agent sidecars)').env('AIRLOCK_IDENTITY'))
    .addOption(new Option('--audit <dest>', 'audit trail: "stdout" or a file path').env('AIRLOCK_AUDIT').default('stdout'))
    .addOption(new Option('--audit-signing-key <file>', 'Ed25519 private key (PEM) that signs the audit chain\'s head; keep it away from the audit destination').env('AIRLOCK_AUDIT_SIGNING_KEY'))
    .addOption(new Option('--audit-sign-interval <duration>', 'how often the audit chain\'s head is signed (and at shutdown)').env('AIRLOCK_AUDIT_SIGN_INTERVAL').default('1m'))
    .addOption(new Option('--upstream-connect-timeout <duration>').env('AIRLOCK_UPSTREAM_CONNECT_TIMEOUT').default('10s'))
    .addOption(new Option('--upstream-timeout <duration>', 'until response headers, and between body chunks').env('AIRLOCK_UPSTREAM_TIMEOUT').default('60s'))
    .addOption(new Option('--policy-poll <duration>', 'how often the policy folder is re-read besides watching it').env('AIRLOCK_POLICY_POLL').default('5s'))
    .addOption(new Option('--policy-settle <duration>', 'how long a changed policy file must have been left alone before it is put in force (write files by rename to skip the wait)').env('AIRLOCK_POLICY_SETTLE').default('1s'))
    .addOption(new Option('--shutdown-grace <duration>', 'on SIGTERM, how long requests in flight get to finish (keep it under the orchestrator\'s kill timeout)').env('AIRLOCK_SHUTDOWN_GRACE').default('10s'))
    .addOption(new Option('--redis <url>', 'share approvals through Redis (redis://, rediss://); default: in memory, one instance').env('REDIS_URL'))
    .addOption(new Option('--redis-key-prefix <prefix>', 'prefix of every key in Redis, so several deployments can share one').env('AIRLOCK_REDIS_KEY_PREFIX').default('airlock'))
    .addOption(new Option('--redis-ca <file>', 'CA certificates (PEM) trusted for a rediss:// Redis, instead of the system\'s').env('AIRLOCK_REDIS_CA'))
    .addOption(new Option('--state-key-file <file>', 'key(s) sealing approval state, one per line, the first signing (or AIRLOCK_STATE_KEY); required with --redis').env('AIRLOCK_STATE_KEY_FILE'))
    .addOption(new Option('--max-held-body <size>', 'largest body of a request held for approval').env('AIRLOCK_MAX_HELD_BODY').default('1MiB'))
    .addOption(
      new Option('--max-inspected-body <size>', 'most of a body read for rules that inspect it (decoded size too); larger bodies get the most restrictive outcome').env('AIRLOCK_MAX_INSPECTED_BODY').default('1MiB'),
    )
    .addOption(new Option('--client-headers-timeout <duration>', 'a client must send a request\'s headers within this long (slow clients are cut off with 408)').env('AIRLOCK_CLIENT_HEADERS_TIMEOUT').default('30s'))
    .addOption(new Option('--client-body-timeout <duration>', 'a body Airlock reads (held for approval, or inspected) must arrive within this long (408)').env('AIRLOCK_CLIENT_BODY_TIMEOUT').default('60s'))
    .addOption(new Option('--max-connections <n>', 'most client connections the proxy listener accepts at once (keep the open-files limit above it)').env('AIRLOCK_MAX_CONNECTIONS').default('8192'))
    .addOption(new Option('--tunnel-idle-timeout <duration>', 'close a CONNECT tunnel nothing has flowed through for this long').env('AIRLOCK_TUNNEL_IDLE_TIMEOUT').default('5m'))
    .addOption(new Option('--max-tunnels <n>', 'most CONNECT tunnels one identity (or anonymous client address) may hold open at once').env('AIRLOCK_MAX_TUNNELS').default('256'))
    .addOption(new Option('--replica <id>', 'this instance among replicas sharing Redis (default: host name and pid)').env('AIRLOCK_REPLICA_ID'))
    .addOption(new Option('--ca-cert <file>', 'interception CA certificate (airlock ca init)').env('AIRLOCK_CA_CERT'))
    .addOption(new Option('--ca-key <file>', 'interception CA key').env('AIRLOCK_CA_KEY'))
    .addOption(new Option('--allow-destination <cidrs>', 'comma-separated CIDRs the destination guard lets through besides the policy (e.g. 127.0.0.0/8 for local testing)').env('AIRLOCK_ALLOW_DESTINATIONS'))
    .addOption(new Option('--upstream-ca <file>', 'extra CA certificates (PEM) to trust for upstream HTTPS, besides the system ones').env('AIRLOCK_UPSTREAM_CA'))
    .addOption(new Option('--log-level <level>', 'operational log level (logs go to stderr)').env('AIRLOCK_LOG_LEVEL').default('info'))
    .action(async (flags: ServeFlags) => {
      if (!LOG_LEVELS.includes(flags.logLevel)) {
        console.error(`airlock serve: --log-level: expected one of ${LOG_LEVELS.join(', ')}, got "${flags.logLevel}"`);
        process.exitCode = 2;
        return;
      }
      const log = createLogger(flags.logLevel);
      let config: ServeConfig;
      try {
        config = toServeConfig(flags);
      } catch (err) {
        console.error(`airlock serve: ${(err as Error).message}`);
        process.exitCode = 2;
        return;
      }
      // Loaded here, not at the top: `airlock --version` and the other commands never pay for it.
      const { PolicyLoadError, startAirlock } = await import('../server.js');
      try {
        // A failure nothing handled (a library's stray promise) is logged and counted; the proxy goes on.
        const unhandled: { count?: () => void } = {};
        process.on('unhandledRejection', (err: unknown) => {
          unhandled.count?.();
          log.error({ err }, 'unhandled rejection');
        });
        const airlock = await startAirlock(config, log);
        unhandled.count = () => airlock.metrics.unhandledRejections.inc();
        log.info({ role: config.role, proxy: airlock.proxy === null ? null : formatHostPort(airlock.proxy), admin: formatHostPort(airlock.admin), policies: config.policies }, 'airlock listening');
        process.on('SIGHUP', () => void airlock.policies.reload(true));
        const stop = (signal: string): void => {
          log.info({ signal }, 'shutting down');
          airlock.close(config.shutdownGraceMs).then(
            () => process.exit(0),
            () => process.exit(1),
          );
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      } catch (err) {
        if (err instanceof PolicyLoadError) {
          for (const e of err.errors) console.error(formatPolicyError(e));
          console.error(`airlock serve: not started: the policy folder ${config.policies} has errors`);
        } else {
          console.error(`airlock serve: ${(err as Error).message}`);
        }
        process.exitCode = 1;
      }
    });
}
