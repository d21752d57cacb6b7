/**
 * Bounds on tunnels: how many one caller may hold open at once, and how long one may sit idle. An
 * agent that opens tunnels and never closes them must not exhaust the proxy's sockets.
 */
export interface TunnelLimits {
  /** A tunnel with no bytes either way for this long is closed. */
  readonly idleMs: number;
  readonly maxPerCaller: number;
  /** Count one more tunnel for `caller`; false when it already holds `maxPerCaller`. */
  acquire(caller: string): boolean;
  release(caller: string): void;
}

export function tunnelLimits(idleMs: number, maxPerCaller: number): TunnelLimits {
  const open = new Map<string, number>();
  return {
    idleMs,
    maxPerCaller,
    acquire(caller) {
      const n = open.get(caller) ?? 0;
      if (n >= maxPerCaller) return false;
      open.set(caller, n + 1);
      return true;
    },
    release(caller) {
      const n = (open.get(caller) ?? 1) - 1;
      if (n <= 0) open.delete(caller);
      else open.set(caller, n);
    },
  };
}
