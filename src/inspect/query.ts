/**
 * The query parameters a policy inspects, decoded once per request. Names compare case-insensitively
 * (ASP.NET and others read `action` as `Action`), and a parameter a rule inspects may appear only
 * once, in one spelling: `Action=a&%41ction=b`, `Action=a&action=b`, or an `Action` hidden behind a
 * `;` (which some servers split on and others don't) would be read one way here and another way by
 * the upstream, so each is refused (parameter pollution). Pure.
 */

export type InspectedQuery = { ok: true; params: ReadonlyMap<string, string> } | { ok: false; message: string };

const NONE: ReadonlyMap<string, string> = new Map();

/** `+` is a space in a query (application/x-www-form-urlencoded); null when an escape is malformed. */
export function decodeFormComponent(s: string): string | null {
  if (!s.includes('%') && !s.includes('+')) return s;
  try {
    return decodeURIComponent(s.replaceAll('+', ' '));
  } catch {
    return null;
  }
}

/**
 * Decoded values of the parameters in `inspected` (lower-case names) found in `raw`, `name=value`
 * pieces joined by `&`. Shared with form bodies, which have the same grammar.
 */
export function inspectPairs(raw: string, inspected: ReadonlySet<string>, what: 'query parameter' | 'form field'): InspectedQuery {
  if (raw === '' || inspected.size === 0) return { ok: true, params: NONE };
  const params = new Map<string, string>();
  for (const piece of raw.split('&')) {
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    const rawName = eq < 0 ? piece : piece.slice(0, eq);
    const name = decodeFormComponent(rawName);
    if (name === null) return { ok: false, message: `${what} name ${JSON.stringify(rawName.slice(0, 64))} has a malformed percent escape` };
    const key = name.toLowerCase();
    if (piece.includes(';')) {
      for (const sub of piece.split(';').slice(1)) {
        const subName = decodeFormComponent(sub.split('=', 1)[0]!)?.toLowerCase();
        if (subName !== undefined && inspected.has(subName)) {
          return { ok: false, message: `${what} ${JSON.stringify(subName)} follows a ";", which servers read differently: separate parameters with "&"` };
        }
      }
    }
    if (!inspected.has(key)) continue;
    if (params.has(key)) return { ok: false, message: `${what} ${JSON.stringify(key)} appears more than once (parameter names compare case-insensitively, after decoding)` };
    const value = decodeFormComponent(eq < 0 ? '' : piece.slice(eq + 1));
    if (value === null) return { ok: false, message: `${what} ${JSON.stringify(key)} has a malformed percent escape` };
    params.set(key, value);
  }
  return { ok: true, params };
}

export function inspectQuery(raw: string, inspected: ReadonlySet<string>): InspectedQuery {
  return inspectPairs(raw, inspected, 'query parameter');
}
