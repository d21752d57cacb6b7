/**
 * The Redis approval store: any number of replicas sharing one Redis (standalone, Sentinel or Cluster)
 * act as one. Key layout, TTLs and failure behaviour are described in docs/redis.md.
 *
 * Every transition (create-or-join, expiry on read, decide, cancel, claim, setHolder) is ONE Lua script
 * (ioredis defineCommand: EVALSHA, EVAL on NOSCRIPT), so it is a compare-and-set that concurrent
 * callers on any replica agree on. Every script that changes a record PUBLISHes `{id,state,holder}` on
 * `{prefix}:changes`; a second connection subscribes and feeds `subscribe()` listeners.
 *
 * Cluster slots: all keys one script touches share the hash tag `{T}`, T = sha256(identity, digest)
 * (32 hex). The record key embeds that tag *and* the id (`{prefix}:approval:{T}:<id>`), and the
 * "unfinished approval for this identity+digest" pointer is `{prefix}:active:{T}`, so create-or-join
 * is one atomic script. Lookups by id go through `{prefix}:ref:<id>` → T (immutable, cached in process).
 *
 * Replies get lost or come late (a command timeout, a dropped connection, ioredis re-sending what was
 * in flight). Every changing script therefore carries an operation id that the record remembers
 * (`op:<id>` fields): a script that finds its own id answers with the record as it is, instead of
 * acting again or reporting a conflict. `run` re-sends a script whose reply failed to arrive, with the
 * same id, so the caller learns what actually happened rather than a timeout.
 */
