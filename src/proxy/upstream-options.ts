/** How Airlock talks to upstreams (a module of its own: the CLI reads the defaults without loading undici). */
import type { SecureContext } from 'node:tls';

export interface UpstreamOptions {
  connectTimeoutMs: number;
  /** Time allowed until the upstream's response headers arrive. */
  headersTimeoutMs: number;
  /** Time allowed between two chunks of the upstream's response body. */
  bodyTimeoutMs: number;
  /** Idle keep-alive sockets are closed after this long. */
  keepAliveTimeoutMs: number;
  connectionsPerOrigin: number | null;
  /**
   * Upstream TLS trust when it differs from Node's defaults (bundled roots plus --upstream-ca), built
   * once: a context built per connection would parse every root each time (about 20 ms of blocking CPU).
   */
  secureContext?: SecureContext;
}

export const DEFAULT_UPSTREAM_OPTIONS: UpstreamOptions = {
  connectTimeoutMs: 10_000,
  headersTimeoutMs: 60_000,
  bodyTimeoutMs: 60_000,
  keepAliveTimeoutMs: 10_000,
  connectionsPerOrigin: null,
};
