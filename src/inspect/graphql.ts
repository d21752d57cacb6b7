/**
 * The GraphQL operations a request carries, read with the `graphql` parser (never with patterns):
 * a JSON body `{ "query": …, "operationName": … }` or a batch (a JSON array of those), a body of type
 * `application/graphql`, or a GET's `?query=`. Every operation in the document counts, whichever one
 * `operationName` picks: a server may run any of them. Pure.
 */
import { Kind, parse, type DocumentNode, type SelectionSetNode } from 'graphql';

export interface GraphqlOperation {
  readonly type: 'query' | 'mutation' | 'subscription';
  /** null for an anonymous operation. */
  readonly name: string | null;
  /** The fields it selects at the root (the field names, not aliases; fragments followed). */
  readonly fields: readonly string[];
}

/** What a request says in GraphQL: its operations, or why they cannot be known. */
export type GraphqlView = { readonly operations: readonly GraphqlOperation[] } | { readonly unreadable: string };

/** Enough for real documents; a document of more tokens is not parsed (and is unreadable). */
const MAX_TOKENS = 20_000;
/** Fragments nested deeper than this at the root are not followed further (and are unreadable). */
const MAX_FRAGMENT_DEPTH = 10;

function rootFields(doc: DocumentNode, set: SelectionSetNode, depth: number, out: string[]): boolean {
  if (depth > MAX_FRAGMENT_DEPTH) return false;
  for (const s of set.selections) {
    if (s.kind === Kind.FIELD) out.push(s.name.value);
    else if (s.kind === Kind.INLINE_FRAGMENT) {
      if (!rootFields(doc, s.selectionSet, depth + 1, out)) return false;
    } else {
      const fragment = doc.definitions.find((d) => d.kind === Kind.FRAGMENT_DEFINITION && d.name.value === s.name.value);
      if (fragment?.kind !== Kind.FRAGMENT_DEFINITION || !rootFields(doc, fragment.selectionSet, depth + 1, out)) return false;
    }
  }
  return true;
}

/** The operations of one GraphQL document, or why not. */
export function operationsOf(source: string): GraphqlOperation[] | string {
  let doc: DocumentNode;
  try {
    doc = parse(source, { maxTokens: MAX_TOKENS, noLocation: true });
  } catch (err) {
    return `the GraphQL document does not parse (${(err as Error).message.split('\n')[0]})`;
  }
  const ops: GraphqlOperation[] = [];
  for (const d of doc.definitions) {
    if (d.kind !== Kind.OPERATION_DEFINITION) continue;
    const fields: string[] = [];
    if (!rootFields(doc, d.selectionSet, 0, fields)) return 'the GraphQL document nests or misses fragments at its root';
    ops.push({ type: d.operation as GraphqlOperation['type'], name: d.name?.value ?? null, fields });
  }
  return ops.length > 0 ? ops : 'the GraphQL document has no operation';
}

/** One request object of the JSON or GET form: its query, or why it cannot be seen. */
function requestQuery(r: unknown): string | { unreadable: string } | null {
  if (r === null || typeof r !== 'object' || Array.isArray(r)) return null;
  const { query, extensions } = r as { query?: unknown; extensions?: unknown };
  if (typeof query === 'string') return query;
  const persisted = extensions !== null && typeof extensions === 'object' && 'persistedQuery' in extensions;
  if (persisted) return { unreadable: 'a persisted GraphQL query, whose document Airlock cannot see' };
  return null;
}

/**
 * The GraphQL view of a request: from its JSON body (one request or a batch), a raw
 * `application/graphql` body, or the decoded `query`/`extensions` URL parameters; null when it is
 * no GraphQL request at all.
 */
export function graphqlView(json: unknown, rawGraphql: string | null, urlParams: ReadonlyMap<string, string>): GraphqlView | null {
  const documents: string[] = [];
  const take = (r: unknown): string | null => {
    const q = requestQuery(r);
    if (q === null) return null;
    if (typeof q !== 'string') return q.unreadable;
    documents.push(q);
    return null;
  };
  if (rawGraphql !== null) documents.push(rawGraphql);
  else if (Array.isArray(json)) {
    for (const entry of json) {
      const why = take(entry);
      if (why !== null) return { unreadable: why };
    }
  } else if (json !== undefined) {
    const why = take(json);
    if (why !== null) return { unreadable: why };
  }
  const urlQuery = urlParams.get('query');
  if (urlQuery !== undefined) documents.push(urlQuery);
  else if (urlParams.has('extensions') && urlParams.get('extensions')!.includes('persistedQuery')) {
    return { unreadable: 'a persisted GraphQL query, whose document Airlock cannot see' };
  }
  if (documents.length === 0) return null;
  const operations: GraphqlOperation[] = [];
  for (const d of documents) {
    const ops = operationsOf(d);
    if (typeof ops === 'string') return { unreadable: ops };
    operations.push(...ops);
  }
  return { operations };
}
