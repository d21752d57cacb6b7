/**
 * The JSON-RPC 2.0 calls a request carries, as MCP clients send them over streamable HTTP: one call
 * object or a batch (an array). For `tools/call`, the tool and its arguments. MCP's newer transport
 * also names the call in headers (`Mcp-Method`, `Mcp-Name`); a request whose headers and body disagree
 * would be routed by one and executed by the other, so it is refused. Pure.
 */
import type { HeaderList } from '../request/headers.js';

export interface RpcCall {
  readonly method: string;
  /** The JSON-RPC id (absent for a notification), echoed in answers Airlock makes itself. */
  readonly id: string | number | null | undefined;
  /** For `tools/call`: the tool's name (null otherwise). */
  readonly tool: string | null;
  /** For `tools/call`: the tool's arguments (undefined otherwise). */
  readonly arguments: unknown;
  /** What `Mcp-Name` must name for this call: the tool, prompt or resource (null when nothing). */
  readonly target: string | null;
}

export interface RpcView {
  readonly calls: readonly RpcCall[];
  /** Whether the body was a batch (answers are then a batch too). */
  readonly batch: boolean;
  /**
   * Set only when Airlock asks what a call of a tool could get without knowing its arguments (to
   * annotate a `tools/list` answer): argument conditions are then taken to hold for the rules that
   * make the outcome most restrictive (`restrictive`) or least (`permissive`).
   */
  readonly assumeArguments?: 'restrictive' | 'permissive';
}

export type RpcInspection = { ok: true; view: RpcView | null } | { ok: false; message: string };

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function callOf(v: unknown): RpcCall | null {
  if (!isObject(v) || v.jsonrpc !== '2.0' || typeof v.method !== 'string') return null;
  const params = isObject(v.params) ? v.params : {};
  const isToolCall = v.method === 'tools/call';
  const named = typeof params.name === 'string' ? params.name : typeof params.uri === 'string' ? params.uri : null;
  const id = v.id as RpcCall['id'];
  return {
    method: v.method,
    id: typeof id === 'string' || typeof id === 'number' || id === null ? id : undefined,
    tool: isToolCall && typeof params.name === 'string' ? params.name : null,
    arguments: isToolCall ? params.arguments : undefined,
    target: named,
  };
}

function one(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? h.join(',') : h;
}

/** The calls in a parsed JSON body (null when it holds none), checked against the MCP headers. */
export function inspectRpc(json: unknown, headers: HeaderList): RpcInspection {
  const batch = Array.isArray(json);
  const calls: RpcCall[] = [];
  for (const entry of batch ? json : [json]) {
    const c = callOf(entry);
    if (c) calls.push(c);
  }
  const method = one(headers.get('mcp-method'));
  const name = one(headers.get('mcp-name'));
  if (method !== undefined || name !== undefined) {
    if (batch || calls.length !== 1) return { ok: false, message: 'Mcp-Method and Mcp-Name name one call; the body is not exactly one JSON-RPC call' };
    const call = calls[0]!;
    if (method !== undefined && method !== call.method) return { ok: false, message: `Mcp-Method "${method.slice(0, 64)}" does not match the body's method "${call.method.slice(0, 64)}"` };
    if (name !== undefined && name !== call.target) return { ok: false, message: `Mcp-Name "${name.slice(0, 64)}" does not match what the body calls (${JSON.stringify(call.target)})` };
  }
  return { ok: true, view: calls.length > 0 ? { calls, batch } : null };
}
