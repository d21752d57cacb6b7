import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { MAX_CLIENT_HELLO, readClientHello } from './client-hello.js';
import type { Duplex } from 'node:stream';
import { evaluateTunnel, isPassthrough } from '../policy/evaluate.js';
import type { Identity } from '../policy/types.js';
import { canonicalizeAuthority } from '../request/canonicalize.js';
import { credentialsRequired, identify } from '../request/identify.js';
import { normalizeHost } from '../tls/host-name.js';
import type { Interception, ProxyContext } from './context.js';
import { PROXY_AUTHENTICATE } from './decide.js';
import { writeSocketError, type ProxyError } from './respond.js';

/** What a tunnel carrying plain HTTP was opened for; read by the inner HTTP server for each request. */
export interface TunnelInfo {
  scheme: 'http' | 'https';
  host: string;
  port: number;
  identity: Identity | null;
}

const TLS_HANDSHAKE = 0x16;

/** Every value of a header as sent (Node keeps only the first Proxy-Authorization in req.headers). */
function rawHeader(raw: readonly string[], name: string): string | string[] | undefined {
  const values: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]?.toLowerCase() === name) values.push(raw[i + 1] ?? '');
  return values.length > 1 ? values : values[0];
}

/** An HTTP request line starts with an upper-case method token. */
function looksLikeHttp(byte: number): boolean {
  return byte >= 0x41 && byte <= 0x5a;
}

/**
 * CONNECT host:port. Decided on host, port and identity before any byte is tunnelled:
 * - every rule that could apply to the host is host-level → allow splices a raw tunnel, deny refuses;
 * - some rule needs method, path or headers → only plain HTTP may pass, parsed and decided request by
 *   request (undici's ProxyAgent tunnels `http://` this way); TLS cannot be inspected, so port 443 is
 *   refused up front and a TLS handshake on another port closes the tunnel.
 */
