/**
 * http-proxy-3 where a live client connection is passed through and the upstream's answer needs
 * rewriting on its way back: reverse routes (a `Location` or a cookie the upstream scopes to its own
 * host and paths must point back into the route) and WebSocket upgrades (the handshake relayed, then
 * both sockets spliced). Absolute-form and tunnelled requests stay on undici (upstream.ts), which is
 * faster on that path (docs/architecture.md). Either way what is sent is the canonical request, and
 * every connection is dialled through the destination guard (guarded-agents.ts).
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Readable, type Duplex } from 'node:stream';
import type { ClientRequest } from 'node:http';
import { createProxyServer, type ServerOptions } from 'http-proxy-3';
import type { CanonicalRequest, ReverseRoute } from '../policy/types.js';
import { upstreamHeaders } from '../request/canonicalize.js';
import type { GuardedAgents } from './guarded-agents.js';
import { REQUEST_ID_HEADER } from './respond.js';
import { routeLocation } from './routes.js';
import { HOP_BY_HOP, describe, type ForwardBody, type ForwardResult } from './upstream.js';

export interface PassThroughOptions {
  connectTimeoutMs: number;
  /** Until the upstream's response headers, and between chunks: a quiet upstream is cut off (504). */
  upstreamTimeoutMs: number;
}

/** What the proxy's event handlers need to know about a request they see. */
interface Call {
  requestId: string;
  route: ReverseRoute | null;
  onHeaders(status: number): void;
  /** WebSockets: told when the spliced connection closes, with the bytes each way. */
  onClosed?(bytesUp: number, bytesDown: number): void;
}

export interface PassThrough {
  /** Forward a routed request (streamed from the client, or the buffered body of an approved one). */
  route(req: IncomingMessage, res: ServerResponse, canon: CanonicalRequest, route: ReverseRoute, body: ForwardBody, requestId: string, onHeaders: (status: number) => void): Promise<ForwardResult>;
  /** Send a decided WebSocket handshake and splice; `failed` answers the client when it cannot be. */
  websocket(req: IncomingMessage, socket: Duplex, head: Buffer, canon: CanonicalRequest, requestId: string, handlers: { failed(r: Extract<ForwardResult, { ok: false }>): void; closed(bytesUp: number, bytesDown: number): void }): void;
}

/** The canonical request's header list as the object Node's client (and http-proxy-3) takes. */
function headerObject(list: readonly string[]): IncomingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i]!;
    const value = list[i + 1]!;
    const prev = out[name];
    out[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return out;
}

/**
 * What http-proxy-3 needs per route, built once per route (routes come from the compiled policy):
 * the upstream origin as a URL, and the cookies the upstream scopes to its host or paths re-scoped
 * to Airlock's host and the route's prefix.
 */
function routeOptions(route: ReverseRoute): ServerOptions {
  const bare = (p: string): string => (p.length > 1 ? p.slice(0, -1) : p);
  return {
    target: new URL(originOf(route)),
    // No Domain: the cookie belongs to the host the client talks to, Airlock.
    cookieDomainRewrite: { '*': '' },
    // The route's upstream path (with or without its slash) maps onto the prefix; any other path,
    // which the route cannot reach more narrowly, onto the whole prefix.
    cookiePathRewrite: { [route.upstreamPath]: route.prefix, [bare(route.upstreamPath)]: bare(route.prefix), '*': route.prefix },
  };
}

function originOf(d: { scheme: string; host: string; port: number }): string {
  return `${d.scheme}://${d.host.includes(':') ? `[${d.host}]` : d.host}:${d.port}`;
}

export function createPassThrough(agents: GuardedAgents, o: PassThroughOptions): PassThrough {
  const proxy = createProxyServer({ xfwd: false, secure: true, ws: true, changeOrigin: false, prependPath: false, toProxy: true, connectTimeout: o.connectTimeoutMs });
  const calls = new WeakMap<IncomingMessage, Call>();
  // Every call's failure is answered through its callback; what reaches the proxy-wide event is a
  // client socket ending badly mid-splice, which only ends that connection (without a listener here,
  // http-proxy-3 would rethrow it).
  proxy.on('error', () => {});

  const armTimeout = (proxyReq: ClientRequest): void => {
    proxyReq.setTimeout(o.upstreamTimeoutMs, () => proxyReq.destroy(Object.assign(new Error('upstream timed out'), { code: 'ETIMEDOUT' })));
  };
  proxy.on('proxyReq', armTimeout);
  proxy.on('proxyReqWs', (proxyReq, req) => {
    const call = calls.get(req);
    armTimeout(proxyReq);
    proxyReq.on('upgrade', (_res: IncomingMessage, upstream: Duplex & { bytesWritten?: number; bytesRead?: number }) => {
      // Spliced for as long as both sides want: the handshake timeout no longer applies.
      proxyReq.setTimeout(0);
      upstream.once('close', () => call?.onClosed?.(upstream.bytesWritten ?? 0, upstream.bytesRead ?? 0));
    });
  });
  // Runs before http-proxy-3 copies the headers to the client's response.
  proxy.on('proxyRes', (proxyRes, req) => {
    const call = calls.get(req);
    if (!call) return;
    call.onHeaders(proxyRes.statusCode ?? 0);
    const h = proxyRes.headers;
    const nominated = h.connection ? String(h.connection).toLowerCase().split(/\s*,\s*/) : [];
    for (const name of [...HOP_BY_HOP, ...nominated]) delete h[name];
    if (call.route && typeof h.location === 'string') h.location = routeLocation(h.location, call.route);
    h[REQUEST_ID_HEADER] = call.requestId;
  });

  /** Point the client's request at the canonical one: http-proxy-3 sends req's method, URL and headers. */
  const prepare = (req: IncomingMessage, canon: CanonicalRequest, extra: string[] = []): void => {
    req.url = canon.query ? `${canon.encodedPath}?${canon.query}` : canon.encodedPath;
    req.headers = headerObject([...upstreamHeaders(canon), ...extra]);
  };
  const agentFor = (canon: CanonicalRequest): GuardedAgents['http'] => (canon.scheme === 'https' ? agents.https : agents.http);
  const perRoute = new WeakMap<ReverseRoute, ServerOptions>();

  return {
    route(req, res, canon, route, body, requestId, onHeaders) {
      prepare(req, canon);
      let options = perRoute.get(route);
      if (!options) perRoute.set(route, (options = routeOptions(route)));
      const call: Call = { requestId, route, onHeaders };
      calls.set(req, call);
      return new Promise((resolve) => {
        const finished = (): void => resolve({ ok: true, status: res.statusCode });
        res.once('finish', finished);
        proxy.web(
          req,
          res,
          // A body already read (held, inspected) is sent from memory; otherwise req is piped.
          { ...options, agent: agentFor(canon), ...(body === null || body === req ? {} : { buffer: Buffer.isBuffer(body) ? Readable.from([body]) : body }) },
          (err: Error) => {
            res.off('finish', finished);
            resolve({ ok: false, ...describe(err, originOf(route)), headersSent: res.headersSent });
          },
        );
      });
    },

    websocket(req, socket, head, canon, requestId, handlers) {
      prepare(req, canon, ['connection', 'Upgrade', 'upgrade', 'websocket']);
      calls.set(req, { requestId, route: null, onHeaders: () => {}, onClosed: handlers.closed });
      const origin = originOf(canon);
      proxy.ws(req, socket, head, { target: origin, agent: agentFor(canon) }, (err: Error) => handlers.failed({ ok: false, ...describe(err, origin), headersSent: false }));
    },
  };
}
