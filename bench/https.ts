/**
 * `npm run bench:https`: HTTPS through Airlock, intercepted (TLS terminated with Airlock's CA, each
 * request decided and forwarded over verified TLS) against a raw CONNECT tunnel to the SAME HTTPS
 * upstream, in the same run, at the same load.
 *
 * - An upstream CA and an interception CA are generated in a temp dir; the upstream (a child process:
 *   this file with the argument `upstream`) answers a small JSON body over HTTPS, keep-alive.
 * - One Airlock serves both modes. Its policy has a path rule for `127.0.0.1` (→ CONNECTs to it are
 *   intercepted) and a host-level rule for `localhost` (→ CONNECTs to it are spliced as raw tunnels).
 *   Both names reach the same upstream socket. `issueLeaf` puts one name in a leaf, so the upstream has
 *   two leaves with one key (all leaves of a CA share it): the `127.0.0.1` one (IP SAN) is the default,
 *   and SNI `localhost` selects the `localhost` one (clients send no SNI for IP literals). Airlock
 *   verifies the upstream through `--upstream-ca` when it forwards intercepted requests; through the
 *   tunnel the client verifies the upstream itself. The client records the issuer of every certificate
 *   it verifies, and the bench fails unless the tunnel showed the upstream's CA and interception Airlock's.
 * - Load: undici ProxyAgent in this process (CONNECT, keep-alive, pipelining 1): BENCH_CONCURRENCY
 *   requests in flight over as many connections, alternating rounds of BENCH_SECONDS (tunnel,
 *   intercepted, tunnel, …). Any failed or non-200 request makes the exit code 1. CPU time per request
 *   of Airlock, the upstream and this process comes from /proc (Linux) and process.cpuUsage().
 * - Time to first byte of the first request on a new connection, split at the CONNECT answer and the
 *   end of the client's TLS handshake: through the tunnel; through interception to a host Airlock has
 *   not seen (leaf issued, client↔Airlock and Airlock↔upstream handshakes); through interception to a
 *   host it has (cached leaf, pooled upstream connection). New hosts are the loopback addresses
 *   127.0.0.2, 127.0.0.3, … that the upstream also listens on.
 *
 * Environment: BENCH_SECONDS (per round, default 8), BENCH_CONCURRENCY (default 32), BENCH_ROUNDS
 * (per mode, default 3), BENCH_NEW_HOSTS (new-host samples, default 8).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { subscribe } from 'node:diagnostics_channel';
import { once } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { checkServerIdentity, createSecureContext, type PeerCertificate, type TLSSocket } from 'node:tls';
import { ProxyAgent } from 'undici';
import { generateCa, loadCa } from '../src/tls/ca.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const NEW_HOSTS = Math.max(0, Math.min(200, Number(process.env.BENCH_NEW_HOSTS ?? 8)));
const WARM_SECONDS = 2;
const ROOT = join(import.meta.dirname, '..');
const PATH = '/v1/items?limit=3';
const BODY = JSON.stringify({ ok: true, items: [1, 2, 3], note: 'benchmark upstream' });
const UPSTREAM_CA_NAME = 'bench upstream CA';
const INTERCEPT_CA_NAME = 'bench interception CA';

// ---------------------------------------------------------------------------------------------
// the upstream (child process): `node --import tsx bench/https.ts upstream <dir> <extra address>...`
// <dir> holds upstream.key and upstream-<name>.crt for 127.0.0.1, localhost and each extra address.

async function runUpstream(dir: string, extra: string[]): Promise<void> {
  // The parent holds our stdin open: when it goes away, so do we.
  process.stdin.on('end', () => process.exit(0)).resume();
  const key = await readFile(join(dir, 'upstream.key'), 'utf8');
  const cert = (name: string): Promise<string> => readFile(join(dir, `upstream-${name}.crt`), 'utf8');
  const ipCert = await cert('127.0.0.1');
  const localhost = createSecureContext({ key, cert: await cert('localhost') });
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY) });
      res.end(BODY);
    });
  };
  const server = (certPem: string): Server => {
    const s = createServer({ key, cert: certPem, SNICallback: (name, cb) => cb(null, name === 'localhost' ? localhost : undefined) }, handler);
    s.keepAliveTimeout = 60_000;
    s.on('tlsClientError', () => {});
    // one line per new TLS connection, so the bench can tell whether connections were reused
    s.on('secureConnection', (t: TLSSocket) => console.log(`TLS ${t.localAddress ?? ''}`));
    return s;
  };
  const listen = async (s: Server, port: number, host: string): Promise<boolean> => {
    try {
      s.listen(port, host);
      await once(s, 'listening');
      return true;
    } catch {
      return false;
    }
  };
  const main = server(ipCert);
  if (!(await listen(main, 0, '127.0.0.1'))) throw new Error('cannot listen on 127.0.0.1');
  const { port } = main.address() as AddressInfo;
  // where `localhost` also resolves to ::1, be there too (the destination guard may dial it)
  await listen(server(ipCert), port, '::1');
  const bound: string[] = [];
  for (const address of extra) {
    if (await listen(server(await cert(address)), port, address)) bound.push(address);
  }
  console.log(`READY ${port} ${bound.join(',')}`);
}

// ---------------------------------------------------------------------------------------------
// processes

const children: ChildProcess[] = [];
let stopping = false;
let tempDir: string | undefined;

function stopChildren(): void {
  stopping = true;
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
}

/**
 * Start a helper process; resolve with what `pick` finds in a line of `stream`. Both streams are read
 * to the end (so the child never blocks on a full pipe) and every line goes to `onLine`; the last
 * lines are kept for the error message if the child exits.
 */
