/**
 * What approvers see of a held request's body (Slack message, approvals API): enough to decide, with
 * secrets taken out and the size bounded. Pure functions, no I/O.
 *
 * - JSON (a `*json*` content type, or a body that scans as JSON and starts with `{` or `[`): the value
 *   of every secret-looking key (see {@link isSecretKey}) becomes `"REDACTED"`, at any depth; strings
 *   are also run through {@link maskSecretsInText}. The output is the body's own tokens with the
 *   whitespace between them removed — not a re-serialization through `JSON.parse`, so numbers keep
 *   every digit and duplicate keys stay visible, exactly as the upstream will receive them.
 * - `application/x-www-form-urlencoded`: like a URL's query (`redactQuery`, the audit trail's rule).
 * - Other text: {@link maskSecretsInText}.
 * - Binary (not UTF-8, or containing NUL bytes): `<N bytes of binary data>`.
 *
 * Everywhere, payment card numbers, IBANs and US SSNs (as the detectors find them, validated) are
 * shown masked: `[card …1111]`, `[IBAN DE…3000]`, `[SSN]`. Emails and phone numbers stay: who a
 * request writes to is often what an approver decides on.
 *
 * Every preview is cut to `maxBytes` bytes of UTF-8 on a character boundary, after redaction, so a
 * secret is never half-shown.
 */
import { isUtf8 } from 'node:buffer';
import { redactQuery } from '../audit/redact.js';
import { PATTERN_DETECTORS } from '../inspect/patterns.js';

export const REDACTED = 'REDACTED';

export interface BodyPreview {
  /** The preview, at most `maxBytes` bytes of UTF-8. */
  text: string;
  /** Part of the body is not shown. */
  truncated: boolean;
  /** Something was replaced with `REDACTED`. */
  redacted: boolean;
}

/** Text bodies larger than this are masked on this prefix only (a preview shows far less). */
const TEXT_WINDOW = 1024 * 1024;

// ---------------------------------------------------------------------------------------------------
// Which names are secret

/** A word anywhere in the name makes it secret (`db_password`, `clientSecret`, `proxy-authorization`). */
const SECRET_WORDS = new Set([
  'password', 'passwd', 'pass', 'passphrase', 'pwd', 'secret', 'secrets', 'credential', 'credentials',
  'authorization', 'cookie', 'cookies', 'jwt', 'otp', 'totp', 'apikey', 'privatekey', 'signature',
]);
/** The last word makes it secret (`access_token`, `githubToken`, `basic_auth`); `token_count` is not. */
const SECRET_LAST_WORDS = new Set(['token', 'sig', 'auth']);
/** `…_key` is secret after one of these (`api_key`, `X-API-Key`, `signingKey`); `sort_key`, `public_key` are not. */
const SECRET_KEY_QUALIFIERS = new Set([
  'api', 'private', 'secret', 'access', 'signing', 'encryption', 'client', 'master', 'auth', 'session', 'app',
]);
/** Whole names, words joined (`session_id`, `sid`, `tokens`). */
const SECRET_JOINED = new Set(['session', 'sessionid', 'sid', 'tokens', 'xapikey', 'secretaccesskey']);

/** `accessToken`, `X-API-Key`, `db.password`, `APIKey` → lower-case words. */
function words(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => w !== '');
}

/**
 * Whether a field name (JSON key, `key=value` name, form field) looks like it holds a secret.
 *
 * The audit trail has two rules (src/audit/redact.ts): a substring rule for query parameters, which
 * redacts generously (`author`, `max_tokens`, `assignee` contain `auth`, `token`, `sig`), and an exact
 * list of field names. Neither is exported as a predicate, and neither fits a body an approver must
 * read, so this one works on the name's words: it covers every name of the audit's exact list
 * (`authorization`, `access-token`, `client_secret`, `x-api-key`, …) and their spellings in other
 * cases (`accessToken`, `X_API_KEY`), without hiding `max_tokens`, `author` or `sort_key`.
 */
export function isSecretKey(name: string): boolean {
  const w = words(name);
  const last = w[w.length - 1];
  if (last === undefined) return false;
  if (SECRET_JOINED.has(w.join(''))) return true;
  if (SECRET_LAST_WORDS.has(last)) return true;
  if (last === 'key' && w.length > 1 && SECRET_KEY_QUALIFIERS.has(w[w.length - 2] ?? '')) return true;
  return w.some((x) => SECRET_WORDS.has(x));
}

// ---------------------------------------------------------------------------------------------------
// Secrets in free text

