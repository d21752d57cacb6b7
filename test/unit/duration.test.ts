import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDuration, parseDuration } from '../../src/policy/duration.js';

describe('durations', () => {
  it('reads single and compound durations, largest unit first', () => {
    const cases: [string, number][] = [
      ['500ms', 500],
      ['30s', 30_000],
      ['2m', 120_000],
      ['1m30s', 90_000],
      ['1h30m', 5_400_000],
      ['1d12h', 129_600_000],
      ['2m500ms', 120_500],
      ['0h5m', 300_000],
    ];
    for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
  });

  it('refuses what is not one: zero, units out of order or repeated, spaces, signs, fractions', () => {
    for (const text of ['0s', '0m0s', '', 'm', '30', '30s1m', '1m1m', '1m 30s', '-1s', '1.5s', '1ms1s', '1s2ms3ms', '1mss', '1M']) {
      assert.equal(parseDuration(text), null, text);
    }
  });

  it('writes the shortest exact spelling', () => {
    assert.equal(formatDuration(120_000), '2m');
    assert.equal(formatDuration(90_000), '1m30s');
    assert.equal(formatDuration(86_400_000 + 1), '1d1ms');
    for (const ms of [1, 999, 61_000, 3_723_004]) assert.equal(parseDuration(formatDuration(ms)), ms);
  });
});

describe('sizes', () => {
  it('reads bytes with decimal and binary units, up to GiB', async () => {
    const { parseSize } = await import('../../src/config.js');
    const cases: [string, number][] = [
      ['1048576', 1_048_576],
      ['512KiB', 524_288],
      ['2MB', 2_000_000],
      ['1MiB', 1_048_576],
      ['1GiB', 1_073_741_824],
      ['2gb', 2_000_000_000],
    ];
    for (const [text, bytes] of cases) assert.equal(parseSize(text, '--max-held-body'), bytes, text);
    assert.throws(() => parseSize('1TiB', '--max-held-body'), /--max-held-body: expected a size such as 1MiB, 512KiB, 1GiB or 1048576, got "1TiB"/);
  });
});