function start(
  args: string[],
  stream: 'stdout' | 'stderr',
  pick: (line: string) => string | null,
  opts: { stdin?: 'ignore' | 'pipe'; onLine?: (line: string) => void } = {},
): Promise<{ value: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
    cwd: ROOT,
    env: { ...process.env, AIRLOCK_LOG_LEVEL: 'info' },
    stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const tail: string[] = [];
  return new Promise((resolve, reject) => {
    let ready = false;
    for (const s of ['stdout', 'stderr'] as const) {
      createInterface({ input: child[s]! }).on('line', (line) => {
        opts.onLine?.(line);
        if (line.startsWith('TLS ')) return;
        tail.push(line);
        if (tail.length > 20) tail.shift();
        if (s === stream && !ready) {
          const value = pick(line);
          if (value !== null) {
            ready = true;
            resolve({ value, child });
          }
        }
      });
    }
    child.on('exit', (code, signal) => {
      const message = `${args.slice(0, 2).join(' ')} exited (${signal ?? code}) ${ready ? 'during the bench' : 'before it was ready'}:\n${tail.join('\n')}`;
      if (!ready) reject(new Error(message));
      else if (!stopping) {
        console.error(message);
        process.exitCode = 1;
      }
    });
  });
}

/** CPU time (ms, user + system, all threads) of a child so far, from /proc; NaN where there is none. */
function cpuMs(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in USER_HZ (100)
  } catch {
    return NaN;
  }
}

function selfCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

// ---------------------------------------------------------------------------------------------
// client

type Mode = 'tunnel' | 'intercepted';

/** Issuer CNs of the certificates the client verified, per mode: one per TLS handshake. */
const handshakes: Record<Mode, Map<string, number>> = { tunnel: new Map(), intercepted: new Map() };

function clientFor(mode: Mode, proxy: string, ca: string[], connections: number): ProxyAgent {
  return new ProxyAgent({
    uri: proxy,
    connections,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    keepAliveMaxTimeout: 60_000,
    requestTls: {
      ca,
      maxCachedSessions: 0,
      checkServerIdentity: (host: string, cert: PeerCertificate) => {
        const issuer = String(cert.issuer.CN);
        handshakes[mode].set(issuer, (handshakes[mode].get(issuer) ?? 0) + 1);
        return checkServerIdentity(host, cert);
      },
    },
  });
}

/** When the CONNECT was answered and when the client's TLS handshake inside it ended (first requests are made one at a time). */
const phase = { connectAnswered: NaN, tlsDone: NaN };
subscribe('undici:proxy:connected', () => {
  phase.connectAnswered = performance.now();
});
subscribe('undici:client:connected', (message) => {
  if ((message as { connectParams?: { protocol?: string } }).connectParams?.protocol === 'https:') phase.tlsDone = performance.now();
});

function quantile(sorted: ArrayLike<number>, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

function median(xs: number[]): number {
  return quantile([...xs].sort((a, b) => a - b), 0.5);
}

/** One GET, checked: resolves with the time to the response headers, or throws. */
async function get(client: ProxyAgent, origin: string): Promise<number> {
  const t0 = performance.now();
  const res = await client.request({ origin, path: PATH, method: 'GET' });
  const ttfb = performance.now() - t0;
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`${origin}${PATH}: ${res.statusCode} ${text.slice(0, 300)}`);
  if (text !== BODY) throw new Error(`${origin}${PATH}: unexpected body ${text.slice(0, 100)}`);
  return ttfb;
}

