/**
 * The Grafana dashboard and the alerting rules in deploy/monitoring agree with the metrics Airlock
 * exports: every metric a query names is in the registry createMetrics() builds, and every label it
 * matches on or groups by is one of that metric's labels. A renamed metric or label fails here instead
 * of leaving an empty panel or an alert that can never fire.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { createMetrics } from '../../src/metrics/metrics.js';

const ROOT = join(import.meta.dirname, '../..');
const read = (p: string): string => readFileSync(join(ROOT, p), 'utf8');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;

/** Added by Prometheus to every series it scrapes. */
const TARGET_LABELS = ['job', 'instance'];

/** Series names Airlock exposes, with their labels (histograms and summaries as their suffixed series). */
function exposedSeries(): Map<string, ReadonlySet<string>> {
  const series = new Map<string, ReadonlySet<string>>();
  for (const metric of createMetrics().registry.getMetricsAsArray()) {
    const { name, type, labelNames = [] } = metric as unknown as { name: string; type: string; labelNames?: readonly string[] };
    const labels = [...labelNames, ...TARGET_LABELS];
    if (type === 'histogram') {
      series.set(`${name}_bucket`, new Set([...labels, 'le']));
      series.set(`${name}_sum`, new Set(labels));
      series.set(`${name}_count`, new Set(labels));
    } else if (type === 'summary') {
      series.set(name, new Set([...labels, 'quantile']));
      series.set(`${name}_sum`, new Set(labels));
      series.set(`${name}_count`, new Set(labels));
    } else {
      series.set(name, new Set(labels));
    }
  }
  return series;
}
const SERIES = exposedSeries();

const FUNCTIONS = new Set([
  ...['sum', 'min', 'max', 'avg', 'count', 'count_values', 'topk', 'bottomk', 'quantile', 'stddev', 'stdvar', 'group'],
  ...['rate', 'irate', 'increase', 'delta', 'idelta', 'deriv', 'changes', 'resets', 'predict_linear', 'histogram_quantile'],
  ...['time', 'vector', 'scalar', 'timestamp', 'abs', 'absent', 'absent_over_time', 'clamp_min', 'clamp_max', 'round', 'sort', 'sort_desc'],
  ...['max_over_time', 'min_over_time', 'avg_over_time', 'sum_over_time', 'count_over_time', 'last_over_time', 'label_replace', 'label_join'],
]);
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset']);

interface Use {
  metric: string;
  labels: readonly string[];
}

/** Index just past the parenthesis that closes the one at `open`. */
function closing(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')' && --depth === 0) return i + 1;
  }
  throw new Error(`unbalanced parentheses: ${text}`);
}

/** Index of the parenthesis that opens the one ending just before `end`. */
function opening(text: string, end: number): number {
  let depth = 0;
  for (let i = end - 1; i >= 0; i--) {
    if (text[i] === ')') depth++;
    else if (text[i] === '(' && --depth === 0) return i;
  }
  throw new Error(`unbalanced parentheses: ${text}`);
}

/** Label names of a `by (...)` list or of a selector's matchers. */
const labelList = (s: string): string[] => [...s.matchAll(/([a-zA-Z_][\w]*)\s*(?:=~|!~|!=|=|,|$)/g)].map((m) => m[1]!);

/** Metrics an expression reads, with the labels it matches on or groups by for each. */
function uses(expr: string): { uses: Use[]; unknownFunctions: string[] } {
  // Label values and durations name nothing: blank them (Grafana's $variables live there too).
  const text = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\[[^\]]*\]/g, '[]');
  const found: Use[] = [];
  const unknownFunctions: string[] = [];
  for (const m of text.matchAll(/(?<![\w.:$])([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}/g)) found.push({ metric: m[1]!, labels: labelList(m[2]!) });
  const bare = text.replace(/\{[^}]*\}/g, '{}').replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '$1 ()');
  const metricsIn = (part: string): string[] => {
    const names: string[] = [];
    for (const m of part.matchAll(/(?<![\w.:$])([a-zA-Z_:][\w:]*)(\s*\()?/g)) {
      const [, name, call] = m;
      // An aggregation may be followed by its `by (...)` rather than its argument.
      if (KEYWORDS.has(name!) || FUNCTIONS.has(name!)) continue;
      if (call) unknownFunctions.push(name!);
      else names.push(name!);
    }
    return names;
  };
  for (const metric of metricsIn(bare)) found.push({ metric, labels: [] });
  // `agg by (labels) (expr)` or `agg (expr) by (labels)`: the labels must be on the metrics of expr.
  for (const m of text.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
    const after = m.index + m[0].length;
    const next = /^\s*\(/.exec(text.slice(after));
    let arg: string;
    if (next) {
      const open = after + next[0].length - 1;
      arg = text.slice(open, closing(text, open));
    } else {
      const end = text.slice(0, m.index).trimEnd().length;
      arg = text.slice(opening(text, end), end);
    }
    const grouped = labelList(m[1]!);
    for (const metric of metricsIn(arg.replace(/\{[^}]*\}/g, '{}').replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '$1 ()'))) {
      found.push({ metric, labels: grouped });
    }
  }
  return { uses: found, unknownFunctions };
}

