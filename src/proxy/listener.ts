import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { handleApprovalStatus, statusTarget } from './approval-status.js';
import { handleConnect, type TunnelInfo } from './connect.js';
import type { ProxyContext } from './context.js';
import type { Entry } from './exchange.js';
import { handleRequest } from './handle-request.js';
import { sendError, writeSocketError } from './respond.js';
import { handleUpgrade } from './websocket.js';

function serverOptions(headersTimeoutMs: number) {
  return {
    // A strict parser: no lenient handling of malformed framing that an upstream might read differently.
    insecureHTTPParser: false,
    requireHostHeader: false,
    // A client that dribbles its headers is cut off on time: Node checks every connectionsCheckingInterval
    // (30 s by default, which let a 30 s timeout run to nearly a minute).
    headersTimeout: headersTimeoutMs,
    connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(headersTimeoutMs / 4))),
    // Large uploads and slow upstreams are the upstream timeouts' business, not the listener's.
    requestTimeout: 0,
    keepAliveTimeout: 65_000,
  } as const;
}

/**
 * A request Node's parser refused (malformed, headers too large, too slow): answered, and audited with
 * what is known of its sender (the tunnel's identity, or the sidecar's).
 */
function onClientError(err: NodeJS.ErrnoException, socket: Duplex, ctx: ProxyContext, identity: string | null): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  ctx.metrics.proxyResponses.inc({ code: 'bad_request' });
  const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
  const status = timeout ? 408 : 400;
  const message = timeout
    ? `the request's headers did not arrive within ${ctx.clientHeadersTimeoutMs} ms`
    : `malformed request: ${err.code === 'HPE_HEADER_OVERFLOW' ? 'headers too large' : (err.code ?? err.message)}`;
  const requestId = randomUUID();
  ctx.audit.write({
    event: 'request',
    request_id: requestId,
    decision: 'refused',
    rule: null,
    identity,
    status,
    error: 'bad_request',
    client: (socket as Socket).remoteAddress,
    reason: message,
  });
  writeSocketError(socket, { status, code: 'bad_request', message, requestId });
}

function serve(entry: (req: IncomingMessage) => Entry | null, ctx: ProxyContext) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const e = entry(req);
    if (!e) {
      sendError(res, { status: 400, code: 'bad_request', message: 'tunnel context lost', requestId: randomUUID() });
      return;
    }
    handleRequest(req, res, e, ctx).catch((err: unknown) => {
      ctx.log.error({ err }, 'request handling failed');
      sendError(res, { status: 502, code: 'upstream_error', message: 'internal error while proxying', requestId: randomUUID() });
    });
  };
}

/**
 * The agent-facing listener: absolute-form requests (HTTP_PROXY), origin-form requests on reverse
 * routes, and CONNECT. Plain HTTP inside CONNECT tunnels is handed to an inner server that never
 * listens itself, so those requests go through the same pipeline.
 */
export interface ProxyServer {
  server: Server;
  /** CONNECT sockets are detached from the HTTP server: shutdown ends them here. */
  destroyTunnels(): void;
}

export function createProxyServer(ctx: ProxyContext): ProxyServer {
  const tunnels = new WeakMap<Socket, TunnelInfo>();
  const open = new Set<Duplex>();
  const options = serverOptions(ctx.clientHeadersTimeoutMs);
  const inner = createServer(
    options,
    serve((req) => {
      const t = tunnels.get(req.socket);
      return t ? { via: 'tunnel', ...t } : null;
    }, ctx),
  );
  // The inner server never listens, and Node tracks connections (hence header timeouts) from
  // 'listening' on: without this, headers inside a tunnel could take forever.
  inner.emit('listening');
  inner.on('clientError', (err, socket) => onClientError(err, socket, ctx, tunnels.get(socket as Socket)?.identity?.id ?? null));
  inner.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const t = tunnels.get(req.socket);
    if (t) handleUpgrade(req, socket, head, { via: 'tunnel', ...t }, ctx);
    else socket.destroy();
  });

  const proxied = serve((req) => (req.url?.startsWith('/') ? { via: 'route' } : { via: 'proxy' }), ctx);
  const server = createServer(options, (req, res) => {
    const status = statusTarget(req.url);
    if (status !== null) {
      handleApprovalStatus(req, res, ctx, status).catch((err: unknown) => ctx.log.error({ err }, 'approval status failed'));
      return;
    }
    proxied(req, res);
  });
  server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    handleConnect(req, socket, head, ctx, inner, tunnels);
  });
  server.on('clientError', (err, socket) => onClientError(err, socket, ctx, ctx.staticIdentity));
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
    handleUpgrade(req, socket, head, req.url?.startsWith('/') ? { via: 'route' } : { via: 'proxy' }, ctx),
  );
  return {
    server,
    destroyTunnels: () => {
      for (const s of open) s.destroy();
    },
  };
}
