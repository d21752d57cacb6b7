/**
 * `npm run bench:approvals`: N requests held for approval at the same time, then all approved through
 * the admin API, in two set-ups one after the other:
 *
 * - `memory`: one Airlock with the in-memory store (one instance);
 * - `redis`: two Airlock replicas sharing a throwaway redis-server; every request is held on replica
 *   B and approved through replica A's API, so each approval crosses replicas (Redis pub/sub) before
 *   B forwards it.
 *
 * Everything runs on loopback and stops by itself: an upstream that records when each request arrives
 * (this file run as `bench/approvals.ts upstream`, a separate process so its timestamps don't wait on
 * the load generator's event loop) and `airlock serve` as installed (dist/, with the bin's V8 flags)
 * with one `approve` rule. For each set-up:
 *
 * 1. warm-up: a few held requests, approved (JIT, connection pools), then the holder's RSS as the baseline;
 * 2. opens N raw TCP connections to the holder, each sending a distinct absolute-form POST (distinct
 *    path and body, so N approvals, not joins), in batches, until its `airlock_approvals_held` is N;
 * 3. with all N held: the holder's RSS, heap and external memory, Redis memory; over an idle window the
 *    CPU that holding alone costs, Redis commands/s, and `/healthz` response times (stalls of the
 *    holder's event loop); one `GET /v1/approvals?state=pending&limit=500` timed;
 * 4. approves every approval (ids from the holder's audit trail) at a bounded concurrency, recording
 *    when each approve call returned; the upstream records when each forwarded request arrived;
 *    latency = upstream arrival − approve response (same machine, same clock);
 * 5. checks every held client got the upstream's 200 exactly once and every path reached the
 *    upstream exactly once; exits 1 otherwise. Targets: all N held in ≤ 256 MiB RSS, approval →
 *    upstream p99 ≤ 25 ms.
 *
 * Environment: BENCH_SETUPS (comma-separated: memory, redis; default both), BENCH_HELD (N, default
 * 10000), BENCH_BATCH (connections opened per batch, default 1000), BENCH_APPROVE_CONCURRENCY
 * (default 50), BENCH_IDLE_SECONDS (idle window with all held, default 10), BENCH_WARMUP (default
 * 100), BENCH_SEQUENTIAL (approvals made one at a time before the concurrent ones, to see the latency
 * without approve traffic queued in front; default 200), BENCH_DUMP (a file to write every request's
 * timings to, as CSV, suffixed with the set-up), BENCH_BODY_BYTES (pad each request body to about
 * this size; default: bodies of about 30 bytes).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Pool } from 'undici';
import { hashToken } from '../src/request/identify.js';
import { startRedisServer, type RedisServer } from '../test/helpers/redis-server.js';
import { Processes, ROOT } from './lib/processes.js';
import { quantile } from './lib/stats.js';

const SELF = join(import.meta.dirname, 'approvals.ts');

/** Wall-clock milliseconds with sub-millisecond resolution, comparable between processes on one machine. */
const now = (): number => performance.timeOrigin + performance.now();
const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function envInt(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) {
    console.error(`${name} must be an integer ≥ ${min}, got "${raw}"`);
    process.exit(2);
  }
  return n;
}

// ---------------------------------------------------------------------------------------------------
// The upstream (child process): answers 200 and records the arrival time of every request by path.
// GET /__arrivals (sent directly, not through the proxy) returns { path: [ms, …] }.
// ---------------------------------------------------------------------------------------------------