/** What is wrong with an expression's metric and label names (empty when nothing). */
function problems(expr: string): string[] {
  const { uses: found, unknownFunctions } = uses(expr);
  const out = unknownFunctions.map((f) => `unknown function ${f}()`);
  if (found.length === 0) out.push('reads no metric');
  for (const u of found) {
    const labels = SERIES.get(u.metric);
    if (!labels) {
      out.push(`no metric ${u.metric}`);
      continue;
    }
    for (const l of u.labels) if (!labels.has(l)) out.push(`${u.metric} has no label ${l}`);
  }
  return [...new Set(out)];
}

/** Grafana's `label_values(selector, label)` variable query. */
function variableProblems(query: string): string[] {
  const m = /^label_values\((.*),\s*(\w+)\)$/.exec(query);
  if (!m) return [`not a label_values() query: ${query}`];
  const selector = m[1]!;
  const metric = /^[a-zA-Z_:][\w:]*/.exec(selector)?.[0] ?? '';
  return [...problems(selector), ...(SERIES.get(metric)?.has(m[2]!) ? [] : [`${metric} has no label ${m[2]}`])];
}

const dashboard = JSON.parse(read('deploy/monitoring/airlock-dashboard.json')) as Doc;
const panelsOf = (panels: Doc[]): Doc[] => panels.flatMap((p) => [p, ...panelsOf(p.panels ?? [])]);
const panels = panelsOf(dashboard.panels as Doc[]);
const queries = panels.flatMap((p) => ((p.targets ?? []) as Doc[]).map((t) => ({ panel: p.title as string, expr: t.expr as string })));

const rulesFile = parse(read('deploy/monitoring/alerts.yaml')) as Doc;
const alerts = (rulesFile.groups as Doc[]).flatMap((g) => g.rules as Doc[]);

describe('the query checker', () => {
  it('finds the metrics and labels of selectors, functions and both forms of by()', () => {
    assert.deepEqual(problems('sum by (le, state) (rate(airlock_approval_decision_seconds_bucket{job=~"$job"}[$__rate_interval]))'), []);
    assert.deepEqual(problems('sum(rate(airlock_decisions_total{mode="enforce"}[5m])) by (rule) / ignoring(rule) group_left sum(rate(airlock_decisions_total[5m]))'), []);
    assert.deepEqual(problems('time() - airlock_policy_last_reload_success_timestamp_seconds > 0.5'), []);
  });

  it('reports unknown metrics, labels and functions', () => {
    assert.deepEqual(problems('rate(airlock_decision_total[5m])'), ['no metric airlock_decision_total']);
    assert.deepEqual(problems('airlock_decisions_total{rules="x"}'), ['airlock_decisions_total has no label rules']);
    assert.deepEqual(problems('sum by (state) (rate(airlock_decisions_total[5m]))'), ['airlock_decisions_total has no label state']);
    assert.deepEqual(problems('sum(rate(airlock_tunnels_total[5m])) by (action)'), ['airlock_tunnels_total has no label action']);
    assert.deepEqual(problems('airlock_request_duration_seconds{action="allow"}'), ['no metric airlock_request_duration_seconds']);
    assert.deepEqual(problems('airlock_request_duration_seconds_count{le="1"}'), ['airlock_request_duration_seconds_count has no label le']);
    assert.deepEqual(problems('ratez(airlock_tunnels_total[5m])'), ['unknown function ratez()']);
  });
});