/** Header lines whose whole value is a credential: `Authorization: Basic …`, `Cookie: a=1; b=2`. */
const HEADER_LINE = /^([ \t]*(?:proxy-)?authorization|[ \t]*(?:set-)?cookie|[ \t]*x-api-key)([ \t]*:[ \t]*)(\S[^\r\n]*)/gim;

/**
 * `name=value`, `name: value`, `"name": "value"` (YAML, .env, logs, JSON embedded in strings). The
 * value is quoted (up to the closing quote), or an optional auth scheme and one unquoted token.
 */
const KEY_VALUE =
  /(?<![\w.-])(["']?)([A-Za-z_][\w.-]{0,63})\1([ \t]*[:=][ \t]*)(?:"((?:[^"\\\r\n]|\\.)*)("?)|'([^'\r\n]*)('?)|((?:(?:Bearer|Basic|Digest|Token)[ \t]+)?[^\s&;,"'<>{}[\]]+))/g;

/** A multipart field named like a secret: its value is the first line after the part's headers. */
const MULTIPART_FIELD = /(name="([^"\r\n]*)"[^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*\r?\n)([^\r\n]+)/g;

/** Credentials recognisable by their shape, wherever they appear: [pattern, replacement]. */
const TOKEN_SHAPES: ReadonlyArray<readonly [RegExp, string]> = [
  // HTTP auth schemes: `Bearer <token>` (any case), `Basic <base64>`.
  [/\b([Bb][Ee][Aa][Rr][Ee][Rr]|Basic)([ \t]+)[A-Za-z0-9\-._~+/]{8,}=*/g, `$1$2${REDACTED}`],
  // PEM private keys (to the END line, or to the end of what there is).
  [/-----BEGIN ([A-Z ]*)PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g, `-----BEGIN $1PRIVATE KEY----- ${REDACTED} -----END $1PRIVATE KEY-----`],
  // Passwords in URLs: `scheme://user:password@host`.
  [/\b([a-z][a-z0-9+.-]*:\/\/[^\s:/?#@"'<>]*:)[^\s/?#@"'<>]+@/gi, `$1${REDACTED}@`],
  // AWS access key ids (long-term and temporary).
  [/\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g, REDACTED],
  // JSON Web Tokens.
  [/\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, REDACTED],
  // Slack, GitHub and `sk-…` style API keys (OpenAI, Anthropic, Stripe).
  [/\bxox[abposre]-[A-Za-z0-9-]{10,}/g, REDACTED],
  [/\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})/g, REDACTED],
  [/\b(?:sk|rk)[-_](?:live_|test_|ant-|proj-)?[A-Za-z0-9_-]{20,}/g, REDACTED],
];

/**
 * Replaces the values of secret-named pairs. A pair with a harmless name is not skipped whole: its
 * value is scanned again, so `url=https://h/?token=t` still loses `t`.
 */
function maskKeyValues(text: string, onRedact: () => void): string {
  let out = '';
  let last = 0;
  KEY_VALUE.lastIndex = 0;
  for (let m = KEY_VALUE.exec(text); m !== null; m = KEY_VALUE.exec(text)) {
    const [whole, q = '', name = '', sep = '', dq, dqEnd = '', sq, sqEnd = '', bare] = m;
    const value = dq ?? sq ?? bare ?? '';
    if (!isSecretKey(name) || value === '' || value === REDACTED) {
      KEY_VALUE.lastIndex = m.index + 2 * q.length + name.length + sep.length;
      continue;
    }
    onRedact();
    const head = `${q}${name}${q}${sep}`;
    const masked = dq !== undefined ? `"${REDACTED}${dqEnd}` : sq !== undefined ? `'${REDACTED}${sqEnd}` : REDACTED;
    out += text.slice(last, m.index) + head + masked;
    last = m.index + whole.length;
    KEY_VALUE.lastIndex = last;
  }
  return last === 0 ? text : out + text.slice(last);
}

const lastFour = (m: string): string => m.replace(/[^0-9A-Za-z]/g, '').slice(-4);

/** How each masked kind of personal data is shown. */
const PERSONAL_DATA = [
  [PATTERN_DETECTORS['payment-card'], (m: string) => `[card …${lastFour(m)}]`],
  [PATTERN_DETECTORS.iban, (m: string) => `[IBAN ${m.slice(0, 2)}…${lastFour(m)}]`],
  [PATTERN_DETECTORS['us-ssn'], () => '[SSN]'],
] as const;

/** Card numbers, IBANs and SSNs in `text` masked (see the module comment). */
export function maskPersonalData(text: string): { text: string; redacted: boolean } {
  let out = text;
  for (const [find, show] of PERSONAL_DATA) {
    const matches = [...find(out)];
    for (let i = matches.length - 1; i >= 0; i--) {
      const { offset, length } = matches[i]!;
      out = out.slice(0, offset) + show(out.slice(offset, offset + length)) + out.slice(offset + length);
    }
  }
  return { text: out, redacted: out !== text };
}

/**
 * Masks the obvious secrets in free text, modestly (a preview for a person, not a data-loss filter):
 * credential header lines (`Authorization:`, `Cookie:`, `X-Api-Key:`), `name=value` / `name: value` /
 * `"name": "value"` pairs and multipart fields whose name {@link isSecretKey}, `Bearer`/`Basic`
 * credentials, PEM private keys, passwords in URLs, AWS access key ids (`AKIA…`/`ASIA…`), JWTs, and
 * Slack (`xox?-`), GitHub (`ghp_`, `github_pat_`) and `sk-` style API keys; then {@link maskPersonalData}.
 */
export function maskSecretsInText(text: string): { text: string; redacted: boolean } {
  let redacted = false;
  let out = text.replace(HEADER_LINE, (_m, name: string, sep: string) => {
    redacted = true;
    return `${name}${sep}${REDACTED}`;
  });
  out = maskKeyValues(out, () => (redacted = true));
  out = out.replace(MULTIPART_FIELD, (m: string, head: string, name: string) => {
    if (!isSecretKey(name)) return m;
    redacted = true;
    return `${head}${REDACTED}`;
  });
  for (const [shape, replacement] of TOKEN_SHAPES) {
    const next = out.replace(shape, replacement);
    if (next !== out) {
      redacted = true;
      out = next;
    }
  }
  const personal = maskPersonalData(out);
  return { text: personal.text, redacted: redacted || personal.redacted };
}

// ---------------------------------------------------------------------------------------------------
// UTF-8

/** `s` cut to at most `maxBytes` bytes of UTF-8, never inside a character. */
export function truncateUtf8(s: string, maxBytes: number): { text: string; truncated: boolean } {
  const max = Math.max(0, Math.floor(maxBytes));
  // Every UTF-16 unit is at most 3 bytes of UTF-8: short strings need no encoding.
  if (s.length * 3 <= max) return { text: s, truncated: false };
  const buf = Buffer.from(s, 'utf8');
  if (buf.length <= max) return { text: s, truncated: false };
  let end = max;
  // Back off continuation bytes (10xxxxxx) to the start of the character that does not fit.
  while (end > 0 && ((buf[end] ?? 0) & 0xc0) === 0x80) end--;
  return { text: buf.subarray(0, end).toString('utf8'), truncated: true };
}

// ---------------------------------------------------------------------------------------------------
// JSON

// A JSON string: no raw control characters, only JSON's escapes.
// eslint-disable-next-line no-control-regex
const JSON_STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const JSON_NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const JSON_LITERAL = /true|false|null/y;
const JSON_SPACE = /[ \t\n\r]*/y;

type Expect = 'value' | 'key' | 'colon' | 'commaOrEnd';

function matchAt(re: RegExp, s: string, i: number): string | null {
  re.lastIndex = i;
  const m = re.exec(s);
  return m === null ? null : m[0];
}

/**
 * Scans `text` as JSON (several top-level values separated by whitespace are accepted: NDJSON) and
 * writes it compactly with secret values redacted, stopping once more than `maxBytes` bytes have been
 * written. Returns null when the text is not JSON as far as it was read — unless `partial` (the text
 * is a prefix of the body), where what scanned is kept. Iterative: nesting depth costs no stack.
 */
function redactJson(text: string, maxBytes: number, partial: boolean): BodyPreview | null {
  const s = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const out: string[] = [];
  let outBytes = 0;
  let redacted = false;
  const stack: Array<'{' | '['> = [];
  let expect: Expect = 'value';
  /** The next value belongs to a secret key. */
  let secretValue = false;
  /** Stack depth outside a redacted container: nothing is written until the stack is back to it. */
  let hiddenAt: number | null = null;
  let values = 0;
  let i = 0;

  const emit = (piece: string): void => {
    if (hiddenAt !== null) return;
    out.push(piece);
    outBytes += Buffer.byteLength(piece);
  };
  const hide = (): void => {
    emit(`"${REDACTED}"`);
    redacted = true;
  };
  /** What follows a complete value. */
  const afterValue = (): Expect => {
    if (stack.length > 0) return 'commaOrEnd';
    values++;
    return 'value';
  };
  const stringValue = (raw: string): string => {
    const decoded = raw.includes('\\') ? (JSON.parse(raw) as string) : raw.slice(1, -1);
    const masked = maskSecretsInText(decoded);
    if (!masked.redacted) return raw;
    redacted = true;
    return JSON.stringify(masked.text);
  };
  /** A card number written as a JSON number is masked like one in a string. */
  const numberValue = (raw: string): string => {
    const masked = maskPersonalData(raw);
    if (!masked.redacted) return raw;
    redacted = true;
    return JSON.stringify(masked.text);
  };
  const finish = (complete: boolean): BodyPreview => {
    const cut = truncateUtf8(out.join(''), maxBytes);
    return { text: cut.text, truncated: !complete || cut.truncated, redacted };
  };
  const fail = (): BodyPreview | null => (partial && values + stack.length > 0 ? finish(false) : null);

  while (outBytes <= maxBytes) {
    i += matchAt(JSON_SPACE, s, i)?.length ?? 0;
    if (i >= s.length) break;
    const c = s[i] as string;

    if (expect === 'colon') {
      if (c !== ':') return fail();
      emit(':');
      i++;
      expect = 'value';
    } else if (expect === 'commaOrEnd') {
      const top = stack[stack.length - 1];
      if (c === (top === '{' ? '}' : ']')) {
        stack.pop();
        if (hiddenAt !== null && stack.length === hiddenAt) hiddenAt = null;
        else emit(c);
        i++;
        expect = afterValue();
      } else if (c === ',') {
        emit(',');
        i++;
        expect = top === '{' ? 'key' : 'value';
      } else {
        return fail();
      }
    } else if (expect === 'key') {
      const raw = matchAt(JSON_STRING, s, i);
      if (raw === null) return fail();
      i += raw.length;
      emit(raw);
      secretValue = hiddenAt === null && isSecretKey(JSON.parse(raw) as string);
      expect = 'colon';
    } else {
      // A value.
      if (stack.length === 0 && values > 0) emit('\n');
      const secret = secretValue;
      secretValue = false;
      if (c === '{' || c === '[') {
        const close = c === '{' ? '}' : ']';
        i++;
        i += matchAt(JSON_SPACE, s, i)?.length ?? 0;
        if (s[i] === close) {
          // Empty: hides nothing.
          i++;
          emit(c + close);
          expect = afterValue();
          continue;
        }
        if (secret && hiddenAt === null) {
          hide();
          hiddenAt = stack.length;
        } else {
          emit(c);
        }
        stack.push(c);
        expect = c === '{' ? 'key' : 'value';
      } else if (c === '"') {
        const raw = matchAt(JSON_STRING, s, i);
        if (raw === null) return fail();
        i += raw.length;
        if (secret && raw !== '""') hide();
        else if (hiddenAt === null) emit(stringValue(raw));
        expect = afterValue();
      } else {
        const raw = matchAt(JSON_NUMBER, s, i) || matchAt(JSON_LITERAL, s, i);
        if (!raw) return fail();
        i += raw.length;
        // Numbers and booleans under a secret name go too (a PIN is a number); null hides nothing.
        if (secret && raw !== 'null') hide();
        else emit(numberValue(raw));
        expect = afterValue();
      }
    }
  }

  if (outBytes > maxBytes) return finish(false);
  // Read to the end: complete JSON has at least one value and nothing left open.
  if (stack.length > 0 || values === 0) return partial && values + stack.length > 0 ? finish(false) : null;
  return finish(!partial);
}

// ---------------------------------------------------------------------------------------------------

function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';', 1)[0]!.trim().toLowerCase();
}

