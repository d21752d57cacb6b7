/**
 * Running the detectors a policy names over what a request sends (see scan-text.ts): the pattern
 * detectors of patterns.ts, and secrets — the `@secretlint/secretlint-rule-preset-recommend` rule set
 * (cloud keys, GitHub, Slack, Stripe, OpenAI and other tokens, private keys, credentials in URLs) and
 * JSON Web Tokens. Only the pieces of text that hold one of the rule set's keywords are handed to its
 * rules. A finding
 * says which detector, how many, and where; never the value.
 */
import { lintSource } from '@secretlint/core';
import { rules as secretRules } from '@secretlint/secretlint-rule-preset-recommend';

import { DETECTORS, type DetectorId } from './detector-ids.js';
import type { Finding } from './finding.js';
import { jwts, PATTERN_DETECTORS, type Match } from './patterns.js';
import { pieceAt, placeOf, type ScanText } from './scan-text.js';
import { SECRET_KEYWORDS } from './secret-keywords.js';

const MAX_PLACES = 5;

const KEYWORDS = new RegExp([...new Set(Object.values(SECRET_KEYWORDS).flat())].map((k) => k.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'gi');

/** The pieces of `scan` that hold a keyword of the secret rules: their text, and where each came from. */
function keywordPieces(scan: ScanText): { text: string; starts: number[]; from: number[] } {
  const parts: string[] = [];
  const starts: number[] = [];
  const from: number[] = [];
  let length = 0;
  const re = new RegExp(KEYWORDS.source, KEYWORDS.flags);
  for (let m = re.exec(scan.text); m !== null; m = re.exec(scan.text)) {
    const piece = pieceAt(scan, m.index);
    const start = scan.starts[piece]!;
    const end = piece + 1 < scan.starts.length ? scan.starts[piece + 1]! - 1 : scan.text.length;
    parts.push(scan.text.slice(start, end));
    starts.push(length);
    from.push(start);
    length += end - start + 1;
    re.lastIndex = end;
  }
  return { text: parts.join('\n'), starts, from };
}

/** Rule options: AWS access key ids are reported on their own, not only beside a secret key. */
const SECRET_RULE_OPTIONS: Record<string, object> = { '@secretlint/secretlint-rule-aws': { enableIDScanRule: true } };

/**
 * The preset's rules, each registered on its own (a preset's `disabled` is not honoured for its
 * rules), without the comment filter: `secretlint-disable` in a body is the sender's to write, and
 * must not hide a finding.
 */
const SECRET_CONFIG = {
  rules: secretRules
    .filter((rule) => rule.meta.id !== '@secretlint/secretlint-rule-filter-comments')
    .map((rule) => ({ id: rule.meta.id, rule, options: SECRET_RULE_OPTIONS[rule.meta.id] ?? {} })),
};

async function secrets(scan: ScanText): Promise<Match[]> {
  const found: Match[] = [...jwts(scan.text)];
  const candidates = keywordPieces(scan);
  if (candidates.text === '') return found;
  // A file path without an extension: no rule looks for a file on disk.
  const result = await lintSource({ source: { filePath: 'request', content: candidates.text, contentType: 'text' }, options: { config: SECRET_CONFIG, maskSecrets: true } });
  for (const m of result.messages) {
    const i = Math.max(0, candidates.starts.findLastIndex((s) => s <= m.range[0]));
    found.push({ offset: candidates.from[i]! + m.range[0] - candidates.starts[i]!, length: m.range[1] - m.range[0], kind: m.messageId ?? m.ruleId });
  }
  return found.sort((a, b) => a.offset - b.offset);
}

function finding(detector: DetectorId, matches: Iterable<Match>, scan: ScanText): Finding | null {
  let count = 0;
  const where = new Set<string>();
  const kinds = new Set<string>();
  for (const m of matches) {
    count++;
    if (where.size < MAX_PLACES) where.add(placeOf(scan, m.offset));
    if (m.kind !== undefined) kinds.add(m.kind);
  }
  if (count === 0) return null;
  return { detector, count, where: [...where], ...(kinds.size > 0 ? { kinds: [...kinds] } : {}) };
}

/** Run the `wanted` detectors over `scan`. */
export async function detect(scan: ScanText, wanted: { has(id: DetectorId): boolean }): Promise<Finding[]> {
  const found: Finding[] = [];
  for (const id of DETECTORS) {
    if (!wanted.has(id)) continue;
    const f = finding(id, id === 'secret' ? await secrets(scan) : PATTERN_DETECTORS[id](scan.text), scan);
    if (f) found.push(f);
  }
  return found;
}
