/**
 * `npm run bench:certs`: what HTTPS interception costs in certificates.
 *
 * 1. one-off costs: `generateCa`, `loadCa`, the first leaf of a CA (which also makes the shared leaf key);
 * 2. `Ca.issueLeaf` for BENCH_HOSTS different hosts, one at a time (median, p90, p99);
 * 3. `LeafCache.context` for new hosts (issue + `tls.createSecureContext`), one at a time;
 * 4. the same BENCH_HOSTS new hosts all at once (what a burst of CONNECTs to new hosts costs);
 * 5. `LeafCache.context` for a cached host: BENCH_LOOKUPS calls, timed in batches of 1000;
 * 6. a TLS handshake on loopback (client trusts the CA, P-256 leaf) for a new host and a cached one.
 *
 * Environment: BENCH_HOSTS (default 200), BENCH_LOOKUPS (default 200000), BENCH_HANDSHAKES (default 100).
 */
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import * as tls from 'node:tls';
import { generateCa, loadCa } from '../src/tls/ca.js';
import { LeafCache } from '../src/tls/leaf-cache.js';

const HOSTS = Number(process.env.BENCH_HOSTS ?? 200);
const LOOKUPS = Number(process.env.BENCH_LOOKUPS ?? 200_000);
const HANDSHAKES = Number(process.env.BENCH_HANDSHAKES ?? 100);

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

function fmt(ms: number): string {
  return ms >= 1 ? `${ms.toFixed(2)} ms` : `${(ms * 1000).toFixed(ms < 0.01 ? 2 : 1)} µs`;
}

function report(label: string, samples: number[]): void {
  const s = [...samples].sort((a, b) => a - b);
  console.log(`${label.padEnd(52)} median ${fmt(quantile(s, 0.5)).padStart(10)}   p90 ${fmt(quantile(s, 0.9)).padStart(10)}   p99 ${fmt(quantile(s, 0.99)).padStart(10)}   (n=${s.length})`);
}

async function time<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now();
  const value = await fn();
  return [performance.now() - t0, value];
}

console.log(`node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`);

const [genMs, generated] = await time(() => generateCa());
const [loadMs, ca] = await time(() => loadCa(generated.certPem, generated.keyPem));
const [firstLeafMs] = await time(() => ca.issueLeaf('first.bench.example'));
console.log(`generateCa ${fmt(genMs)}; loadCa ${fmt(loadMs)}; first leaf (incl. the shared leaf key) ${fmt(firstLeafMs)}`);

// warm-up: JIT, lazy module state
for (let i = 0; i < 50; i++) await ca.issueLeaf(`warm-${i}.bench.example`);

const issue: number[] = [];
for (let i = 0; i < HOSTS; i++) issue.push((await time(() => ca.issueLeaf(`host-${i}.issue.bench.example`)))[0]);
report('issueLeaf, new host, one at a time', issue);

const cache = new LeafCache(ca, { max: HOSTS * 4 });
const first: number[] = [];
for (let i = 0; i < HOSTS; i++) first.push((await time(() => cache.context(`host-${i}.ctx.bench.example`)))[0]);
report('LeafCache.context, new host (issue + SecureContext)', first);

const burstCache = new LeafCache(ca, { max: HOSTS * 4 });
const [burstMs] = await time(() => Promise.all(Array.from({ length: HOSTS }, (_, i) => burstCache.context(`host-${i}.burst.bench.example`))));
console.log(`${`LeafCache.context, ${HOSTS} new hosts at once`.padEnd(52)} total ${fmt(burstMs)}  (${Math.round((HOSTS / burstMs) * 1000)} contexts/s)`);

const hot = 'host-7.ctx.bench.example';
await cache.context(hot);
const BATCH = 1000;
const cached: number[] = [];
for (let b = 0; b < LOOKUPS / BATCH; b++) {
  const t0 = performance.now();
  for (let i = 0; i < BATCH; i++) await cache.context(hot);
  cached.push((performance.now() - t0) / BATCH);
}
report(`LeafCache.context, cached host (per call, batches of ${BATCH})`, cached);

// TLS handshakes on loopback, the way the CONNECT handler will serve them
const hsCache = new LeafCache(ca, { max: HANDSHAKES * 4 });
const server = createServer((sock) => {
  sock.on('error', () => {});
  const t = new tls.TLSSocket(sock, {
    isServer: true,
    SNICallback: (sn, cb) => void hsCache.context(sn).then((c) => cb(null, c), (e: Error) => cb(e)),
  });
  t.on('error', () => {});
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const { port } = server.address() as AddressInfo;
async function handshake(servername: string): Promise<number> {
  const t0 = performance.now();
  const s = tls.connect({ host: '127.0.0.1', port, servername, ca: generated.certPem });
  await once(s, 'secureConnect');
  const ms = performance.now() - t0;
  s.destroy();
  return ms;
}
for (let i = 0; i < 20; i++) await handshake(`warm-${i}.hs.bench.example`);
const hsNew: number[] = [];
const hsCached: number[] = [];
for (let i = 0; i < HANDSHAKES; i++) hsNew.push(await handshake(`host-${i}.hs.bench.example`));
for (let i = 0; i < HANDSHAKES; i++) hsCached.push(await handshake(`host-${i % 10}.hs.bench.example`));
server.close();
report('TLS handshake, new host (client + server)', hsNew);
report('TLS handshake, cached host (client + server)', hsCached);