interface Round {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  firstError?: string;
}

/** CONCURRENCY requests in flight for `seconds`; latency is request start to the end of the body. */
async function load(client: ProxyAgent, origin: string, seconds: number): Promise<Round> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      const start = performance.now();
      try {
        await get(client, origin);
        latencies.push(performance.now() - start);
      } catch (err) {
        errors++;
        firstError ??= `${(err as { code?: string }).code ?? ''} ${(err as Error).message}`.trim();
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const elapsed = (performance.now() - t0) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  return {
    requests: latencies.length,
    rps: latencies.length / elapsed,
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    errors,
    ...(firstError ? { firstError } : {}),
  };
}

interface FirstByte {
  connect: number;
  tls: number;
  ttfb: number;
}

/** The first request of a brand-new client (a new CONNECT and new handshakes), timed in phases. */
async function firstRequest(mode: Mode, proxy: string, ca: string[], origin: string): Promise<FirstByte> {
  const client = clientFor(mode, proxy, ca, 1);
  phase.connectAnswered = phase.tlsDone = NaN;
  const t0 = performance.now();
  try {
    const ttfb = await get(client, origin);
    return { connect: phase.connectAnswered - t0, tls: phase.tlsDone - t0, ttfb };
  } finally {
    await client.destroy();
  }
}

