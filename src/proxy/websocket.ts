import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { CanonicalRequest, Decision } from '../policy/types.js';
import { upstreamHeaders } from '../request/canonicalize.js';
import type { ProxyContext } from './context.js';
import { decide } from './decide.js';
import { Exchange, type Entry } from './exchange.js';

function isWebSocket(req: IncomingMessage): boolean {
  return String(req.headers.upgrade ?? '').toLowerCase() === 'websocket' && req.method === 'GET';
}

/** The upstream's response head, to relay as it came (status line and raw headers). */
function head(res: IncomingMessage): string {
  let text = `HTTP/1.1 ${res.statusCode} ${res.statusMessage ?? ''}\r\n`;
  for (let i = 0; i < res.rawHeaders.length; i += 2) text += `${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}\r\n`;
  return `${text}\r\n`;
}

/**
 * An upgrade request. A WebSocket handshake is decided exactly like any request (the same
 * canonicalization, identity, rules and audit event), then, when allowed, sent to the upstream as the
 * canonical request and spliced byte for byte. Other upgrades (h2c, …) are refused, and an upgrade
 * cannot wait for a human: a rule that needs approval refuses it.
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

  void dial(x, canon, decision, bodyHead);
}

/** Resolve and check the destination once, then send the handshake to the checked address and splice. */
async function dial(x: Exchange, canon: CanonicalRequest, decision: Decision, bodyHead: Buffer): Promise<void> {
  const { ctx } = x;
  const socket = x.answer as Duplex;
  const verdict = await ctx.guard().resolve(canon.host, canon.port);
  if (!verdict.ok) {
    const dns = verdict.code === 'dns_error';
    if (!dns) ctx.audit.write({ event: 'destination_refused', request_id: x.requestId, host: canon.host, port: canon.port, reason: verdict.reason });
    x.refuse({ status: dns ? 502 : 403, code: dns ? 'upstream_error' : 'denied', message: verdict.reason, rule: decision.rule }, canon, decision);
    return;
  }
  const headers = upstreamHeaders(canon);
  headers.push('connection', 'Upgrade', 'upgrade', 'websocket');
  const send = canon.scheme === 'https' ? httpsRequest : httpRequest;
  const upstream = send({
    host: verdict.address,
    port: canon.port,
    method: 'GET',
    path: canon.query ? `${canon.encodedPath}?${canon.query}` : canon.encodedPath,
    headers,
    // SNI names hosts only, never addresses (RFC 6066).
    ...(isIP(canon.host) ? {} : { servername: canon.host }),
    ...(ctx.upstreamTls ? { secureContext: ctx.upstreamTls } : {}),
    timeout: 30_000,
  });
  upstream.on('upgrade', (res: IncomingMessage, up: Socket, upHead: Buffer) => {
    socket.write(head(res));
    if (upHead.length > 0) socket.write(upHead);
    if (bodyHead.length > 0) up.write(bodyHead);
    up.on('error', () => socket.destroy());
    socket.on('close', () => up.destroy());
    up.on('close', () => {
      socket.destroy();
      ctx.audit.write({ event: 'websocket_closed', request_id: x.requestId, bytes_up: up.bytesWritten, bytes_down: up.bytesRead });
    });
    socket.pipe(up);
    up.pipe(socket);
  });
  // The upstream declined the upgrade: relay its answer as it is.
  upstream.on('response', (res: IncomingMessage) => {
    socket.write(head(res));
    res.pipe(socket);
  });
  upstream.on('timeout', () => upstream.destroy(Object.assign(new Error('upstream timed out'), { code: 'ETIMEDOUT' })));
  upstream.on('error', (err: NodeJS.ErrnoException) => {
    const timedOut = err.code === 'ETIMEDOUT';
    const message = `upstream ${canon.host}:${canon.port} failed: ${err.code ?? err.message}`;
    x.refuse({ status: timedOut ? 504 : 502, code: 'upstream_error', message, rule: decision.rule }, canon, decision);
  });
  upstream.end();
}
