/**
 * `npm run bench`: the allowed path. In one run, under the same load, against the same upstream:
 * Airlock with a 2-rule and with a 10,000-rule policy (polling the policy folder every 5 s, as by
 * default), the same 2-rule Airlock through a reverse route (forwarded by http-proxy-3 instead of
 * undici), a bare forwarder (bench/bare-forwarder.ts), and squid and nginx as forward proxies where
 * they are installed. Then the policy engine with 10,000 rules: load + compile time and evaluation.
 *
 * Every round checks that each response it counted was a 200 from the upstream: no errors, no
 * non-2xx answer, and the upstream's own request count grew by at least as many requests.
 *
 * Environment: BENCH_SECONDS (per round, default 6), BENCH_CONNECTIONS (default 32), BENCH_ROUNDS
 * (rounds per target, default 3), BENCH_RULES (the large policy, default 10000), BENCH_TARGETS
 * (comma-separated subset of: bare, airlock, airlock-route, airlock-large, squid, nginx).
 */
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchDetectors } from './detectors.js';
import { benchBodyDecision, benchPolicyEvaluation, benchPolicyLoad, largePolicyText } from './policy-eval.js';
import { treeCpuMs } from './lib/cpu.js';
import { load, loadGenerator, type LoadResult } from './lib/load.js';
import { startNginxProxy, startSquid, startUpstream, versionOf, which } from './lib/peers.js';
import { Processes, ROOT } from './lib/processes.js';
import { median } from './lib/stats.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const LARGE = Number(process.env.BENCH_RULES ?? 10_000);
const ONLY = process.env.BENCH_TARGETS?.split(',').map((s) => s.trim());

const procs = new Processes();

function benchRules(): string {
  return `  - id: reads
    match: { methods: [GET, HEAD], hosts: [127.0.0.1], paths: ["/v1/**"] }
    action: allow
  - id: no-admin
    match: { hosts: [127.0.0.1], paths: ["/v1/admin/**"] }
    action: deny
`;
}

async function startAirlock(dir: string, name: string, policyText: string): Promise<{ port: number; pid: number | undefined }> {
  const policies = join(dir, name);
  await mkdir(policies);
  await writeFile(join(policies, 'bench.yaml'), policyText);
  const { child, value } = await procs.start(
    process.execPath,
    [
      join(ROOT, 'dist/cli/main.js'),
      'serve',
      '--policies', policies,
      '--listen', '127.0.0.1:0',
      '--admin', '127.0.0.1:0',
      '--audit', join(dir, `${name}-audit.jsonl`),
      '--allow-destination', '127.0.0.0/8',
      '--policy-poll', '5s',
    ],
    {
      env: { ...process.env, AIRLOCK_LOG_LEVEL: 'info' },
      ready: (line, stream) => {
        if (stream !== 'stderr' || !line.startsWith('{')) return null;
        const rec = JSON.parse(line) as { msg?: string; proxy?: string };
        return rec.msg === 'airlock listening' ? Number(rec.proxy!.split(':').pop()) : null;
      },
    },
  );
  return { port: value, pid: child.pid };
}

interface Target {
  name: string;
  label: string;
  port: number;
  pid: number | undefined;
  /** Requests go to a reverse route on the proxy, not through it as a forward proxy. */
  route: boolean;
  rounds: (LoadResult & { cpuUsPerRequest: number; upstreamShort: number })[];
}

