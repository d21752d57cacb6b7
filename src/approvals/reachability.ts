import type { Logger } from '../log.js';

/** Backoff between attempts to post or update a channel message. */
const RETRY_DELAYS_MS = [200, 500, 1000, 2000, 4000];

/**
 * Whether an approval channel reaches its chat service, as its calls find out: a first check retried
 * in the background with backoff (a channel that is down at start never stops the proxy, and decisions
 * go on through the approvals API), then every post and update, each retried while `transient` says
 * another attempt may work. `up()` feeds `airlock_channel_up` and `/readyz`.
 */
export class Reachability {
  private reachable = false;
  private stopped = false;

  constructor(
    private readonly log: Logger,
    /** Errors worth another attempt (throttling, the service failing, no answer). */
    private readonly transient: (err: unknown) => boolean,
  ) {}

  up(): boolean {
    return this.reachable;
  }

  stop(): void {
    this.stopped = true;
  }

  /** Runs `check` in the background until it succeeds (or `stop`), saying `down` while it fails. */
  connect(check: () => Promise<unknown>, down: string): void {
    void (async () => {
      for (let attempt = 0; !this.stopped; attempt++) {
        try {
          await check();
          this.reachable = true;
          return;
        } catch (err) {
          this.reachable = false;
          this.log.warn({ err: { message: (err as Error).message }, attempt }, down);
          await new Promise((resolve) => setTimeout(resolve, Math.min(30_000, 500 * 2 ** attempt)).unref());
        }
      }
    })();
  }

  /** A call to the service, retried while its error is transient; its outcome says whether the service is reachable. */
  async call<T>(call: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await call();
        this.reachable = true;
        return result;
      } catch (err) {
        const delay = RETRY_DELAYS_MS[attempt];
        if (delay === undefined || !this.transient(err)) {
          if (this.transient(err)) this.reachable = false;
          throw err;
        }
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }
}
