/**
 * Impact probes: before approvers decide, Airlock sends the requests a rule describes (a dry run, a
 * GET of what a DELETE would remove, a preview endpoint), with values from the held request, through
 * the same destination guard as any upstream request, with a deadline and a size cap, and with
 * credentials from Airlock's own environment — never the agent's. What came back is summarised
 * (status, chosen JSON fields) for approvers. A probe that fails is shown as failed; no probe ever
 * approves, denies or holds anything.
 */
import jsonPatch from 'fast-json-patch';
import { request, type Dispatcher } from 'undici';
import { renderTemplate, type TemplateSource } from '../policy/probe-template.js';
import type { ProbeSpec } from '../policy/types.js';
import { describe } from '../proxy/upstream.js';
import type { StoredRequest } from './types.js';

const { getValueByPointer } = jsonPatch;

export interface ProbeResult {
  name: string;
  /** `ok`: an answer came (whatever its status); `failed`: none did, or it could not be read. */
  state: 'ok' | 'failed';
  status?: number;
  /** The `show` fields of a JSON answer: pointer and value (JSON text, capped). */
  fields?: { pointer: string; value: string }[];
  error?: string;
  ms: number;
}

export type ProbeRunner = (spec: ProbeSpec, held: StoredRequest) => Promise<ProbeResult>;

const MAX_VALUE = 200;

function sourceOf(r: StoredRequest): TemplateSource {
  let doc: unknown;
  let parsed = false;
  return {
    scheme: r.scheme,
    host: r.host,
    port: r.port,
    path: r.encodedPath,
    query: r.query,
    queryParam: (name) => {
      for (const [k, v] of new URLSearchParams(r.query)) if (k === name) return v;
      return undefined;
    },
    json: (pointer) => {
      if (!parsed) {
        parsed = true;
        try {
          doc = JSON.parse(Buffer.from(r.body, 'base64').toString('utf8'));
        } catch {
          doc = undefined;
        }
      }
      try {
        return doc === undefined ? undefined : (getValueByPointer(doc, pointer) as unknown);
      } catch {
        return undefined;
      }
    },
  };
}

function fieldsOf(text: string, show: readonly string[]): ProbeResult['fields'] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return show.map((pointer) => ({ pointer, value: '(the answer is not JSON)' }));
  }
  return show.map((pointer) => {
    let v: unknown;
    try {
      v = getValueByPointer(doc, pointer);
    } catch {
      v = undefined;
    }
    const value = v === undefined ? '(absent)' : JSON.stringify(v);
    return { pointer, value: value.length > MAX_VALUE ? `${value.slice(0, MAX_VALUE - 1)}…` : value };
  });
}

/** Probes sent through `dispatcher` (the guarded upstream agent), credentials read from `env`. */
export function probeRunner(dispatcher: Dispatcher, env: NodeJS.ProcessEnv): ProbeRunner {
  return async (spec, held) => {
    const started = performance.now();
    const ms = (): number => Math.round(performance.now() - started);
    const failed = (error: string): ProbeResult => ({ name: spec.name, state: 'failed', error, ms: ms() });
    const source = sourceOf(held);
    let url: string;
    let body: string | undefined;
    const headers: Record<string, string> = {};
    try {
      url = renderTemplate(spec.url, source, true);
      body = spec.body === null ? undefined : renderTemplate(spec.body, source, false);
    } catch (err) {
      return failed((err as Error).message);
    }
    for (const h of spec.headers) {
      const value = typeof h.value === 'string' ? h.value : env[h.value.env];
      if (value === undefined) return failed(`environment variable ${(h.value as { env: string }).env} is not set`);
      headers[h.name] = value;
    }
    const signal = AbortSignal.timeout(spec.timeoutMs);
    try {
      const res = await request(url, {
        method: spec.method as Dispatcher.HttpMethod,
        headers,
        body,
        dispatcher,
        signal,
        headersTimeout: spec.timeoutMs,
        bodyTimeout: spec.timeoutMs,
      });
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > spec.maxBytes) {
          res.body.destroy();
          return { name: spec.name, state: 'failed', status: res.statusCode, error: `the answer is larger than ${spec.maxBytes} bytes`, ms: ms() };
        }
        chunks.push(chunk);
      }
      const text = Buffer.concat(chunks).toString('utf8');
      return { name: spec.name, state: 'ok', status: res.statusCode, ...(spec.show.length > 0 ? { fields: fieldsOf(text, spec.show) } : {}), ms: ms() };
    } catch (err) {
      if (signal.aborted) return failed(`timed out after ${spec.timeoutMs} ms`);
      return failed(describe(err, new URL(url).host).message);
    }
  };
}