function runUpstream(): void {
  const arrivals = new Map<string, number[]>();
  const server = createServer((req, res) => {
    const at = now();
    const path = req.url ?? '';
    if (req.method === 'GET' && path === '/__arrivals') {
      const text = JSON.stringify(Object.fromEntries(arrivals));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    let list = arrivals.get(path);
    if (!list) arrivals.set(path, (list = []));
    list.push(at);
    req.resume();
    req.on('end', () => {
      const body = JSON.stringify({ ok: true, path });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => console.log(`READY ${(server.address() as AddressInfo).port}`));
}

// ---------------------------------------------------------------------------------------------------
// Limits: file descriptors (N client sockets here, N server sockets in Airlock) and ephemeral ports.
// ---------------------------------------------------------------------------------------------------

const FD_MARGIN = 256;

async function fdLimits(): Promise<{ soft: number; hard: number }> {
  const text = await readFile('/proc/self/limits', 'utf8');
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  const num = (v: string | undefined): number => (v === undefined || v === 'unlimited' ? Infinity : Number(v));
  return { soft: num(m?.[1]), hard: num(m?.[2]) };
}

async function ephemeralPorts(): Promise<number> {
  try {
    const [lo, hi] = (await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')).trim().split(/\s+/).map(Number);
    return lo !== undefined && hi !== undefined ? hi - lo + 1 : Infinity;
  } catch {
    return Infinity;
  }
}

/**
 * Re-runs this script under `ulimit -n HARD` when the soft limit is too low but the hard one allows N
 * (Node cannot raise its own limit). Returns the exit code of that run, or null to go on here.
 */
async function reexecWithHigherLimit(need: number): Promise<number | null> {
  const { soft, hard } = await fdLimits();
  if (soft >= need || hard < need || process.env.BENCH_APPROVALS_REEXEC === '1') return null;
  console.log(`file descriptor limit ${soft} < ${need} needed: re-running under ulimit -n ${hard}`);
  const child = spawn('/bin/sh', ['-c', `ulimit -n ${hard} && exec "$0" "$@"`, process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, BENCH_APPROVALS_REEXEC: '1' },
  });
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  return code ?? (signal ? 1 : 0);
}

// ---------------------------------------------------------------------------------------------------
// Processes and scraping
// ---------------------------------------------------------------------------------------------------

const procs = new Processes();
let tempDir: string | null = null;
process.once('exit', () => {
  if (tempDir !== null) rmSync(tempDir, { recursive: true, force: true });
});

async function getText(pool: Pool, path: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  const res = await pool.request({ method: 'GET', path, headers });
  return { status: res.statusCode, text: await res.body.text() };
}

type MetricSample = Map<string, number>;

/** One scrape of the admin listener's /metrics: `name{labels}` → value. */
async function scrape(admin: Pool): Promise<MetricSample> {
  const { status, text } = await getText(admin, '/metrics');
  if (status !== 200) throw new Error(`GET /metrics answered ${status}`);
  const out: MetricSample = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    out.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return out;
}

const metric = (m: MetricSample, key: string): number => m.get(key) ?? 0;

function sumMetric(m: MetricSample, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of m) if (k.startsWith(`${name}{`) && v !== 0) out.set(k.slice(name.length), v);
  return out;
}

async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

interface RedisInfo {
  usedMemory: number;
  cpuSeconds: number;
  keys: number;
  /** Calls so far by command (`INFO commandstats`). */
  calls: Map<string, number>;
}

async function redisInfo(redis: Redis): Promise<RedisInfo> {
  const text = (await redis.info('all')) as string;
  const field = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(text)?.[1] ?? NaN);
  const calls = new Map<string, number>();
  for (const m of text.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) calls.set(m[1]!, Number(m[2]));
  return { usedMemory: field('used_memory'), cpuSeconds: field('used_cpu_sys') + field('used_cpu_user'), keys: await redis.dbsize(), calls };
}

/** Redis commands per second between two INFO readings, busiest first (our own INFO/DBSIZE left out). */
function redisRates(a: RedisInfo, b: RedisInfo, seconds: number): string {
  const out: [string, number][] = [];
  for (const [cmd, n] of b.calls) {
    if (cmd === 'info' || cmd === 'dbsize') continue;
    const d = n - (a.calls.get(cmd) ?? 0);
    if (d > 0) out.push([cmd, d / seconds]);
  }
  out.sort((x, y) => y[1] - x[1]);
  return out.length === 0 ? 'none' : out.map(([cmd, r]) => `${cmd} ${r.toFixed(0)}/s`).join(', ');
}

// ---------------------------------------------------------------------------------------------------
// Held clients: one raw TCP connection each, one request, `Connection: close`.
// ---------------------------------------------------------------------------------------------------

interface Held {
  path: string;
  socket: Socket;
  /** Bytes received (the whole response; the server closes after it). */
  received: string;
  /** When the first byte of the response arrived. */
  answeredAt: number | null;
  closed: boolean;
  error: string | null;
}

function openHeld(proxyPort: number, upstreamPort: number, path: string, body: string): Promise<Held> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port: proxyPort });
    const h: Held = { path, socket, received: '', answeredAt: null, closed: false, error: null };
    socket.setNoDelay(true);
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      h.answeredAt ??= now();
      h.received += d;
    });
    socket.on('error', (err) => {
      h.error = err.message;
      resolve(h);
    });
    socket.on('close', () => (h.closed = true));
    socket.once('connect', () => {
      socket.write(
        `POST http://127.0.0.1:${upstreamPort}${path} HTTP/1.1\r\n` +
          `Host: 127.0.0.1:${upstreamPort}\r\n` +
          'Content-Type: application/json\r\n' +
          `Content-Length: ${Buffer.byteLength(body)}\r\n` +
          'Connection: close\r\n\r\n' +
          body,
      );
      resolve(h);
    });
  });
}

