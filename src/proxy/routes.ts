import type { CanonicalRequest, ReverseRoute } from '../policy/types.js';

/**
 * Origin-form requests are canonicalized before their route is known (the route is chosen on the
 * canonical path, so `/openai/../admin` cannot pick a route it doesn't end up in). This stands in
 * for the destination until then.
 */
export const ROUTE_PLACEHOLDER = { scheme: 'http', host: 'route.airlock.invalid', port: 80 } as const;

/** Rewrite a canonical origin-form request onto the upstream of the longest matching route prefix. */
export function routeRequest(canon: CanonicalRequest, routes: readonly ReverseRoute[]): CanonicalRequest | null {
  let best: ReverseRoute | null = null;
  const probe = canon.path.endsWith('/') ? canon.path : `${canon.path}/`;
  for (const r of routes) {
    if (probe.startsWith(r.prefix) && (!best || r.prefix.length > best.prefix.length)) best = r;
  }
  if (!best) return null;
  const rest = (p: string): string => p.slice(Math.min(best.prefix.length, p.length));
  return {
    ...canon,
    scheme: best.scheme,
    host: best.host,
    port: best.port,
    path: best.upstreamPath + rest(canon.path),
    encodedPath: best.upstreamPath + rest(canon.encodedPath),
  };
}