import { createHash, randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { Cluster, Redis } from 'ioredis';
import type { Grant, GrantState } from './grants.js';
import type { ProbeResult } from './probes.js';
import { HISTORY_WINDOW_MS, type History } from './impact.js';
import { createRedisClient, parseRedisUrl, redactRedisUrl, type RedisClient } from './redis-connection.js';
import {
  DEFAULT_RETENTION_MS,
  type ApprovalRecord,
  type ApprovalState,
  type ApprovalStore,
  type ClaimResult,
  type DecideResult,
  type ForwardOutcome,
  type ChannelName,
  copyRef,
  type MessageRefs,
  type Notice,
  type StateChange,
  type Vote,
  type ApprovalEdit,
} from './types.js';


/** The part of a pino logger the store uses. */
export interface StoreLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface RedisStoreOptions {
  /** This replica's name (connection names, logs). */
  replica: string;
  /** Key prefix, without braces. Default `airlock`. */
  keyPrefix?: string;
  /** How long finished records are kept (ms). Default 24 h. */
  retentionMs?: number;
  logger?: StoreLogger;
}

export interface RedisStoreConnectOptions extends RedisStoreOptions {
  /** How long `connect` waits for both connections to be ready; 0 returns at once (ready() false until then). Default 5000. */
  readyTimeoutMs?: number;
  /** Per-command timeout (ms). Default 1000. */
  commandTimeoutMs?: number;
  /** The password, when not in the URL (REDIS_PASSWORD). */
  password?: string;
  /** CA certificates (PEM) for a `rediss…` URL whose server certificate a private CA signed. */
  tlsCa?: string;
}

// ---------------------------------------------------------------------------------------------------
// Lua. Conventions: ARGV[1] = now (ms), ARGV[2] = changes channel, ARGV[3] = now + retention (the
// PEXPIREAT of a record that finishes now); script-specific arguments follow. Nullable hash fields
// hold JSON text (`null`, a number or a string literal) prepared by the caller, so Lua never
// re-encodes a record (cjson would turn `[]` into `{}` and round numbers to 14 digits).
//
// Record hash fields: idj (JSON id), doc (JSON of the immutable part), state, expiresAt, required,
// votes (JSON array), holder, decidedAt, decidedBy, decisionReason, executedAt, executedBy.
// ---------------------------------------------------------------------------------------------------

const PRELUDE = `
local NOW = tonumber(ARGV[1])
local CHANNEL = ARGV[2]
local FINISH_AT = ARGV[3]

-- Announce a change. \`what\` says what people should be told ('requested', 'changed', 'escalated'),
-- each such change numbered by the record's version (a channel tells it once: see claimNotice);
-- 'quiet' announces without a new version (who holds the request: nothing to tell people).
local function publish(rec, what)
  local f = redis.call('HMGET', rec, 'idj', 'state', 'holder')
  local version = ''
  if what ~= 'quiet' then version = ',"version":' .. redis.call('HINCRBY', rec, 'version', 1) end
  redis.call('PUBLISH', CHANNEL, '{"id":' .. f[1] .. ',"state":"' .. f[2] .. '","holder":' .. f[3] .. ',"what":"' .. what .. '"' .. version .. '}')
end

-- The record no longer answers for its identity+digest: drop the join pointer if it points here.
local function release(rec, active)
  if redis.call('GET', active) == rec then redis.call('DEL', active) end
end

-- A transition to a final state: release the join pointer (unless the record keeps answering for
-- identical requests, as a denial does until expiresAt), announce, and keep the record for the
-- retention period from now. The reply is captured first: with a tiny retention PEXPIREAT may
-- delete the key at once.
local function finish(rec, active, keep_pointer)
  if not keep_pointer then release(rec, active) end
  publish(rec, 'changed')
  local out = redis.call('HGETALL', rec)
  redis.call('PEXPIREAT', rec, FINISH_AT)
  return {'ok', out}
end

-- Lazy expiry: pending or approved-unspent past expiresAt becomes expired (stored and announced).
-- Returns the state after that, or false when the record does not exist.
local function expire_due(rec, active)
  local f = redis.call('HMGET', rec, 'state', 'expiresAt')
  local st = f[1]
  if (st == 'pending' or st == 'approved') and NOW >= tonumber(f[2]) then
    if st == 'pending' then
      redis.call('HSET', rec, 'state', 'expired', 'decidedAt', f[2])
    else
      redis.call('HSET', rec, 'state', 'expired')
    end
    release(rec, active)
    publish(rec, 'changed')
    return 'expired'
  end
  return st
end

-- An operation this record already carried out (re-sent after a lost or late reply): the outcome
-- is the record as it is now, so the retry neither acts twice nor reports its own effect as a conflict.
local function replayed(rec, op)
  if redis.call('HEXISTS', rec, 'op:' .. op) == 1 then return {'ok', redis.call('HGETALL', rec)} end
  return nil
end

-- A grant that exists, is not revoked or expired, and has a use left.
local function grant_usable(key)
  local f = redis.call('HMGET', key, 'usesLeft', 'expiresAt', 'revokedAt')
  return f[1] and f[3] == 'null' and NOW < tonumber(f[2]) and tonumber(f[1]) > 0
end

-- Whether a record answers for its identity+digest: unfinished, or denied and not yet past expiresAt
-- (a denial stands for identical retries; the agent can't re-ask until someone gives in).
local function answers(rec, st)
  if st == 'pending' or st == 'approved' then return true end
  return st == 'denied' and NOW < tonumber(redis.call('HGET', rec, 'expiresAt'))
end
`;

const SCRIPTS = {
  // KEYS: record, active. Returns {'ok', hgetall} | {'not_found'}
  airlockGet: {
    keys: 2,
    lua: `
local st = expire_due(KEYS[1], KEYS[2])
if not st then return {'not_found'} end
return {'ok', redis.call('HGETALL', KEYS[1])}
`,
  },
  // KEYS: active. Returns {'ok', hgetall} | {'none'}
  airlockActive: {
    keys: 1,
    lua: `
local cur = redis.call('GET', KEYS[1])
if not cur then return {'none'} end
-- cur is a record key with the same hash tag as KEYS[1], hence in the same slot.
local st = expire_due(cur, KEYS[1])
if st and answers(cur, st) then return {'ok', redis.call('HGETALL', cur)} end
redis.call('DEL', KEYS[1])
return {'none'}
`,
  },
  // KEYS: new record, active. ARGV[4] idj, [5] doc, [6] expiresAt, [7] required, [8] holder JSON,
  // [9] record PEXPIREAT (expiresAt + retention). Returns {'created'} | {'joined', hgetall} |
  // {'mine', hgetall} (the id exists: ids are fresh per call, so an earlier attempt of this one made it)
  airlockCreate: {
    keys: 2,
    lua: `
if redis.call('EXISTS', KEYS[1]) == 1 then return {'mine', redis.call('HGETALL', KEYS[1])} end
local cur = redis.call('GET', KEYS[2])
if cur then
  local st = expire_due(cur, KEYS[2])
  if st and answers(cur, st) then return {'joined', redis.call('HGETALL', cur)} end
  redis.call('DEL', KEYS[2])
end
redis.call('HSET', KEYS[1], 'idj', ARGV[4], 'doc', ARGV[5], 'state', 'pending', 'expiresAt', ARGV[6],
  'required', ARGV[7], 'votes', '[]', 'holder', ARGV[8], 'decidedAt', 'null', 'decidedBy', 'null',
  'decisionReason', 'null', 'executedAt', 'null', 'executedBy', 'null')
redis.call('PEXPIREAT', KEYS[1], ARGV[9])
redis.call('SET', KEYS[2], KEYS[1])
redis.call('PEXPIREAT', KEYS[2], ARGV[6])
publish(KEYS[1], 'requested')
return {'created'}
`,
  },
  // KEYS: record, active. ARGV[4] approver, [5] approver JSON, [6] verdict, [7] reason JSON, [8] op,
  // [9] the vote's seal JSON ('' for none).
  airlockDecide: {
    keys: 2,
    lua: `
local again = replayed(KEYS[1], ARGV[8])
if again then return again end
local st = expire_due(KEYS[1], KEYS[2])
if not st then return {'not_found'} end
if st ~= 'pending' then return {'not_pending', redis.call('HGETALL', KEYS[1])} end
if ARGV[6] == 'deny' then
  redis.call('HSET', KEYS[1], 'op:' .. ARGV[8], '1')
  redis.call('HSET', KEYS[1], 'state', 'denied', 'decidedAt', ARGV[1], 'decidedBy', ARGV[5], 'decisionReason', ARGV[7])
  return finish(KEYS[1], KEYS[2], true)
end
local votes = redis.call('HGET', KEYS[1], 'votes')
local list = cjson.decode(votes)
for _, v in ipairs(list) do
  if v.approver == ARGV[4] then return {'already_voted', redis.call('HGETALL', KEYS[1])} end
end
redis.call('HSET', KEYS[1], 'op:' .. ARGV[8], '1')
local entry = '{"approver":' .. ARGV[5] .. ',"at":' .. ARGV[1]
if ARGV[9] ~= '' then entry = entry .. ',"seal":' .. ARGV[9] end
entry = entry .. '}'
if #list == 0 then votes = '[' .. entry .. ']' else votes = string.sub(votes, 1, -2) .. ',' .. entry .. ']' end
redis.call('HSET', KEYS[1], 'votes', votes)
if #list + 1 >= tonumber(redis.call('HGET', KEYS[1], 'required')) then
  redis.call('HSET', KEYS[1], 'state', 'approved', 'decidedAt', ARGV[1], 'decidedBy', ARGV[5])
end
publish(KEYS[1], 'changed')
return {'ok', redis.call('HGETALL', KEYS[1])}
`,
  },
  // KEYS: record, active. ARGV[4] edit JSON, [5] required, [6] votes JSON ('[]' or the editor's vote),
  // [7] the editor JSON (decidedBy if that vote approves it), [8] op.
  airlockEdit: {
    keys: 2,
    lua: `
local again = replayed(KEYS[1], ARGV[8])
if again then return again end
local st = expire_due(KEYS[1], KEYS[2])
if not st then return {'not_found'} end
if st ~= 'pending' then return {'not_pending', redis.call('HGETALL', KEYS[1])} end
redis.call('HSET', KEYS[1], 'op:' .. ARGV[8], '1', 'edit', ARGV[4], 'required', ARGV[5], 'votes', ARGV[6])
if ARGV[6] ~= '[]' and tonumber(ARGV[5]) <= 1 then
  redis.call('HSET', KEYS[1], 'state', 'approved', 'decidedAt', ARGV[1], 'decidedBy', ARGV[7])
end
publish(KEYS[1], 'changed')
return {'ok', redis.call('HGETALL', KEYS[1])}
`,
  },
  // KEYS: record, active. ARGV[4] by JSON, [5] reason JSON, [6] op.
  airlockCancel: {
    keys: 2,
    lua: `
local again = replayed(KEYS[1], ARGV[6])
if again then return again end
local st = expire_due(KEYS[1], KEYS[2])
if not st then return {'not_found'} end
if st ~= 'pending' and st ~= 'approved' then return {'not_pending', redis.call('HGETALL', KEYS[1])} end
redis.call('HSET', KEYS[1], 'op:' .. ARGV[6], '1', 'state', 'cancelled', 'decidedAt', ARGV[1], 'decidedBy', ARGV[4], 'decisionReason', ARGV[5])
return finish(KEYS[1], KEYS[2])
`,
  },
  // KEYS: record, active. ARGV[4] replica JSON, [5] op.
  airlockClaim: {
    keys: 2,
    lua: `
local again = replayed(KEYS[1], ARGV[5])
if again then return again end
local st = expire_due(KEYS[1], KEYS[2])
if not st then return {'not_found'} end
if st == 'expired' then return {'lapsed', redis.call('HGETALL', KEYS[1])} end
if st ~= 'approved' then return {'not_approved', redis.call('HGETALL', KEYS[1])} end
redis.call('HSET', KEYS[1], 'op:' .. ARGV[5], '1', 'state', 'executed', 'executedAt', ARGV[1], 'executedBy', ARGV[4])
return finish(KEYS[1], KEYS[2])
`,
  },
  // KEYS: record, active. Pending and not yet escalated → escalatedAt = now (announced).
  airlockEscalate: {
    keys: 2,
    lua: `
local st = expire_due(KEYS[1], KEYS[2])
if st ~= 'pending' then return {'no'} end
if redis.call('HSETNX', KEYS[1], 'escalatedAt', ARGV[1]) == 0 then return {'no'} end
publish(KEYS[1], 'escalated')
return {'ok', redis.call('HGETALL', KEYS[1])}
`,
  },
  // KEYS: grant. Takes one use if any is left, unexpired and unrevoked. Returns {'ok', hgetall} | {'no'}
  airlockUseGrant: {
    keys: 1,
    lua: `
if not grant_usable(KEYS[1]) then return {'no'} end
redis.call('HINCRBY', KEYS[1], 'usesLeft', -1)
return {'ok', redis.call('HGETALL', KEYS[1])}
`,
  },
  // KEYS: grant. ARGV[4] by JSON. Returns {'ok', hgetall} | {'no'}
  airlockRevokeGrant: {
    keys: 1,
    lua: `
if not grant_usable(KEYS[1]) then return {'no'} end
redis.call('HSET', KEYS[1], 'revokedAt', ARGV[1], 'revokedBy', ARGV[4])
return {'ok', redis.call('HGETALL', KEYS[1])}
`,
  },
  // KEYS: record. ARGV[4] field name, [5] its JSON value, [6] '1' when people should see it (a changed
  // message). No state changes: nobody waits on these.
  airlockSetField: {
    keys: 1,
    lua: `
if redis.call('EXISTS', KEYS[1]) == 0 then return {'not_found'} end
redis.call('HSET', KEYS[1], ARGV[4], ARGV[5])
if ARGV[6] == '1' then publish(KEYS[1], 'changed') end
return {'ok'}
`,
  },
  // KEYS: record. ARGV[4] holder JSON.
  airlockSetHolder: {
    keys: 1,
    lua: `
if redis.call('EXISTS', KEYS[1]) == 0 then return {'not_found'} end
redis.call('HSET', KEYS[1], 'holder', ARGV[4])
publish(KEYS[1], 'quiet')
return {'ok'}
`,
  },
} as const;

type ScriptName = keyof typeof SCRIPTS;
type ScriptReply = [string, string[]?];
type ScriptFn = (...keysAndArgs: (string | number)[]) => Promise<unknown>;

const STATES: ReadonlySet<string> = new Set<ApprovalState>(['pending', 'approved', 'denied', 'expired', 'cancelled', 'executed']);
const WHATS: ReadonlySet<string> = new Set(['requested', 'changed', 'escalated', 'quiet']);

/** The immutable part of a record, stored as JSON in the `doc` field. */
type RecordDoc = Omit<
  ApprovalRecord,
  'state' | 'approvals' | 'holder' | 'decidedAt' | 'decidedBy' | 'decisionReason' | 'executedAt' | 'executedBy' | 'slack' | 'teams' | 'forwarded' | 'edit' | 'escalatedAt' | 'probes'
>;

function docOf(r: ApprovalRecord): RecordDoc {
  return {
    id: r.id,
    digest: r.digest,
    identity: r.identity,
    owner: r.owner,
    rule: r.rule,
    ruleDescription: r.ruleDescription,
    reason: r.reason,
    eligible: r.eligible,
    required: r.required,
    channel: r.channel,
    teamsConversation: r.teamsConversation,
    request: r.request,
    createdAt: r.createdAt,
    expiresAt: r.expiresAt,
    seal: r.seal,
    impact: r.impact,
    escalation: r.escalation,
    grantCaps: r.grantCaps,
  };
}

function fromHash(flat: string[]): ApprovalRecord {
  const h = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) h.set(flat[i] as string, flat[i + 1] as string);
  const field = (name: string): string => {
    const v = h.get(name);
    if (v === undefined) throw new Error(`approval record in Redis lacks field "${name}"`);
    return v;
  };
  const state = field('state');
  if (!STATES.has(state)) throw new Error(`approval record in Redis has unknown state "${state}"`);
  const doc = JSON.parse(field('doc')) as RecordDoc;
  return {
    ...doc,
    state: state as ApprovalState,
    approvals: JSON.parse(field('votes')) as ApprovalRecord['approvals'],
    holder: JSON.parse(field('holder')) as string | null,
    decidedAt: JSON.parse(field('decidedAt')) as number | null,
    decidedBy: JSON.parse(field('decidedBy')) as string | null,
    decisionReason: JSON.parse(field('decisionReason')) as string | null,
    executedAt: JSON.parse(field('executedAt')) as number | null,
    executedBy: JSON.parse(field('executedBy')) as string | null,
    // Set later, if ever.
    slack: JSON.parse(h.get('slack') ?? 'null') as ApprovalRecord['slack'],
    teams: JSON.parse(h.get('teams') ?? 'null') as ApprovalRecord['teams'],
    forwarded: JSON.parse(h.get('forwarded') ?? 'null') as ApprovalRecord['forwarded'],
    edit: JSON.parse(h.get('edit') ?? 'null') as ApprovalRecord['edit'],
    escalatedAt: JSON.parse(h.get('escalatedAt') ?? 'null') as number | null,
    probes: JSON.parse(h.get('probes') ?? 'null') as ApprovalRecord['probes'],
    seal: doc.seal ?? null,
    impact: doc.impact ?? null,
    escalation: doc.escalation ?? null,
    grantCaps: doc.grantCaps ?? null,
    teamsConversation: doc.teamsConversation ?? null,
  };
}

