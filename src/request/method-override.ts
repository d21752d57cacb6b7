/**
 * Method overrides: a request that names, beside its method, another one the upstream framework acts
 * on (Rails, Laravel, Express's method-override, ASP.NET, Symfony). A rule that allows POST would
 * otherwise let a DELETE through. Refused unless the policy's `exceptions` allow them for the host.
 */
/** Header names (lower-case) that name the method a framework acts on. */
export const OVERRIDE_HEADERS: ReadonlySet<string> = new Set(['x-http-method-override', 'x-http-method', 'x-method-override']);

/** The override parameter: a query parameter or a form field. */
const OVERRIDE_FIELD = '_method';

/** Whether an urlencoded string (query, form body) names `_method` (decoded, any case). */
export function overrideField(encoded: string): boolean {
  if (!/method/i.test(encoded) && !encoded.includes('%')) return false;
  for (const name of new URLSearchParams(encoded).keys()) if (name.toLowerCase() === OVERRIDE_FIELD) return true;
  return false;
}

/** Whether a multipart body's text has a `_method` part. */
export function multipartOverride(text: string): boolean {
  return /name\s*=\s*"?_method"?/i.test(text);
}

/** Bodies a framework reads `_method` from: forms. */
export function mayCarryOverride(mediaType: string): boolean {
  return mediaType === 'application/x-www-form-urlencoded' || mediaType === 'multipart/form-data';
}

/** Why a method override is refused. */
export const OVERRIDE_REFUSED = (what: string): string =>
  `${what} asks the upstream to act on another method than the request's; a policy exception can allow method overrides for this host`;
