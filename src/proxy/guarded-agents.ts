/**
 * Keep-alive agents for Node's http/https clients (what http-proxy-3 dials with) whose every new
 * connection goes through the destination guard: the name is resolved once, every address checked,
 * and the checked address dialled; the TLS server name and certificate check still use the name.
 * The same guarantee undici's pool gets from `guardConnector`.
 */
import { Agent as HttpAgent, type ClientRequestArgs } from 'node:http';
import { Agent as HttpsAgent, type RequestOptions } from 'node:https';
import type { Duplex } from 'node:stream';
import type { SecureContext } from 'node:tls';
import { DestinationRefusedError, type Guard } from './destination-guard.js';

type Done = (err: Error | null, stream: Duplex) => void;

/** Resolve and check `host:port`; dial the checked address with `dial`, or fail `done` with why not. */
function guardedDial(guard: () => Guard, options: ClientRequestArgs, done: Done, dial: (address: string) => Duplex): void {
  const host = String(options.host ?? options.hostname ?? '');
  const port = Number(options.port);
  guard()
    .resolve(host, port)
    .then(
      (v) => {
        if (v.ok) return done(null, dial(v.address));
        const err = v.code === 'dns_error' ? Object.assign(new Error(v.reason), { code: v.dnsCode ?? 'ENOTFOUND', hostname: host }) : new DestinationRefusedError(host, v);
        done(err, undefined as unknown as Duplex);
      },
      (err: unknown) => done(err instanceof Error ? err : new Error(String(err)), undefined as unknown as Duplex),
    );
}

export interface GuardedAgents {
  http: HttpAgent;
  https: HttpsAgent;
  destroy(): void;
}

export function createGuardedAgents(guard: () => Guard, secureContext: SecureContext | undefined): GuardedAgents {
  class GuardedHttpAgent extends HttpAgent {
    override createConnection(options: ClientRequestArgs, callback?: Done): Duplex | null | undefined {
      guardedDial(guard, options, callback!, (address) => super.createConnection({ ...options, host: address })!);
      return undefined;
    }
  }
  class GuardedHttpsAgent extends HttpsAgent {
    override createConnection(options: RequestOptions, callback?: Done): Duplex | null | undefined {
      // The agent has already set the server name from the request's host (none for an IP literal).
      guardedDial(guard, options, callback!, (address) => super.createConnection({ ...options, host: address })!);
      return undefined;
    }
  }
  const http = new GuardedHttpAgent({ keepAlive: true });
  // Upstream certificates are always verified; the context adds --upstream-ca roots, never replaces them.
  const https = new GuardedHttpsAgent({ keepAlive: true, ...(secureContext ? { secureContext } : {}) });
  return {
    http,
    https,
    destroy() {
      http.destroy();
      https.destroy();
    },
  };
}
