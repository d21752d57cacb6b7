import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { evaluateTunnel, isPassthrough } from '../policy/evaluate.js';
import type { Identity } from '../policy/types.js';
import { canonicalizeAuthority } from '../request/canonicalize.js';
import { credentialsRequired, identify } from '../request/identify.js';
import { exceptionsFor } from '../policy/exceptions.js';
import type { Interception, ProxyContext } from './context.js';
import { PROXY_AUTHENTICATE } from './decide.js';
import { looksLikeHttp, openRawTunnel, sameHost } from './raw-tunnel.js';
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

/**
 * CONNECT host:port. Decided on host, port and identity before any byte is tunnelled:
 * - every rule that could apply to the host is host-level → allow opens a tunnel that carries TLS
 *   naming the host, or plain HTTP decided request by request (raw-tunnel.ts); deny refuses;
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

  // Tunnels are held open: one caller (an identity, or an anonymous client address) may hold so many.
  const caller = identity?.id ?? `anonymous ${req.socket.remoteAddress ?? ''}`;
  const limits = ctx.tunnelLimits;
  if (!limits.acquire(caller)) {
    const message = `${identity ? `identity ${identity.id}` : 'this client'} already holds ${limits.maxPerCaller} open tunnels; close some first`;
    return refuse({ status: 429, code: 'too_many_requests', message, headers: { 'retry-after': '5' } }, { ...base, decision: 'refused' });
  }
  socket.once('close', () => limits.release(caller));
  // A tunnel nothing flows through for this long is closed (the inner server's own timeouts take over for HTTP).
  const idle = (): void => {
    ctx.audit.write({ event: 'tunnel_closed', request_id: requestId, ...base, reason: `idle for ${limits.idleMs} ms` });
    socket.destroy();
  };
  const raw = socket as Socket;
  raw.setTimeout(limits.idleMs, idle);
  const toInner = (tunnelled: Duplex, info: TunnelInfo): void => {
    raw.setTimeout(0);
    raw.off('timeout', idle);
    tunnels.set(tunnelled as Socket, info);
    inner.emit('connection', tunnelled);
  };

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
    const anyProtocol = exceptionsFor(policy.exceptions, host).rawTunnels;
    void openRawTunnel({
      client: socket,
      head,
      host,
      port,
      requestId,
      ctx,
      anyProtocol,
      toInner: (first) => {
        socket.unshift(first);
        toInner(socket, { scheme: 'http', host, port, identity });
        socket.resume();
      },
    });
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
  // A client that closes before sending anything leaves nothing behind.
  const early = (): void => void socket.destroy();
  socket.once('end', early);
  const dispatch = (first: Buffer): void => {
    socket.off('end', early);
    socket.unshift(first);
    if (first[0] === TLS_HANDSHAKE && interception) {
      intercept(socket, host, port, identity, requestId, ctx, interception, (tlsSocket) => toInner(tlsSocket, { scheme: 'https', host, port, identity }));
      return;
    }
    if (!looksLikeHttp(first[0] ?? 0)) {
      const reason = first[0] === TLS_HANDSHAKE ? 'TLS inside the tunnel cannot be inspected (no interception CA)' : 'tunnel carries neither HTTP nor TLS';
      ctx.audit.write({ event: 'tunnel_closed', request_id: requestId, ...base, decision: 'deny', reason });
      socket.destroy();
      return;
    }
    toInner(socket, { scheme: 'http', host, port, identity });
    socket.resume();
  };
  if (head.length > 0) dispatch(head);
  else socket.once('data', (chunk: Buffer) => {
    socket.pause();
    dispatch(chunk);
  });
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
