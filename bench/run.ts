/**
 * `npm run bench`: the allowed path through Airlock against a bare undici forwarder, same upstream,
 * same load, same run, then the policy-evaluation micro-benchmark. Everything runs on loopback and
 * stops by itself. Options (environment): BENCH_SECONDS (per round, default 8), BENCH_CONNECTIONS
 * (default 32), BENCH_ROUNDS (alternating rounds per target, default 3).
 */
import autocannon from 'autocannon';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { benchPolicyEvaluation } from './policy-eval.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const ROOT = join(import.meta.dirname, '..');

const children: ChildProcess[] = [];

/** Start a helper process and wait for the line that carries its port. */
async function start(args: string[], stream: 'stdout' | 'stderr', pick: (line: string) => number | null, env = process.env): Promise<number> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  for await (const line of createInterface({ input: child[stream]! })) {
    const port = pick(line);
    if (port !== null) return port;
  }
  throw new Error(`${args.join(' ')} exited before it was ready`);
}

const readyLine = (line: string): number | null => (line.startsWith('READY ') ? Number(line.slice(6)) : null);

interface Round {
  requests: number;
  p50: number;
  p99: number;
  errors: number;
}

async function load(proxyPort: number, upstreamPort: number): Promise<Round> {
  const result = await autocannon({
    url: `http://127.0.0.1:${proxyPort}`,
    connections: CONNECTIONS,
    duration: SECONDS,
    // As a proxy client does: absolute-form target, Host naming the upstream (not the proxy).
    headers: { host: `127.0.0.1:${upstreamPort}` },
    requests: [{ method: 'GET', path: `http://127.0.0.1:${upstreamPort}/v1/items?limit=3` }],
  });
  return {
    requests: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.non2xx,
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'airlock-bench-'));
  try {
    await writeFile(
      join(dir, 'bench.yaml'),
      `version: 1
defaults: { action: deny }
rules:
  - id: reads
    match: { methods: [GET, HEAD], hosts: [127.0.0.1], paths: ["/v1/**"] }
    action: allow
  - id: no-admin
    match: { hosts: [127.0.0.1], paths: ["/v1/admin/**"] }
    action: deny
`,
    );
    const upstream = await start(['bench/upstream.ts'], 'stdout', readyLine);
    const bare = await start(['bench/bare-forwarder.ts'], 'stdout', readyLine);
    const airlock = await start(
      ['src/cli/main.ts', 'serve', '--policies', dir, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--audit', join(dir, 'audit.jsonl'), '--allow-destination', '127.0.0.0/8'],
      'stderr',
      (line) => {
        const rec = JSON.parse(line) as { msg?: string; proxy?: string };
        return rec.msg === 'airlock listening' ? Number(rec.proxy!.split(':').pop()) : null;
      },
      { ...process.env, AIRLOCK_LOG_LEVEL: 'info' },
    );

    // Warm both paths (JIT, keep-alive pools) before measuring.
    for (const port of [bare, airlock]) {
      const warm = await autocannon({ url: `http://127.0.0.1:${port}`, connections: CONNECTIONS, duration: 2, headers: { host: `127.0.0.1:${upstream}` }, requests: [{ path: `http://127.0.0.1:${upstream}/v1/warm` }] });
      if (warm.non2xx + warm.errors > 0) throw new Error(`warm-up through port ${port} failed: ${warm.non2xx} non-2xx, ${warm.errors} errors`);
    }

    const rounds: { bare: Round[]; airlock: Round[] } = { bare: [], airlock: [] };
    for (let i = 0; i < ROUNDS; i++) {
      rounds.bare.push(await load(bare, upstream));
      rounds.airlock.push(await load(airlock, upstream));
    }
    const summary = (rs: Round[]) => ({
      rps: median(rs.map((r) => r.requests)),
      p50: median(rs.map((r) => r.p50)),
      p99: median(rs.map((r) => r.p99)),
      errors: rs.reduce((n, r) => n + r.errors, 0),
    });
    const b = summary(rounds.bare);
    const a = summary(rounds.airlock);
    console.log(`\nAllowed path, ${CONNECTIONS} connections, ${ROUNDS} × ${SECONDS}s rounds each (medians):`);
    console.log('target            req/s     p50 ms   p99 ms   errors');
    for (const [name, s] of [['bare undici fwd', b], ['airlock', a]] as const) {
      console.log(`${name.padEnd(16)} ${s.rps.toFixed(0).padStart(7)} ${s.p50.toFixed(2).padStart(9)} ${s.p99.toFixed(2).padStart(8)} ${String(s.errors).padStart(8)}`);
    }
    console.log(`throughput ratio airlock / bare: ${(a.rps / b.rps).toFixed(3)} (target ≥ 0.9)`);

    const evalResult = benchPolicyEvaluation();
    console.log(`\nPolicy evaluation, ${evalResult.rules} rules: median ${evalResult.medianNs.toFixed(0)} ns per decision (p99 of batches ${evalResult.p99Ns.toFixed(0)} ns; target median ≤ 5000 ns)`);
    if (a.errors > 0 || b.errors > 0) process.exitCode = 1;
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