export function handleConnect(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  ctx: ProxyContext,
  inner: Server,
  tunnels: WeakMap<Socket, TunnelInfo>,
): void {
  const requestId = randomUUID();
  const policy = ctx.policy();
  socket.on('error', () => socket.destroy());

  const audit = (fields: Record<string, unknown>): void =>
    ctx.audit.write({
      event: 'tunnel',
      request_id: requestId,
      method: 'CONNECT',
      client: req.socket.remoteAddress,
      via: 'proxy',
      policy_version: policy.version,
      ...fields,
    });
  const refuse = (e: Omit<ProxyError, 'requestId'>, fields: Record<string, unknown>): void => {
    ctx.metrics.tunnels.inc({ decision: e.code });
    ctx.metrics.proxyResponses.inc({ code: e.code });
    audit({ ...fields, status: e.status, error: e.code, reason: e.message });
    writeSocketError(socket, { ...e, requestId });
  };

  const target = canonicalizeAuthority(req.url ?? '');
  if (!target.ok) return refuse({ status: 400, code: 'bad_request', message: target.message }, { decision: 'refused' });
  const { host, port } = target;

  const who = identify(rawHeader(req.rawHeaders, 'proxy-authorization'), ctx.staticIdentity, policy);
  if (!who.ok || (who.identity === null && credentialsRequired(ctx.staticIdentity, policy))) {
    const message = who.ok ? 'proxy credentials required: set HTTPS_PROXY=http://ID:TOKEN@host:port' : who.message;
    return refuse({ status: 407, code: 'proxy_auth_required', message, headers: PROXY_AUTHENTICATE }, { host, port, decision: 'refused' });
  }
  const identity = who.identity;
  const base = { identity: identity?.id ?? null, owner: identity?.owner ?? null, host, port };

  if (ctx.isOwnListener(host, port)) {
    return refuse({ status: 403, code: 'denied', message: 'Airlock does not tunnel to its own listeners' }, { ...base, decision: 'deny' });
  }

  // Passthrough hosts (certificate-pinning clients) are never intercepted: host-level rules decide.
  const passthrough = isPassthrough(host, policy);
  const verdict = evaluateTunnel(identity, host, port, policy, passthrough);
  if (verdict.kind === 'decided') {
    const d = verdict.decision;
    const fields = { ...base, rules: d.matched, rule: d.rule, decision: d.action, reason: d.reason, passthrough: passthrough || undefined };
    ctx.metrics.decisions.inc({ action: d.action, rule: d.rule ?? '(default)', mode: 'enforce' });
    if (d.action === 'deny') return refuse({ status: 403, code: 'denied', message: d.reason, rule: d.rule }, fields);
    if (d.action === 'approve') {
      const message = 'tunnels cannot be held for approval; send the request as plain HTTP or through TLS interception';
      return refuse({ status: 503, code: 'approval_unavailable', message, rule: d.rule }, fields);
    }
    ctx.metrics.tunnels.inc({ decision: 'allow' });
    audit(fields);
    void splice(socket, head, host, port, requestId, ctx);
    return;
  }

  const fields = { ...base, rules: verdict.rules, decision: 'inspect' };
  const interception = ctx.interception;
  if (port === 443 && !interception) {
    const message = `rules ${verdict.rules.join(', ')} inspect requests to ${host}; HTTPS to it cannot be inspected without TLS interception (airlock ca init)`;
    return refuse({ status: 403, code: 'denied', message }, fields);
  }
  ctx.metrics.tunnels.inc({ decision: 'inspect' });
  audit(fields);
  socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
  const dispatch = (first: Buffer): void => {
    socket.unshift(first);
    if (first[0] === TLS_HANDSHAKE && interception) {
      intercept(socket, host, port, identity, requestId, ctx, interception, (tlsSocket) => {
        tunnels.set(tlsSocket, { scheme: 'https', host, port, identity });
        inner.emit('connection', tlsSocket);
      });
      return;
    }
    if (!looksLikeHttp(first[0] ?? 0)) {
      const reason = first[0] === TLS_HANDSHAKE ? 'TLS inside the tunnel cannot be inspected (no interception CA)' : 'tunnel carries neither HTTP nor TLS';
      ctx.audit.write({ event: 'tunnel_closed', request_id: requestId, ...base, decision: 'deny', reason });
      socket.destroy();
      return;
    }
    tunnels.set(socket as Socket, { scheme: 'http', host, port, identity });
    inner.emit('connection', socket);
    socket.resume();
  };
  if (head.length > 0) dispatch(head);
  else socket.once('data', (chunk: Buffer) => {
    socket.pause();
    dispatch(chunk);
  });
}

/** Whether a TLS server name names `host` (IDN, IPv6 spellings and a trailing dot compared canonically). */
function sameHost(servername: string, host: string): boolean {
  try {
    return normalizeHost(servername) === normalizeHost(host);
  } catch {
    return false;
  }
}

/**
 * Terminate the client's TLS with a leaf certificate for the CONNECT host. The name the client asks
 * for (SNI) must be that host: a client that connects to one host and names another is cut off, so
 * rules for one host can't be applied to traffic meant for another.
 */
function intercept(
  socket: Duplex,
  host: string,
  port: number,
  identity: Identity | null,
  requestId: string,
  ctx: ProxyContext,
  interception: Interception,
  ready: (tlsSocket: TLSSocket) => void,
): void {
  const record = (reason: string): void =>
    ctx.audit.write({ event: 'tunnel_closed', request_id: requestId, identity: identity?.id ?? null, host, port, decision: 'deny', reason });
  interception.leaves.context(host).then(
    (secureContext) => {
      const tlsSocket = new TLSSocket(socket as Socket, {
        isServer: true,
        secureContext,
        ALPNProtocols: ['http/1.1'],
        SNICallback: (servername, cb) => {
          if (!sameHost(servername, host)) {
            record(`TLS server name ${servername} does not match the CONNECT host ${host}`);
            // Failing the handshake is enough: destroying the socket from inside this callback crashes Node.
            cb(new Error('server name mismatch'));
            return;
          }
          cb(null, secureContext);
        },
      });
      tlsSocket.on('error', () => tlsSocket.destroy());
      ready(tlsSocket);
      socket.resume();
    },
    (err: Error) => {
      record(`no certificate for ${host}: ${err.message}`);
      socket.destroy();
    },
  );
}