/** Status of the single response on a held connection, and how many responses arrived on it. */
function responseOf(h: Held): { status: number | null; responses: number; body: string } {
  const responses = h.received.match(/(?:^|\r\n)HTTP\/1\.[01] \d{3} /g)?.length ?? 0;
  const status = /^HTTP\/1\.[01] (\d{3}) /.exec(h.received);
  const split = h.received.indexOf('\r\n\r\n');
  return { status: status ? Number(status[1]) : null, responses, body: split < 0 ? '' : h.received.slice(split + 4) };
}

/** Poll (bounded) until `cond` holds; the clock is external processes, so a deadline, not a count. */
async function until(what: string, deadlineMs: number, cond: () => Promise<boolean>, everyMs = 100): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await delay(everyMs);
  }
}

// ---------------------------------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------------------------------

function stats(xs: number[]): { p50: number; p99: number; max: number; min: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0] ?? NaN, p50: quantile(s, 0.5), p99: quantile(s, 0.99), max: s[s.length - 1] ?? NaN };
}

const mib = (b: number): string => `${(b / 1024 / 1024).toFixed(1)} MiB`;
const kib = (b: number): string => `${(b / 1024).toFixed(1)} KiB`;
const ms = (x: number): string => `${x.toFixed(1)} ms`;

// ---------------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------------

interface Ctx {
  /** The proxy listener of the replica that holds the requests. */
  proxyPort: number;
  upstreamPort: number;
  /** The admin listener of the holding replica (its held gauge). */
  holder: Pool;
  /** The admin listener approvals are made through (the other replica, with two). */
  approver: Pool;
  /** The holding replica's audit trail (it writes approval_requested). */
  auditFile: string;
  token: string;
  bodyBytes: number;
}

/** A distinct JSON body, padded to about `bytes` when that is more than its natural size. */
function bodyFor(path: string, n: number, bytes: number): string {
  const plain = JSON.stringify({ export: path, n });
  return plain.length >= bytes ? plain : JSON.stringify({ export: path, n, pad: 'x'.repeat(bytes - plain.length - 10) });
}

/** Open `paths` as held requests, `batch` connections at a time, each batch waited for until held. */
async function holdAll(c: Ctx, paths: string[], batch: number, alreadyHeld: number): Promise<Held[]> {
  const held: Held[] = [];
  for (let start = 0; start < paths.length; start += batch) {
    const slice = paths.slice(start, start + batch);
    const opened = await Promise.all(slice.map((p, j) => openHeld(c.proxyPort, c.upstreamPort, p, bodyFor(p, start + j, c.bodyBytes))));
    held.push(...opened);
    const failed = opened.filter((h) => h.error !== null);
    if (failed.length > 0) throw new Error(`${failed.length} connections to the proxy failed, e.g. ${failed[0]!.error}`);
    const target = alreadyHeld + held.length;
    await until(`airlock_approvals_held ${target}`, 60_000, async () => {
      const answered = held.filter((h) => h.answeredAt !== null);
      if (answered.length > 0) {
        const first = answered[0]!;
        throw new Error(`${answered.length} held requests were answered before any approval, e.g. ${first.path}: ${first.received.split('\r\n')[0]} ${responseOf(first).body}`);
      }
      return metric(await scrape(c.holder), 'airlock_approvals_held') >= target;
    });
  }
  return held;
}

/** approval id by request path, from the audit trail's `approval_requested` events. */
async function idsFromAudit(file: string, paths: string[]): Promise<Map<string, string>> {
  const wanted = new Set(paths);
  const byPath = new Map<string, string>();
  await until(`${paths.length} approval_requested events in the audit trail`, 15_000, async () => {
    for (const line of (await readFile(file, 'utf8')).split('\n')) {
      if (!line.includes('"approval_requested"')) continue;
      const e = JSON.parse(line) as { event?: string; path?: string; approval_id?: string };
      if (e.event === 'approval_requested' && e.path && e.approval_id && wanted.has(e.path)) byPath.set(e.path, e.approval_id);
    }
    return byPath.size >= wanted.size;
  }, 200);
  return byPath;
}

interface Approved {
  path: string;
  sentAt: number;
  returnedAt: number;
}