function fmtMs(ms: number): string {
  return `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;
}

// ---------------------------------------------------------------------------------------------
// the bench

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'airlock-bench-https-'));
  tempDir = dir;
  const t0 = performance.now();
  try {
    // certificates: the upstream's CA and leaves (all leaves of a CA share one key), Airlock's CA
    const upstreamCa = await generateCa({ commonName: UPSTREAM_CA_NAME });
    const interceptCa = await generateCa({ commonName: INTERCEPT_CA_NAME });
    const issuer = await loadCa(upstreamCa.certPem, upstreamCa.keyPem);
    const extra = Array.from({ length: NEW_HOSTS }, (_, i) => `127.0.0.${i + 2}`);
    let leafKey = '';
    for (const name of ['127.0.0.1', 'localhost', ...extra]) {
      const leaf = await issuer.issueLeaf(name);
      leafKey = leaf.keyPem;
      await writeFile(join(dir, `upstream-${name}.crt`), leaf.certPem);
    }
    await writeFile(join(dir, 'upstream.key'), leafKey, { mode: 0o600 });
    await writeFile(join(dir, 'upstream-ca.crt'), upstreamCa.certPem);
    await writeFile(join(dir, 'ca.crt'), interceptCa.certPem);
    await writeFile(join(dir, 'ca.key'), interceptCa.keyPem, { mode: 0o600 });

    let upstreamTls = 0;
    const upstream = await start(['bench/https.ts', 'upstream', dir, ...extra], 'stdout', (l) => (l.startsWith('READY ') ? l.slice(6) : null), {
      stdin: 'pipe',
      onLine: (l) => {
        if (l.startsWith('TLS ')) upstreamTls++;
      },
    });
    const [portText, boundText] = upstream.value.split(' ');
    const port = Number(portText);
    const newHosts = (boundText ?? '').split(',').filter(Boolean);

    const policies = join(dir, 'policies');
    await mkdir(policies);
    await writeFile(
      join(policies, 'bench.yaml'),
      `version: 1
defaults: { action: deny }
rules:
  - id: intercepted-reads
    description: a path rule, so CONNECTs to these hosts are intercepted
    match: { methods: [GET], hosts: [${['127.0.0.1', ...newHosts].join(', ')}], ports: [${port}], paths: ["/v1/**"] }
    action: allow
  - id: tunnel
    description: host-level only, so CONNECTs to localhost are spliced
    match: { hosts: [localhost], ports: [${port}] }
    action: allow
`,
    );
    const audit = join(dir, 'audit.jsonl');
    const airlock = await start(
      [
        'src/cli/main.ts', 'serve',
        '--policies', policies,
        '--listen', '127.0.0.1:0',
        '--admin', '127.0.0.1:0',
        '--audit', audit,
        '--ca-cert', join(dir, 'ca.crt'),
        '--ca-key', join(dir, 'ca.key'),
        '--upstream-ca', join(dir, 'upstream-ca.crt'),
        '--allow-destination', '127.0.0.0/8,::1/128',
      ],
      'stderr',
      (line) => {
        try {
          const rec = JSON.parse(line) as { msg?: string; proxy?: string };
          return rec.msg === 'airlock listening' ? (rec.proxy ?? null) : null;
        } catch {
          return null;
        }
      },
    );
    const proxy = `http://127.0.0.1:${airlock.value.split(':').pop()}`;
    const ca = [interceptCa.certPem, upstreamCa.certPem];
    const origins: Record<Mode, string> = { tunnel: `https://localhost:${port}`, intercepted: `https://127.0.0.1:${port}` };
    console.log(`node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}; upstream :${port}, airlock ${proxy}; started in ${fmtMs(performance.now() - t0)}`);

    // The first requests of all, in a cold Airlock; the intercepted one also makes the CA's shared leaf key.
    const coldTunnel = await firstRequest('tunnel', proxy, ca, origins.tunnel);
    const coldIntercepted = await firstRequest('intercepted', proxy, ca, origins.intercepted);

    const clients: Record<Mode, ProxyAgent> = {
      tunnel: clientFor('tunnel', proxy, ca, CONCURRENCY),
      intercepted: clientFor('intercepted', proxy, ca, CONCURRENCY),
    };
    // Warm both paths (JIT, keep-alive pools, Airlock's upstream pool) before measuring.
    for (const mode of ['tunnel', 'intercepted'] as const) {
      const warm = await load(clients[mode], origins[mode], WARM_SECONDS);
      if (warm.errors > 0) throw new Error(`warm-up (${mode}) failed: ${warm.errors} errors, first: ${warm.firstError}`);
    }

    // New connections, one at a time, interleaved: tunnel / intercepted new host / intercepted known host.
    const first: { tunnel: FirstByte[]; newHost: FirstByte[]; knownHost: FirstByte[] } = { tunnel: [], newHost: [], knownHost: [] };
    for (let i = 0; i < Math.max(NEW_HOSTS, 3); i++) {
      first.tunnel.push(await firstRequest('tunnel', proxy, ca, origins.tunnel));
      const host = newHosts[i];
      if (host) first.newHost.push(await firstRequest('intercepted', proxy, ca, `https://${host}:${port}`));
      first.knownHost.push(await firstRequest('intercepted', proxy, ca, origins.intercepted));
    }

    interface Measured extends Round {
      cpu: { airlock: number; upstream: number; client: number };
      upstreamTls: number;
    }
    const rounds: Record<Mode, Measured[]> = { tunnel: [], intercepted: [] };
    for (let i = 0; i < ROUNDS; i++) {
      for (const mode of ['tunnel', 'intercepted'] as const) {
        const before = { tls: upstreamTls, airlock: cpuMs(airlock.child.pid), upstream: cpuMs(upstream.child.pid), client: selfCpuMs() };
        const r = await load(clients[mode], origins[mode], SECONDS);
        const perRequest = (ms: number): number => (ms * 1000) / Math.max(1, r.requests);
        const m: Measured = {
          ...r,
          cpu: {
            airlock: perRequest(cpuMs(airlock.child.pid) - before.airlock),
            upstream: perRequest(cpuMs(upstream.child.pid) - before.upstream),
            client: perRequest(selfCpuMs() - before.client),
          },
          upstreamTls: upstreamTls - before.tls,
        };
        rounds[mode].push(m);
        console.log(
          `  round ${i + 1} ${mode.padEnd(11)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  ` +
            `CPU µs/req airlock ${m.cpu.airlock.toFixed(0)} upstream ${m.cpu.upstream.toFixed(0)} client ${m.cpu.client.toFixed(0)}  ` +
            `new upstream TLS conns ${m.upstreamTls}  errors ${r.errors}${r.firstError ? ` (${r.firstError})` : ''}`,
        );
      }
    }
    await Promise.all([clients.tunnel.close(), clients.intercepted.close()]);

    const summary = (rs: Measured[]) => ({
      rps: median(rs.map((r) => r.rps)),
      p50: median(rs.map((r) => r.p50)),
      p99: median(rs.map((r) => r.p99)),
      airlockCpu: median(rs.map((r) => r.cpu.airlock)),
      requests: rs.reduce((n, r) => n + r.requests, 0),
      errors: rs.reduce((n, r) => n + r.errors, 0),
    });
    const t = summary(rounds.tunnel);
    const x = summary(rounds.intercepted);
    console.log(`\nHTTPS GET through Airlock, ${CONCURRENCY} in flight over ${CONCURRENCY} keep-alive CONNECT tunnels, ${ROUNDS} × ${SECONDS} s rounds each (medians):`);
    console.log('mode                        req/s    p50 ms   p99 ms   airlock CPU µs/req   requests  errors');
    for (const [name, s] of [['CONNECT tunnel (spliced)', t], ['intercepted (decided)', x]] as const) {
      console.log(
        `${name.padEnd(25)} ${s.rps.toFixed(0).padStart(8)} ${s.p50.toFixed(2).padStart(9)} ${s.p99.toFixed(2).padStart(8)} ${s.airlockCpu.toFixed(0).padStart(20)} ${String(s.requests).padStart(10)} ${String(s.errors).padStart(7)}`,
      );
    }
    console.log(`throughput ratio intercepted / tunnel: ${(x.rps / t.rps).toFixed(3)}`);

    console.log('\nFirst request on a new connection (medians; ms from the request to: CONNECT answered / client TLS handshake done / response headers):');
    const line = (label: string, xs: FirstByte[]): void => {
      if (xs.length === 0) return console.log(`${label.padEnd(58)} (no samples)`);
      const ttfb = xs.map((f) => f.ttfb).sort((a, b) => a - b);
      console.log(
        `${label.padEnd(58)} ${median(xs.map((f) => f.connect)).toFixed(2).padStart(6)} / ${median(xs.map((f) => f.tls)).toFixed(2).padStart(6)} / ` +
          `${quantile(ttfb, 0.5).toFixed(2).padStart(6)}   (TTFB min ${fmtMs(ttfb[0]!)}, max ${fmtMs(ttfb[ttfb.length - 1]!)}, n=${xs.length})`,
      );
    };
    line('tunnel (CONNECT, dial, TLS with the upstream)', first.tunnel);
    line('intercepted, new host (leaf issued, 2 TLS handshakes)', first.newHost);
    line('intercepted, known host (cached leaf, pooled upstream)', first.knownHost);
    console.log(`cold Airlock, first request of the run: tunnel ${fmtMs(coldTunnel.ttfb)}, then intercepted ${fmtMs(coldIntercepted.ttfb)} (incl. the CA's shared leaf key)`);
    if (newHosts.length < NEW_HOSTS) console.log(`(only ${newHosts.length} of ${NEW_HOSTS} extra loopback addresses could be bound for new-host samples)`);

    // What the client verified: the upstream's certificate through the tunnel, Airlock's through interception.
    const seen = (m: Mode): string => [...handshakes[m]].map(([cn, n]) => `${n} × ${cn}`).join(', ');
    console.log(`\nTLS handshakes the client verified: tunnel ${seen('tunnel')}; intercepted ${seen('intercepted')}`);
    const wrongIssuer =
      [...handshakes.tunnel.keys()].some((cn) => cn !== UPSTREAM_CA_NAME) || [...handshakes.intercepted.keys()].some((cn) => cn !== INTERCEPT_CA_NAME);
    if (wrongIssuer) {
      console.error('unexpected certificate issuer: the modes are not what the bench means to measure');
      process.exitCode = 1;
    }

    // What Airlock recorded: a `tunnel` event per CONNECT (allow = spliced, inspect = intercepted), a `request` per intercepted request.
    const tally = new Map<string, number>();
    for (const l of (await readFile(audit, 'utf8')).split('\n')) {
      if (!l) continue;
      const e = JSON.parse(l) as { event?: string; decision?: string; host?: string };
      const host = e.host && /^127\.0\.0\.(?!1$)/.test(e.host) ? '127.0.0.x' : e.host;
      const k = `${e.event}${e.decision ? `/${e.decision}` : ''}${host ? ` ${host}` : ''}`;
      tally.set(k, (tally.get(k) ?? 0) + 1);
    }
    console.log(`audit trail: ${[...tally].sort().map(([k, n]) => `${k} ${n}`).join('; ')}`);
    console.log(`total ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    if (t.errors > 0 || x.errors > 0) process.exitCode = 1;
  } finally {
    stopChildren();
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'upstream') {
  await runUpstream(process.argv[3]!, process.argv.slice(4));
} else {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      stopChildren();
      if (tempDir) rmSync(tempDir, { recursive: true, force: true });
      process.exit(130);
    });
  }
  try {
    await main();
  } catch (err) {
    console.error(`bench:https failed: ${(err as Error).stack ?? String(err)}`);
    process.exitCode = 1;
  }
}
