/**
 * A request body as rules see it, built once when some rule for the request inspects it: decoded
 * (Content-Encoding, with the output bounded), then read as JSON and/or form fields. Pure: the bytes
 * arrive already read (src/request/body.ts).
 *
 * The views are chosen so that an agent cannot hide content by mislabelling it: a body is read as
 * JSON when its Content-Type says JSON **or** it starts like a JSON document (many upstreams parse
 * JSON whatever the header says); as form fields when the Content-Type says so (servers only parse
 * forms so labelled). A body that cannot be read faithfully — larger than the limit, an unknown or
 * broken encoding, invalid UTF-8, declared JSON that does not parse, or JSON with a repeated key —
 * is `unreadable`, and the policy gives it the most restrictive outcome any body rule could.
 */
import { brotliDecompressSync, gunzipSync, inflateSync, zstdDecompressSync } from 'node:zlib';
import type { HeaderList } from '../request/headers.js';
import { graphqlView, type GraphqlView } from './graphql.js';
import { duplicateKey } from './json.js';
import { inspectRpc, type RpcView } from './jsonrpc.js';
import type { Finding } from './finding.js';
import { inspectPairs } from './query.js';

export interface InspectedBody {
  /** Why the body could not be read faithfully; null when it could. */
  readonly unreadable: string | null;
  /** The JSON document, when the body is one. */
  readonly json: { readonly value: unknown } | null;
  /** Decoded values of the form fields some rule inspects, by lower-case name, when the body is a form. */
  readonly form: ReadonlyMap<string, string> | null;
  /** The GraphQL operations, when the policy inspects GraphQL and the request carries some. */
  readonly graphql: GraphqlView | null;
  /** The JSON-RPC calls (MCP), when the body holds some. */
  readonly rpc: RpcView | null;
  /** What the policy's detectors found in it (none run: empty). */
  readonly findings?: readonly Finding[];
}

/** What of the policy shapes the view: the limit, which form fields are inspected, whether GraphQL is. */
export interface InspectOptions {
  limit: number;
  inspectedForm: ReadonlySet<string>;
  graphql: boolean;
}

/** What an empty body (or a request that cannot have one) looks like to rules. */
export const NO_BODY: InspectedBody = { unreadable: null, json: null, form: null, graphql: null, rpc: null };

/** The view, and the decoded text for detectors (null when unreadable). */
export type BodyInspection = { ok: true; body: InspectedBody; text: string | null } | { ok: false; message: string };

const DECODERS: Record<string, (b: Buffer, o: { maxOutputLength: number }) => Buffer> = {
  gzip: gunzipSync,
  'x-gzip': gunzipSync,
  deflate: inflateSync,
  br: brotliDecompressSync,
  zstd: zstdDecompressSync,
};

const unreadable = (why: string): BodyInspection => ({ ok: true, body: { unreadable: why, json: null, form: null, graphql: null, rpc: null }, text: null });

/** GraphQL over GET: the document is in the URL. */
const GRAPHQL_URL_PARAMS: ReadonlySet<string> = new Set(['query', 'extensions']);

/** The Content-Type's media type, lower-cased, without parameters ('' when none). */
export function mediaType(headers: HeaderList): string {
  const ct = headers.get('content-type');
  const first = Array.isArray(ct) ? ct[0] : ct;
  return (first ?? '').split(';', 1)[0]!.trim().toLowerCase();
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/**
 * Inspect `bytes`, the request's whole body when `complete`, else the first `limit` bytes of a longer
 * one; `rawQuery` is the request's query string (GraphQL over GET).
 */
export function inspectBody(bytes: Buffer, complete: boolean, headers: HeaderList, rawQuery: string, o: InspectOptions): BodyInspection {
  const { limit } = o;
  if (!complete) return unreadable(`the body is larger than the ${limit} bytes Airlock inspects`);
  let decoded = bytes;
  const encoding = headers.get('content-encoding');
  const codings = (Array.isArray(encoding) ? encoding.join(',') : (encoding ?? '')).split(',').map((c) => c.trim().toLowerCase()).filter((c) => c !== '' && c !== 'identity');
  if (codings.length > 2) return unreadable(`the body is encoded ${codings.length} times (${codings.join(', ')})`);
  // Codings are listed in the order applied: undo the last first.
  for (const coding of codings.reverse()) {
    const decode = DECODERS[coding];
    if (!decode) return unreadable(`unknown Content-Encoding "${coding}"`);
    try {
      // The output is bounded: a small compressed body cannot inflate into a large one here.
      decoded = decode(decoded, { maxOutputLength: limit });
    } catch (err) {
      const tooLarge = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
      return unreadable(tooLarge ? `the ${coding}-decoded body is larger than the ${limit} bytes Airlock inspects` : `the body is not valid ${coding}`);
    }
  }
  let text: string;
  try {
    text = utf8.decode(decoded);
  } catch {
    return unreadable('the body is not valid UTF-8');
  }
  const type = mediaType(headers);
  const declaredJson = type === 'application/json' || type.endsWith('+json');
  let json: InspectedBody['json'] = null;
  const start = /^\s*[[{]/.test(text);
  if (declaredJson || start) {
    try {
      const value: unknown = JSON.parse(text);
      const dup = duplicateKey(text);
      if (dup !== null) return unreadable(`the JSON body repeats the key ${JSON.stringify(dup.slice(0, 64))}, which parsers read differently`);
      json = { value };
    } catch {
      if (declaredJson) return unreadable('the body is declared JSON but does not parse');
    }
  }
  let form: InspectedBody['form'] = null;
  if (type === 'application/x-www-form-urlencoded') {
    const fields = inspectPairs(text, o.inspectedForm, 'form field');
    if (!fields.ok) return { ok: false, message: fields.message };
    form = fields.params;
  }
  let graphql: GraphqlView | null = null;
  if (o.graphql) {
    const url = inspectPairs(rawQuery, GRAPHQL_URL_PARAMS, 'query parameter');
    if (!url.ok) return { ok: false, message: url.message };
    graphql = graphqlView(json?.value, type === 'application/graphql' ? text : null, url.params);
  }
  let rpc: RpcView | null = null;
  if (json !== null) {
    const calls = inspectRpc(json.value, headers);
    if (!calls.ok) return { ok: false, message: calls.message };
    rpc = calls.view;
  }
  return { ok: true, body: { unreadable: null, json, form, graphql, rpc }, text };
}
