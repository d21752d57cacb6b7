/**
 * Building ioredis clients from a `REDIS_URL`.
 *
 * Supported forms (see docs/redis.md):
 *
 *   redis://[[user]:password@]host[:port][/db]            one server (ioredis parses it; query options too)
 *   rediss://…                                            the same over TLS
 *   redis+sentinel://[[user]:password@]h1:26379,h2:26379/mastername[/db][?sentinelUsername=…&sentinelPassword=…]
 *   rediss+sentinel://…                                   TLS to the sentinels and to the data nodes
 *   redis+cluster://[[user]:password@]h1:6379,h2:6379     Redis Cluster (seed nodes)
 *   rediss+cluster://…                                    the same over TLS
 *
 * Two roles: the `command` connection fails closed (no offline queue, one retry, a short command
 * timeout, so every call rejects fast while Redis is unreachable); the `subscriber` connection may
 * queue and retries forever, and re-subscribing is left to the caller (RedisStore subscribes on every
 * `ready`, then tells its `onReconnect` listeners).
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions, type SentinelAddress } from 'ioredis';

export type RedisClient = Redis | Cluster;
export type RedisRole = 'command' | 'subscriber';

export type RedisTarget =
  | { kind: 'standalone'; url: string; password?: string; tls: boolean }
  | {
      kind: 'sentinel';
      sentinels: SentinelAddress[];
      name: string;
      db: number;
      username?: string;
      password?: string;
      sentinelUsername?: string;
      sentinelPassword?: string;
      tls: boolean;
    }
  | { kind: 'cluster'; nodes: { host: string; port: number }[]; username?: string; password?: string; tls: boolean };

export interface RedisClientOptions {
  /** Shown in `CLIENT LIST`, e.g. `airlock:replica-1:cmd`. */
  connectionName?: string;
  /** Per-command timeout of the command connection (ms). Default 1000. */
  commandTimeoutMs?: number;
  /** TCP connect timeout (ms). Default 2000. */
  connectTimeoutMs?: number;
  /** CA certificates (PEM) trusted for TLS (`rediss…` URLs) instead of the system's: a private CA. */
  tlsCa?: string;
}