function parseChange(message: string): StateChange | null {
  try {
    const v = JSON.parse(message) as unknown;
    if (typeof v !== 'object' || v === null) return null;
    const { id, state, holder, what, version } = v as Record<string, unknown>;
    if (typeof id !== 'string' || typeof state !== 'string' || !STATES.has(state)) return null;
    if (holder !== null && holder !== undefined && typeof holder !== 'string') return null;
    const change: StateChange = { id, state: state as ApprovalState, holder: holder ?? null };
    if (typeof what === 'string' && WHATS.has(what) && what !== 'quiet' && typeof version === 'number') return { ...change, notice: { what: what as Notice['what'], version } };
    return change;
  } catch {
    return null;
  }
}

/**
 * 32 hex chars naming an identity and something of it (a request digest: the hash tag shared by every
 * key of one identity+digest; a rule: its history and grants). Braces and colons in names can't interfere.
 */
export function joinTag(identity: string | null, second: string): string {
  return createHash('sha256').update(JSON.stringify([identity, second])).digest('hex').slice(0, 32);
}

const REF_CACHE_MAX = 10_000;
/** Ids checked per pipeline by settled(). */
const SETTLED_SLICE = 500;
const LIST_PAGE = 100;
/**
 * A script whose reply did not arrive (timeout, dropped connection) is sent again, after 100 ms, then
 * 200, 400…, while less than this has passed since the first attempt: long enough for a reconnect.
 */
