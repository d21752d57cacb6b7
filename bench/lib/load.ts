/**
 * HTTP load through a forward proxy: absolute-form GETs over keep-alive connections, as an agent's
 * HTTP client sends them through HTTP_PROXY. wrk (C, one thread) when installed, so the load generator
 * takes as little of the machine as it can; autocannon (Node) otherwise.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import autocannon from 'autocannon';
import { which } from './peers.js';

export interface LoadResult {
  requests: number;
  seconds: number;
  rps: number;
  p50ms: number;
  p99ms: number;
  /** Responses other than 2xx/3xx, and connect, read, write and timeout errors. */
  errors: number;
}

export interface LoadOptions {
  proxyPort: number;
  /** The absolute URL requested through the proxy, or, with `originForm`, the path on the proxy itself. */
  url: string;
  /** Send `url` as a path to the proxy (a reverse route), not as an absolute-form proxy request. */
  originForm?: boolean;
  connections: number;
  seconds: number;
  /** A folder for wrk's script. */
  dir: string;
}

export const loadGenerator = (): 'wrk' | 'autocannon' => (which('wrk') ? 'wrk' : 'autocannon');

const run = promisify(execFile);

/** The request target and Host header a client sends. */
function requestLine(o: LoadOptions): { path: string; host: string } {
  if (o.originForm) return { path: o.url, host: `127.0.0.1:${o.proxyPort}` };
  return { path: o.url, host: new URL(o.url).host };
}

async function wrk(o: LoadOptions): Promise<LoadResult> {
  const { path, host } = requestLine(o);
  const script = join(o.dir, 'proxy.lua');
  // wrk sends wrk.path verbatim in the request line: an absolute URL makes it a proxy request.
  await writeFile(
    script,
    `wrk.path = ${JSON.stringify(path)}
wrk.headers["Host"] = ${JSON.stringify(host)}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT %d %d %d %d %d %d %d %d %d\\n', summary.requests, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
`,
  );
  const { stdout } = await run(which('wrk')!, ['-t1', `-c${o.connections}`, `-d${o.seconds}s`, '--timeout', '10s', '-s', script, `http://127.0.0.1:${o.proxyPort}/`], {
    timeout: (o.seconds + 30) * 1000,
  });
  const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`wrk printed no result:\n${stdout}`);
  const [requests, durationUs, connect, read, write, status, timeout, p50us, p99us] = line.split(' ').slice(1).map(Number) as number[];
  const seconds = durationUs! / 1e6;
  return {
    requests: requests!,
    seconds,
    rps: requests! / seconds,
    p50ms: p50us! / 1000,
    p99ms: p99us! / 1000,
    errors: connect! + read! + write! + status! + timeout!,
  };
}

async function cannon(o: LoadOptions): Promise<LoadResult> {
  const { path, host } = requestLine(o);
  const r = await autocannon({
    url: `http://127.0.0.1:${o.proxyPort}`,
    connections: o.connections,
    duration: o.seconds,
    headers: { host },
    requests: [{ method: 'GET', path }],
  });
  return {
    requests: r.requests.total,
    seconds: r.duration,
    rps: r.requests.total / r.duration,
    p50ms: r.latency.p50,
    p99ms: r.latency.p99,
    errors: r.errors + r.timeouts + r.non2xx,
  };
}

export function load(o: LoadOptions): Promise<LoadResult> {
  return loadGenerator() === 'wrk' ? wrk(o) : cannon(o);
}
