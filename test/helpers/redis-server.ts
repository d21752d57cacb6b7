/**
 * A throwaway `redis-server` on a free loopback port, without persistence, for integration tests.
 * Always our own process: tests never touch a shared server's data (REDIS_URL is ignored on purpose).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

export interface RedisServer {
  /** `redis://127.0.0.1:PORT` */
  url: string;
  port: number;
  /** With `tls`: `rediss://127.0.0.1:TLSPORT`, the same server over TLS. */
  tlsUrl?: string;
  /** SIGTERM, and wait until the process exited. */
  stop(): Promise<void>;
  /** Start again on the same port (after stop/kill), and wait until it answers PING. */
  start(): Promise<void>;
  /** SIGKILL, and wait until the process exited. */
  kill(): Promise<void>;
}

const STARTUP_DEADLINE_MS = 5000;
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** One connect + PING (after AUTH when the server has a password); true on `+PONG`. */
function ping(port: number, password?: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(250, () => done(false));
    sock.once('error', () => done(false));
    sock.once('connect', () => sock.write(`${password === undefined ? '' : `AUTH ${password}\r\n`}PING\r\n`));
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.includes('+PONG')) done(true);
      else if (buf.startsWith('-') || buf.includes('\r\n-')) done(false);
    });
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function launch(port: number, extra: string[] = [], password?: string): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmpdir(), ...extra];
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let output = '';
  const collect = (d: Buffer): void => {
    output = (output + d.toString()).slice(-4000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  let exited = false;
  let spawnError: Error | null = null;
  child.once('error', (err) => {
    spawnError = err;
  });
  child.once('exit', () => {
    exited = true;
    running.delete(child);
  });
  // Poll until the server answers, within a deadline (waiting on an external process).
  const deadline = Date.now() + STARTUP_DEADLINE_MS;
  while (Date.now() < deadline) {
    if (spawnError !== null) {
      const err: Error = spawnError;
      throw new Error(`cannot run redis-server (install it, e.g. apt-get install redis-server): ${err.message}`);
    }
    if (exited) throw new Error(`redis-server exited during startup:\n${output}`);
    if (await ping(port, password)) return child;
    await delay(20);
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server did not answer PING on port ${port} within ${STARTUP_DEADLINE_MS} ms:\n${output}`);
}

async function terminate(child: ChildProcess | null, signal: NodeJS.Signals): Promise<void> {
  if (child === null || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  await exited;
}

async function launchOnFreePort(extra: (port: number) => string[] = () => [], password?: string): Promise<{ port: number; child: ChildProcess }> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    try {
      return { port, child: await launch(port, extra(port), password) };
    } catch (err) {
      lastError = err;
      if (String(err).includes('cannot run redis-server')) throw err;
      // most likely someone took the port between freePort() and the spawn: try another
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

/**
 * With `password`, the server requires it (`--requirepass`), as a deployment's Redis should. With
 * `tls` (certificate and key files), it also listens with TLS on a second port (`tlsUrl`).
 */
export async function startRedisServer(opts: { password?: string; tls?: { certFile: string; keyFile: string } } = {}): Promise<RedisServer> {
  const tlsPort = opts.tls === undefined ? null : await freePort();
  const extra = [
    ...(opts.password === undefined ? [] : ['--requirepass', opts.password]),
    ...(opts.tls === undefined ? [] : ['--tls-port', String(tlsPort), '--tls-cert-file', opts.tls.certFile, '--tls-key-file', opts.tls.keyFile, '--tls-auth-clients', 'no']),
  ];
  const started = await launchOnFreePort(() => extra, opts.password);
  const port = started.port;
  let child: ChildProcess | null = started.child;
  return {
    url: `redis://127.0.0.1:${port}`,
    ...(tlsPort === null ? {} : { tlsUrl: `rediss://127.0.0.1:${tlsPort}` }),
    port,
    async stop() {
      await terminate(child, 'SIGTERM');
      child = null;
    },
    async kill() {
      await terminate(child, 'SIGKILL');
      child = null;
    },
    async start() {
      if (child !== null && child.exitCode === null && child.signalCode === null) return;
      child = await launch(port, extra, opts.password);
    },
  };
}

export interface RedisCluster {
  /** `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,…` */
  url: string;
  ports: number[];
  stop(): Promise<void>;
}

/**
 * A Redis Cluster of `masters` nodes without replicas (slots split evenly), built with CLUSTER ADDSLOTS
 * and CLUSTER MEET (no redis-cli needed). Resolves once every node reports `cluster_state:ok`.
 */
export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'airlock-redis-cluster-'));
  const nodes: { port: number; child: ChildProcess }[] = [];
  const admins: Redis[] = [];
  const stop = async (): Promise<void> => {
    for (const a of admins) a.disconnect();
    await Promise.all(nodes.map((n) => terminate(n.child, 'SIGTERM')));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters; i++) {
      nodes.push(
        await launchOnFreePort((port) => ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`)]),
      );
    }
    for (const n of nodes) admins.push(new Redis({ host: '127.0.0.1', port: n.port, lazyConnect: false }));
    const per = Math.ceil(16384 / masters);
    await Promise.all(
      admins.map((a, i) => {
        const slots: number[] = [];
        for (let s = i * per; s < Math.min(16384, (i + 1) * per); s++) slots.push(s);
        return a.call('CLUSTER', 'ADDSLOTS', ...slots);
      }),
    );
    const first = admins[0] as Redis;
    for (const n of nodes.slice(1)) await first.call('CLUSTER', 'MEET', '127.0.0.1', String(n.port));
    // Poll (bounded) until the nodes agree: gossip between external processes.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const infos = await Promise.all(admins.map((a) => a.call('CLUSTER', 'INFO') as Promise<string>));
      if (infos.every((info) => info.includes('cluster_state:ok') && info.includes(`cluster_known_nodes:${masters}`))) break;
      if (Date.now() > deadline) throw new Error(`Redis Cluster did not converge:\n${infos.join('\n')}`);
      await delay(50);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  for (const a of admins) a.disconnect();
  admins.length = 0;
  const ports = nodes.map((n) => n.port);
  return { url: `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`, ports, stop };
}