const URL_RE = /^([a-z][a-z0-9+.-]*):\/\/(?:([^@/?#]*)@)?([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?(?:#.*)?$/i;

function parseHostList(list: string, defaultPort: number, url: string): { host: string; port: number }[] {
  const out: { host: string; port: number }[] = [];
  for (const part of list.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(item) ?? /^([^:[\]]+)(?::(\d+))?$/.exec(item);
    if (!m || m[1] === undefined) throw new Error(`invalid host "${item}" in ${redactRedisUrl(url)}`);
    const port = m[2] === undefined ? defaultPort : Number(m[2]);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid port in "${item}" in ${redactRedisUrl(url)}`);
    out.push({ host: m[1], port });
  }
  if (out.length === 0) throw new Error(`no hosts in ${redactRedisUrl(url)}`);
  return out;
}

function parseUserinfo(userinfo: string | undefined): { username?: string; password?: string } {
  if (userinfo === undefined || userinfo === '') return {};
  const colon = userinfo.indexOf(':');
  const user = decodeURIComponent(colon < 0 ? userinfo : userinfo.slice(0, colon));
  const password = colon < 0 ? undefined : decodeURIComponent(userinfo.slice(colon + 1));
  const out: { username?: string; password?: string } = {};
  if (user !== '') out.username = user;
  if (password !== undefined && password !== '') out.password = password;
  return out;
}

/**
 * Parse a `REDIS_URL`; throws with a message naming the (redacted) URL when it is malformed.
 * `password` (REDIS_PASSWORD) keeps the password out of the URL; a URL may not carry one as well.
 */
export function parseRedisUrl(url: string, password?: string): RedisTarget {
  const m = URL_RE.exec(url.trim());
  if (!m || m[1] === undefined) throw new Error(`invalid Redis URL ${redactRedisUrl(url)}`);
  const scheme = m[1].toLowerCase();
  const hosts = m[3] ?? '';
  const path = (m[4] ?? '').replace(/^\//, '');
  const query = new URLSearchParams(m[5] ?? '');
  const auth = parseUserinfo(m[2]);
  if (password !== undefined && password !== '') {
    if (auth.password !== undefined) throw new Error(`REDIS_PASSWORD is set and ${redactRedisUrl(url)} has a password too: give it once`);
    auth.password = password;
  }
  switch (scheme) {
    case 'redis':
    case 'rediss':
      if (hosts.includes(',')) throw new Error(`several hosts in ${redactRedisUrl(url)}: use redis+sentinel:// or redis+cluster://`);
      return { kind: 'standalone', url: url.trim(), tls: scheme === 'rediss', ...(auth.password !== undefined && password ? { password: auth.password } : {}) };
    case 'redis+sentinel':
    case 'rediss+sentinel': {
      const [name, dbText] = path.split('/');
      if (name === undefined || name === '') throw new Error(`missing master name in ${redactRedisUrl(url)} (…/mymaster)`);
      const db = dbText === undefined || dbText === '' ? 0 : Number(dbText);
      if (!Number.isInteger(db) || db < 0) throw new Error(`invalid database number in ${redactRedisUrl(url)}`);
      const target: RedisTarget = {
        kind: 'sentinel',
        sentinels: parseHostList(hosts, 26379, url),
        name: decodeURIComponent(name),
        db,
        tls: scheme === 'rediss+sentinel',
        ...auth,
      };
      const su = query.get('sentinelUsername');
      const sp = query.get('sentinelPassword');
      if (su !== null && su !== '') target.sentinelUsername = su;
      if (sp !== null && sp !== '') target.sentinelPassword = sp;
      return target;
    }
    case 'redis+cluster':
    case 'rediss+cluster':
      if (path !== '') throw new Error(`Redis Cluster has no databases: remove "/${path}" from ${redactRedisUrl(url)}`);
      return { kind: 'cluster', nodes: parseHostList(hosts, 6379, url), tls: scheme === 'rediss+cluster', ...auth };
    default:
      throw new Error(
        `unsupported Redis URL scheme "${scheme}:" in ${redactRedisUrl(url)} (redis, rediss, redis+sentinel, rediss+sentinel, redis+cluster, rediss+cluster)`,
      );
  }
}

/** The URL with any password (userinfo or `sentinelPassword=`) replaced by `***`, for logs and errors. */
export function redactRedisUrl(url: string): string {
  return url
    .replace(/^([a-z][a-z0-9+.-]*:\/\/)([^@/?#]*)@/i, (_all, scheme: string, userinfo: string) => {
      const colon = userinfo.indexOf(':');
      return colon < 0 ? `${scheme}${userinfo}@` : `${scheme}${userinfo.slice(0, colon)}:***@`;
    })
    .replace(/([?&]sentinelPassword=)[^&#]*/i, '$1***');
}

/** After a failover a client may still talk to a demoted primary: reconnect (the failed call is not resent). */
function reconnectOnReadonly(err: Error): boolean {
  return err.message.startsWith('READONLY');
}

function roleOptions(role: RedisRole, opts: RedisClientOptions): RedisOptions {
  const common: RedisOptions = {
    connectTimeout: opts.connectTimeoutMs ?? 2000,
    enableReadyCheck: true,
    reconnectOnError: reconnectOnReadonly,
    // How long disconnect() waits for a socket to close before destroying it. ioredis arms this timer
    // even for a socket that is already gone (Redis down), which would keep the process alive for
    // the default 2 s after close().
    disconnectTimeout: 200,
    // RESP2: every Redis version and managed service speaks it, and nothing here needs RESP3.
    protocol: 2,
    // Reconnect within about 2 s of Redis coming back (ioredis' own backoff grows to 5 s), so held
    // approvals fail closed for no longer than the outage; the jitter spreads replicas out.
    retryStrategy: (attempt: number) => Math.min(attempt * 50, 2000) + Math.floor(Math.random() * 100),
  };
  if (opts.connectionName !== undefined) common.connectionName = opts.connectionName;
  if (role === 'command') {
    return {
      ...common,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: opts.commandTimeoutMs ?? 1000,
    };
  }
  return { ...common, enableOfflineQueue: true, maxRetriesPerRequest: null, autoResubscribe: false };
}

/** A new ioredis client for `url` (a string or a parsed target) in the given role. It connects at once. */
export function createRedisClient(url: string | RedisTarget, role: RedisRole, opts: RedisClientOptions = {}): RedisClient {
  const target = typeof url === 'string' ? parseRedisUrl(url) : url;
  if (opts.tlsCa !== undefined && !target.tls) throw new Error('a Redis CA is for TLS: use a rediss:// (or rediss+sentinel://, rediss+cluster://) URL');
  const options = roleOptions(role, opts);
  // Node verifies the server's certificate (and name) in every case; a CA given replaces the system's roots.
  const tls = opts.tlsCa === undefined ? {} : { ca: opts.tlsCa };
  switch (target.kind) {
    case 'standalone':
      return new Redis(target.url, { ...options, ...(target.password === undefined ? {} : { password: target.password }), ...(target.tls ? { tls } : {}) });
    case 'sentinel': {
      const o: RedisOptions = {
        ...options,
        sentinels: target.sentinels,
        name: target.name,
        role: 'master',
        db: target.db,
        failoverDetector: true,
      };
      if (target.username !== undefined) o.username = target.username;
      if (target.password !== undefined) o.password = target.password;
      if (target.sentinelUsername !== undefined) o.sentinelUsername = target.sentinelUsername;
      if (target.sentinelPassword !== undefined) o.sentinelPassword = target.sentinelPassword;
      if (target.tls) {
        o.tls = tls;
        o.sentinelTLS = tls;
        o.enableTLSForSentinelMode = true;
      }
      return new Redis(o);
    }
    case 'cluster': {
      const { enableOfflineQueue, ...nodeOptions } = options;
      if (target.username !== undefined) nodeOptions.username = target.username;
      if (target.password !== undefined) nodeOptions.password = target.password;
      if (target.tls) nodeOptions.tls = tls;
      const o: ClusterOptions = {
        enableOfflineQueue: enableOfflineQueue ?? true,
        enableReadyCheck: true,
        scaleReads: 'master',
        redisOptions: nodeOptions,
      };
      return new Cluster(target.nodes, o);
    }
  }
}