/** Approve every id, `concurrency` calls at a time. */
async function approveAll(c: Ctx, byPath: Map<string, string>, concurrency: number): Promise<{ done: Approved[]; failures: string[] }> {
  const queue = [...byPath.entries()];
  const done: Approved[] = [];
  const failures: string[] = [];
  const headers = { authorization: `Bearer ${c.token}`, 'content-type': 'application/json' };
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < queue.length) {
      const [path, id] = queue[next++]!;
      const sentAt = now();
      try {
        const res = await c.approver.request({ method: 'POST', path: `/v1/approvals/${id}/approve`, headers, body: '{"reason":"bench"}' });
        const text = await res.body.text();
        const returnedAt = now();
        const state = res.statusCode === 200 ? (JSON.parse(text) as { approval?: { state?: string } }).approval?.state : undefined;
        if (state !== 'approved') failures.push(`${path} (${id}): ${res.statusCode} ${text.slice(0, 200)}`);
        else done.push({ path, sentAt, returnedAt });
      } catch (err) {
        failures.push(`${path} (${id}): ${(err as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { done, failures };
}

interface Check {
  ok200: number;
  wrong: string[];
  arrivals: Map<string, number[]>;
}

/** Every held client answered 200 by the upstream for its own path, once; every path arrived upstream once. */
async function check(c: Ctx, held: Held[]): Promise<Check> {
  const upstream = new Pool(`http://127.0.0.1:${c.upstreamPort}`, { connections: 1 });
  const { text } = await getText(upstream, '/__arrivals');
  await upstream.close();
  const arrivals = new Map(Object.entries(JSON.parse(text) as Record<string, number[]>));
  const wrong: string[] = [];
  let ok200 = 0;
  for (const h of held) {
    const r = responseOf(h);
    const n = arrivals.get(h.path)?.length ?? 0;
    if (r.status === 200 && r.responses === 1 && r.body.includes(`"path":"${h.path}"`) && n === 1) ok200++;
    else wrong.push(`${h.path}: client got ${r.responses} response(s), status ${r.status ?? '-'}${h.error ? ` (${h.error})` : ''}; upstream saw it ${n}×`);
  }
  const mine = new Set(held.map((h) => h.path));
  // Paths of this set-up's held requests that no client here sent (other set-ups and warm-ups have their own prefixes).
  const prefix = held[0]?.path.replace(/[^/]*$/, '') ?? '';
  for (const [p, list] of arrivals) if (p.startsWith(prefix) && !mine.has(p)) wrong.push(`${p}: unexpected upstream arrival (${list.length}×)`);
  return { ok200, wrong, arrivals };
}

type Setup = 'memory' | 'redis';

interface Options {
  n: number;
  batch: number;
  concurrency: number;
  idleSeconds: number;
  warmup: number;
  sequential: number;
  bodyBytes: number;
  soft: number;
}

interface Replica {
  child: ChildProcess;
  proxyPort: number;
  admin: Pool;
  auditFile: string;
  warnings: Map<string, number>;
}

/** The V8 flags of the installed command's start line (`#!/usr/bin/env -S node …`), which `serve` runs with. */
async function binFlags(): Promise<string[]> {
  const first = (await readFile(join(ROOT, 'dist/cli/main.js'), 'utf8')).split('\n', 1)[0]!;
  return /^#!\/usr\/bin\/env -S node (.*)$/.exec(first)?.[1]?.split(' ') ?? [];
}

async function startReplica(name: string, dir: string, policies: string, redisUrl: string | null, concurrency: number): Promise<Replica> {
  const auditFile = join(dir, `audit-${name}.jsonl`);
  const warnings = new Map<string, number>();
  let adminPort = 0;
  const { child, value: proxyPort } = await procs.start(
    process.execPath,
    [
      ...(await binFlags()),
      join(ROOT, 'dist/cli/main.js'),
      'serve',
      '--policies', policies,
      '--listen', '127.0.0.1:0',
      '--admin', '127.0.0.1:0',
      '--audit', auditFile,
      '--allow-destination', '127.0.0.0/8',
      '--replica', name,
      // Every held request is a connection: above the default cap of 8192.
      '--max-connections', '200000',
      ...(redisUrl ? ['--redis', redisUrl] : []),
    ],
    {
      // Replicas sharing Redis share the key that seals approval state.
      env: { ...process.env, AIRLOCK_LOG_LEVEL: 'info', AIRLOCK_STATE_KEY: 'bench-state-key-shared-by-the-replicas-0123' },
      ready: (line, stream) => {
        if (stream !== 'stderr' || !line.startsWith('{')) return null;
        const rec = JSON.parse(line) as { msg?: string; proxy?: string; admin?: string };
        if (rec.msg !== 'airlock listening') return null;
        adminPort = Number(rec.admin!.split(':').pop());
        return Number(rec.proxy!.split(':').pop());
      },
      onLine: (line) => {
        try {
          const rec = JSON.parse(line) as { level?: number; msg?: string; err?: { message?: string } };
          const key = rec.err?.message ? `${rec.msg ?? ''} (${rec.err.message})` : (rec.msg ?? line);
          if ((rec.level ?? 0) >= 40) warnings.set(key, (warnings.get(key) ?? 0) + 1);
        } catch {
          warnings.set(line, (warnings.get(line) ?? 0) + 1);
        }
      },
    },
  );
  const admin = new Pool(`http://127.0.0.1:${adminPort}`, { connections: concurrency + 2, pipelining: 1 });
  return { child, proxyPort, admin, auditFile, warnings };
}

interface Outcome {
  setup: Setup;
  rssHeld: number;
  p99: number;
  ok: boolean;
}

async function runSetup(setup: Setup, o: Options, dir: string, upstreamPort: number, token: string, policies: string): Promise<Outcome> {
  const { n, batch, concurrency, idleSeconds, warmup, sequential, bodyBytes } = o;
  const t0 = now();
  const phase = (name: string, since: number): void => console.log(`  ${name.padEnd(44)} ${((now() - since) / 1000).toFixed(2).padStart(7)} s`);
  const bodyNote = bodyBytes > 0 ? `, bodies of ~${bodyBytes} bytes` : '';
  const shape = setup === 'memory' ? 'one Airlock with the memory store' : 'two Airlock replicas sharing Redis: held on B, approved through A';
  console.log(`\n== ${setup}: holding ${n} requests on ${shape} (fd limit ${o.soft}, batch ${batch}, approve concurrency ${concurrency}${bodyNote})`);

  let redis: RedisServer | null = null;
  let redisClient: Redis | null = null;
  const replicas: Replica[] = [];
  let held: Held[] = [];
  let reported = false;
  const noRedis: RedisInfo = { usedMemory: 0, cpuSeconds: 0, keys: 0, calls: new Map() };
  const redisNow = async (): Promise<RedisInfo> => (redisClient ? redisInfo(redisClient) : noRedis);
  try {
    if (setup === 'redis') {
      redis = await startRedisServer();
      redisClient = new Redis(redis.url, { lazyConnect: false, maxRetriesPerRequest: 1 });
      replicas.push(await startReplica('replica-a', dir, policies, redis.url, concurrency));
      replicas.push(await startReplica('replica-b', dir, policies, redis.url, concurrency));
    } else {
      replicas.push(await startReplica('memory', dir, policies, null, concurrency));
    }
    const approver = replicas[0]!;
    const holder = replicas[replicas.length - 1]!;
    const pid = holder.child.pid!;
    const c: Ctx = { proxyPort: holder.proxyPort, upstreamPort, holder: holder.admin, approver: approver.admin, auditFile: holder.auditFile, token, bodyBytes };
    phase(setup === 'redis' ? 'start redis and two replicas' : 'start airlock', t0);

    // 1. Warm-up, then the baseline.
    let t = now();
    if (warmup > 0) {
      const paths = Array.from({ length: warmup }, (_, i) => `/warmup/${setup}/${i}`);
      const w = await holdAll(c, paths, batch, 0);
      const { failures } = await approveAll(c, await idsFromAudit(c.auditFile, paths), concurrency);
      if (failures.length > 0) throw new Error(`warm-up approvals failed: ${failures[0]}`);
      await until('warm-up responses', 30_000, async () => w.every((h) => h.closed));
      for (const h of w) if (responseOf(h).status !== 200) throw new Error(`warm-up ${h.path} got ${h.received.split('\r\n')[0]}`);
      phase(`warm-up (${warmup} held and approved)`, t);
    }
    await delay(1000);
    const before = { rss: await rssBytes(pid), m: await scrape(c.holder), redis: await redisNow() };

    // 2. Open N held requests.
    t = now();
    const paths = Array.from({ length: n }, (_, i) => `/exports/${setup}/${i}`);
    held = await holdAll(c, paths, batch, 0);
    const holdSeconds = (now() - t) / 1000;
    phase(`open ${n} requests until all held`, t);

    // 3. Memory and the cost of holding.
    await delay(500);
    const heldAt = { rss: await rssBytes(pid), m: await scrape(c.holder), redis: await redisNow() };
    t = now();
    // Meanwhile, how long the holder's admin listener takes to answer /healthz: stalls of its event loop.
    const probes: number[] = [];
    const probeLog: string[] = ['at_ms,healthz_ms'];
    const probeUntil = now() + idleSeconds * 1000;
    while (now() < probeUntil) {
      const p0 = now();
      await getText(c.holder, '/healthz');
      probes.push(now() - p0);
      probeLog.push(`${(p0 - t).toFixed(1)},${(now() - p0).toFixed(2)}`);
      await delay(20);
    }
    const idleEnd = { rss: await rssBytes(pid), m: await scrape(c.holder), redis: await redisNow() };
    const idleWall = (now() - t) / 1000;
    if (idleSeconds > 0) phase(`idle window with ${n} held`, t);
    if (metric(idleEnd.m, 'airlock_approvals_held') !== n) throw new Error(`held gauge fell to ${metric(idleEnd.m, 'airlock_approvals_held')} while idle`);
    const early = held.filter((h) => h.answeredAt !== null || h.closed);
    if (early.length > 0) throw new Error(`${early.length} held requests ended before approval, e.g. ${early[0]!.path}: ${early[0]!.received.split('\r\n')[0] || early[0]!.error || 'closed'}`);

    t = now();
    const listed = await getText(c.approver, '/v1/approvals?state=pending&limit=500', { authorization: `Bearer ${token}` });
    const listMs = now() - t;
    const listCount = listed.status === 200 ? (JSON.parse(listed.text) as { approvals: unknown[] }).approvals.length : -1;
    phase(`GET /v1/approvals?state=pending&limit=500 (${listCount})`, t);

    // 4. Approve all: the first `sequential` one at a time, the rest `concurrency` at a time.
    t = now();
    const byPath = await idsFromAudit(c.auditFile, paths);
    phase('approval ids from the audit trail', t);
    const entries = [...byPath.entries()];
    const seqIds = new Map(entries.slice(0, Math.min(sequential, n)));
    const concIds = new Map(entries.slice(seqIds.size));
    t = now();
    const seq = await approveAll(c, seqIds, 1);
    if (seqIds.size > 0) phase(`approve ${seq.done.length} one at a time`, t);
    t = now();
    const conc = await approveAll(c, concIds, concurrency);
    const approveSeconds = (now() - t) / 1000;
    phase(`approve ${conc.done.length} (${concurrency} at a time)`, t);
    const failures = [...seq.failures, ...conc.failures];
    t = now();
    try {
      await until('every held client to get its answer', 60_000, async () => held.every((h) => h.closed), 200);
    } catch (err) {
      console.log(`!! ${(err as Error).message}: ${held.filter((h) => !h.closed).length} still open`);
    }
    phase('last held client answered', t);

    // 5. Check and report.
    const result = await check(c, held);
    let after: MetricSample = new Map();
    let listAfterMs = NaN;
    let listAfterCount = -1;
    try {
      after = await scrape(c.holder);
      // Listing pending once none is: every record still retained is read to find out.
      t = now();
      const listedAfter = await getText(c.approver, '/v1/approvals?state=pending&limit=500', { authorization: `Bearer ${token}` });
      listAfterMs = now() - t;
      if (listedAfter.status === 200) listAfterCount = (JSON.parse(listedAfter.text) as { approvals: unknown[] }).approvals.length;
    } catch (err) {
      console.log(`!! airlock's admin listener no longer answers (${(err as Error).message}); exit ${holder.child.exitCode ?? holder.child.signalCode ?? 'n/a'}`);
    }
    const heldByPath = new Map(held.map((h) => [h.path, h]));
    const timings = (done: Approved[]) => {
      const sinceResponse: number[] = [];
      const sinceSent: number[] = [];
      const toClient: number[] = [];
      for (const a of done) {
        const arrived = result.arrivals.get(a.path)?.[0];
        const answered = heldByPath.get(a.path)?.answeredAt ?? null;
        if (arrived === undefined) continue;
        sinceResponse.push(arrived - a.returnedAt);
        sinceSent.push(arrived - a.sentAt);
        if (answered !== null) toClient.push(answered - a.returnedAt);
      }
      return {
        call: stats(done.map((d) => d.returnedAt - d.sentAt)),
        upstream: stats(sinceResponse),
        upstreamSinceSent: stats(sinceSent),
        client: stats(toClient),
        early: sinceResponse.filter((x) => x < 0).length,
      };
    };
    const dump = process.env.BENCH_DUMP;
    if (dump) {
      const lines = ['path,approve_sent_ms,approve_returned_ms,upstream_arrival_ms,client_answered_ms,concurrent'];
      const t00 = [...seq.done, ...conc.done].reduce((m, a) => Math.min(m, a.sentAt), Infinity);
      const rel = (x: number | null | undefined): string => (x == null ? '' : (x - t00).toFixed(3));
      for (const [list, flag] of [[seq.done, 0], [conc.done, 1]] as const) {
        for (const a of list) lines.push([a.path, rel(a.sentAt), rel(a.returnedAt), rel(result.arrivals.get(a.path)?.[0]), rel(heldByPath.get(a.path)?.answeredAt), flag].join(','));
      }
      await writeFile(`${dump}.${setup}.csv`, `${lines.join('\n')}\n`);
      await writeFile(`${dump}.${setup}.healthz.csv`, `${probeLog.join('\n')}\n`);
    }

    const rssDelta = heldAt.rss - before.rss;
    const heapDelta = metric(heldAt.m, 'airlock_nodejs_heap_size_used_bytes') - metric(before.m, 'airlock_nodejs_heap_size_used_bytes');
    const extDelta = metric(heldAt.m, 'airlock_nodejs_external_memory_bytes') - metric(before.m, 'airlock_nodejs_external_memory_bytes');
    const redisDelta = heldAt.redis.usedMemory - before.redis.usedMemory;
    const cpuIdle = metric(idleEnd.m, 'airlock_process_cpu_seconds_total') - metric(heldAt.m, 'airlock_process_cpu_seconds_total');
    const redisCpuIdle = idleEnd.redis.cpuSeconds - heldAt.redis.cpuSeconds;

    const row = (k: string, v: string): void => console.log(`${k.padEnd(50)} ${v}`);
    console.log(`\nSummary (${setup}): ${n} held requests on ${shape} (Node ${process.versions.node})`);
    row('held at once (airlock_approvals_held)', `${metric(heldAt.m, 'airlock_approvals_held')}`);
    row('time to hold all', `${holdSeconds.toFixed(2)} s (${(n / holdSeconds).toFixed(0)} requests/s)`);
    row('holder RSS before / all held / after idle', `${mib(before.rss)} / ${mib(heldAt.rss)} / ${mib(idleEnd.rss)}  (target: all held ≤ 256 MiB)`);
    row('  RSS per held request', kib(rssDelta / n));
    row('  JS heap used per held request', kib(heapDelta / n));
    row('  external (Buffers) per held request', kib(extDelta / n));
    if (redisClient) row('redis used_memory per approval', `${kib(redisDelta / n)} (${heldAt.redis.keys - before.redis.keys} keys added)`);
    if (idleSeconds > 0) {
      row(`CPU while only holding (${idleWall.toFixed(1)} s)`, `holder ${((100 * cpuIdle) / idleWall).toFixed(1)}%${redisClient ? `, redis ${((100 * redisCpuIdle) / idleWall).toFixed(1)}%` : ''} of one core`);
      if (redisClient) row('  redis commands meanwhile', redisRates(heldAt.redis, idleEnd.redis, idleWall));
    }
    if (probes.length > 0) {
      const pr = stats(probes);
      row('  GET /healthz meanwhile p50 / p99 / max', `${ms(pr.p50)} / ${ms(pr.p99)} / ${ms(pr.max)} (${probes.length} probes)`);
    }
    row('list pending (limit 500) with all held', `${ms(listMs)}, ${listCount} returned`);
    row('list pending (limit 500) after all executed', `${ms(listAfterMs)}, ${listAfterCount} returned`);
    const p3 = (x: { p50: number; p99: number; max: number }): string => `${ms(x.p50)} / ${ms(x.p99)} / ${ms(x.max)}`;
    let worstP99 = 0;
    for (const [label, part] of [
      ['one at a time', seq],
      [`${concurrency} at a time`, conc],
    ] as const) {
      if (part.done.length === 0) continue;
      const tm = timings(part.done);
      worstP99 = Math.max(worstP99, tm.upstream.p99);
      const rate = part === conc ? `, ${(part.done.length / approveSeconds).toFixed(0)}/s` : '';
      row(`approvals ${label}`, `${part.done.length} ok, ${part.failures.length} failed${rate}`);
      row('  approve call p50 / p99 / max', p3(tm.call));
      row('  approve response → upstream arrival p50/p99/max', `${p3(tm.upstream)}  (${tm.early} arrived before the approve response; target p99 ≤ 25 ms)`);
      row('  approve sent → upstream arrival p50/p99/max', p3(tm.upstreamSinceSent));
      row('  approve response → client answered p50/p99/max', p3(tm.client));
    }
    row('held clients with the upstream 200 exactly once', `${result.ok200} of ${n}`);
    const executed = (m: MetricSample): number => metric(m, 'airlock_approval_outcomes_total{state="executed"}');
    row('approvals executed by the holder (outcomes metric)', after.size === 0 ? 'n/a' : `${executed(after) - executed(before.m)}`);
    const errs = sumMetric(after, 'airlock_proxy_errors_total');
    row('holder error responses', errs.size === 0 ? 'none' : [...errs].map(([k, v]) => `${k} ${v}`).join(', '));
    for (const r of replicas) row(`warnings/errors logged (${r.auditFile.replace(/.*audit-(.*)\.jsonl$/, '$1')})`, r.warnings.size === 0 ? 'none' : [...r.warnings].map(([k, v]) => `${v}× ${k}`).join('; '));
    row('total run time', `${((now() - t0) / 1000).toFixed(1)} s`);
    reported = true;

    for (const f of failures.slice(0, 5)) console.log(`!! approve failed: ${f}`);
    for (const w of result.wrong.slice(0, 10)) console.log(`!! ${w}`);
    if (result.wrong.length > 10) console.log(`!! … ${result.wrong.length - 10} more`);
    const ok = failures.length === 0 && result.wrong.length === 0 && result.ok200 === n;
    console.log(ok ? 'OK: every held request was forwarded exactly once after its approval' : `FAIL: ${n - result.ok200} of ${n} held requests lost, duplicated or wrong`);
    return { setup, rssHeld: heldAt.rss, p99: worstP99, ok };
  } finally {
    if (!reported) {
      for (const r of replicas) for (const [k, v] of r.warnings) console.log(`  ${v}× ${k}`);
    }
    for (const h of held) h.socket.destroy();
    for (const r of replicas) {
      await r.admin.close();
      await procs.stop(r.child);
    }
    redisClient?.disconnect();
    await redis?.stop();
  }
}

async function main(): Promise<void> {
  const setups = (process.env.BENCH_SETUPS ?? 'memory,redis').split(',').map((x) => x.trim()) as Setup[];
  for (const s of setups) if (s !== 'memory' && s !== 'redis') throw new Error(`BENCH_SETUPS: unknown set-up "${s}" (memory, redis)`);
  let n = envInt('BENCH_HELD', 10_000, 1);
  const warmup = envInt('BENCH_WARMUP', 100, 0);
  const needFds = n + warmup + FD_MARGIN;
  const rerun = await reexecWithHigherLimit(needFds);
  if (rerun !== null) {
    process.exitCode = rerun;
    return;
  }
  const { soft } = await fdLimits();
  if (soft < needFds) {
    const capped = Math.max(1, soft - warmup - FD_MARGIN);
    console.log(`!! file descriptor limit is ${soft} (hard limit too): ${n} held requests need about ${needFds} per process.`);
    console.log(`!! N capped to ${capped}. Raise it (ulimit -n ${needFds}, or LimitNOFILE=) to hold ${n}.`);
    n = capped;
  }
  const ports = await ephemeralPorts();
  if (ports < n + warmup + FD_MARGIN) {
    const capped = Math.max(1, ports - warmup - FD_MARGIN);
    console.log(`!! only ${ports} ephemeral ports (net.ipv4.ip_local_port_range): N capped to ${capped}.`);
    n = capped;
  }
  const o: Options = {
    n,
    batch: envInt('BENCH_BATCH', 1000, 1),
    concurrency: envInt('BENCH_APPROVE_CONCURRENCY', 50, 1),
    idleSeconds: envInt('BENCH_IDLE_SECONDS', 10, 0),
    warmup,
    sequential: envInt('BENCH_SEQUENTIAL', 200, 0),
    bodyBytes: envInt('BENCH_BODY_BYTES', 0, 0),
    soft,
  };

  tempDir = await mkdtemp(join(tmpdir(), 'airlock-bench-approvals-'));
  const dir = tempDir;
  const policies = join(dir, 'policies');
  const token = randomBytes(32).toString('base64url');
  try {
    await mkdir(policies);
    await writeFile(
      join(policies, 'bench.yaml'),
      `version: 1
defaults: { action: deny }
# Every held request comes from one anonymous caller: lift the per-identity cap on pending approvals.
limits: { pendingApprovals: 1000000 }
approvers:
  bench-approvers: { api: [bench@example.com] }
approverTokens:
  "bench@example.com": ["${hashToken(token)}"]
rules:
  - id: bench-exports
    description: Bench exports, held until approved
    match: { methods: [POST], hosts: [127.0.0.1], paths: ["/exports/**", "/warmup/**"] }
    action: approve
    approval: { approvers: [bench-approvers], wait: 10m, expires: 1h }
`,
    );
    const upstream = await procs.startTs([SELF, 'upstream']);
    const outcomes: Outcome[] = [];
    for (const setup of setups) outcomes.push(await runSetup(setup, o, dir, upstream.port, token, policies));
    console.log(`\n${'set-up'.padEnd(8)} ${'RSS, all held'.padStart(14)} ${'approve → upstream p99'.padStart(24)}  result`);
    for (const r of outcomes) {
      console.log(`${r.setup.padEnd(8)} ${mib(r.rssHeld).padStart(14)} ${ms(r.p99).padStart(24)}  ${r.ok ? 'ok' : 'FAIL'}`);
    }
    if (outcomes.some((r) => !r.ok)) process.exitCode = 1;
  } finally {
    await procs.stopAll();
    rmSync(dir, { recursive: true, force: true });
    tempDir = null;
  }
}

if (process.argv[2] === 'upstream') runUpstream();
else {
  try {
    await main();
  } catch (err) {
    console.error(`FAIL: ${(err as Error).stack ?? String(err)}`);
    process.exitCode = 1;
  }
}
