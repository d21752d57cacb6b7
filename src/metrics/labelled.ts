/**
 * Counters and histograms for the request path. prom-client's own inc() and observe() validate and
 * hash the label object on every call (and look buckets up by number-to-string keys), which on the
 * allowed path cost more than the policy decision. Here each label set resolves to a slot once and is
 * then only added to; the registry reads the slots when it is scraped, in prom-client's format.
 */
import { Counter, type Registry } from 'prom-client';

interface Slot<L extends string> {
  labels: Record<L, string>;
  value: number;
  /** Exported even at 0 (see `expose`). */
  shown: boolean;
}

/**
 * Slots by label values, one Map level per label in the declared order: label values are mostly
 * strings the policy or the code already holds, whose hashes V8 keeps, so finding a slot builds no
 * new string.
 */
class Slots<L extends string, S extends { labels: Record<L, string> }> {
  private readonly root = new Map<string, unknown>();
  private readonly all: S[] = [];

  constructor(
    private readonly labelNames: readonly L[],
    private readonly create: (labels: Record<L, string>) => S,
  ) {
    if (labelNames.length === 0) throw new Error('a metric without labels needs no slots: use prom-client directly');
  }

  get(labels: Record<L, string>): S {
    const names = this.labelNames;
    let level = this.root;
    for (let i = 0; i < names.length - 1; i++) {
      const v = labels[names[i]!];
      let next = level.get(v) as Map<string, unknown> | undefined;
      if (next === undefined) level.set(v, (next = new Map()));
      level = next;
    }
    const last = labels[names[names.length - 1]!];
    let slot = level.get(last) as S | undefined;
    if (slot === undefined) {
      const own = {} as Record<L, string>;
      for (const n of names) own[n] = labels[n];
      slot = this.create(own);
      level.set(last, slot);
      this.all.push(slot);
    }
    return slot;
  }

  values(): readonly S[] {
    return this.all;
  }
}

export interface CounterConfig<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  registers: Registry[];
}

export class FastCounter<L extends string> {
  private readonly slots: Slots<L, Slot<L>>;

  constructor(config: CounterConfig<L>) {
    this.slots = new Slots(config.labelNames, (labels) => ({ labels, value: 0, shown: false }));
    const slots = this.slots;
    new Counter<L>({
      ...config,
      labelNames: [...config.labelNames],
      collect() {
        this.reset();
        for (const s of slots.values()) if (s.value > 0 || s.shown) this.inc(s.labels, s.value);
      },
    });
  }

  inc(labels: Record<L, string>, n = 1): void {
    this.slots.get(labels).value += n;
  }

  /**
   * Export these label sets at 0 before anything is counted: rate() and increase() only see a first
   * event on a series that existed before it. Replaces the sets given before: those still at 0 stop
   * being exported, those counted stay (they are history).
   */
  expose(sets: Iterable<Record<L, string>>): void {
    for (const s of this.slots.values()) s.shown = false;
    for (const labels of sets) this.slots.get(labels).shown = true;
  }
}

interface HistogramSlot<L extends string> {
  labels: Record<L, string>;
  /** Observations per bucket (not cumulative); the last one is +Inf. */
  counts: Float64Array;
  sum: number;
  count: number;
}

export interface HistogramConfig<L extends string> extends CounterConfig<L> {
  buckets: readonly number[];
}

interface ExposedValue {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
}

export class FastHistogram<L extends string> {
  private readonly slots: Slots<L, HistogramSlot<L>>;
  private readonly bounds: Float64Array;
  // What prom-client's registry reads from a metric.
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  /** As prom-client's metrics have: lets the registry's metrics be checked against queries using them. */
  readonly labelNames: readonly L[];

  constructor(config: HistogramConfig<L>) {
    this.name = config.name;
    this.help = config.help;
    this.labelNames = config.labelNames;
    this.bounds = Float64Array.from(config.buckets);
    const size = this.bounds.length + 1;
    this.slots = new Slots(config.labelNames, (labels) => ({ labels, counts: new Float64Array(size), sum: 0, count: 0 }));
    for (const r of config.registers) r.registerMetric(this as never);
  }

  observe(labels: Record<L, string>, value: number): void {
    const s = this.slots.get(labels);
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  get(): { name: string; help: string; type: string; aggregator: string; values: ExposedValue[] } {
    const values: ExposedValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.slots.values()) {
      let acc = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        acc += s.counts[i]!;
        values.push({ labels: { le: this.bounds[i]!, ...s.labels }, value: acc, metricName: bucket });
      }
      values.push({ labels: { le: '+Inf', ...s.labels }, value: s.count, metricName: bucket });
      values.push({ labels: s.labels, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: s.labels, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    for (const s of this.slots.values()) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}
