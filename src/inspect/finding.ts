import type { DetectorId } from './detector-ids.js';

/** What a detector found in a request: which, how many, where; never the value. */
export interface Finding {
  readonly detector: DetectorId;
  readonly count: number;
  /** The distinct places of the first few matches: a JSON Pointer, `form:NAME`, `query:NAME` or `offset:N`. */
  readonly where: readonly string[];
  /** For secrets: what kinds were found (`GITHUB_TOKEN`, `JWT`, …). */
  readonly kinds?: readonly string[];
}

/** One line for a person: `payment-card ×2 at /rows/0/card, /rows/1/card`. */
export function describeFinding(f: Finding): string {
  const kinds = f.kinds && f.kinds.length > 0 ? ` (${f.kinds.join(', ')})` : '';
  const more = f.count > f.where.length ? ', …' : '';
  return `${f.detector}${kinds} ×${f.count} at ${f.where.join(', ')}${more}`;
}