const RETRY_BUDGET_MS = 2500;
const FIRST_PAUSE_MS = 100;

/** Redis answered (a script or type error): re-sending would get the same answer. */
function answeredByRedis(err: unknown): boolean {
  return err instanceof Error && err.name === 'ReplyError';
}

/** The command was never sent (no connection): it cannot have taken effect. Anything else may be a lost reply. */
function neverSent(err: unknown): boolean {
  return err instanceof Error && /Stream isn't writeable|Connection is closed|Cluster isn't ready/.test(err.message) && !/timed out/.test(err.message);
}

function waitReady(client: RedisClient, ms: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      reject(new Error(`Redis not ready after ${ms} ms`));
    }, ms);
    timer.unref();
    const onReady = (): void => {
      clearTimeout(timer);
      resolve();
    };
    client.once('ready', onReady);
  });
}

export class RedisStore implements ApprovalStore {
  private readonly prefix: string;
  private readonly retentionMs: number;
  private readonly changesChannel: string;
  private readonly listKey: string;
  private readonly listeners = new Set<(change: StateChange) => void>();
  private readonly reconnectListeners = new Set<() => void>();
  private readonly subscribeWaiters = new Set<() => void>();
  private readonly refCache = new Map<string, string>();
  private readonly scripts: Record<ScriptName, ScriptFn>;
  private subscribedOnce = false;
  private reconnectPending = false;
  private subscribed = false;
  private closed = false;

  /**
   * Connect to `url` (see redis-connection.ts for the forms) and wait until both connections are ready
   * (up to `readyTimeoutMs`; on timeout the clients are closed and the promise rejects).
   */
  static async connect(url: string, opts: RedisStoreConnectOptions): Promise<RedisStore> {
    const target = parseRedisUrl(url, opts.password);
    const tls = opts.tlsCa === undefined ? {} : { tlsCa: opts.tlsCa };
    const command = createRedisClient(target, 'command', { commandTimeoutMs: opts.commandTimeoutMs, connectionName: `airlock:${opts.replica}:cmd`, ...tls });
    const subscriber = createRedisClient(target, 'subscriber', { connectionName: `airlock:${opts.replica}:sub`, ...tls });
    const store = new RedisStore(command, subscriber, opts);
    const timeout = opts.readyTimeoutMs ?? 5000;
    if (timeout > 0) {
      try {
        await Promise.all([waitReady(command, timeout), store.waitSubscribed(timeout)]);
      } catch (err) {
        await store.close();
        throw new Error(`Redis at ${redactRedisUrl(url)} is not reachable: ${(err as Error).message}`);
      }
    }
    return store;
  }