/**
 * What approvers see of a held body: secrets redacted, at most `maxBytes` bytes of UTF-8 (see the
 * module comment for the rules per content type). An empty body gives an empty text.
 */
export function bodyPreview(body: Buffer, contentType: string | undefined, maxBytes = 512): BodyPreview {
  if (body.length === 0) return { text: '', truncated: false, redacted: false };
  if (body.includes(0) || !isUtf8(body)) return { text: `<${body.length} bytes of binary data>`, truncated: false, redacted: false };

  const type = mediaType(contentType);
  const windowed = body.length > TEXT_WINDOW;
  const text = (windowed ? body.subarray(0, TEXT_WINDOW) : body).toString('utf8');

  if (type === 'application/x-www-form-urlencoded') {
    const query = redactQuery(text);
    const masked = maskSecretsInText(query);
    const cut = truncateUtf8(masked.text, maxBytes);
    return { text: cut.text, truncated: windowed || cut.truncated, redacted: query !== text || masked.redacted };
  }

  const first = text.trimStart()[0];
  if (type.includes('json') || first === '{' || first === '[') {
    const json = redactJson(text, maxBytes, windowed);
    if (json !== null) return json;
  }

  const masked = maskSecretsInText(text);
  const cut = truncateUtf8(masked.text, maxBytes);
  return { text: cut.text, truncated: windowed || cut.truncated, redacted: masked.redacted };
}
