import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { elideMiddle, visible, visibleElided } from '../../src/text/visible.js';

describe('visible', () => {
  it('escapes what a terminal or log viewer would interpret or hide', () => {
    assert.equal(visible('a\u001b[31mb\u0085c\u202ed\u200be\u2066f\n'), 'a\\u{1b}[31mb\\u{85}c\\u{202e}d\\u{200b}e\\u{2066}f\\n');
    assert.equal(visible('line\nnext\ttab', true), 'line\nnext\ttab');
    assert.equal(visible('café ✓ 日本'), 'café ✓ 日本');
  });
});

describe('elideMiddle', () => {
  it('keeps short text whole, and the start and end of long text with its length', () => {
    assert.equal(visibleElided('short', 10), 'short');
    const long = `/exports/${'a'.repeat(500)}/drop-all`;
    const shown = visibleElided(long, 80);
    assert.ok(shown.length <= 80, shown);
    assert.match(shown, /^\/exports\/a+…a*\/drop-all \(518 characters\)$/);
  });

  it('never splits an escape', () => {
    const shown = elideMiddle(Array.from({ length: 100 }, () => '\\u{202e}'), 60);
    assert.match(shown, /^(\\u\{202e\})+…(\\u\{202e\})+ \(100 characters\)$/);
  });
});
