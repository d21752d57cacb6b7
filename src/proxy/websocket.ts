import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ProxyContext } from './context.js';
import { decide } from './decide.js';
import { Exchange, type Entry } from './exchange.js';

function isWebSocket(req: IncomingMessage): boolean {
  return String(req.headers.upgrade ?? '').toLowerCase() === 'websocket' && req.method === 'GET';
}

/**
 * An upgrade request. A WebSocket handshake is decided exactly like any request (the same
 * canonicalization, identity, rules and audit event), then, when allowed, sent to the upstream as the
 * canonical request and spliced byte for byte (pass-through.ts, http-proxy-3). Other upgrades (h2c,
 * …) are refused, and an upgrade cannot wait for a human: a rule that needs approval refuses it.
 */
export function handleUpgrade(req: IncomingMessage, socket: Duplex, bodyHead: Buffer, entry: Entry, ctx: ProxyContext): void {
  socket.on('error', () => socket.destroy());
  const x = new Exchange(req, socket, entry, ctx, ctx.policy());
  if (!isWebSocket(req)) {
    x.refuse({ status: 400, code: 'bad_request', message: `only WebSocket upgrades are supported (got "${String(req.headers.upgrade)}")` });
    return;
  }
  const decided = decide(x);
  if (!decided) return;
  const { canon, decision } = decided;
  if (decision.action === 'approve') {
    const message = 'a WebSocket upgrade cannot wait for approval; this rule needs one';
    x.refuse({ status: 403, code: 'denied', message, rule: decision.rule }, canon, decision);
    return;
  }

  ctx.passThrough.websocket(req, socket, bodyHead, x.trace ? x.trace.forwarding(canon) : canon, x.requestId, {
    failed: (r) => x.upstreamFailed(r, canon, decision),
    closed: (bytesUp, bytesDown) => ctx.audit.write({ event: 'websocket_closed', request_id: x.requestId, bytes_up: bytesUp, bytes_down: bytesDown }),
  });
}
