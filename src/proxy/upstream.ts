import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { Agent, buildConnector, type Dispatcher } from 'undici';
import { DESTINATION_REFUSED_CODE, guardConnector, type Guard } from './destination-guard.js';
import type { CanonicalRequest } from '../policy/types.js';
import { upstreamHeaders } from '../request/canonicalize.js';
import { REQUEST_ID_HEADER } from './respond.js';
import type { UpstreamOptions } from './upstream-options.js';


/**
 * One keep-alive pool per origin, shared by every forwarded request. Every new connection goes through
 * the destination guard (read per connection, so a policy reload applies): the name is resolved once,
 * every address checked, and the checked address dialled.
 */
export function createUpstreamAgent(o: UpstreamOptions, guard: () => Guard): Dispatcher {
  // Upstream certificates are always verified; an extra bundle adds roots, it never replaces them.
  const connector = buildConnector({ timeout: o.connectTimeoutMs, ...(o.secureContext ? { secureContext: o.secureContext } : {}) } as buildConnector.BuildOptions);
  return new Agent({
    connect: guardConnector(guard, connector),
    headersTimeout: o.headersTimeoutMs,
    bodyTimeout: o.bodyTimeoutMs,
    keepAliveTimeout: o.keepAliveTimeoutMs,
    connections: o.connectionsPerOrigin,
  });
}

export type ForwardResult =
  | { ok: true; status: number }
  /** 403: the destination guard refused the address the name resolved to. */
  | { ok: false; status: 403 | 502 | 504; message: string; headersSent: boolean };

/** Response headers that describe the upstream connection, not the message. */
export const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * The upstream's response headers as the flat [name, value, …] list writeHead takes, without
 * hop-by-hop headers and those the upstream's Connection header names (and Content-Length, when the
 * body is rewritten), plus Airlock's request id.
 */
function responseHeaders(h: IncomingHttpHeaders, requestId: string, rewritten = false): (string | string[])[] {
  const out: (string | string[])[] = [];
  const nominated = h.connection;
  const extra = nominated ? new Set(String(nominated).toLowerCase().split(/\s*,\s*/)) : null;
  for (const name in h) {
    const v = h[name];
    if (v === undefined || HOP_BY_HOP.has(name) || extra?.has(name) === true || (rewritten && name === 'content-length')) continue;
    out.push(name, v);
  }
  out.push(REQUEST_ID_HEADER, requestId);
  return out;
}

// undici's, http-proxy-3's connect timeout, and the timeout Airlock puts on Node's client requests.
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ECONNECT_TIMEOUT', 'ETIMEDOUT']);

/** What an upstream failure means for the client: 403 (destination refused), 504 (timed out) or 502. */
export function describe(err: unknown, target: string): { status: 403 | 502 | 504; message: string } {
  const code = (err as { code?: string }).code ?? '';
  if (code === DESTINATION_REFUSED_CODE) return { status: 403, message: (err as Error).message };
  if (TIMEOUT_CODES.has(code)) return { status: 504, message: `upstream ${target} timed out (${code})` };
  const reason = code || (err as Error).message || 'unknown error';
  return { status: 502, message: `upstream ${target} failed: ${reason}` };
}

/**
 * What is sent upstream as the body: the client's request streaming through, the buffered body of
 * a request held for approval or inspected, or the part of a larger body that was inspected followed
 * by the rest as it arrives; null for none.
 */
export type ForwardBody = Readable | Buffer | null;

/** The client's body, to stream upstream, or null when the request has none. */
export function streamedBody(req: IncomingMessage): IncomingMessage | null {
  const cl = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0') ? req : null;
}

/**
 * Changes an upstream response on its way to the client (an MCP tool list). `start` says whether it
 * will, given the status and headers; the response then goes out without Content-Length, each chunk
 * as `data` returns it and the rest as `end` does.
 */
export interface ResponseRewriter {
  start(status: number, headers: IncomingHttpHeaders): boolean;
  data(chunk: Buffer): Buffer;
  end(): Buffer;
}

/**
 * Writes one upstream response into the client's ServerResponse as it arrives: undici's dispatch
 * handler interface, without the stream API's async resource, writable plumbing and promise per request.
 * Backpressure is passed on (the upstream is paused while the client is not reading), and a client
 * that goes away aborts the upstream request.
 */
class ResponseWriter implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private readonly onClose = (): void => {
    if (!this.res.writableFinished) this.controller?.abort(new ClientClosedError());
  };
  private readonly onDrain = (): void => this.controller?.resume();

  constructor(
    private readonly res: ServerResponse,
    private readonly requestId: string,
    private readonly origin: string,
    private readonly onHeaders: (status: number) => void,
    private readonly done: (result: ForwardResult) => void,
    private rewriter: ResponseRewriter | null,
  ) {
    res.once('close', this.onClose);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.res.destroyed) controller.abort(new ClientClosedError());
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    this.onHeaders(statusCode);
    if (this.rewriter?.start(statusCode, headers) !== true) this.rewriter = null;
    this.res.writeHead(statusCode, responseHeaders(headers, this.requestId, this.rewriter !== null));
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.res.write(this.rewriter ? this.rewriter.data(chunk) : chunk)) {
      controller.pause();
      this.res.once('drain', this.onDrain);
    }
  }

  onResponseEnd(): void {
    this.res.off('close', this.onClose);
    this.res.end(this.rewriter?.end());
    this.done({ ok: true, status: this.res.statusCode });
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.res.off('close', this.onClose);
    this.res.off('drain', this.onDrain);
    this.done({ ok: false, ...describe(err, this.origin), headersSent: this.res.headersSent });
  }
}

class ClientClosedError extends Error {
  readonly code = 'UND_ERR_ABORTED';
  constructor() {
    super('the client closed the connection');
  }
}

/** A response to be rewritten is asked for unencoded (a flat header list without Accept-Encoding). */
function identityEncoded(headers: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]!.toLowerCase() !== 'accept-encoding') out.push(headers[i]!, headers[i + 1]!);
  }
  return out;
}

/**
 * Send the canonical request upstream and stream the answer back. `body` is the client's request
 * streaming through, or the buffered body of a request that was held for approval.
 * Redirects are passed to the client, never followed: a client that follows one comes back
 * through the proxy and is decided again.
 */
export function forward(
  canon: CanonicalRequest,
  body: ForwardBody,
  res: ServerResponse,
  agent: Dispatcher,
  requestId: string,
  onHeaders: (status: number) => void,
  rewriter: ResponseRewriter | null = null,
): Promise<ForwardResult> {
  const origin = `${canon.scheme}://${canon.host.includes(':') ? `[${canon.host}]` : canon.host}:${canon.port}`;
  return new Promise((resolve) => {
    agent.dispatch(
      {
        origin,
        path: canon.query ? `${canon.encodedPath}?${canon.query}` : canon.encodedPath,
        method: canon.method as Dispatcher.HttpMethod,
        headers: rewriter ? identityEncoded(upstreamHeaders(canon)) : upstreamHeaders(canon),
        body,
      },
      new ResponseWriter(res, requestId, origin, onHeaders, resolve, rewriter),
    );
  });
}