  /**
   * Wrap existing clients. `command` should fail fast (enableOfflineQueue: false, maxRetriesPerRequest: 1,
   * commandTimeout); `subscriber` is a separate connection used only for SUBSCRIBE (for a standalone or
   * Sentinel client set `autoResubscribe: false`: the store subscribes on every `ready` itself). The
   * store owns both from now on: `close()` disconnects them.
   */
  constructor(
    private readonly command: RedisClient,
    private readonly subscriber: RedisClient,
    private readonly opts: RedisStoreOptions,
  ) {
    const prefix = opts.keyPrefix ?? 'airlock';
    if (/[{}]/.test(prefix)) throw new Error('keyPrefix must not contain braces (they would change the hash tag)');
    this.prefix = prefix;
    this.retentionMs = opts.retentionMs ?? DEFAULT_RETENTION_MS;
    this.changesChannel = `${prefix}:changes`;
    this.listKey = `${prefix}:list`;

    const scripts: Partial<Record<ScriptName, ScriptFn>> = {};
    for (const [name, s] of Object.entries(SCRIPTS) as [ScriptName, { keys: number; lua: string }][]) {
      command.defineCommand(name, { numberOfKeys: s.keys, lua: PRELUDE + s.lua });
      const fn = (command as unknown as Record<string, ScriptFn>)[name];
      if (typeof fn !== 'function') throw new Error(`ioredis did not define ${name}`);
      scripts[name] = fn.bind(command);
    }
    this.scripts = scripts as Record<ScriptName, ScriptFn>;

    this.watch(command, 'command');
    this.watch(subscriber, 'subscriber');
    subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.changesChannel) return;
      const change = parseChange(message);
      if (change === null) {
        this.opts.logger?.warn({ channel }, 'ignoring malformed approval change message');
        return;
      }
      this.emit(change);
    });
    subscriber.on('ready', () => void this.resubscribe());
    command.on('ready', () => this.maybeAnnounceReconnect());
    if (subscriber.status === 'ready') void this.resubscribe();
  }

  // ----- connection management -------------------------------------------------------------------

  private watch(client: RedisClient, role: string): void {
    let lastError: string | null = null;
    client.on('error', (err: Error) => {
      if (err.message === lastError) return; // one line per distinct error while reconnecting
      lastError = err.message;
      this.opts.logger?.warn({ err: { message: err.message }, role, replica: this.opts.replica }, 'redis connection error');
    });
    // Cluster reports per-node trouble as 'node error' (without a listener it would go unlogged).
    client.on('node error', (err: Error, node: string) => {
      this.opts.logger?.warn({ err: { message: err.message }, node, role, replica: this.opts.replica }, 'redis cluster node error');
    });
    client.on('ready', () => {
      if (lastError !== null) this.opts.logger?.info({ role, replica: this.opts.replica }, 'redis connection ready again');
      lastError = null;
    });
    client.on('close', () => {
      if (role === 'subscriber') this.subscribed = false;
    });
  }

  private async resubscribe(): Promise<void> {
    if (this.closed) return;
    try {
      await (this.subscriber as Redis).subscribe(this.changesChannel);
    } catch (err) {
      // The connection dropped again; the next `ready` retries.
      this.opts.logger?.warn({ err: { message: (err as Error).message } }, 'redis subscribe failed');
      return;
    }
    this.subscribed = true;
    for (const w of [...this.subscribeWaiters]) w();
    this.subscribeWaiters.clear();
    if (!this.subscribedOnce) {
      this.subscribedOnce = true;
      return;
    }
    this.reconnectPending = true;
    this.maybeAnnounceReconnect();
  }

  /** Tell reconnect listeners once the subscriber re-subscribed AND commands work again (so they can re-read). */
  private maybeAnnounceReconnect(): void {
    if (!this.reconnectPending || !this.ready()) return;
    this.reconnectPending = false;
    for (const l of [...this.reconnectListeners]) {
      try {
        l();
      } catch (err) {
        this.opts.logger?.warn({ err: { message: (err as Error).message } }, 'approval store reconnect listener threw');
      }
    }
  }

  private waitSubscribed(ms: number): Promise<void> {
    if (this.subscribed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = (): void => {
        clearTimeout(deadline);
        resolve();
      };
      const deadline = setTimeout(() => {
        this.subscribeWaiters.delete(waiter);
        reject(new Error(`Redis subscriber not ready after ${ms} ms`));
      }, ms);
      deadline.unref();
      this.subscribeWaiters.add(waiter);
    });
  }

  /**
   * Called after the subscriber connection came back and re-subscribed (not on the first subscribe):
   * changes published while it was away are lost, so re-read the ids you are waiting on.
   * Returns an unsubscribe function.
   */
  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  ready(): boolean {
    return !this.closed && this.command.status === 'ready' && this.subscriber.status === 'ready' && this.subscribed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    this.reconnectListeners.clear();
    await Promise.all([this.command, this.subscriber].map((c) => quitClient(c)));
  }

  // ----- keys --------------------------------------------------------------------------------------

  private recordKey(tag: string, id: string): string {
    return `${this.prefix}:approval:{${tag}}:${id}`;
  }
  private activeKey(tag: string): string {
    return `${this.prefix}:active:{${tag}}`;
  }
  private refKey(id: string): string {
    return `${this.prefix}:ref:${id}`;
  }
  /** Every unfinished (pending or approved, unspent) record (score: expiresAt): what may need expiring, and the pending list. */
  private get openKey(): string {
    return `${this.prefix}:open`;
  }
  /** The requests an identity has had pending (score: expiresAt), kept for counting them. */
  private pendingKey(identity: string | null): string {
    return `${this.prefix}:pending-of:${identity === null ? '~anonymous' : identity}`;
  }

  private remember(id: string, tag: string): void {
    if (this.refCache.size >= REF_CACHE_MAX) {
      const oldest = this.refCache.keys().next();
      if (!oldest.done) this.refCache.delete(oldest.value);
    }
    this.refCache.set(id, tag);
  }

  /** The hash tag of an approval id, or null when Redis knows no such id. */
  async settled(ids: readonly string[], now: number): Promise<string[]> {
    const out: string[] = [];
    // Two small fields per record, in slices: held requests are many and their records (bodies
    // included) large; reading them whole every few seconds would stall the command connection.
    // Concurrent commands go out back to back: a pipeline in effect that, unlike ioredis's pipeline
    // object, may span Cluster slots.
    for (let i = 0; i < ids.length; i += SETTLED_SLICE) {
      const slice = ids.slice(i, i + SETTLED_SLICE);
      const states = await Promise.all(
        slice.map(async (id) => {
          const tag = await this.tagOf(id);
          return tag === null ? null : this.command.hmget(this.recordKey(tag, id), 'state', 'expiresAt');
        }),
      );
      slice.forEach((id, j) => {
        const [state, expiresAt] = states[j] ?? [null, null];
        if (state !== 'pending' || now >= Number(expiresAt)) out.push(id);
      });
    }
    return out;
  }

  private async tagOf(id: string): Promise<string | null> {
    const cached = this.refCache.get(id);
    if (cached !== undefined) return cached;
    const tag = await this.command.get(this.refKey(id));
    if (tag !== null) this.remember(id, tag);
    return tag;
  }

  private async run(name: ScriptName, keys: string[], now: number, ...args: (string | number)[]): Promise<ScriptReply> {
    if (!Number.isFinite(now)) throw new TypeError(`now must be a finite number of ms, got ${now}`);
    const finishAt = Math.ceil(now + this.retentionMs);
    const started = performance.now();
    // Whether an attempt may have run without its reply reaching us: only then is asking again worth a wait.
    let unknown = false;
    for (let pause = FIRST_PAUSE_MS; ; pause *= 2) {
      try {
        return (await this.scripts[name](...keys, String(now), this.changesChannel, String(finishAt), ...args)) as ScriptReply;
      } catch (err) {
        unknown ||= !neverSent(err);
        if (!unknown || answeredByRedis(err) || this.closed || performance.now() - started >= RETRY_BUDGET_MS) throw err;
        // Scripts are safe to re-send: changing ones carry an operation id the record remembers.
        this.opts.logger?.warn({ err: { message: (err as Error).message }, script: name }, 'no reply from Redis; asking again');
        await delay(pause);
      }
    }
  }

  // ----- ApprovalStore ---------------------------------------------------------------------------

  async createOrJoin(record: ApprovalRecord, now: number): Promise<{ created: boolean; record: ApprovalRecord }> {
    const tag = joinTag(record.identity, record.digest);
    const id = record.id;
    const keepUntil = Math.ceil(record.expiresAt + this.retentionMs);
    const member = `${tag}:${id}`;
    // The ref (id → tag) and the list entry are written first, in their own slots: a record that
    // exists is then always findable by id and listed. If we join instead, both are removed again.
    const [setRef] = await Promise.all([
      this.command.set(this.refKey(id), tag, 'PXAT', keepUntil, 'NX'),
      this.command.zadd(this.listKey, record.createdAt, member),
    ]);
    if (setRef === null) {
      const existing = await this.command.get(this.refKey(id));
      if (existing !== tag) throw new Error(`approval id ${id} already exists`);
    }
    this.remember(id, tag);

    const fresh: ApprovalRecord = {
      ...structuredClone(record),
      state: 'pending',
      approvals: [],
      holder: record.holder ?? null,
      decidedAt: null,
      decidedBy: null,
      decisionReason: null,
      executedAt: null,
      executedBy: null,
    };
    const reply = await this.run(
      'airlockCreate',
      [this.recordKey(tag, id), this.activeKey(tag)],
      now,
      JSON.stringify(id),
      JSON.stringify(docOf(fresh)),
      String(record.expiresAt),
      String(record.required),
      JSON.stringify(fresh.holder),
      String(keepUntil),
    );
    switch (reply[0]) {
      case 'created':
        await this.indexCreated(record, member);
        return { created: true, record: fresh };
      case 'mine': {
        const mine = recordOf(reply);
        if (mine === null) throw new Error('Redis returned an empty approval record');
        await this.indexCreated(record, member);
        return { created: true, record: mine };
      }
      case 'joined': {
        const joined = recordOf(reply);
        if (joined === null) throw new Error('Redis returned an empty approval record');
        await this.forget(id, member);
        return { created: false, record: joined };
      }
      default:
        throw new Error(`unexpected reply from Redis: ${String(reply[0])}`);
    }
  }

  /**
   * Index a new record outside its script (other slots): counting reads each entry's state, so an
   * entry that outlives its record's pending time costs a read, never a wrong count.
   */
  private async indexCreated(record: ApprovalRecord, member: string): Promise<void> {
    const pending = this.pendingKey(record.identity);
    await this.command.zadd(pending, record.expiresAt, member);
    await this.command.zadd(this.openKey, record.expiresAt, member);
    // Kept until the latest expiry of its entries (GT leaves a key without a TTL alone: NX sets the first).
    await this.command.pexpireat(pending, Math.ceil(record.expiresAt), 'NX');
    await this.command.pexpireat(pending, Math.ceil(record.expiresAt), 'GT');
    if (record.escalation !== null) await this.command.zadd(this.escalationsKey, record.escalation.at, member);
  }

  /** Records that escalate when nobody decided (score: when). */
  private get escalationsKey(): string {
    return `${this.prefix}:escalations`;
  }

  async escalateDue(now: number): Promise<ApprovalRecord[]> {
    const due = await this.command.zrangebyscore(this.escalationsKey, '-inf', String(now));
    const out: ApprovalRecord[] = [];
    for (const member of due) {
      const colon = member.indexOf(':');
      const tag = member.slice(0, colon);
      const reply = await this.run('airlockEscalate', [this.recordKey(tag, member.slice(colon + 1)), this.activeKey(tag)], now);
      const rec = reply[0] === 'ok' ? recordOf(reply) : null;
      if (rec !== null) out.push(rec);
    }
    if (due.length > 0) await this.command.zrem(this.escalationsKey, ...due);
    return out;
  }

  /** Undo the ref and list entry of an id that was not used (best effort: both also expire). */
  private async forget(id: string, member: string): Promise<void> {
    this.refCache.delete(id);
    try {
      await Promise.all([this.command.del(this.refKey(id)), this.command.zrem(this.listKey, member)]);
    } catch (err) {
      this.opts.logger?.warn({ err: { message: (err as Error).message }, id }, 'could not remove an unused approval id');
    }
  }

  private async getByTag(tag: string, id: string, now: number): Promise<ApprovalRecord | null> {
    const reply = await this.run('airlockGet', [this.recordKey(tag, id), this.activeKey(tag)], now);
    return reply[0] === 'ok' ? recordOf(reply) : null;
  }

  async get(id: string, now: number): Promise<ApprovalRecord | null> {
    const tag = await this.tagOf(id);
    return tag === null ? null : this.getByTag(tag, id, now);
  }

  async expireDue(now: number): Promise<string[]> {
    const due = await this.command.zrangebyscore(this.openKey, '-inf', String(now));
    const expired: string[] = [];
    for (const member of due) {
      const colon = member.indexOf(':');
      const id = member.slice(colon + 1);
      // Reading it expires it (in the script, announced to every replica).
      const rec = await this.getByTag(member.slice(0, colon), id, now);
      if (rec?.state === 'expired') expired.push(id);
    }
    if (due.length > 0) await this.command.zrem(this.openKey, ...due);
    return expired;
  }

  async claimNotice(id: string, version: number): Promise<boolean> {
    const tag = await this.tagOf(id);
    if (tag === null) return false;
    return (await this.command.hsetnx(this.recordKey(tag, id), `notice:${version}`, '1')) === 1;
  }

  async claimExpiryRecord(id: string): Promise<boolean> {
    const tag = await this.tagOf(id);
    if (tag === null) return false;
    return (await this.command.hsetnx(this.recordKey(tag, id), 'expiryRecorded', '1')) === 1;
  }

  /** Unfinished records in `state`, read through the open index: no scan of every retained record. */
  private async listOpen(state: 'pending' | 'approved', limit: number, now: number): Promise<ApprovalRecord[]> {
    const members = await this.command.zrange(this.openKey, '0', '-1');
    const records = await Promise.all(
      members.map((member) => {
        const colon = member.indexOf(':');
        return this.getByTag(member.slice(0, colon), member.slice(colon + 1), now);
      }),
    );
    const finished = members.filter((_, i) => records[i] === null || (records[i]!.state !== 'pending' && records[i]!.state !== 'approved'));
    if (finished.length > 0) await this.command.zrem(this.openKey, ...finished);
    return records
      .filter((r): r is ApprovalRecord => r !== null && r.state === state)
      .sort((a, b) => b.createdAt - a.createdAt)
      .slice(0, limit);
  }

  async countPending(identity: string | null, now: number, cap?: number): Promise<number> {
    const key = this.pendingKey(identity);
    await this.command.zremrangebyscore(key, '-inf', String(now));
    // Entries outlive their record's pending time, so the set's size is an upper bound: below the cap,
    // it settles the comparison without reading every entry's state (O(log n) per held request).
    const bound = await this.command.zcard(key);
    if (cap !== undefined && bound < cap) return bound;
    const members = await this.command.zrange(key, '0', '-1');
    const states = await Promise.all(
      members.map((member) => {
        const colon = member.indexOf(':');
        return this.command.hmget(this.recordKey(member.slice(0, colon), member.slice(colon + 1)), 'state', 'expiresAt');
      }),
    );
    const done = members.filter((_, i) => states[i]?.[0] !== 'pending' || now >= Number(states[i]?.[1]));
    if (done.length > 0) await this.command.zrem(key, ...done);
    return members.length - done.length;
  }

  async findActive(identity: string | null, digest: string, now: number): Promise<ApprovalRecord | null> {
    const reply = await this.run('airlockActive', [this.activeKey(joinTag(identity, digest))], now);
    return reply[0] === 'ok' ? recordOf(reply) : null;
  }

  async list(filter: { state?: ApprovalState; limit?: number }, now: number): Promise<ApprovalRecord[]> {
    const limit = filter.limit ?? Infinity;
    if (filter.state === 'pending' || filter.state === 'approved') return this.listOpen(filter.state, limit, now);
    const out: ApprovalRecord[] = [];
    const stale: string[] = [];
    for (let start = 0; out.length < limit; start += LIST_PAGE) {
      const members = await this.command.zrevrange(this.listKey, start, start + LIST_PAGE - 1);
      if (members.length === 0) break;
      const records = await Promise.all(
        members.map(async (member) => {
          const colon = member.indexOf(':');
          const tag = member.slice(0, colon);
          const id = member.slice(colon + 1);
          const rec = await this.getByTag(tag, id, now);
          // Gone record: drop the entry once its ref is gone too (before that it may be mid-creation).
          if (rec === null && (await this.command.exists(this.refKey(id))) === 0) stale.push(member);
          return rec;
        }),
      );
      for (const rec of records) {
        if (rec === null || (filter.state !== undefined && rec.state !== filter.state)) continue;
        out.push(rec);
        if (out.length >= limit) break;
      }
      if (members.length < LIST_PAGE) break;
    }
    if (stale.length > 0) await this.command.zrem(this.listKey, ...stale);
    return out;
  }

  async decide(id: string, vote: Vote, now: number): Promise<DecideResult> {
    const tag = await this.tagOf(id);
    if (tag === null) return { ok: false, reason: 'not_found', record: null };
    const reply = await this.run(
      'airlockDecide',
      [this.recordKey(tag, id), this.activeKey(tag)],
      now,
      vote.approver,
      JSON.stringify(vote.approver),
      vote.verdict,
      JSON.stringify(vote.verdict === 'deny' ? (vote.reason ?? null) : null),
      randomUUID(),
      vote.seal === undefined ? '' : JSON.stringify(vote.seal),
    );
    return decideResult(reply);
  }

  async edit(id: string, edit: ApprovalEdit, vote: (Vote & { verdict: 'approve' }) | null, now: number): Promise<DecideResult> {
    const tag = await this.tagOf(id);
    if (tag === null) return { ok: false, reason: 'not_found', record: null };
    const votes = vote === null ? '[]' : JSON.stringify([{ approver: vote.approver, at: now, ...(vote.seal === undefined ? {} : { seal: vote.seal }) }]);
    const reply = await this.run(
      'airlockEdit',
      [this.recordKey(tag, id), this.activeKey(tag)],
      now,
      JSON.stringify(edit),
      String(edit.required),
      votes,
      JSON.stringify(vote?.approver ?? null),
      randomUUID(),
    );
    return decideResult(reply);
  }

  async cancel(id: string, by: string, reason: string | null, now: number): Promise<DecideResult> {
    const tag = await this.tagOf(id);
    if (tag === null) return { ok: false, reason: 'not_found', record: null };
    const reply = await this.run(
      'airlockCancel',
      [this.recordKey(tag, id), this.activeKey(tag)],
      now,
      JSON.stringify(by),
      JSON.stringify(reason),
      randomUUID(),
    );
    return decideResult(reply);
  }

  async claim(id: string, replica: string, now: number): Promise<ClaimResult> {
    const tag = await this.tagOf(id);
    if (tag === null) return { ok: false, reason: 'not_found', record: null };
    const reply = await this.run('airlockClaim', [this.recordKey(tag, id), this.activeKey(tag)], now, JSON.stringify(replica), randomUUID());
    return scriptResult(reply, ['not_found', 'not_approved', 'lapsed'] as const);
  }

  async setHolder(id: string, holder: string | null): Promise<void> {
    const tag = await this.tagOf(id);
    if (tag === null) return;
    await this.run('airlockSetHolder', [this.recordKey(tag, id)], Date.now(), JSON.stringify(holder));
  }

  async setMessage<C extends ChannelName>(id: string, channel: C, ref: MessageRefs[C]): Promise<void> {
    await this.setField(id, channel, copyRef(channel, ref));
  }

  /** One sorted set per identity and rule: members `outcome:id`, scored by when; kept for 30 days. */
  /** One sorted set per identity, rule and outcome: approval ids scored by when; counted with ZCOUNT. */
  private historyKey(identity: string | null, rule: string, outcome: keyof History): string {
    return `${this.prefix}:history:${joinTag(identity, rule)}:${outcome}`;
  }

  async noteOutcome(identity: string | null, rule: string, outcome: keyof History, id: string, at: number): Promise<void> {
    const key = this.historyKey(identity, rule, outcome);
    await this.command.zadd(key, at, id);
    await this.command.zremrangebyscore(key, '-inf', String(at - HISTORY_WINDOW_MS));
    await this.command.pexpire(key, HISTORY_WINDOW_MS);
  }

  async history(identity: string | null, rule: string, now: number): Promise<History> {
    const [approved, denied, expired] = await Promise.all(
      (['approved', 'denied', 'expired'] as const).map((o) => this.command.zcount(this.historyKey(identity, rule, o), String(now - HISTORY_WINDOW_MS), String(now))),
    );
    return { approved: approved!, denied: denied!, expired: expired! };
  }

  private grantKey(id: string): string {
    return `${this.prefix}:grant:${id}`;
  }
  /** Grants by identity and rule (score: expiresAt), and all grants (for listing). */
  private grantsOfKey(identity: string | null, rule: string): string {
    return `${this.prefix}:grants-of:${joinTag(identity, rule)}`;
  }
  private get grantsKey(): string {
    return `${this.prefix}:grants`;
  }

  async createGrant(grant: Grant): Promise<void> {
    const key = this.grantKey(grant.id);
    const keepUntil = Math.ceil(grant.expiresAt + this.retentionMs);
    await this.command.hset(key, 'doc', JSON.stringify(grant), 'usesLeft', String(grant.uses), 'expiresAt', String(grant.expiresAt), 'revokedAt', 'null', 'revokedBy', 'null');
    await this.command.pexpireat(key, keepUntil);
    for (const index of [this.grantsOfKey(grant.identity, grant.rule), this.grantsKey]) {
      await this.command.zadd(index, grant.expiresAt, grant.id);
      await this.command.pexpireat(index, keepUntil, 'GT');
      await this.command.pexpireat(index, keepUntil, 'NX');
    }
  }

  private async readGrants(index: string, now: number): Promise<GrantState[]> {
    await this.command.zremrangebyscore(index, '-inf', String(now));
    const ids = await this.command.zrange(index, '0', '-1');
    const all = await Promise.all(ids.map((id) => this.command.hgetall(this.grantKey(id))));
    return all.flatMap((h) => {
      if (h.doc === undefined) return [];
      const g = grantOf(h);
      return g.revokedAt === null && g.usesLeft > 0 && now < g.expiresAt ? [g] : [];
    });
  }

  async setGrantMessage<C extends ChannelName>(id: string, channel: C, ref: MessageRefs[C]): Promise<void> {
    const key = this.grantKey(id);
    if ((await this.command.exists(key)) === 1) await this.command.hset(key, channel, JSON.stringify(copyRef(channel, ref)));
  }

  grantsFor(identity: string | null, rule: string, now: number): Promise<GrantState[]> {
    return this.readGrants(this.grantsOfKey(identity, rule), now);
  }

  async listGrants(now: number): Promise<GrantState[]> {
    return (await this.readGrants(this.grantsKey, now)).sort((a, b) => b.createdAt - a.createdAt);
  }

  async useGrant(id: string, now: number): Promise<GrantState | null> {
    const reply = await this.run('airlockUseGrant', [this.grantKey(id)], now);
    return reply[0] === 'ok' ? grantOf(hashOf(reply[1] ?? [])) : null;
  }

  async revokeGrant(id: string, by: string, now: number): Promise<GrantState | null> {
    const reply = await this.run('airlockRevokeGrant', [this.grantKey(id)], now, JSON.stringify(by));
    return reply[0] === 'ok' ? grantOf(hashOf(reply[1] ?? [])) : null;
  }

  async setForwarded(id: string, outcome: ForwardOutcome): Promise<void> {
    await this.setField(id, 'forwarded', { status: outcome.status, at: outcome.at });
  }

  async setProbes(id: string, results: ProbeResult[]): Promise<void> {
    await this.setField(id, 'probes', results);
  }

  private async setField(id: string, field: ChannelName | 'forwarded' | 'probes', value: object): Promise<void> {
    const tag = await this.tagOf(id);
    if (tag === null) return;
    // Where a message was posted changes nothing anyone waits for: not announced.
    const quiet = field === 'slack' || field === 'teams';
    await this.run('airlockSetField', [this.recordKey(tag, id)], Date.now(), field, JSON.stringify(value), quiet ? '0' : '1');
  }

  subscribe(listener: (change: StateChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(change: StateChange): void {
    for (const l of [...this.listeners]) {
      try {
        l(change);
      } catch (err) {
        this.opts.logger?.warn({ err: { message: (err as Error).message }, id: change.id }, 'approval change listener threw');
      }
    }
  }
}

function hashOf(flat: string[]): Record<string, string> {
  const h: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) h[flat[i]!] = flat[i + 1]!;
  return h;
}