function fmt(n: number, digits = 0, width = 8): string {
  return (Number.isFinite(n) ? n.toFixed(digits) : '–').padStart(width);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'airlock-bench-'));
  let failed = false;
  try {
    const upstream = await startUpstream(procs, dir);
    const url = `http://127.0.0.1:${upstream.port}/v1/items?limit=3`;
    // The same request, through a reverse route (/r/ → the upstream) for the route target.
    const target = (t: Target): { url: string; originForm: boolean } => (t.route ? { url: '/r/v1/items?limit=3', originForm: true } : { url, originForm: false });
    const targets: Target[] = [];
    const add = async (name: string, label: string, start: () => Promise<{ port: number; pid: number | undefined }>, route = false): Promise<void> => {
      if (ONLY && !ONLY.includes(name)) return;
      const { port, pid } = await start();
      targets.push({ name, label, port, pid, route, rounds: [] });
    };
    const notes: string[] = [];
    await add('bare', 'bare forwarder (Node http + undici)', async () => {
      const { child, port } = await procs.startTs(['bench/bare-forwarder.ts']);
      return { port, pid: child.pid };
    });
    const header = 'version: 1\ndefaults: { action: deny }\nrules:\n';
    const routes = `routes:\n  - { prefix: /r/, upstream: "http://127.0.0.1:${upstream.port}/" }\n`;
    const small = ONLY && !ONLY.includes('airlock') && !ONLY.includes('airlock-route') ? null : await startAirlock(dir, 'small', routes + header + benchRules());
    await add('airlock', 'Airlock, 2 rules', async () => small!);
    await add('airlock-route', 'Airlock, 2 rules, reverse route', async () => small!, true);
    await add('airlock-large', `Airlock, ${LARGE.toLocaleString('en')} rules`, () => startAirlock(dir, 'large', largePolicyText(LARGE) + benchRules()));
    if (which('squid')) {
      await add('squid', 'squid (1 worker, no cache)', () => startSquid(procs, dir));
    } else notes.push('squid is not installed (apt-get install -y squid): skipped');
    if (which('nginx')) {
      await add('nginx', 'nginx (1 worker, keep-alive pool)', () => startNginxProxy(procs, dir, upstream.port));
    } else notes.push('nginx is not installed (apt-get install -y nginx): skipped, and the upstream is a Node server');
    if (loadGenerator() !== 'wrk') notes.push('wrk is not installed (apt-get install -y wrk): load from autocannon, which takes more CPU');

    // Warm each target (JIT, keep-alive pools) before measuring.
    for (const t of targets) {
      const warm = await load({ proxyPort: t.port, ...target(t), connections: CONNECTIONS, seconds: 2, dir });
      if (warm.errors > 0) throw new Error(`warm-up through ${t.label} failed: ${warm.errors} errors`);
    }

    // Rounds alternate between targets, each round starting with the next one, so drift in the
    // machine's speed spreads evenly.
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < targets.length; i++) {
        const t = targets[(i + r) % targets.length]!;
        const before = await upstream.requests();
        const cpuBefore = treeCpuMs(t.pid);
        const result = await load({ proxyPort: t.port, ...target(t), connections: CONNECTIONS, seconds: SECONDS, dir });
        const cpu = treeCpuMs(t.pid) - cpuBefore;
        const served = (await upstream.requests()) - before;
        t.rounds.push({ ...result, cpuUsPerRequest: (cpu * 1000) / result.requests, upstreamShort: Math.max(0, result.requests - served) });
      }
    }

    const cpu = cpus();
    console.log(`\nAllowed path: GET through each proxy, ${CONNECTIONS} connections, ${ROUNDS} rounds × ${SECONDS} s per target (medians)`);
    console.log(`machine: ${cpu.length} × ${cpu[0]?.model ?? '?'}; Node ${process.versions.node}; load: ${loadGenerator()}; upstream: ${upstream.kind}`);
    console.log(`peers: ${versionOf('squid')}; ${versionOf('nginx')}`);
    for (const n of notes) console.log(`note: ${n}`);
    console.log(`\n${'target'.padEnd(36)}   req/s   p50 ms   p99 ms  CPU µs/req  errors`);
    const summary = new Map<string, { rps: number; p50: number; p99: number }>();
    for (const t of targets) {
      const s = {
        rps: median(t.rounds.map((x) => x.rps)),
        p50: median(t.rounds.map((x) => x.p50ms)),
        p99: median(t.rounds.map((x) => x.p99ms)),
      };
      summary.set(t.name, s);
      const errors = t.rounds.reduce((n, x) => n + x.errors, 0);
      const short = t.rounds.reduce((n, x) => n + x.upstreamShort, 0);
      console.log(
        `${t.label.padEnd(36)}${fmt(s.rps)}${fmt(s.p50, 2, 9)}${fmt(s.p99, 2, 9)}${fmt(median(t.rounds.map((x) => x.cpuUsPerRequest)), 0, 12)}${fmt(errors, 0, 8)}`,
      );
      if (errors > 0 || short > 0) {
        failed = true;
        console.log(`  FAILED: ${errors} errors or non-2xx answers; ${short} counted responses the upstream never answered`);
      }
    }

    const ratio = (a: string, b: string, what: 'rps' | 'p99', target: string): void => {
      const x = summary.get(a);
      const y = summary.get(b);
      if (!x || !y) return;
      console.log(`${`${a} / ${b} ${what === 'rps' ? 'throughput' : 'p99'}`.padEnd(40)} ${(x[what] / y[what]).toFixed(2)}×   (target ${target})`);
    };
    console.log('');
    ratio('airlock', 'bare', 'rps', '≥ 1.0');
    ratio('airlock', 'squid', 'rps', '≥ 1.0');
    ratio('airlock', 'nginx', 'rps', 'for reference');
    ratio('airlock-route', 'airlock', 'rps', 'http-proxy-3 (route) / undici (forward proxy)');
    ratio('airlock-large', 'bare', 'rps', '≥ 1.0');
    ratio('airlock-large', 'airlock', 'p99', '≤ 2.0');

    const loaded = await benchPolicyLoad(LARGE);
    console.log(`\nPolicy, ${LARGE.toLocaleString('en')} rules: an edit is in force ${loaded.loadMs.toFixed(0)} ms after it is written; the event loop stalled at most ${loaded.stallMs.toFixed(1)} ms meanwhile; a poll with nothing changed takes ${loaded.unchangedMs.toFixed(2)} ms`);
    const evalResult = benchPolicyEvaluation(LARGE);
    console.log(`Policy evaluation, ${evalResult.rules.toLocaleString('en')} rules: median ${evalResult.medianNs.toFixed(0)} ns per decision (p99 of batches ${evalResult.p99Ns.toFixed(0)} ns; target median ≤ 2000 ns)`);
    const bodyResult = await benchBodyDecision();
    console.log(`Deciding on a ${bodyResult.bodyBytes}-byte JSON body (inspect + evaluate): median ${bodyResult.medianUs.toFixed(1)} µs (target ≤ 50 µs)`);
    const det = await benchDetectors();
    console.log(`Detectors on a ${(det.bytes / 1048576).toFixed(2)} MiB mixed JSON document: ${det.detectMBs.toFixed(0)} MB/s all six (target ≥ 50 MB/s); ${det.viewMBs.toFixed(0)} MB/s with decoding, parsing and the duplicate-key check`);
  } finally {
    await procs.stopAll();
    await rm(dir, { recursive: true, force: true });
  }
  if (failed) process.exitCode = 1;
}

await main();
