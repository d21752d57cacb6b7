import type { CanonicalRequest, ReverseRoute } from '../policy/types.js';

/**
 * Origin-form requests are canonicalized before their route is known (the route is chosen on the
 * canonical path, so `/openai/../admin` cannot pick a route it doesn't end up in). This stands in
 * for the destination until then.
 */
export const ROUTE_PLACEHOLDER = { scheme: 'http', host: 'route.airlock.invalid', port: 80 } as const;

/** Rewrite a canonical origin-form request onto the upstream of the longest matching route prefix. */
export function routeRequest(canon: CanonicalRequest, routes: readonly ReverseRoute[]): { request: CanonicalRequest; route: ReverseRoute } | null {
  let best: ReverseRoute | null = null;
  const probe = canon.path.endsWith('/') ? canon.path : `${canon.path}/`;
  for (const r of routes) {
    if (probe.startsWith(r.prefix) && (!best || r.prefix.length > best.prefix.length)) best = r;
  }
  if (!best) return null;
  const rest = (p: string): string => p.slice(Math.min(best.prefix.length, p.length));
  return {
    request: {
      ...canon,
      scheme: best.scheme,
      host: best.host,
      port: best.port,
      path: best.upstreamPath + rest(canon.path),
      encodedPath: best.upstreamPath + rest(canon.encodedPath),
    },
    route: best,
  };
}

/**
 * The way back: a `Location` the route's upstream sent, as the client must follow it through the
 * route. A URL on the upstream's origin (or a path) under the route's upstream path becomes the same
 * path under the route's prefix, relative to Airlock's own origin (so no Host header is trusted to
 * build it). Anything else (another site, a path outside the route) is left as it is: the client's
 * next request is decided like any other.
 */
export function routeLocation(location: string, route: ReverseRoute): string {
  const origin = `${route.scheme}://${route.host.includes(':') ? `[${route.host}]` : route.host}:${route.port}`;
  let url: URL;
  try {
    url = new URL(location, `${origin}${route.upstreamPath}`);
  } catch {
    return location;
  }
  const sameOrigin = url.protocol === `${route.scheme}:` && url.hostname.replace(/^\[(.*)\]$/, '$1') === route.host && Number(url.port || (route.scheme === 'https' ? 443 : 80)) === route.port;
  const dir = route.upstreamPath.slice(0, -1);
  if (!sameOrigin || (url.pathname !== dir && !url.pathname.startsWith(route.upstreamPath))) return location;
  return `${route.prefix}${url.pathname.slice(route.upstreamPath.length)}${url.search}${url.hash}`;
}