function grantOf(h: Record<string, string>): GrantState {
  return {
    ...(JSON.parse(h.doc!) as Grant),
    usesLeft: Number(h.usesLeft),
    revokedAt: JSON.parse(h.revokedAt ?? 'null') as number | null,
    revokedBy: JSON.parse(h.revokedBy ?? 'null') as string | null,
    slack: JSON.parse(h.slack ?? 'null') as GrantState['slack'],
    teams: JSON.parse(h.teams ?? 'null') as GrantState['teams'],
  };
}

function recordOf(reply: ScriptReply): ApprovalRecord | null {
  const flat = reply[1];
  return flat && flat.length > 0 ? fromHash(flat) : null;
}

/** A script's `{'ok', record}` or `{reason, record?}` as a result; any other reply is a bug, thrown. */
function scriptResult<R extends string>(
  reply: ScriptReply,
  reasons: readonly R[],
): { ok: true; record: ApprovalRecord } | { ok: false; reason: R; record: ApprovalRecord | null } {
  const record = recordOf(reply);
  const tag = reply[0];
  if (tag === 'ok') {
    if (record === null) throw new Error('Redis returned an empty approval record');
    return { ok: true, record };
  }
  if ((reasons as readonly string[]).includes(String(tag))) return { ok: false, reason: tag as R, record };
  throw new Error(`unexpected reply from Redis: ${String(tag)}`);
}

const DECIDE_REASONS = ['not_found', 'not_pending', 'already_voted'] as const;

function decideResult(reply: ScriptReply): DecideResult {
  return scriptResult(reply, DECIDE_REASONS);
}

async function quitClient(client: Redis | Cluster): Promise<void> {
  if (client.status === 'ready') {
    try {
      await client.quit();
      return;
    } catch {
      // fall through
    }
  }
  client.disconnect();
}
