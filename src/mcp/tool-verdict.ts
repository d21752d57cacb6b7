/**
 * What the policy lets an agent do with each tool an MCP server lists, for the identity and server
 * of the `tools/list` call: evaluated as a `tools/call` of that tool whose arguments are unknown —
 * once assuming the arguments that make the outcome least restrictive, once the most. Pure.
 */
import { NO_BODY } from '../inspect/body.js';
import type { RpcView } from '../inspect/jsonrpc.js';
import { evaluate } from '../policy/evaluate.js';
import type { CanonicalRequest, CompiledPolicy } from '../policy/types.js';

/**
 * `allow`: every call runs; `approve`: every call needs approval; `deny`: no call can run;
 * `depends`: it depends on the arguments.
 */
export type ToolVerdict = 'allow' | 'approve' | 'deny' | 'depends';

function toolCall(tool: string, assumeArguments: RpcView['assumeArguments']): CanonicalRequest['body'] {
  const params = { name: tool, arguments: {} };
  return {
    ...NO_BODY,
    json: { value: { jsonrpc: '2.0', id: 0, method: 'tools/call', params } },
    rpc: { calls: [{ method: 'tools/call', id: 0, tool, arguments: params.arguments, target: tool }], batch: false, assumeArguments },
  };
}

/** The verdict for `tool`, listed by the server `listing` (the allowed `tools/list` request) went to. */
export function toolVerdict(listing: CanonicalRequest, policy: CompiledPolicy, tool: string): ToolVerdict {
  const outcome = (assume: 'restrictive' | 'permissive') => evaluate({ ...listing, body: toolCall(tool, assume) }, policy).action;
  const best = outcome('permissive');
  if (best === 'deny') return 'deny';
  const worst = outcome('restrictive');
  if (worst === 'allow') return 'allow';
  return best === 'approve' && worst === 'approve' ? 'approve' : 'depends';
}
