/**
 * Headers an upstream (or the proxy or load balancer in front of it) may take as the truth about where
 * a request goes or who sent it: the path to route (`X-Original-URL`), the client's address, host and
 * scheme (`X-Forwarded-*`, `Forwarded`, `X-Real-IP`), the signed-in user (`X-Remote-User`,
 * `X-Forwarded-User`, an authenticating proxy's `X-Auth-Request-*`). An agent writing them could reach
 * a path the rules never saw, or act as someone else. They are not forwarded unless the policy's
 * `exceptions` name them for the host.
 */

const NAMES: ReadonlySet<string> = new Set([
  // Routing: the path or host to act on.
  'x-original-url',
  'x-rewrite-url',
  'x-original-uri',
  'x-override-url',
  'x-http-destinationurl',
  'x-host',
  'x-original-host',
  'x-http-host-override',
  'forwarded',
  // The client, as a proxy would vouch for it.
  'x-real-ip',
  'x-client-ip',
  'x-cluster-client-ip',
  'x-remote-ip',
  'x-remote-addr',
  'x-originating-ip',
  'true-client-ip',
  'cf-connecting-ip',
  'fastly-client-ip',
  'x-proxyuser-ip',
  // The user, as an authenticating proxy would vouch for them.
  'x-remote-user',
  'remote-user',
  'x-user',
  'x-webauth-user',
  'x-authenticated-user',
  'x-authenticated-userid',
  'x-ms-client-principal',
  'x-ms-client-principal-id',
  'x-ms-client-principal-name',
]);

/** Families: every `X-Forwarded-*` (For, Host, Proto, Prefix, User, Email, Access-Token, …) and the like. */
const PREFIXES: readonly string[] = ['x-forwarded-', 'x-envoy-', 'x-auth-request-', 'x-amzn-oidc-', 'x-goog-authenticated-user-'];

/** Whether lower-case header `name` is one of these. */
export function isRerouting(name: string): boolean {
  if (NAMES.has(name)) return true;
  if (name.charCodeAt(0) !== 0x78 /* x */) return false;
  for (const p of PREFIXES) if (name.startsWith(p)) return true;
  return false;
}
