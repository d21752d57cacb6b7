import type { IncomingMessage, ServerResponse } from 'node:http';
import { bodyNeededForOverride, setBodyView } from '../policy/body-view.js';
import { evaluate } from '../policy/evaluate.js';
import type { CanonicalRequest, Decision } from '../policy/types.js';
import { readBody, withRest } from '../request/body.js';
import type { ProxyContext } from './context.js';
import { prepare, settle } from './decide.js';
import { Exchange, type Entry } from './exchange.js';
import { holdForApproval } from './hold.js';
import { toolsListRewriter } from '../mcp/tools-list-answer.js';
import { toolVerdict } from '../mcp/tool-verdict.js';
import { streamedBody, type ForwardBody, type ResponseRewriter } from './upstream.js';

/** Decide one HTTP request and act on the decision: forward, refuse, or hold it for approval. */
export async function handleRequest(req: IncomingMessage, res: ServerResponse, entry: Entry, ctx: ProxyContext): Promise<void> {
  const x = new Exchange(req, res, entry, ctx, ctx.policy());
  const canon = prepare(x);
  if (!canon) return;
  let decision = evaluate(canon, x.policy);
  let body: ForwardBody = streamedBody(req);
  let read: Buffer = EMPTY;
  // Only requests some body rule could apply to (by host, method, path, …) are buffered, and forms
  // (a `_method` field would make the upstream act on another method).
  if (decision.needsBody || bodyNeededForOverride(canon)) {
    const inspected = await inspect(x, canon);
    if (!inspected) return;
    ({ decision, body, read } = inspected);
  }
  const decided = settle(x, canon, decision);
  if (!decided) return;
  if (decision.action === 'approve') return holdForApproval(x, canon, decision, read);
  await x.forward(canon, body, decision, answerRewriter(x, canon));
}

/** An MCP `tools/list` answer is rewritten to show what the policy lets the agent do (not through routes). */
function answerRewriter(x: Exchange, canon: CanonicalRequest): ResponseRewriter | null {
  const lists = canon.body?.rpc?.calls.filter((c) => c.method === 'tools/list' && c.id !== null && c.id !== undefined);
  if (!lists?.length || x.route) return null;
  const policy = x.policy;
  return toolsListRewriter(new Set(lists.map((c) => c.id!)), (tool) => toolVerdict(canon, policy, tool));
}

/**
 * Read the body (up to --max-inspected-body) into the view rules see, and decide again. Returns the
 * decision and what to forward (the bytes read, then the rest if there was more), or null when the
 * request was refused or the client left.
 */
async function inspect(x: Exchange, canon: CanonicalRequest): Promise<{ decision: Decision; body: ForwardBody; read: Buffer } | null> {
  const { req, ctx } = x;
  const limit = ctx.maxInspectedBodyBytes;
  const read = await readBody(req, limit, ctx.clientBodyTimeoutMs);
  if (!read.ok && read.reason === 'aborted') return null;
  if (!read.ok && read.reason === 'timeout') {
    x.bodyTimedOut(canon);
    return null;
  }
  const bytes = read.ok ? read.body : read.prefix;
  const view = await setBodyView(canon, read.ok ? bytes : bytes.subarray(0, limit), read.ok, x.policy, limit);
  if (!view.ok) {
    x.refuse({ status: 400, code: 'bad_request', message: view.message }, canon);
    return null;
  }
  return { decision: evaluate(canon, x.policy), body: read.ok ? (bytes.length > 0 ? bytes : null) : withRest(read.prefix, req), read: bytes };
}

const EMPTY = Buffer.alloc(0);
