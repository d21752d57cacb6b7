/**
 * Per-host TLS server contexts for interception, cached.
 *
 * An LRU of `Promise<SecureContext>` keyed by the normalized host, so concurrent handshakes for one
 * host issue one certificate. Entries expire before their leaf does; a failed issue is not cached.
 */
import { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Ca } from './ca.js';
import { normalizeHost } from './host-name.js';

const HOUR_MS = 3_600_000;
/** Leaves live 7 days; contexts are replaced after 6. */
export const DEFAULT_CONTEXT_TTL_MS = 6 * 24 * HOUR_MS;
/** A context is never served within this long of its leaf's notAfter. */
const EXPIRY_MARGIN_MS = HOUR_MS;

export interface LeafCacheOptions {
  /** most hosts kept (default 1000); the least recently used is dropped beyond it */
  max?: number;
  /** how long a context is reused (default 6 days), capped at the leaf's notAfter minus an hour */
  ttlMs?: number;
  /** clock, for tests */
  now?: () => number;
}

interface Entry {
  context: Promise<SecureContext>;
  /** ms epoch; Infinity until the leaf is issued and its notAfter known */
  expiresAt: number;
}

export class LeafCache {
  readonly #ca: Ca;
  readonly #max: number;
  readonly #ttlMs: number;
  readonly #now: () => number;
  /** Map iteration order is insertion order: the first key is the least recently used. */
  readonly #entries = new Map<string, Entry>();

  constructor(ca: Ca, opts: LeafCacheOptions = {}) {
    const max = opts.max ?? 1000;
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`LeafCache max must be a positive integer, got ${max}`);
    this.#ca = ca;
    this.#max = max;
    this.#ttlMs = opts.ttlMs ?? DEFAULT_CONTEXT_TTL_MS;
    this.#now = opts.now ?? Date.now;
  }

  /** Hosts currently cached (including ones still being issued). */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * The server context for `host` (a DNS name or an IP literal, `[v6]` accepted; case, trailing
   * dot and IPv6 spelling do not matter). Its certificate chain is leaf + CA.
   * Rejects with InvalidHostError for a malformed host, or with the CA's error if issuing fails.
   */
  context(host: string): Promise<SecureContext> {
    let key: string;
    try {
      key = normalizeHost(host);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const now = this.#now();
    const hit = this.#entries.get(key);
    if (hit) {
      this.#entries.delete(key);
      if (hit.expiresAt > now) {
        this.#entries.set(key, hit); // most recently used again
        return hit.context;
      }
    }
    const issued = this.#issue(key);
    const entry: Entry = { context: issued.then((r) => r.context), expiresAt: Infinity };
    this.#entries.set(key, entry);
    while (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) break;
      this.#entries.delete(oldest.value);
    }
    issued.then(
      (r) => {
        entry.expiresAt = r.expiresAt;
        if (r.expiresAt <= this.#now() && this.#entries.get(key) === entry) this.#entries.delete(key);
      },
      () => {
        if (this.#entries.get(key) === entry) this.#entries.delete(key); // a failure is not cached
      },
    );
    return entry.context;
  }

  /** Forget every cached context (e.g. after the CA changed). */
  clear(): void {
    this.#entries.clear();
  }

  async #issue(host: string): Promise<{ context: SecureContext; expiresAt: number }> {
    const issuedAt = this.#now();
    const leaf = await this.#ca.issueLeaf(host);
    const notAfter = Date.parse(new X509Certificate(leaf.certPem).validTo);
    const context = createSecureContext({
      key: leaf.keyPem,
      // leaf first, then the CA, so clients that want the whole path get it
      cert: `${leaf.certPem.trimEnd()}\n${this.#ca.certPem.trimEnd()}\n`,
    });
    return { context, expiresAt: Math.min(issuedAt + this.#ttlMs, notAfter - EXPIRY_MARGIN_MS) };
  }
}
