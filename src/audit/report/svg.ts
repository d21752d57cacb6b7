/**
 * The report's plots as hand-written SVG: no dependency, no script, and the same file works inline in
 * the HTML report and next to the Markdown one.
 */
import { ACTIONS, type Action, type Report } from './aggregate.js';
import { visible } from '../../text/visible.js';

/** Text for XML and HTML, in element content and quoted attributes alike; invisible characters shown. */
export function escapeXml(text: string): string {
  return visible(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export const COLORS: Readonly<Record<Action, string>> = { allow: '#2e7d32', approve: '#f9a825', deny: '#c62828', refused: '#757575' };
const WIDTH = 760;
const HEIGHT = 260;
const LEFT = 48;
const RIGHT = 16;
const TOP = 30;
const BOTTOM = 46;

/** 1, 2 or 5 times a power of ten, at least `max`: the y axis ends on a round number. */
function niceMax(max: number): number {
  if (max <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const f of [1, 2, 5, 10]) if (f * power >= max) return f * power;
  return 10 * power;
}

const fmt = (x: number): string => (Number.isInteger(x) ? String(x) : x.toFixed(1));

function frame(title: string, body: string): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img" font-family="sans-serif" font-size="11">` +
    `<title>${escapeXml(title)}</title><rect width="${WIDTH}" height="${HEIGHT}" fill="#fff"/>${body}</svg>\n`
  );
}

function axis(max: number): string {
  const plotH = HEIGHT - TOP - BOTTOM;
  let out = '';
  // A count has no half: the middle line only when it falls on a whole number.
  for (const f of max % 2 === 0 ? [0, 0.5, 1] : [0, 1]) {
    const y = TOP + plotH - f * plotH;
    out += `<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${fmt(y)}" y2="${fmt(y)}" stroke="#ddd"/>`;
    out += `<text x="${LEFT - 6}" y="${fmt(y + 4)}" text-anchor="end">${escapeXml(fmt(max * f))}</text>`;
  }
  return out;
}

function legend(items: readonly { label: string; color: string }[]): string {
  let x = LEFT;
  let out = '';
  for (const item of items) {
    out += `<rect x="${x}" y="8" width="10" height="10" fill="${item.color}"/><text x="${x + 14}" y="17">${escapeXml(item.label)}</text>`;
    x += 24 + item.label.length * 7;
  }
  return out;
}

function bucketLabel(start: string, size: 'hour' | 'day' | 'week'): string {
  return size === 'hour' ? `${start.slice(5, 10)} ${start.slice(11, 16)}` : start.slice(0, 10);
}

/** Decisions per hour, day or week, stacked by action. */
export function decisionsChart(over: Report['decisions_over_time']): string {
  const title = `Decisions per ${over.bucket} (UTC)`;
  const buckets = over.buckets;
  if (buckets.length === 0) return frame(title, `<text x="${WIDTH / 2}" y="${HEIGHT / 2}" text-anchor="middle">No decisions in this period</text>`);
  const plotW = WIDTH - LEFT - RIGHT;
  const plotH = HEIGHT - TOP - BOTTOM;
  const max = niceMax(Math.max(...buckets.map((b) => ACTIONS.reduce((sum, a) => sum + b[a], 0))));
  const step = plotW / buckets.length;
  const bar = Math.max(1, step * 0.8);
  let body = legend(ACTIONS.map((a) => ({ label: a, color: COLORS[a] }))) + axis(max);
  buckets.forEach((b, i) => {
    let y = TOP + plotH;
    const x = LEFT + i * step + (step - bar) / 2;
    for (const a of ACTIONS) {
      if (b[a] === 0) continue;
      const h = (b[a] / max) * plotH;
      y -= h;
      body += `<rect x="${fmt(x)}" y="${fmt(y)}" width="${fmt(bar)}" height="${fmt(h)}" fill="${COLORS[a]}"><title>${escapeXml(`${bucketLabel(b.start, over.bucket)}: ${b[a]} ${a}`)}</title></rect>`;
    }
  });
  // At most about eight labels, evenly spread, always the first.
  const every = Math.max(1, Math.ceil(buckets.length / 8));
  buckets.forEach((b, i) => {
    if (i % every !== 0) return;
    const x = LEFT + i * step + step / 2;
    body += `<text x="${fmt(x)}" y="${HEIGHT - BOTTOM + 16}" text-anchor="middle">${escapeXml(bucketLabel(b.start, over.bucket))}</text>`;
  });
  body += `<text x="${LEFT}" y="${HEIGHT - 8}">${escapeXml(title)}</text>`;
  return frame(title, body);
}

/** How long approvers took, in fixed bins, approved and denied stacked. */
export function timeToDecideChart(ttd: Report['time_to_decide']): string {
  const title = 'Time to decide (approvals approved or denied in the period)';
  if (ttd.count === 0) return frame(title, `<text x="${WIDTH / 2}" y="${HEIGHT / 2}" text-anchor="middle">No approval decided in this period</text>`);
  const plotW = WIDTH - LEFT - RIGHT;
  const plotH = HEIGHT - TOP - BOTTOM;
  const max = niceMax(Math.max(...ttd.histogram.map((b) => b.approved + b.denied)));
  const step = plotW / ttd.histogram.length;
  const bar = step * 0.7;
  let body = legend([{ label: 'approved', color: COLORS.allow }, { label: 'denied', color: COLORS.deny }]) + axis(max);
  ttd.histogram.forEach((b, i) => {
    const x = LEFT + i * step + (step - bar) / 2;
    let y = TOP + plotH;
    for (const [count, color, what] of [[b.approved, COLORS.allow, 'approved'], [b.denied, COLORS.deny, 'denied']] as const) {
      if (count === 0) continue;
      const h = (count / max) * plotH;
      y -= h;
      body += `<rect x="${fmt(x)}" y="${fmt(y)}" width="${fmt(bar)}" height="${fmt(h)}" fill="${color}"><title>${escapeXml(`${b.label}: ${count} ${what}`)}</title></rect>`;
    }
    const total = b.approved + b.denied;
    if (total > 0) body += `<text x="${fmt(x + bar / 2)}" y="${fmt(y - 4)}" text-anchor="middle">${total}</text>`;
    body += `<text x="${fmt(x + bar / 2)}" y="${HEIGHT - BOTTOM + 16}" text-anchor="middle">${escapeXml(b.label)}</text>`;
  });
  body += `<text x="${LEFT}" y="${HEIGHT - 8}">${escapeXml(title)}</text>`;
  return frame(title, body);
}
