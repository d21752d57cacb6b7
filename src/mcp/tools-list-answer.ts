/**
 * Rewriting an MCP server's answer to `tools/list` so the agent sees what it may do: tools the policy
 * refuses whatever the arguments are left out, and tools whose calls need approval (always, or
 * depending on the arguments) say so at the start of their description. The answer is JSON, or a
 * server-sent event stream rewritten event by event as it arrives (the stream may stay open).
 * Anything else — another content type, an encoded body, an answer larger than the limit, a message
 * that does not parse — passes through unchanged: the listing is guidance, every call is still decided.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import type { ResponseRewriter } from '../proxy/upstream.js';
import type { ToolVerdict } from './tool-verdict.js';

const NOTES: Partial<Record<ToolVerdict, string>> = {
  approve:
    'Airlock: every call of this tool waits for a person to approve it. A call returns an approval id; once it is approved, call the tool again with the same arguments.',
  depends: 'Airlock: depending on its arguments, a call of this tool may be refused, or wait for a person to approve it.',
};

/** Answers larger than this are passed on as they are. */
const LIMIT = 4 * 1024 * 1024;

type RpcId = string | number;

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** One JSON-RPC message (or a batch) with its tool list rewritten, or null when it holds none of ours. */
export function rewriteToolsAnswer(message: unknown, ids: ReadonlySet<RpcId>, verdict: (tool: string) => ToolVerdict): unknown {
  if (Array.isArray(message)) {
    let changed = false;
    const out = message.map((m) => {
      const r = rewriteToolsAnswer(m, ids, verdict);
      if (r === null) return m;
      changed = true;
      return r;
    });
    return changed ? out : null;
  }
  if (!isObject(message) || !ids.has(message.id as RpcId) || !isObject(message.result) || !Array.isArray(message.result.tools)) return null;
  const tools: unknown[] = [];
  for (const tool of message.result.tools) {
    if (!isObject(tool) || typeof tool.name !== 'string') {
      tools.push(tool);
      continue;
    }
    const v = verdict(tool.name);
    if (v === 'deny') continue;
    const note = NOTES[v];
    tools.push(note === undefined ? tool : { ...tool, description: typeof tool.description === 'string' && tool.description !== '' ? `${note}\n\n${tool.description}` : note });
  }
  return { ...message, result: { ...message.result, tools } };
}

function rewriteText(text: string, ids: ReadonlySet<RpcId>, verdict: (tool: string) => ToolVerdict): string | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  const out = rewriteToolsAnswer(parsed, ids, verdict);
  return out === null ? null : JSON.stringify(out);
}

/** One event of a stream rewritten (its data lines joined into one), or as it was. */
function rewriteEvent(event: string, ids: ReadonlySet<RpcId>, verdict: (tool: string) => ToolVerdict): string {
  const lines = event.split(/\r\n|\r|\n/);
  const data = lines.filter((l) => l.startsWith('data:')).map((l) => l.slice(l.startsWith('data: ') ? 6 : 5));
  if (data.length === 0) return event;
  const rewritten = rewriteText(data.join('\n'), ids, verdict);
  if (rewritten === null) return event;
  return [...lines.filter((l) => !l.startsWith('data:')), `data: ${rewritten}`].join('\n');
}

const EVENT_END = /\r\n\r\n|\n\n|\r\r/;

/** A rewriter for the answer to a request carrying `tools/list` calls with these ids. */
export function toolsListRewriter(ids: ReadonlySet<RpcId>, verdictOf: (tool: string) => ToolVerdict): ResponseRewriter {
  const memo = new Map<string, ToolVerdict>();
  const verdict = (tool: string): ToolVerdict => {
    let v = memo.get(tool);
    if (v === undefined) memo.set(tool, (v = verdictOf(tool)));
    return v;
  };
  let mode: 'json' | 'sse' | 'pass' = 'pass';
  const decoder = new StringDecoder('utf8');
  let pending = '';
  let raw: Buffer[] = [];
  let rawBytes = 0;

  return {
    start(status: number, headers: IncomingHttpHeaders): boolean {
      const encoding = headers['content-encoding'];
      if (status < 200 || status > 299 || (encoding !== undefined && encoding !== 'identity')) return false;
      const type = (headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
      mode = type === 'application/json' ? 'json' : type === 'text/event-stream' ? 'sse' : 'pass';
      return mode !== 'pass';
    },
    data(chunk: Buffer): Buffer {
      if (mode === 'pass') return chunk;
      if (mode === 'json') {
        raw.push(chunk);
        rawBytes += chunk.length;
        if (rawBytes <= LIMIT) return EMPTY;
        mode = 'pass';
        const all = Buffer.concat(raw);
        raw = [];
        return all;
      }
      pending += decoder.write(chunk);
      let out = '';
      for (let m = EVENT_END.exec(pending); m !== null; m = EVENT_END.exec(pending)) {
        out += rewriteEvent(pending.slice(0, m.index), ids, verdict) + m[0];
        pending = pending.slice(m.index + m[0].length);
      }
      if (pending.length > LIMIT) {
        mode = 'pass';
        out += pending;
        pending = '';
      }
      return Buffer.from(out);
    },
    end(): Buffer {
      if (mode === 'json') {
        const all = Buffer.concat(raw);
        const rewritten = rewriteText(all.toString('utf8'), ids, verdict);
        return rewritten === null ? all : Buffer.from(rewritten);
      }
      const rest = pending + decoder.end();
      return Buffer.from(mode === 'sse' && rest !== '' ? rewriteEvent(rest, ids, verdict) : rest);
    },
  };
}

const EMPTY = Buffer.alloc(0);