/**
 * A raw tunnel is decided for the CONNECT host. If the client speaks TLS, the server name in its
 * ClientHello must be that host: otherwise a CDN or shared front end could route the connection to
 * another site (domain fronting) that no rule allowed. A ClientHello that cannot be read whole from the
 * first record is refused. Other protocols pass as they are.
 */
function screenFirstBytes(client: Duplex, head: Buffer, host: string, done: (refusal: string | null, first: Buffer) => void): void {
  let buffered = head;
  const check = (): boolean => {
    const hello = readClientHello(buffered);
    if (hello.kind === 'incomplete' && buffered.length < MAX_CLIENT_HELLO) return false;
    client.off('data', onData);
    // Nothing may flow past while nobody listens: pipe() resumes it.
    client.pause();
    if (hello.kind === 'incomplete' || hello.kind === 'malformed') done('unreadable TLS ClientHello', buffered);
    else if (hello.kind === 'hello' && hello.serverName !== null && !sameHost(hello.serverName, host)) {
      done(`TLS server name ${hello.serverName} does not match the CONNECT host ${host}`, buffered);
    } else done(null, buffered);
    return true;
  };
  const onData = (chunk: Buffer): void => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    check();
  };
  if (buffered.length > 0 && check()) return;
  client.on('data', onData);
}

/**
 * A raw tunnel for a host-level allow: the destination guard resolves the host once and checks every
 * address, the checked address is dialled, and bytes flow both ways, counted when it closes.
 */
async function splice(client: Duplex, head: Buffer, host: string, port: number, requestId: string, ctx: ProxyContext): Promise<void> {
  const verdict = await ctx.guard().resolve(host, port);
  if (!verdict.ok) {
    const dns = verdict.code === 'dns_error';
    ctx.audit.write({ event: dns ? 'tunnel_closed' : 'destination_refused', request_id: requestId, host, port, reason: verdict.reason });
    ctx.metrics.proxyResponses.inc({ code: dns ? 'upstream_error' : 'denied' });
    writeSocketError(client, { status: dns ? 502 : 403, code: dns ? 'upstream_error' : 'denied', message: verdict.reason, requestId });
    return;
  }
  const upstream = netConnect({ host: verdict.address, port });
  let opened = false;
  upstream.setTimeout(ctx.connectTimeoutMs, () => {
    if (!opened) upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' }));
  });
  upstream.once('connect', () => {
    opened = true;
    upstream.setTimeout(0);
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    // The server may speak first (SSH, SMTP, …); the client's first bytes are screened before they go on.
    upstream.pipe(client);
    screenFirstBytes(client, head, host, (refusal, first) => {
      if (refusal !== null) {
        ctx.audit.write({ event: 'tunnel_closed', request_id: requestId, host, port, decision: 'deny', reason: refusal });
        client.destroy();
        return;
      }
      upstream.write(first);
      client.pipe(upstream);
    });
  });
  upstream.on('error', (err: NodeJS.ErrnoException) => {
    if (!opened) {
      const message = `upstream ${host}:${port} failed: ${err.code ?? err.message}`;
      ctx.metrics.proxyResponses.inc({ code: 'upstream_error' });
      writeSocketError(client, { status: err.code === 'ETIMEDOUT' ? 504 : 502, code: 'upstream_error', message, requestId });
    } else client.destroy();
  });
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => {
    client.destroy();
    if (opened) {
      ctx.audit.write({
        event: 'tunnel_closed',
        request_id: requestId,
        host,
        port,
        bytes_up: upstream.bytesWritten,
        bytes_down: upstream.bytesRead,
      });
    }
  });
}
