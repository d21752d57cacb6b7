/**
 * Templates of impact probes (approval.probes): `{scheme}`, `{host}`, `{port}`, `{path}`, `{query}`,
 * `{query.NAME}` and `{json:/pointer}` take values from the held request. In a URL, inserted values
 * are percent-encoded (except `{path}` and `{query}`, which are already canonical); in a body,
 * `{json:…}` inserts the value as JSON.
 */

/** Where a template's values come from. */
export interface TemplateSource {
  scheme: string;
  host: string;
  port: number;
  /** Canonically encoded path. */
  path: string;
  /** Raw query without `?`. */
  query: string;
  queryParam(name: string): string | undefined;
  json(pointer: string): unknown;
}

const PLACEHOLDER = /\{([^{}]*)\}/g;

/** `template` with its placeholders filled in; throws naming an unknown placeholder. */
export function renderTemplate(template: string, from: TemplateSource, inUrl: boolean): string {
  return template.replace(PLACEHOLDER, (_all, name: string) => {
    const enc = (v: string): string => (inUrl ? encodeURIComponent(v) : v);
    switch (name) {
      case 'scheme':
        return from.scheme;
      case 'host':
        return from.host.includes(':') ? `[${from.host}]` : from.host;
      case 'port':
        return String(from.port);
      case 'path':
        return from.path;
      case 'query':
        return from.query;
    }
    if (name.startsWith('query.')) return enc(from.queryParam(name.slice(6)) ?? '');
    if (name.startsWith('json:/')) {
      const v = from.json(name.slice(5));
      if (!inUrl) return JSON.stringify(v ?? null);
      return enc(v === undefined || v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v));
    }
    throw new Error(`unknown placeholder {${name}} (scheme, host, port, path, query, query.NAME, json:/pointer)`);
  });
}

const SAMPLE: TemplateSource = { scheme: 'https', host: 'example.com', port: 443, path: '/p', query: 'a=1', queryParam: () => 'v', json: () => 'v' };

/** Why a template is unusable (an unknown placeholder; for a URL, not an http(s) URL), or null. */
export function probeTemplateProblem(template: string, isUrl = true): string | null {
  let text: string;
  try {
    text = renderTemplate(template, SAMPLE, isUrl);
  } catch (err) {
    return (err as Error).message;
  }
  if (!isUrl) return null;
  try {
    const u = new URL(text);
    return u.protocol === 'http:' || u.protocol === 'https:' ? null : `the URL must be http or https, not ${u.protocol}`;
  } catch {
    return `"${template}" is not a URL`;
  }
}
