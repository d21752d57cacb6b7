/**
 * A request's header fields after canonicalization: lower-case names and their values, in the order
 * received, as one flat [name, value, name, value, …] list. Requests carry a handful of headers and
 * consumers ask for one or two by name, so a scan beats building a dictionary per request (whose keys
 * V8 would have to internalize), and the list is forwarded upstream as it is.
 */
export class HeaderList {
  /** `flat` holds lower-case names; it is not copied, so it must not change afterwards. */
  constructor(readonly flat: readonly string[]) {}

  /** The header's value, every value in order when it was sent more than once, or undefined. */
  get(name: string): string | string[] | undefined {
    const f = this.flat;
    let found: string | string[] | undefined;
    for (let i = 0; i < f.length; i += 2) {
      if (f[i] !== name) continue;
      const v = f[i + 1]!;
      if (found === undefined) found = v;
      else if (typeof found === 'string') found = [found, v];
      else found.push(v);
    }
    return found;
  }
}
