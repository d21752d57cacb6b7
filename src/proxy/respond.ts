import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/** Error codes of responses Airlock makes itself (the public contract). */
export type ErrorCode =
  | 'denied'
  | 'approval_denied'
  | 'approval_expired'
  | 'approval_pending'
  | 'approval_unavailable'
  | 'bad_request'
  | 'proxy_auth_required'
  | 'body_too_large'
  | 'too_many_requests'
  | 'upstream_error';

export interface ProxyError {
  status: number;
  code: ErrorCode;
  message: string;
  requestId: string;
  rule?: string | null;
  approvalId?: string;
  headers?: Record<string, string>;
}

export const REQUEST_ID_HEADER = 'airlock-request-id';

function body(e: ProxyError): string {
  return JSON.stringify({
    error: e.code,
    message: e.message,
    request_id: e.requestId,
    rule: e.rule ?? null,
    approval_id: e.approvalId ?? null,
  });
}

/** A JSON response Airlock makes itself. */
export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/** Answer an HTTP request with Airlock's JSON error body. */
export function sendError(res: ServerResponse, e: ProxyError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = body(e);
  res.writeHead(e.status, {
    ...e.headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    [REQUEST_ID_HEADER]: e.requestId,
    'cache-control': 'no-store',
  });
  res.end(text);
}

/** Answer on a raw socket (CONNECT, parse errors), then close it. */
export function writeSocketError(socket: Duplex, e: ProxyError): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const text = body(e);
  const extra = Object.entries(e.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  // Destroyed once written: waiting for the client to close its side would keep the socket (and its
  // descriptor) for as long as the client likes.
  socket.end(
    `HTTP/1.1 ${e.status} ${STATUS_TEXT[e.status] ?? 'Error'}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n` +
      `Airlock-Request-Id: ${e.requestId}\r\nConnection: close\r\n${extra}\r\n${text}`,
    () => socket.destroy(),
  );
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  407: 'Proxy Authentication Required',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Payload Too Large',
  414: 'URI Too Long',
  429: 'Too Many Requests',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};
