/**
 * The detectors that are a pattern and a check: payment card numbers (Luhn and issuer checked by
 * `validator`), IBANs (mod-97 by `ibantools`), US social security numbers, email addresses
 * (`validator`), phone numbers in international form (`libphonenumber-js`), and JSON Web Tokens.
 * Each finds candidates with a cheap pattern and only then validates them, so a 16-digit number that
 * fails Luhn is not a card. Synchronous; the secret rules are in detect.ts.
 */
import { isValidIBAN } from 'ibantools';
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import validator from 'validator';

import type { DetectorId } from './detector-ids.js';

export interface Match {
  /** Where the match starts in the scanned text. */
  readonly offset: number;
  readonly length: number;
  /** What kind of secret (`GITHUB_TOKEN`, `JWT`, …). */
  readonly kind?: string;
}

const digitsOnly = (s: string): string => s.replace(/[ -]/g, '');

/** Matches of `candidates` (a global pattern) that `valid` accepts. */
function* validated(text: string, candidates: RegExp, valid: (m: string) => boolean): Generator<Match> {
  const re = new RegExp(candidates.source, candidates.flags);
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (valid(m[0])) yield { offset: m.index, length: m[0].length };
  }
}

const LOCAL_PART = /[A-Za-z0-9._%+-]/;
const DOMAIN = /[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}/y;

/** Emails are found from their `@` (a pattern starting anywhere would retry at every letter). */
function* emails(text: string): Generator<Match> {
  for (let at = text.indexOf('@'); at !== -1; at = text.indexOf('@', at + 1)) {
    let start = at;
    while (start > 0 && at - start < 64 && LOCAL_PART.test(text[start - 1]!)) start--;
    if (start === at) continue;
    DOMAIN.lastIndex = at + 1;
    if (DOMAIN.exec(text) && validator.isEmail(text.slice(start, DOMAIN.lastIndex))) yield { offset: start, length: DOMAIN.lastIndex - start };
  }
}

function isJwt(token: string): boolean {
  try {
    const header: unknown = JSON.parse(Buffer.from(token.slice(0, token.indexOf('.')), 'base64url').toString('utf8'));
    return typeof header === 'object' && header !== null && typeof (header as { alg?: unknown }).alg === 'string';
  } catch {
    return false;
  }
}

/** JSON Web Tokens: three base64url parts, the first a JSON header naming its algorithm. */
export function* jwts(text: string): Generator<Match> {
  for (const m of validated(text, /\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g, isJwt)) yield { ...m, kind: 'JWT' };
}

export const PATTERN_DETECTORS: Readonly<Record<Exclude<DetectorId, 'secret'>, (text: string) => Iterable<Match>>> = {
  // 13 to 19 digits, optionally grouped by single spaces or dashes.
  'payment-card': (t) => validated(t, /(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])/g, (m) => validator.isCreditCard(digitsOnly(m))),
  'iban': (t) => validated(t, /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b/g, (m) => isValidIBAN(m.replace(/ /g, ''))),
  // Written with dashes (nine bare digits are too common to mean anything); no 000, 666 or 9xx area,
  // no 00 group, no 0000 serial.
  'us-ssn': (t) => validated(t, /(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])/g, () => true),
  'email': emails,
  // International form only (a + and a country code): a bare digit run has no country to check against.
  'phone': (t) => validated(t, /\+\d[\d ().-]{6,20}\d/g, (m) => parsePhoneNumberFromString(m)?.isValid() === true),
};
