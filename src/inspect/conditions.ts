/**
 * Conditions on values found inside a request (query parameters, form fields, JSON values), compiled
 * once at policy load and then only evaluated. Pure.
 *
 * A condition is an object of operators, all of which must hold: `equals`, `oneOf`, `glob` (strings:
 * `*` any run of characters, `?` one), `contains` (a substring of a string, or an element of an
 * array), numeric `gt`/`gte`/`lt`/`lte` (numbers, and strings that spell a decimal number, since
 * upstreams coerce them), and `present`. There are no user regular expressions: globs compile to
 * patterns that cannot backtrack catastrophically.
 */

export type Scalar = string | number | boolean | null;

/** As written in a policy file. */
export interface ConditionSpec {
  equals?: Scalar | undefined;
  oneOf?: readonly Scalar[] | undefined;
  glob?: string | undefined;
  contains?: Scalar | undefined;
  present?: boolean | undefined;
  gt?: number | undefined;
  gte?: number | undefined;
  lt?: number | undefined;
  lte?: number | undefined;
}

/**
 * Compiled: plain data (a compiled policy crosses from the loader thread by structured clone, which
 * carries no functions), read by `conditionHolds`. `text` is the condition as written, for explain.
 */
export interface ValueCondition {
  readonly text: string;
  readonly equals?: Scalar;
  readonly oneOf?: readonly Scalar[];
  readonly glob?: RegExp;
  readonly contains?: Scalar;
  readonly present?: boolean;
  readonly gt?: number;
  readonly gte?: number;
  readonly lt?: number;
  readonly lte?: number;
}

const GLOB_SPECIAL = /[\\^$.|+()[\]{}]/g;

/** `*` and `?` only; `[\s\S]` so line breaks in a value cannot slip past. Linear: no nested quantifiers. */
function globRegex(glob: string): RegExp {
  let source = '^';
  for (const ch of glob) {
    if (ch === '*') source += '[\\s\\S]*';
    else if (ch === '?') source += '[\\s\\S]';
    else source += ch.replace(GLOB_SPECIAL, '\\$&');
  }
  return new RegExp(`${source}$`, 'u');
}

/** A number, or a string that spells one in plain decimal (no hex, no exponent tricks, no blanks). */
const DECIMAL = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?$/;
function numeric(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'string' && DECIMAL.test(value)) return Number(value);
  return null;
}

function sameScalar(value: unknown, want: Scalar): boolean {
  if (value === want) return true;
  // A query or form value is a string; `equals: 5` holds for "5" as the upstream would read it.
  return typeof want === 'number' && typeof value === 'string' && numeric(value) === want;
}

const OPERATORS = ['equals', 'oneOf', 'glob', 'contains', 'present', 'gt', 'gte', 'lt', 'lte'] as const;

/** Compile one condition; the message says what is wrong with it. */
export function compileCondition(spec: ConditionSpec): ValueCondition | { error: string } {
  const keys = OPERATORS.filter((k) => spec[k] !== undefined);
  if (keys.length === 0) return { error: 'a condition needs at least one of equals, oneOf, glob, contains, present, gt, gte, lt, lte' };
  if (spec.present !== undefined && keys.length > 1) return { error: 'present cannot be combined with other operators (every other operator already needs the value to be present)' };
  const text = keys.map((k) => `${k} ${JSON.stringify(spec[k])}`).join(', ');
  const c: { -readonly [K in keyof ValueCondition]: ValueCondition[K] } = { text };
  if (spec.equals !== undefined) c.equals = spec.equals;
  if (spec.oneOf !== undefined) c.oneOf = spec.oneOf;
  if (spec.glob !== undefined) c.glob = globRegex(spec.glob);
  if (spec.contains !== undefined) c.contains = spec.contains;
  if (spec.present !== undefined) c.present = spec.present;
  if (spec.gt !== undefined) c.gt = spec.gt;
  if (spec.gte !== undefined) c.gte = spec.gte;
  if (spec.lt !== undefined) c.lt = spec.lt;
  if (spec.lte !== undefined) c.lte = spec.lte;
  return c;
}

/** Whether one value satisfies every operator of `c` (other than `present`). */
function test(c: ValueCondition, v: unknown): boolean {
  if (c.equals !== undefined && !sameScalar(v, c.equals)) return false;
  if (c.oneOf !== undefined && !c.oneOf.some((o) => sameScalar(v, o))) return false;
  if (c.glob !== undefined && !(typeof v === 'string' && c.glob.test(v))) return false;
  if (c.contains !== undefined) {
    const want = c.contains;
    const has = typeof v === 'string' ? typeof want === 'string' && v.includes(want) : Array.isArray(v) && v.some((e) => sameScalar(e, want));
    if (!has) return false;
  }
  if (c.gt !== undefined || c.gte !== undefined || c.lt !== undefined || c.lte !== undefined) {
    const n = numeric(v);
    if (n === null) return false;
    if ((c.gt !== undefined && !(n > c.gt)) || (c.gte !== undefined && !(n >= c.gte))) return false;
    if ((c.lt !== undefined && !(n < c.lt)) || (c.lte !== undefined && !(n <= c.lte))) return false;
  }
  return true;
}

/**
 * How a condition reads several values (repeated JSON elements through `*`, the operations of a
 * GraphQL document, the calls of a JSON-RPC batch): a deny or approve rule holds when **any** value
 * satisfies it, an allow rule only when **every** one does, so that hiding one value among others can
 * neither escape a restriction nor borrow a permission.
 */
export type Quantifier = 'any' | 'every';

export function quantifierFor(action: 'allow' | 'deny' | 'approve'): Quantifier {
  return action === 'allow' ? 'every' : 'any';
}

/** Whether `c` holds for the values found (none: the thing is absent). */
export function conditionHolds(c: ValueCondition, values: readonly unknown[], quantifier: Quantifier): boolean {
  if (c.present !== undefined) return (values.length > 0) === c.present;
  return quantifier === 'any' ? values.some((v) => test(c, v)) : values.length > 0 && values.every((v) => test(c, v));
}
