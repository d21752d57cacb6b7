/** Backoff between attempts to post or update a channel message. */
const RETRY_DELAYS_MS = [200, 500, 1000, 2000, 4000];

/** Call a chat service, retrying with backoff while `transient` says another attempt may work. */
export async function withRetries<T>(call: () => Promise<T>, transient: (err: unknown) => boolean): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      const delay = RETRY_DELAYS_MS[attempt];
      if (delay === undefined || !transient(err)) throw err;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
