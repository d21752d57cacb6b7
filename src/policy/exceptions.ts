/**
 * `exceptions:` — the safe defaults an upstream needs relaxed, per host: encoded characters in paths,
 * method overrides, headers that re-route or assert identity. Each is a way around a check Airlock
 * makes, so each names its hosts. Compiled once; looked up per request by canonical host.
 */
import type { ParsedPolicyFile } from './compile.js';
import { compileHost, hostMatches } from './host-pattern.js';
import type { PATH_CHARACTERS } from './schema.js';
import type { HostPattern, SourcePosition } from './types.js';

export type PathCharacter = (typeof PATH_CHARACTERS)[number];

/** What is relaxed for one host (the union of every exception naming it). */
export interface HostExceptions {
  readonly pathCharacters: ReadonlySet<PathCharacter>;
  readonly methodOverride: boolean;
  /** Lower-case names of headers forwarded although Airlock strips them by default. */
  readonly forwardHeaders: ReadonlySet<string>;
  /** Host-level tunnels may carry any protocol, not only TLS naming the host or plain HTTP. */
  readonly rawTunnels: boolean;
}

export interface CompiledException extends HostExceptions {
  readonly hosts: readonly HostPattern[];
}

export const NO_EXCEPTIONS: HostExceptions = { pathCharacters: new Set(), methodOverride: false, forwardHeaders: new Set(), rawTunnels: false };

export function compileExceptions(files: readonly ParsedPolicyFile[], error: (at: SourcePosition, message: string) => void): CompiledException[] {
  const out: CompiledException[] = [];
  for (const f of files) {
    for (const [i, e] of (f.data.exceptions ?? []).entries()) {
      const hosts: HostPattern[] = [];
      for (const [j, raw] of e.hosts.entries()) {
        const h = compileHost(raw.toLowerCase());
        if (typeof h === 'string') error(f.locate(['exceptions', i, 'hosts', j]), h);
        else hosts.push(h);
      }
      out.push({
        hosts,
        pathCharacters: new Set(e.pathCharacters ?? []),
        methodOverride: e.methodOverride ?? false,
        forwardHeaders: new Set((e.forwardHeaders ?? []).map((h) => h.toLowerCase())),
        rawTunnels: e.rawTunnels ?? false,
      });
    }
  }
  return out;
}

/** What is relaxed for canonical `host`. */
export function exceptionsFor(exceptions: readonly CompiledException[], host: string): HostExceptions {
  if (exceptions.length === 0) return NO_EXCEPTIONS;
  const found = exceptions.filter((e) => e.hosts.some((h) => hostMatches(h, host)));
  if (found.length === 0) return NO_EXCEPTIONS;
  if (found.length === 1) return found[0]!;
  return {
    pathCharacters: new Set(found.flatMap((e) => [...e.pathCharacters])),
    methodOverride: found.some((e) => e.methodOverride),
    forwardHeaders: new Set(found.flatMap((e) => [...e.forwardHeaders])),
    rawTunnels: found.some((e) => e.rawTunnels),
  };
}
