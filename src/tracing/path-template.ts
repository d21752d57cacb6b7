/**
 * The path as a span may show it: segments that read as words are kept, anything that may be an id,
 * a value or a secret (digits, long or unusual characters) becomes `*`, as in a policy glob. Spans go
 * to a collector outside the audit trail's protection, and their attributes should group requests,
 * not tell them apart.
 */
const WORD = /^[A-Za-z_.~-]{1,24}$/;
/** API versions (v1, v2beta1) name routes, not resources. */
const VERSION = /^v\d{1,3}(?:[a-z]{1,8}\d{0,3})?$/i;
const MAX_SEGMENTS = 32;

export function pathTemplate(path: string): string {
  const segments = path.split('/');
  const kept = segments.slice(0, MAX_SEGMENTS + 1).map((s) => (s === '' || WORD.test(s) || VERSION.test(s) ? s : '*'));
  return segments.length > MAX_SEGMENTS + 1 ? `${kept.join('/')}/**` : kept.join('/');
}
