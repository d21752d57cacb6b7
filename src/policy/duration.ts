/** Durations as written in policy files and flags: a positive whole number and a unit (500ms, 30s, 2m, 1h, 1d). */

export const DURATION_PATTERN = /^[1-9][0-9]{0,8}(?:ms|s|m|h|d)$/;

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds, or null when `value` is not a positive duration. */
export function parseDuration(value: string): number | null {
  if (!DURATION_PATTERN.test(value)) return null;
  const unit = /[a-z]+$/.exec(value)?.[0] ?? '';
  const factor = UNIT_MS[unit];
  return factor === undefined ? null : Number(value.slice(0, -unit.length)) * factor;
}

/** The shortest exact spelling of a duration in milliseconds, for messages (120000 → "2m"). */
export function formatDuration(ms: number): string {
  for (const [unit, factor] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000]] as const) {
    if (ms % factor === 0) return `${ms / factor}${unit}`;
  }
  return `${ms}ms`;
}
