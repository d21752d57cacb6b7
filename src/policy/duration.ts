/**
 * Durations as written in policy files and flags: whole numbers with units, largest first, each unit
 * at most once (500ms, 30s, 2m, 1m30s, 1h, 1h30m, 1d); never zero.
 */

/** At least one part, not all zero; `m` not followed by `s` (that is `ms`). Numbers of at most 9 digits. */
export const DURATION_PATTERN = /^(?=\d)(?!(?:0+(?:ms|[dhms]))+$)(?:\d{1,9}d)?(?:\d{1,9}h)?(?:\d{1,9}m(?!s))?(?:\d{1,9}s)?(?:\d{1,9}ms)?$/;

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds, or null when `value` is not a positive duration. */
export function parseDuration(value: string): number | null {
  if (!DURATION_PATTERN.test(value)) return null;
  let ms = 0;
  for (const [, n, unit] of value.matchAll(/(\d+)(ms|s|m|h|d)/g)) ms += Number(n) * UNIT_MS[unit!]!;
  return ms > 0 ? ms : null;
}

/** The shortest exact spelling of a duration in milliseconds, for messages (120000 → "2m", 90000 → "1m30s"). */
export function formatDuration(ms: number): string {
  let rest = ms;
  let out = '';
  for (const [unit, factor] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000], ['ms', 1]] as const) {
    const n = Math.floor(rest / factor);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * factor;
  }
  return out === '' ? '0ms' : out;
}
