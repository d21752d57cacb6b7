/**
 * A compiled policy taken apart to cross from the loader thread in pieces, and put back together.
 * Structured clone of a 10,000-rule policy in one message costs the receiving thread 30–70 ms in one
 * go; in slices of rules pulled one at a time, each costs a few milliseconds and requests run between
 * them. Rules are referenced from the index by their load order, and the index is rebuilt on arrival.
 */
import type { CompiledPolicy, CompiledRule, RuleBucket, RuleIndex } from './types.js';

interface BucketByOrder {
  all: number[];
  byMethod: Map<string, number[]>;
  anyMethod: number[];
}

/** Everything of a policy but its compiled rules, which travel separately in `chunks`. */
export interface PolicyHead extends Omit<CompiledPolicy, 'rules' | 'index'> {
  ruleCount: number;
  exactHosts: Map<string, BucketByOrder>;
  hostSuffixes: Map<string, BucketByOrder>;
  anyHost: BucketByOrder;
}

export interface SplitPolicy {
  head: PolicyHead;
  chunks: CompiledRule[][];
}

const byOrder = (b: RuleBucket): BucketByOrder => ({
  all: b.all.map((r) => r.order),
  byMethod: new Map([...b.byMethod].map(([m, rules]) => [m, rules.map((r) => r.order)])),
  anyMethod: b.anyMethod.map((r) => r.order),
});

const mapValues = <K, A, B>(m: ReadonlyMap<K, A>, f: (a: A) => B): Map<K, B> => new Map([...m].map(([k, v]) => [k, f(v)]));

export function splitPolicy(policy: CompiledPolicy, chunkSize: number): SplitPolicy {
  const { rules: _infos, index, ...rest } = policy;
  const chunks: CompiledRule[][] = [];
  for (let i = 0; i < index.rules.length; i += chunkSize) chunks.push(index.rules.slice(i, i + chunkSize) as CompiledRule[]);
  return {
    head: {
      ...rest,
      ruleCount: index.rules.length,
      exactHosts: mapValues(index.exactHosts, byOrder),
      hostSuffixes: mapValues(index.hostSuffixes, byOrder),
      anyHost: byOrder(index.anyHost),
    },
    chunks,
  };
}

export function joinPolicy(head: PolicyHead, chunks: readonly (readonly CompiledRule[])[]): CompiledPolicy {
  const { ruleCount, exactHosts, hostSuffixes, anyHost, ...rest } = head;
  const rules = chunks.flat();
  if (rules.length !== ruleCount || rules.some((r, i) => r.order !== i)) throw new Error('policy transfer: rules missing or out of order');
  const pick = (orders: readonly number[]): CompiledRule[] => orders.map((o) => rules[o]!);
  const bucket = (b: BucketByOrder): RuleBucket => ({ all: pick(b.all), byMethod: mapValues(b.byMethod, pick), anyMethod: pick(b.anyMethod) });
  const index: RuleIndex = { rules, exactHosts: mapValues(exactHosts, bucket), hostSuffixes: mapValues(hostSuffixes, bucket), anyHost: bucket(anyHost) };
  return { ...rest, rules: rules.map((r) => r.info), index };
}
