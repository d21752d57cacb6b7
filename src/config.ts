import type { UpstreamOptions } from './proxy/upstream.js';

export interface HostPort {
  host: string;
  port: number;
}

/** Everything `airlock serve` needs, after flags and environment have been read. */
export interface ServeConfig {
  policies: string;
  listen: HostPort;
  admin: HostPort;
  /** Identity of callers without credentials (one-agent sidecars), or null. */
  identity: string | null;
  /** `stdout` or a file path. */
  audit: string;
  upstream: UpstreamOptions;
  policyPollMs: number;
}

/** `HOST:PORT`, `[v6]:PORT` or `:PORT` (all interfaces). Throws a message naming the flag. */
export function parseHostPort(value: string, what: string): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`${what}: expected HOST:PORT (e.g. 127.0.0.1:8080), got "${value}"`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export function formatHostPort(a: HostPort): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
