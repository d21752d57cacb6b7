import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { handleApprovalStatus } from './approval-status.js';
import { handleConnect, type TunnelInfo } from './connect.js';
import type { ProxyContext } from './context.js';
import type { Entry } from './exchange.js';
import { handleRequest } from './handle-request.js';
import { STATUS_PREFIX } from './hold.js';
import { sendError, writeSocketError } from './respond.js';
import { handleUpgrade } from './websocket.js';

const SERVER_OPTIONS = {
  // A strict parser: no lenient handling of malformed framing that an upstream might read differently.
  insecureHTTPParser: false,
  requireHostHeader: false,
  headersTimeout: 30_000,
  // Large uploads and slow upstreams are the upstream timeouts' business, not the listener's.
  requestTimeout: 0,
  keepAliveTimeout: 65_000,
} as const;

function onClientError(err: NodeJS.ErrnoException, socket: Duplex, ctx: ProxyContext): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  ctx.metrics.proxyResponses.inc({ code: 'bad_request' });
  const message = `malformed request: ${err.code === 'HPE_HEADER_OVERFLOW' ? 'headers too large' : (err.code ?? err.message)}`;
  writeSocketError(socket, { status: 400, code: 'bad_request', message, requestId: randomUUID() });
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
  const inner = createServer(
    SERVER_OPTIONS,
    serve((req) => {
      const t = tunnels.get(req.socket);
      return t ? { via: 'tunnel', ...t } : null;
    }, ctx),
  );
  inner.on('clientError', (err, socket) => onClientError(err, socket, ctx));
  inner.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const t = tunnels.get(req.socket);
    if (t) handleUpgrade(req, socket, head, { via: 'tunnel', ...t }, ctx);
    else socket.destroy();
  });

  const proxied = serve((req) => (req.url?.startsWith('/') ? { via: 'route' } : { via: 'proxy' }), ctx);
  const server = createServer(SERVER_OPTIONS, (req, res) => {
    if (req.url?.startsWith(STATUS_PREFIX)) {
      handleApprovalStatus(req, res, ctx).catch((err: unknown) => ctx.log.error({ err }, 'approval status failed'));
      return;
    }
    proxied(req, res);
  });
  server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    handleConnect(req, socket, head, ctx, inner, tunnels);
  });
  server.on('clientError', (err, socket) => onClientError(err, socket, ctx));
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
