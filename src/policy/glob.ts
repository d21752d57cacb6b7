/**
 * Path globs, matched against the decoded canonical path: as written, or ignoring case (what rules
 * that restrict do by default, since many upstreams route `/ADMIN` to the `/admin` handler).
 *
 * Segment-aware: `*` is any run of characters inside one segment (leading dots included, so
 * `/files/*` covers `/files/.env`: a glob meant to guard a folder must not skip hidden files);
 * `**` as a whole segment is zero or more segments (`/v1/**` covers `/v1`, `/v1/` and `/v1/a/b`);
 * `?` is one character inside a segment; everything else is literal.
 */

export type GlobResult = { ok: true; regex: RegExp } | { ok: false; message: string };

const REGEX_SPECIAL = /[\\^$.|+()[\]{}*?]/g;

export function compileGlob(glob: string, ignoreCase = false): GlobResult {
  if (!glob.startsWith('/')) return { ok: false, message: `path glob "${glob}" must start with "/"` };
  // [\s\S] rather than `.`: decoded paths may contain line breaks, which must not slip past a glob.
  let source = '^';
  const segments = glob.slice(1).split('/');
  for (const [i, segment] of segments.entries()) {
    // Canonical paths have merged slashes and no dot segments: such a glob could never match,
    // which in a deny rule would be a silent hole.
    if (segment === '' && i < segments.length - 1) {
      return { ok: false, message: `path glob "${glob}" contains "//"; request paths are matched with slashes merged` };
    }
    if (segment === '.' || segment === '..') {
      return { ok: false, message: `path glob "${glob}" contains a "${segment}" segment; request paths are matched with dot segments resolved` };
    }
    if (segment === '**') {
      source += '(?:/[\\s\\S]*)?';
      continue;
    }
    if (segment.includes('**')) {
      return { ok: false, message: `path glob "${glob}": "**" must be a whole segment (write "/**/" or "*")` };
    }
    source += '/';
    for (const ch of segment) {
      if (ch === '*') source += '[^/]*';
      else if (ch === '?') source += '[^/]';
      else source += ch.replace(REGEX_SPECIAL, '\\$&');
    }
  }
  return { ok: true, regex: new RegExp(source + '$', ignoreCase ? 'iu' : 'u') };
}
