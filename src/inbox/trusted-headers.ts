/**
 * Sign-in by an authenticating proxy in front of the inbox (oauth2-proxy and the like): the person
 * named in its identity header — accepted only on connections from the proxy's configured addresses,
 * ignored from anywhere else, so nobody can name themselves by sending the header.
 */
import type { IncomingMessage } from 'node:http';
import { canonicalIp, inRange, parseIp, parseRange, type IpRange } from '../net/address.js';

export interface TrustedHeadersConfig {
  /** Addresses (CIDRs) of the authenticating proxy. */
  from: string[];
  /** Header with the person's email (lower-case name). Default `x-forwarded-email`. */
  emailHeader: string;
  /** Header with a display name (default `x-forwarded-preferred-username`). */
  nameHeader: string;
  /** Header with the person's groups, comma-separated (default `x-forwarded-groups`). */
  groupsHeader: string;
}

export class TrustedHeaders {
  private readonly ranges: IpRange[];

  constructor(private readonly config: TrustedHeadersConfig) {
    this.ranges = config.from.map((entry) => {
      const r = parseRange(entry);
      if (!r.ok) throw new Error(`AIRLOCK_INBOX_TRUSTED_PROXIES: ${r.message}`);
      return r.range;
    });
  }

  /** The person the proxy vouches for, or null (no header, or a connection not from the proxy). */
  identify(req: IncomingMessage): { email: string; name: string; groups: string[] } | null {
    const raw = req.headers[this.config.emailHeader];
    if (typeof raw !== 'string' || raw.trim() === '') return null;
    const peer = parseIp(canonicalIp(req.socket.remoteAddress ?? '') ?? '');
    if (peer === null || !this.ranges.some((r) => inRange(peer, r))) return null;
    const email = raw.trim().toLowerCase();
    const name = req.headers[this.config.nameHeader];
    const groups = req.headers[this.config.groupsHeader];
    return {
      email,
      name: typeof name === 'string' && name.trim() !== '' ? name.trim() : email,
      groups: typeof groups === 'string' ? groups.split(',').map((g) => g.trim()).filter(Boolean) : [],
    };
  }
}
