import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ProxyContext } from './context.js';
import { decide } from './decide.js';
import { Exchange, type Entry } from './exchange.js';
import { holdForApproval } from './hold.js';
import { streamedBody } from './upstream.js';

/** Decide one HTTP request and act on the decision: forward, refuse, or hold it for approval. */
export async function handleRequest(req: IncomingMessage, res: ServerResponse, entry: Entry, ctx: ProxyContext): Promise<void> {
  const x = new Exchange(req, res, entry, ctx, ctx.policy());
  const decided = decide(x);
  if (!decided) return;
  const { canon, decision } = decided;
  if (decision.action === 'approve') return holdForApproval(x, canon, decision);
  await x.forward(canon, streamedBody(req), decision);
}