describe('deploy/monitoring/airlock-dashboard.json', () => {
  it('is a dashboard with unique panel ids, each placed on the grid, each query on the chosen data source', () => {
    assert.equal(typeof dashboard.title, 'string');
    assert.equal(typeof dashboard.uid, 'string');
    const ids = panels.map((p) => p.id as number);
    assert.ok(ids.every((id) => Number.isInteger(id)));
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    for (const p of panels) {
      assert.ok(p.gridPos && [p.gridPos.x, p.gridPos.y, p.gridPos.w, p.gridPos.h].every(Number.isInteger), `${p.title}: gridPos`);
      assert.ok(p.gridPos.x + p.gridPos.w <= 24, `${p.title}: within the 24 columns`);
      if (p.type === 'row') continue;
      assert.ok((p.targets as Doc[]).length > 0, `${p.title}: has queries`);
      for (const t of [p, ...(p.targets as Doc[])]) assert.equal(t.datasource?.uid, '${datasource}', `${p.title}: uses the dashboard's data source variable`);
    }
    const variable = (dashboard.templating.list as Doc[]).find((v) => v.name === 'datasource');
    assert.deepEqual([variable?.type, variable?.query], ['datasource', 'prometheus']);
  });

  it('queries only metrics Airlock exports, by labels they have', () => {
    assert.ok(queries.length > 20);
    const variables = (dashboard.templating.list as Doc[]).filter((v) => v.type === 'query');
    assert.deepEqual(
      [
        ...queries.flatMap((q) => problems(q.expr).map((p) => `${q.panel}: ${p}`)),
        ...variables.flatMap((v) => variableProblems(v.query.query as string).map((p) => `variable ${v.name}: ${p}`)),
      ],
      [],
    );
  });

  it('shows decisions, latency, approvals, channels, the policy, the store, tunnels and errors', () => {
    const shown = new Set(queries.flatMap((q) => uses(q.expr).uses.map((u) => u.metric)));
    for (const m of [
      'airlock_decisions_total',
      'airlock_request_duration_seconds_bucket',
      'airlock_approvals_held',
      'airlock_approvals_requested_total',
      'airlock_approval_outcomes_total',
      'airlock_approval_decision_seconds_bucket',
      'airlock_channel_up',
      'airlock_policy_info',
      'airlock_policy_reloads_total',
      'airlock_approval_store_up',
      'airlock_tunnels_total',
      'airlock_proxy_errors_total',
      'airlock_audit_errors_total',
      'airlock_unhandled_rejections_total',
      'airlock_approvals_forged_total',
    ]) {
      assert.ok(shown.has(m), `no panel shows ${m}`);
    }
  });
});

describe('deploy/monitoring/alerts.yaml', () => {
  it('is a Prometheus rules file whose every alert has expr, for, a severity and a summary', () => {
    assert.ok(alerts.length > 0);
    const names = alerts.map((a) => a.alert as string);
    assert.equal(new Set(names).size, names.length, 'alert names are unique');
    for (const a of alerts) {
      assert.equal(typeof a.alert, 'string', 'only alerting rules here');
      assert.equal(typeof a.expr, 'string', `${a.alert}: expr`);
      assert.match(String(a.for), /^\d+[smhdwy]$/, `${a.alert}: for`);
      assert.ok(['critical', 'warning', 'info'].includes(a.labels?.severity as string), `${a.alert}: labels.severity`);
      assert.ok(typeof a.annotations?.summary === 'string' && a.annotations.summary.length > 0, `${a.alert}: annotations.summary`);
    }
  });

  it('reads only metrics Airlock exports, by labels they have', () => {
    assert.deepEqual(alerts.flatMap((a) => problems(a.expr as string).map((p) => `${a.alert}: ${p}`)), []);
  });

  it('alerts on audit gaps, forged approvals, the store, the policy, the channels, expiries, unhandled failures, lag and proxy credentials', () => {
    const watched = new Set(alerts.flatMap((a) => uses(a.expr as string).uses.map((u) => u.metric)));
    for (const m of [
      'airlock_audit_errors_total',
      'airlock_approvals_forged_total',
      'airlock_approval_store_up',
      'airlock_policy_loaded_ok',
      'airlock_channel_up',
      'airlock_approval_outcomes_total',
      'airlock_unhandled_rejections_total',
      'airlock_nodejs_eventloop_lag_p99_seconds',
      'airlock_proxy_errors_total',
    ]) {
      assert.ok(watched.has(m), `no alert on ${m}`);
    }
    assert.ok(alerts.some((a) => /airlock_approval_outcomes_total\{[^}]*state="expired"/.test(a.expr as string)), 'an alert on expired approvals');
  });

  it('deploy/kubernetes/components/prometheusrule holds the same rules for the Prometheus Operator', () => {
    const rule = parse(read('deploy/kubernetes/components/prometheusrule/prometheusrule.yaml')) as Doc;
    assert.deepEqual([rule.apiVersion, rule.kind], ['monitoring.coreos.com/v1', 'PrometheusRule']);
    assert.deepEqual(rule.spec.groups, rulesFile.groups);
    const component = parse(read('deploy/kubernetes/components/prometheusrule/kustomization.yaml')) as Doc;
    assert.deepEqual([component.kind, component.resources], ['Component', ['prometheusrule.yaml']]);
  });
});
