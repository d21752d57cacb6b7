/**
 * A tunnel allowed on host-level rules. It may carry exactly what can be held to the CONNECT host:
 * TLS whose ClientHello names that host (no Encrypted Client Hello, whose outer name need not be where
 * it goes), or plain HTTP, which is handed to the inner server and decided request by request. Any
 * other protocol (SSH, SMTP, …) is closed, unless the policy's exceptions allow raw tunnels to the host.
 * The destination guard resolves the host once, checks every address, and the checked one is dialled.
 */
import { isIP } from 'node:net';
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { normalizeHost } from '../tls/host-name.js';
import { MAX_CLIENT_HELLO, readClientHello } from './client-hello.js';
import type { ProxyContext } from './context.js';
import { writeSocketError } from './respond.js';

export interface RawTunnel {
  client: Duplex;
  head: Buffer;
  host: string;
  port: number;
  requestId: string;
  ctx: ProxyContext;
  /** The policy's exceptions let any protocol through to this host. */
  anyProtocol: boolean;
  /** Hand a tunnel that carries plain HTTP to the inner server (its first bytes put back). */
  toInner(first: Buffer): void;
}

const TLS_HANDSHAKE = 0x16;

/** An HTTP request line starts with an upper-case method token. */
export function looksLikeHttp(byte: number): boolean {
  return byte >= 0x41 && byte <= 0x5a;
}

/** Whether a TLS server name names `host` (IDN, IPv6 spellings and a trailing dot compared canonically). */
export function sameHost(servername: string, host: string): boolean {
  try {
    return normalizeHost(servername) === normalizeHost(host);
  } catch {
    return false;
  }
}

/** Whether the bytes start an HTTP request line (a method token and a space), or more are needed to tell. */
function requestLine(bytes: Buffer): boolean | 'more' {
  const m = /^[A-Z]{1,20}(?: |$)/.exec(bytes.subarray(0, 21).toString('latin1'));
  if (m === null) return false;
  return m[0].endsWith(' ') ? true : 'more';
}

type FirstBytes = { kind: 'tls' | 'http' | 'other'; bytes: Buffer } | { kind: 'refused'; reason: string; bytes: Buffer };

/** Wait for the client's first bytes and say what they are (a ClientHello read whole and checked). */
function readFirst(client: Duplex, head: Buffer, host: string, done: (first: FirstBytes) => void): void {
  let buffered = head;
  const check = (): boolean => {
    if (buffered.length === 0) return false;
    if (buffered[0] !== TLS_HANDSHAKE) {
      const http = requestLine(buffered);
      if (http === 'more') return false;
      finish({ kind: http ? 'http' : 'other', bytes: buffered });
      return true;
    }
    const hello = readClientHello(buffered);
    if (hello.kind === 'incomplete' && buffered.length < MAX_CLIENT_HELLO) return false;
    if (hello.kind !== 'hello') finish({ kind: 'refused', reason: 'unreadable TLS ClientHello', bytes: buffered });
    else if (hello.ech) finish({ kind: 'refused', reason: 'the ClientHello offers Encrypted Client Hello, which hides the server it is for', bytes: buffered });
    else if (hello.serverName === null && isIP(host) === 0) finish({ kind: 'refused', reason: `the ClientHello names no server; a tunnel to ${host} must name it`, bytes: buffered });
    else if (hello.serverName !== null && !sameHost(hello.serverName, host)) {
      finish({ kind: 'refused', reason: `TLS server name ${hello.serverName} does not match the CONNECT host ${host}`, bytes: buffered });
    } else finish({ kind: 'tls', bytes: buffered });
    return true;
  };
  const onData = (chunk: Buffer): void => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    check();
  };
  // A client that closes before its first bytes are read leaves nothing behind.
  const early = (): void => void client.destroy();
  const finish = (first: FirstBytes): void => {
    client.off('end', early);
    client.off('data', onData);
    // Nothing may flow past while nobody listens: pipe() or the inner server resumes it.
    client.pause();
    done(first);
  };
  if (check()) return;
  client.once('end', early);
  client.on('data', onData);
}

export async function openRawTunnel(t: RawTunnel): Promise<void> {
  const { client, host, port, requestId, ctx } = t;
  const closed = (reason: string): void => {
    ctx.audit.write({ event: 'tunnel_closed', request_id: requestId, host, port, decision: 'deny', reason });
    client.destroy();
  };
  const verdict = await ctx.guard().resolve(host, port);
  if (!verdict.ok) {
    const dns = verdict.code === 'dns_error';
    ctx.audit.write({ event: dns ? 'tunnel_closed' : 'destination_refused', request_id: requestId, host, port, reason: verdict.reason });
    ctx.metrics.proxyResponses.inc({ code: dns ? 'upstream_error' : 'denied' });
    writeSocketError(client, { status: dns ? 502 : 403, code: dns ? 'upstream_error' : 'denied', message: verdict.reason, requestId });
    return;
  }
  client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
  readFirst(client, t.head, host, (first) => {
    if (first.kind === 'refused') return closed(first.reason);
    if (first.kind === 'http') return t.toInner(first.bytes);
    if (first.kind === 'other' && !t.anyProtocol) return closed('the tunnel carries neither TLS nor HTTP (a policy exception can allow raw tunnels to this host)');
    dial(t, verdict.address, first.bytes, closed);
  });
}

/** Dial the checked address and join the two sockets, counting bytes for the audit trail. */
function dial(t: RawTunnel, address: string, first: Buffer, closed: (reason: string) => void): void {
  const { client, host, port, requestId, ctx } = t;
  const upstream = netConnect({ host: address, port });
  let opened = false;
  upstream.setTimeout(ctx.connectTimeoutMs, () => {
    if (!opened) upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' }));
  });
  upstream.once('connect', () => {
    opened = true;
    upstream.setTimeout(0);
    upstream.write(first);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  upstream.on('error', (err: NodeJS.ErrnoException) => {
    if (!opened) closed(`upstream ${host}:${port} failed: ${err.code ?? err.message}`);
    else client.destroy();
  });
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => {
    client.destroy();
    if (opened) ctx.audit.write({ event: 'tunnel_closed', request_id: requestId, host, port, bytes_up: upstream.bytesWritten, bytes_down: upstream.bytesRead });
  });
}
