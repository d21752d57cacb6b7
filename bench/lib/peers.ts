/**
 * The servers a benchmark compares Airlock with, from the machine's packages: nginx (as the upstream,
 * and as a proxy in front of it) and squid. Each runs in the foreground with one worker, its
 * configuration and logs in the benchmark's temp folder, and nothing written to access logs.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, waitForPort, type Processes } from './processes.js';

/** The upstream's answer: a small JSON body, like a typical internal API read. */
export const UPSTREAM_BODY = JSON.stringify({ ok: true, items: [1, 2, 3], note: 'benchmark upstream' });

/** Path on the upstream that reports how many requests it has answered (not counted itself). */
export const COUNT_PATH = '/__requests';

export function which(command: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    const p = join(dir, command);
    if (dir !== '' && existsSync(p)) return p;
  }
  return null;
}

export interface Upstream {
  kind: 'nginx' | 'node';
  port: number;
  /** Requests answered so far (excluding the count requests themselves). */
  requests(): Promise<number>;
}

/** Runs as root only when it has to: nginx and squid drop to an unprivileged user, which must be able to write here. */
async function workDir(dir: string, name: string): Promise<string> {
  const d = join(dir, name);
  await mkdir(join(d, 'tmp'), { recursive: true });
  await chmod(d, 0o777);
  await chmod(join(d, 'tmp'), 0o777);
  return d;
}

function nginxConfig(d: string, server: string): string {
  const tmp = join(d, 'tmp');
  return `
${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes 1;
daemon off;
pid ${join(d, 'nginx.pid')};
error_log ${join(d, 'error.log')} warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${tmp}/body;
  proxy_temp_path ${tmp}/proxy;
  fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi;
  scgi_temp_path ${tmp}/scgi;
  keepalive_timeout 65;
  keepalive_requests 10000000;
${server}
}
`;
}

async function startNginx(procs: Processes, dir: string, name: string, server: (port: number) => string): Promise<{ child: ChildProcess; port: number }> {
  const d = await workDir(dir, name);
  const port = await freePort();
  const conf = join(d, 'nginx.conf');
  await writeFile(conf, nginxConfig(d, server(port)));
  const { child } = await procs.start(which('nginx')!, ['-c', conf, '-p', d]);
  await waitForPort(port);
  return { child, port };
}

/** The request count of nginx's stub_status, which counts every request including the status requests. */
async function stubStatusRequests(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}${COUNT_PATH}`)).text();
  // "Active connections: N \nserver accepts handled requests\n A H R \n…"
  return Number(text.split('\n')[2]!.trim().split(/\s+/)[2]);
}

/** nginx when installed (what the comparison is specified with), else a small Node server. */
export async function startUpstream(procs: Processes, dir: string): Promise<Upstream> {
  if (which('nginx')) {
    const { port } = await startNginx(
      procs,
      dir,
      'upstream',
      (p) => `
  server {
    listen 127.0.0.1:${p};
    location = ${COUNT_PATH} { stub_status; }
    location / { default_type application/json; return 200 '${UPSTREAM_BODY}'; }
  }`,
    );
    let statusCalls = 0;
    return {
      kind: 'nginx',
      port,
      requests: async () => (await stubStatusRequests(port)) - ++statusCalls,
    };
  }
  const { port } = await procs.startTs(['bench/upstream.ts']);
  return {
    kind: 'node',
    port,
    requests: async () => Number(await (await fetch(`http://127.0.0.1:${port}${COUNT_PATH}`)).text()),
  };
}

/** nginx proxying every request to the upstream over a keep-alive pool (absolute-form requests are accepted). */
export async function startNginxProxy(procs: Processes, dir: string, upstreamPort: number): Promise<{ port: number; pid: number | undefined }> {
  const { port, child } = await startNginx(
    procs,
    dir,
    'nginx-proxy',
    (p) => `
  upstream up { server 127.0.0.1:${upstreamPort}; keepalive 64; keepalive_requests 10000000; }
  server {
    listen 127.0.0.1:${p};
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
    }
  }`,
  );
  return { port, pid: child.pid };
}

/** squid as a forward proxy with caching off (every response must come from the upstream). */
export async function startSquid(procs: Processes, dir: string): Promise<{ port: number; pid: number | undefined }> {
  const d = await workDir(dir, 'squid');
  const port = await freePort();
  const conf = join(d, 'squid.conf');
  await writeFile(
    conf,
    `
http_port 127.0.0.1:${port}
workers 1
http_access allow all
cache deny all
cache_mem 0 MB
access_log none
cache_store_log none
cache_log stdio:${join(d, 'cache.log')}
pid_filename none
coredump_dir ${d}
via off
forwarded_for delete
shutdown_lifetime 0 seconds
max_filedescriptors 8192
`,
  );
  // -N: foreground, no daemon; -f: this configuration only.
  const { child } = await procs.start(which('squid')!, ['-N', '-f', conf]);
  await waitForPort(port);
  return { port, pid: child.pid };
}

/** The first line a command prints of its version (nginx prints it on stderr, squid on stdout). */
export function versionOf(command: string): string {
  const path = which(command);
  if (!path) return `${command}: not installed`;
  const r = spawnSync(path, ['-v'], { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`.split('\n')[0]!.trim() || path;
}
