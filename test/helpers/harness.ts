import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SlackConfig } from '../../src/approvals/slack/channel.js';
import type { TeamsConfig } from '../../src/approvals/teams/channel.js';
import type { InboxConfig, Role, ServeConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { EnvHttpProxyAgent, WebSocket, type Dispatcher } from 'undici';
import { DEFAULT_UPSTREAM_OPTIONS } from '../../src/proxy/upstream-options.js';
import { startAirlock, type Airlock } from '../../src/server.js';

export interface Recorded {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

export interface Upstream {
  host: string;
  port: number;
  /** `http://127.0.0.1:PORT` */
  origin: string;
  requests: Recorded[];
  close(): Promise<void>;
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

const echo: Handler = (req, res, body) => {
  const text = JSON.stringify({ method: req.method, url: req.url, bytes: body.length });
  res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'yes' });
  res.end(text);
};

/** A real HTTP server on loopback that records every request it receives. */
export async function startUpstream(handler: Handler = echo): Promise<Upstream> {
  const requests: Recorded[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    host: '127.0.0.1',
    port,
    origin: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export interface TestAirlock {
  airlock: Airlock;
  dir: string;
  auditFile: string;
  /** `http://127.0.0.1:PORT` of the proxy listener (what agents put in HTTP_PROXY); '' in the approvals role. */
  proxyUrl: string;
  adminUrl: string;
  /** Audit events written so far (flushed first). */
  audit(): Promise<Record<string, unknown>[]>;
  writePolicy(name: string, text: string): Promise<void>;
  close(): Promise<void>;
}

/** The state key test Airlocks share unless told otherwise. */
export const TEST_STATE_KEY = 'test-state-key-shared-by-every-replica-of-a-test';

/** Airlock in this process on free loopback ports, with the given policy files in a temp folder. */
export async function startTestAirlock(
  files: Record<string, string>,
  options: { identity?: string; upstreamTimeoutMs?: number; redis?: string; replica?: string; maxHeldBodyBytes?: number; maxInspectedBodyBytes?: number; tunnelIdleMs?: number; maxTunnels?: number; clientHeadersTimeoutMs?: number; clientBodyTimeoutMs?: number; policySettleMs?: number; maxConnections?: number; slack?: SlackConfig; teams?: TeamsConfig; upstreamCaFile?: string; caCertFile?: string; caKeyFile?: string; allowDestinations?: string[]; stateKey?: string; auditSigningKey?: string; auditSignIntervalMs?: number; role?: Role; inbox?: InboxConfig; redisKeyPrefix?: string; redisCaFile?: string } = {},
): Promise<TestAirlock> {
  const dir = await mkdtemp(join(tmpdir(), 'airlock-test-'));
  const policies = join(dir, 'policies');
  await mkdir(policies);
  for (const [name, text] of Object.entries(files)) await writeFile(join(policies, name), text);
  const auditFile = join(dir, 'audit.jsonl');
  const timeout = options.upstreamTimeoutMs ?? 10_000;
  const config: ServeConfig = {
    role: options.role ?? 'all',
    policies,
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    identity: options.identity ?? null,
    audit: auditFile,
    auditSigningKey: options.auditSigningKey ?? null,
    auditSignIntervalMs: options.auditSignIntervalMs ?? 60_000,
    upstream: { ...DEFAULT_UPSTREAM_OPTIONS, headersTimeoutMs: timeout, bodyTimeoutMs: timeout },
    policyPollMs: 60_000,
    policySettleMs: options.policySettleMs ?? 20,
    shutdownGraceMs: 0,
    redis: options.redis ?? null,
    redisPassword: null,
    redisKeyPrefix: options.redisKeyPrefix ?? 'airlock',
    redisCaFile: options.redisCaFile ?? null,
    inbox: options.inbox ?? null,
    // Replicas of one test share the key, as a deployment's replicas share a Secret.
    stateKey: { value: options.stateKey ?? TEST_STATE_KEY },
    maxHeldBodyBytes: options.maxHeldBodyBytes ?? 1024 * 1024,
    maxInspectedBodyBytes: options.maxInspectedBodyBytes ?? 1024 * 1024,
    tunnelIdleMs: options.tunnelIdleMs ?? 300_000,
    clientHeadersTimeoutMs: options.clientHeadersTimeoutMs ?? 30_000,
    clientBodyTimeoutMs: options.clientBodyTimeoutMs ?? 60_000,
    maxConnections: options.maxConnections ?? 8192,
    maxTunnelsPerIdentity: options.maxTunnels ?? 256,
    replica: options.replica ?? 'test-replica',
    slack: options.slack ?? null,
    teams: options.teams ?? null,
    upstreamCaFile: options.upstreamCaFile ?? null,
    // Test upstreams run on loopback, which the destination guard refuses by default.
    allowDestinations: options.allowDestinations ?? ['127.0.0.0/8', '::1'],
    ca: { ...(options.caCertFile ? { certFile: options.caCertFile } : {}), ...(options.caKeyFile ? { keyFile: options.caKeyFile } : {}) },
  };
  const airlock = await startAirlock(config, createLogger('silent'));
  return {
    airlock,
    dir: policies,
    auditFile,
    proxyUrl: airlock.proxy === null ? '' : `http://127.0.0.1:${airlock.proxy.port}`,
    adminUrl: `http://127.0.0.1:${airlock.admin.port}`,
    async audit() {
      await airlock.audit.flush();
      const text = await readFile(auditFile, 'utf8');
      return text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    writePolicy: (name, text) => writeFile(join(policies, name), text),
    async close() {
      await airlock.close(0);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The audit events of one request (its decision and, when forwarded, its response). */
export function eventsFor(events: Record<string, unknown>[], requestId: string): Record<string, unknown>[] {
  return events.filter((e) => e.request_id === requestId);
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a real program (curl, python3, the airlock CLI) and collect its output; never throws on exit codes. */
export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, input?: string | Buffer): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { env, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Environment for a client that must reach loopback upstreams through the proxy. */
export function proxyEnv(proxyUrl: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HTTP_PROXY: proxyUrl, http_proxy: proxyUrl, HTTPS_PROXY: proxyUrl, https_proxy: proxyUrl };
  delete env.NO_PROXY;
  delete env.no_proxy;
  return env;
}

export const ROOT = join(import.meta.dirname, '../..');

/**
 * Run `fn` with undici's EnvHttpProxyAgent configured the way an agent's container configures it:
 * from HTTP_PROXY/HTTPS_PROXY in the environment. By default undici sends plain `http://` requests in
 * absolute form; `{ proxyTunnel: true }` makes it open a CONNECT tunnel to the port instead.
 */
export async function withEnvProxyAgent<T>(
  proxyUrl: string,
  fn: (dispatcher: EnvHttpProxyAgent) => Promise<T>,
  options: EnvHttpProxyAgent.Options = {},
): Promise<T> {
  const saved = process.env;
  process.env = proxyEnv(proxyUrl);
  const dispatcher = new EnvHttpProxyAgent(options);
  try {
    return await fn(dispatcher);
  } finally {
    await dispatcher.close();
    process.env = saved;
  }
}

/**
 * Open a WebSocket through `dispatcher` (a ProxyAgent: undici's WebSocket takes a dispatcher, which its
 * typings don't show yet), send `text`, and resolve with the first message back.
 */
export async function webSocketRoundTrip(url: string, dispatcher: Dispatcher, text: string): Promise<string> {
  const ws = new WebSocket(url, { dispatcher } as never);
  try {
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve());
      ws.addEventListener('error', () => reject(new Error(`${url} did not open through the proxy`)));
    });
    const got = new Promise<string>((resolve) => ws.addEventListener('message', (e) => resolve(String(e.data))));
    ws.send(text);
    return await got;
  } finally {
    ws.close();
  }
}

/** The `airlock` command as installed (package.json `bin`, built by `npm test`'s pretest step). */
export const AIRLOCK_BIN = join(ROOT, 'dist/cli/main.js');

export function airlockCli(args: string[], env?: NodeJS.ProcessEnv): Promise<RunResult> {
  return run(process.execPath, [AIRLOCK_BIN, ...args], env);
}
