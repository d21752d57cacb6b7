/**
 * Airlock's own answers to JSON-RPC calls (MCP over streamable HTTP), in the caller's protocol: a
 * refusal or a pending approval becomes a JSON-RPC response for each call, so agent frameworks hand
 * it to the model instead of failing the transport. For `tools/call` it is a tool result with
 * `isError: true` and a text the model can act on; for any other method a JSON-RPC error whose `data`
 * is Airlock's usual error body. These answers are HTTP 200: the transport worked, the call did not.
 */
import type { ServerResponse } from 'node:http';
import type { RpcCall, RpcView } from '../inspect/jsonrpc.js';
import { REQUEST_ID_HEADER, type ErrorCode, type ProxyError } from './respond.js';

/** JSON-RPC error code of calls Airlock refused (the implementation-defined server error range). */
export const RPC_REFUSED = -32001;

function toolText(call: RpcCall, e: ProxyError): string {
  const tool = JSON.stringify(call.tool);
  const rule = e.rule ? ` (rule ${e.rule})` : '';
  const id = e.approvalId ? ` Approval id: ${e.approvalId}.` : '';
  const what: Partial<Record<ErrorCode, string>> = {
    denied: `Airlock's policy does not allow calling the tool ${tool}${rule}: ${e.message}. Do not retry this call.`,
    approval_pending: `Calling the tool ${tool} needs a human's approval${rule}: ${e.message}.${id} Call the tool again with the same arguments once it is approved; that call then runs, once.`,
    approval_denied: `An approver refused this call to the tool ${tool}${rule}: ${e.message}.${id} Do not retry it unchanged.`,
    approval_expired: `The approval for this call to the tool ${tool} is no longer valid${rule}: ${e.message}.${id} Calling it again asks for a new approval.`,
    approval_unavailable: `Airlock cannot ask for approval of this call to the tool ${tool} right now${rule}: ${e.message}. Try again later.`,
  };
  return what[e.code] ?? `Airlock refused this call to the tool ${tool}${rule}: ${e.message}.`;
}

function answerFor(call: RpcCall, e: ProxyError): unknown {
  const data = { error: e.code, message: e.message, request_id: e.requestId, rule: e.rule ?? null, approval_id: e.approvalId ?? null };
  if (call.method === 'tools/call' && call.tool !== null) {
    return { jsonrpc: '2.0', id: call.id, result: { content: [{ type: 'text', text: toolText(call, e) }], isError: true, _meta: { airlock: data } } };
  }
  return { jsonrpc: '2.0', id: call.id, error: { code: RPC_REFUSED, message: `Airlock: ${e.message}`, data } };
}

/**
 * Answer `view`'s calls with `e`, when the body holds calls that expect an answer (notifications
 * alone expect none: then false, and the caller answers in HTTP as usual).
 */
export function sendRpcAnswer(res: ServerResponse, view: RpcView, e: ProxyError): boolean {
  const calls = view.calls.filter((c) => c.id !== undefined);
  if (calls.length === 0 || res.headersSent) return false;
  const answers = calls.map((c) => answerFor(c, e));
  const text = JSON.stringify(view.batch ? answers : answers[0]);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), [REQUEST_ID_HEADER]: e.requestId, 'cache-control': 'no-store' });
  res.end(text);
  return true;
}
