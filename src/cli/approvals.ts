/**
 * `airlock approvals list|show|approve|deny|token`: the command-line client of the approvals API on the
 * admin listener (docs/approvals.md). Every call carries the approver's bearer token; the server decides
 * who may see and decide what. Errors from the API are printed as `airlock: <message>` with exit code 1.
 *
 * Everything printed that came from an agent (URL, reason, body preview, identity) is passed through
 * `printable()` first, so a request cannot move the cursor, clear the screen or reorder text with
 * terminal escapes or bidi controls in front of the person deciding on it.
 */
import { randomBytes } from 'node:crypto';
import { link, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { request } from 'undici';
import type { ApprovalView } from '../approvals/view.js';
import { describeFinding } from '../inspect/finding.js';
import { visible, visibleElided } from '../text/visible.js';
import { hashToken } from '../request/identify.js';

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:9090';
const STATES = ['pending', 'approved', 'denied', 'expired', 'cancelled', 'executed'] as const;
const TIMEOUT_MS = 30_000;

/** Where the commands write; tests may pass their own. */
export interface ApprovalsCliIo {
  out(text: string): void;
  err(text: string): void;
}

const processIo: ApprovalsCliIo = {
  out: (text) => void process.stdout.write(`${text}\n`),
  err: (text) => void process.stderr.write(`${text}\n`),
};

/** The approval as the admin API shows it. */

interface GrantView {
  id: string;
  identity: string | null;
  rule: string;
  action: string;
  pins: { field: string; value: unknown }[];
  by: string;
  expires_at: string;
  uses: number;
  uses_left: number;
}

function formatGrant(g: GrantView): string {
  const pins = g.pins.length === 0 ? '' : ` where ${g.pins.map((p) => `${printable(p.field)} = ${printable(JSON.stringify(p.value))}`).join(', ')}`;
  return `${printable(g.id)}  ${g.identity === null ? '(anonymous)' : printable(g.identity)} may ${printable(g.action)} (rule ${printable(g.rule)})${pins}: ${g.uses_left} of ${g.uses} uses left, until ${printable(g.expires_at)}, granted by ${printable(g.by)}`;
}

interface EditOptions {
  patch?: string;
  query: string[];
  removeQuery: string[];
  header: string[];
  removeHeader: string[];
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function pairs(list: readonly string[], remove: readonly string[], flag: string): Record<string, string | null> | undefined {
  if (list.length === 0 && remove.length === 0) return undefined;
  const out: Record<string, string | null> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new CliError(`${flag} takes name=value, got "${item}"`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  for (const name of remove) out[name] = null;
  return out;
}

/** The `edit` of an approval from the command line's flags, or null when none was given. */
function editOf(opts: EditOptions): Record<string, unknown> | null {
  const edit: Record<string, unknown> = {};
  if (opts.patch !== undefined) {
    try {
      edit.body = JSON.parse(opts.patch);
    } catch (err) {
      throw new CliError(`--patch is not JSON: ${(err as Error).message}`);
    }
  }
  const query = pairs(opts.query, opts.removeQuery, '--query');
  const headers = pairs(opts.header, opts.removeHeader, '--header');
  if (query) edit.query = query;
  if (headers) edit.headers = headers;
  return Object.keys(edit).length === 0 ? null : edit;
}

interface CommonOptions {
  admin: string;
  token?: string;
  json?: boolean;
}

/** A failure already worded for the user; printed as `airlock: <message>`. */
class CliError extends Error {}

export function registerApprovalCommands(program: Command, io: ApprovalsCliIo = processIo): void {
  const approvals = program
    .command('approvals')
    .description('list, inspect, approve and deny held requests through the admin API (approver token needed)');

  common(approvals.command('list'))
    .description('held requests, newest first')
    .addOption(new Option('--state <state>', 'only approvals in this state').choices(STATES))
    .option('--limit <n>', 'at most this many (the server defaults to 100 and caps it at 500)', positiveInt)
    .action(async (opts: CommonOptions & { state?: string; limit?: number }) => {
      await runCommand(io, async () => {
        const query = new URLSearchParams();
        if (opts.state !== undefined) query.set('state', opts.state);
        if (opts.limit !== undefined) query.set('limit', String(opts.limit));
        const qs = query.size > 0 ? `?${query.toString()}` : '';
        const body = await call(opts, io, 'GET', `/v1/approvals${qs}`);
        if (opts.json) return io.out(body.text);
        const list = (body.json as { approvals?: ApprovalView[] }).approvals;
        if (!Array.isArray(list)) throw new CliError(`unexpected answer from the admin API: ${clip(body.text, 200)}`);
        io.out(formatList(list, Date.now()));
      });
    });

  common(approvals.command('show'))
    .description('everything about one approval: the request, who asked, votes, decision')
    .argument('<id>', 'approval id (from `airlock approvals list` or the agent\'s 202 answer)')
    .action(async (id: string, opts: CommonOptions) => {
      await runCommand(io, async () => {
        const body = await call(opts, io, 'GET', approvalPath(id));
        if (opts.json) return io.out(body.text);
        io.out(formatShow(viewOf(body), Date.now()));
      });
    });

  common(approvals.command('approve'))
    .description('add your approval; the request is forwarded once enough approvers agreed. With --patch, --query or --header, approve an edited request instead')
    .argument('<id>', 'approval id')
    .option('--reason <text>', 'why (kept in the audit trail)')
    .option('--patch <json>', 'a JSON Patch (RFC 6902) of the JSON body, e.g. \'[{"op":"replace","path":"/rows","value":1000}]\'')
    .option('--query <name=value>', 'set a query parameter ("name=" with --remove-query to drop one); repeatable', collect, [])
    .option('--remove-query <name>', 'remove a query parameter; repeatable', collect, [])
    .option('--header <name=value>', 'set a header the rule makes editable; repeatable', collect, [])
    .option('--remove-header <name>', 'remove a header the rule makes editable; repeatable', collect, [])
    .option('--grant-for <duration>', 'also let the same identity do the same action without asking for this long (within the rule\'s approval.grants)')
    .option('--grant-uses <n>', 'at most this many times (default: the rule\'s maxUses)', positiveInt)
    .option('--pin <field>', 'the grant covers only requests with the same value here: a body JSON Pointer (/table) or ?query-name; repeatable', collect, [])
    .action(async (id: string, opts: CommonOptions & { reason?: string; grantFor?: string; grantUses?: number; pin: string[] } & EditOptions) => {
      await runCommand(io, async () => {
        const edit = editOf(opts);
        if (opts.grantFor === undefined && (opts.grantUses !== undefined || opts.pin.length > 0)) throw new CliError('--grant-uses and --pin need --grant-for');
        const grant = opts.grantFor === undefined ? null : { for: opts.grantFor, ...(opts.grantUses !== undefined ? { uses: opts.grantUses } : {}), pin: opts.pin };
        const payload = {
          ...(opts.reason !== undefined && opts.reason.trim() !== '' ? { reason: opts.reason } : {}),
          ...(edit === null ? {} : { edit }),
          ...(grant === null ? {} : { grant }),
        };
        const body = await call(opts, io, 'POST', `${approvalPath(id)}/approve`, payload);
        if (opts.json) return io.out(body.text);
        io.out(formatApproveOutcome(viewOf(body)));
        const extra = JSON.parse(body.text) as { grant?: GrantView | null; grant_error?: string };
        if (extra.grant) io.out(`granted: ${formatGrant(extra.grant)}`);
        if (extra.grant_error) throw new CliError(extra.grant_error);
      });
    });

  common(approvals.command('grants'))
    .description('list the grants that can still be used')
    .action(async (opts: CommonOptions) => {
      await runCommand(io, async () => {
        const body = await call(opts, io, 'GET', '/v1/grants');
        if (opts.json) return io.out(body.text);
        const list = (JSON.parse(body.text) as { grants: GrantView[] }).grants;
        io.out(list.length === 0 ? 'no grants' : list.map(formatGrant).join('\n'));
      });
    });

  common(approvals.command('revoke-grant'))
    .description('end a grant at once: the requests it covered ask for approval again')
    .argument('<id>', 'grant id (see `airlock approvals grants`)')
    .action(async (id: string, opts: CommonOptions) => {
      await runCommand(io, async () => {
        if (id.trim() === '') throw new CliError('the grant id is empty (see `airlock approvals grants`)');
        const body = await call(opts, io, 'POST', `/v1/grants/${encodeURIComponent(id.trim())}/revoke`, {});
        if (opts.json) return io.out(body.text);
        io.out(`revoked: ${formatGrant((JSON.parse(body.text) as { grant: GrantView }).grant)}`);
      });
    });

  common(approvals.command('deny'))
    .description('deny the request; the agent gets 403 approval_denied')
    .argument('<id>', 'approval id')
    .requiredOption('--reason <text>', 'why (required; kept in the audit trail)')
    .action(async (id: string, opts: CommonOptions & { reason: string }) => {
      await runCommand(io, async () => {
        if (opts.reason.trim() === '') throw new CliError('deny needs a non-empty --reason (it is kept in the audit trail)');
        const body = await call(opts, io, 'POST', `${approvalPath(id)}/deny`, { reason: opts.reason });
        if (opts.json) return io.out(body.text);
        const v = viewOf(body);
        io.out(`denied: ${printable(v.id)}; the agent's request is refused (403 approval_denied)`);
      });
    });

  approvals
    .command('token')
    .description('make a random approver token; prints the policy line (approverTokens:) and AIRLOCK_APPROVER_TOKEN')
    .argument('<name>', 'approver name, as listed under approvers.<group>.api in the policy (e.g. bob@example.com)')
    .option('--write <file>', 'write the approverTokens entry as a policy file of its own (in the policy folder, Airlock loads it within seconds) and print only `export AIRLOCK_APPROVER_TOKEN=…`, for eval')
    .action(async (name: string, opts: { write?: string }) => {
      const secret = randomBytes(32).toString('base64url');
      const entry = `approverTokens: { ${JSON.stringify(name)}: ["${hashToken(secret)}"] }`;
      if (opts.write !== undefined) {
        const file = `# The approver token of ${JSON.stringify(name)} (only its SHA-256: the token itself is not stored).\nversion: 1\n${entry}\n`;
        // Written whole, then linked into place: Airlock never reads half a file, and the link fails
        // rather than replace an existing file (it may hold someone's policy).
        const tmp = join(dirname(opts.write), `.${basename(opts.write)}.${process.pid}.tmp`);
        try {
          await writeFile(tmp, file, { flag: 'wx' });
          await link(tmp, opts.write);
        } catch (err) {
          io.err(`airlock: cannot write ${opts.write}: ${(err as NodeJS.ErrnoException).code === 'EEXIST' ? 'it exists already' : (err as Error).message}`);
          process.exitCode = 1;
          return;
        } finally {
          await rm(tmp, { force: true });
        }
        io.err(`wrote ${opts.write}; ${JSON.stringify(name)} must be listed under approvers.<group>.api to decide anything`);
        io.out(`export AIRLOCK_APPROVER_TOKEN=${secret}`);
        return;
      }
      io.out(`# policy file, top level (merge into an existing approverTokens: map); ${JSON.stringify(name)} must also be`);
      io.out('# listed under approvers.<group>.api to decide anything:');
      io.out(entry);
      io.out('# approver environment (keep it secret):');
      io.out(`AIRLOCK_APPROVER_TOKEN=${secret}`);
    });
}

function common(cmd: Command): Command {
  return cmd
    .addOption(new Option('--admin <url>', 'admin API base URL').env('AIRLOCK_ADMIN_URL').default(DEFAULT_ADMIN_URL))
    .addOption(new Option('--token <token>', 'approver bearer token (prefer the environment variable: flags show in `ps`)').env('AIRLOCK_APPROVER_TOKEN'))
    .option('--json', "print the API's JSON answer as-is");
}

function approvalPath(id: string): string {
  if (id.trim() === '') throw new CliError('the approval id is empty (see `airlock approvals list`)');
  return `/v1/approvals/${encodeURIComponent(id.trim())}`;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

async function runCommand(io: ApprovalsCliIo, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    io.err(`airlock: ${err.message}`);
    process.exitCode = 1;
  }
}

interface Answer {
  text: string;
  json: unknown;
}

/**
 * One admin API call. Resolves with a 2xx answer; throws CliError for everything else: no token,
 * a bad --admin URL, the listener unreachable, a timeout, an error answer (its `message`), or a redirect
 * (not followed: the bearer token must only go where the operator pointed it).
 */
async function call(opts: CommonOptions, io: ApprovalsCliIo, method: 'GET' | 'POST', path: string, payload?: unknown): Promise<Answer> {
  const token = opts.token?.trim();
  if (!token) {
    throw new CliError('no approver token: pass --token or set AIRLOCK_APPROVER_TOKEN (an operator makes one with `airlock approvals token NAME`)');
  }
  const base = adminBase(opts.admin);
  if (base.protocol === 'http:' && !isLoopback(base.hostname)) {
    io.err(`airlock: warning: sending the approver token over plain http to ${base.host}; use https or a loopback address`);
  }
  const url = `${base.href.replace(/\/+$/, '')}${path}`;
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'application/json' };
  if (payload !== undefined) headers['content-type'] = 'application/json';
  let status: number;
  let location: string | undefined;
  let text: string;
  try {
    // undici rather than fetch: no forbidden-port list (an admin listener may be on any port) and
    // redirects are never followed.
    const res = await request(url, {
      method,
      headers,
      body: payload === undefined ? undefined : JSON.stringify(payload),
      headersTimeout: TIMEOUT_MS,
      bodyTimeout: TIMEOUT_MS,
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    status = res.statusCode;
    const loc = res.headers.location;
    location = Array.isArray(loc) ? loc[0] : loc;
    text = await res.body.text();
  } catch (err) {
    throw new CliError(unreachable(base, err));
  }
  let json: unknown = undefined;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    // Not JSON: reported below if it matters.
  }
  if (status >= 200 && status < 300) {
    if (json === undefined || typeof json !== 'object' || json === null) {
      throw new CliError(`unexpected answer from the admin API at ${origin(base)} (HTTP ${status}, not JSON): ${clip(text, 200)}`);
    }
    return { text, json };
  }
  if (opts.json && json !== undefined) io.out(text);
  if (status >= 300 && status < 400) {
    throw new CliError(`the admin API at ${origin(base)} redirects (HTTP ${status}${location ? ` to ${printable(location)}` : ''}); not followed: pass the final URL as --admin`);
  }
  const err = json as { error?: unknown; message?: unknown } | undefined;
  if (err !== undefined && typeof err === 'object' && err !== null && typeof err.message === 'string') {
    throw new CliError(printable(err.message));
  }
  if (status === 404) {
    throw new CliError(`the admin API at ${origin(base)} has no ${printable(path.split('?', 1)[0] ?? path)} (HTTP 404): is --admin the admin listener of airlock serve?`);
  }
  throw new CliError(`the admin API at ${origin(base)} answered HTTP ${status}${text ? `: ${clip(text, 200)}` : ''}`);
}

/** `--admin` as a URL: `host:port` alone means http; a path prefix (behind a reverse proxy) is kept. */
function adminBase(raw: string): URL {
  const value = raw.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new CliError(`invalid --admin URL ${JSON.stringify(raw)}: expected e.g. ${DEFAULT_ADMIN_URL}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CliError(`invalid --admin URL ${JSON.stringify(raw)}: use http:// or https://`);
  if (url.username || url.password) throw new CliError('invalid --admin URL: credentials in the URL are not used; pass the approver token with --token or AIRLOCK_APPROVER_TOKEN');
  url.search = '';
  url.hash = '';
  return url;
}

function origin(url: URL): string {
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

function unreachable(base: URL, err: unknown): string {
  const where = origin(base);
  const e = err as { name?: string; code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = e.code ?? e.cause?.code;
  if (e.name === 'TimeoutError' || e.name === 'AbortError' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return `the admin API at ${where} did not answer within ${TIMEOUT_MS / 1000}s`;
  }
  const hint = '(is `airlock serve` running, and is --admin / AIRLOCK_ADMIN_URL its admin listener?)';
  switch (code) {
    case 'ECONNREFUSED':
      return `cannot reach the admin API at ${where}: connection refused ${hint}`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot reach the admin API at ${where}: unknown host ${base.hostname}`;
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
      return `cannot reach the admin API at ${where}: connection timed out`;
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return `the admin API at ${where} closed the connection ${hint}`;
    default: {
      const detail = e.message ?? e.cause?.message ?? String(err);
      return `cannot reach the admin API at ${where}: ${code ? `${code} ` : ''}${detail}`;
    }
  }
}

function viewOf(answer: Answer): ApprovalView {
  const v = (answer.json as { approval?: ApprovalView }).approval;
  if (v === undefined || typeof v !== 'object' || v === null || typeof v.id !== 'string') {
    throw new CliError(`unexpected answer from the admin API: ${clip(answer.text, 200)}`);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------------
// Output

/**
 * Text that came from the server (and, through it, from the agent) made safe to print on a terminal
 * (src/text/visible.ts). With `multiline`, newlines (and tabs) are kept so a body preview keeps its shape.
 */
export const printable = visible;

/** Shown whole, or its start and end with the length: the end of a URL is where a surprise would hide. */
function clip(s: string, max: number): string {
  return visibleElided(s, max);
}

export function formatList(list: readonly ApprovalView[], now: number): string {
  if (list.length === 0) return 'no approvals';
  const header = ['ID', 'STATE', 'VOTES', 'RULE', 'IDENTITY', 'REQUEST', 'AGE', 'EXPIRES'];
  const rows = list.map((v) => [
    printable(v.id),
    printable(v.state),
    `${v.approvals.length}/${v.required}`,
    printable(v.rule),
    v.identity === null ? '-' : printable(v.identity),
    clip(`${v.request.method} ${v.request.url}`, 72),
    ago(Date.parse(v.created_at), now),
    v.state === 'pending' || v.state === 'approved' ? relative(Date.parse(v.expires_at), now) : '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export function formatShow(v: ApprovalView, now: number): string {
  const lines: string[] = [];
  const field = (name: string, value: string) => lines.push(`${name.padEnd(16)}${value}`);
  field('id', printable(v.id));
  field('state', `${printable(v.state)} (${v.approvals.length} of ${v.required} approval${v.required === 1 ? '' : 's'})`);
  field('rule', printable(v.rule) + (v.rule_description ? ` — ${printable(v.rule_description)}` : ''));
  field('identity', v.identity === null ? '(anonymous)' : printable(v.identity));
  if (v.owner !== null) field('owner', printable(v.owner));
  field('agent reason', v.reason === null ? '(none given)' : printable(v.reason));
  field('request', `${printable(v.request.method)} ${printable(v.request.url)}`);
  field('classification', v.request.classification === null ? '(none)' : printable(v.request.classification));
  for (const [i, f] of (v.request.findings ?? []).entries()) field(i === 0 ? 'found' : '', printable(describeFinding(f)));
  field('body', `${v.request.body_bytes} byte${v.request.body_bytes === 1 ? '' : 's'}`);
  field('digest', `sha256:${printable(v.request.digest)}`);
  field('created', when(v.created_at, now));
  field('expires', when(v.expires_at, now));
  if (v.impact) {
    const i = v.impact;
    const h = i.history;
    field('destination', printable(i.destination));
    for (const [n, a] of i.arrays.entries()) field(n === 0 ? 'records' : '', `${a.count} in ${printable(a.path === '' ? '(the body)' : a.path)}`);
    if (i.classification_why !== null) field('classified', printable(i.classification_why));
    field('history', h.first_time ? `first request of this identity under this rule in ${h.window_days} days` : `in ${h.window_days} days: ${h.approved} approved, ${h.denied} denied, ${h.expired} expired`);
  }
  for (const [n, p] of (v.probes ?? []).entries()) {
    const what = p.state === 'ok' ? `${p.status}${(p.fields ?? []).map((f) => `, ${f.pointer} = ${f.value}`).join('')}` : `failed: ${p.error ?? 'no answer'}`;
    field(n === 0 ? 'probes' : '', printable(`${p.name}: ${what}`));
  }
  if (v.edit) field('edited', `by ${printable(v.edit.by)} ${when(v.edit.at, now)} (original sha256:${printable(v.edit.original_digest)})`);
  if (v.approvals.length === 0) field('approvals', '(none yet)');
  for (const [i, a] of v.approvals.entries()) field(i === 0 ? 'approvals' : '', `${printable(a.approver)} at ${when(a.at, now)}`);
  if (v.decided_at !== null) field('decided', when(v.decided_at, now) + (v.decided_by !== null ? ` by ${printable(v.decided_by)}` : ''));
  if (v.decision_reason !== null) field('decision reason', printable(v.decision_reason));
  if (v.executed_at !== null) {
    field('forwarded', v.forwarded === null ? `claimed ${when(v.executed_at, now)}; no answer recorded (if its replica stopped first, it was never sent)` : `${when(v.executed_at, now)}, answered ${v.forwarded.status}`);
  }
  field('status', printable(v.status_url));
  if (v.request.body_bytes > 0 || v.request.body_preview !== '') {
    const preview = printable(v.request.body_preview.replace(/\r\n/g, '\n'), true);
    const shown = Buffer.byteLength(v.request.body_preview);
    lines.push(`body preview${shown < v.request.body_bytes ? ` (first ${shown} of ${v.request.body_bytes} bytes)` : ''}:`);
    for (const l of preview.split('\n')) lines.push(`    ${l}`.trimEnd());
  }
  return lines.join('\n');
}

export function formatApproveOutcome(v: ApprovalView): string {
  const votes = `${v.approvals.length} of ${v.required} approval${v.required === 1 ? '' : 's'}`;
  const verb = v.edit ? 'edited and approved' : 'approved';
  switch (v.state) {
    case 'approved':
      return `${verb}: ${printable(v.id)} (${votes}); forwarded when the agent retries the identical request (at once if it is still waiting)`;
    case 'executed':
      return `${verb}: ${printable(v.id)} (${votes}); the request has been forwarded`;
    case 'pending': {
      const missing = v.required - v.approvals.length;
      const edited = v.edit ? `edited (now decided by rule ${printable(v.rule)}); ` : '';
      return `${edited}recorded: ${votes} for ${printable(v.id)}; waiting for ${missing} more`;
    }
    default:
      return `${printable(v.state)}: ${printable(v.id)} (${votes})`;
  }
}

function when(iso: string, now: number): string {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? printable(iso) : `${printable(iso)} (${relative(t, now)})`;
}

function relative(t: number, now: number): string {
  if (Number.isNaN(t)) return '?';
  const d = t - now;
  return d >= 0 ? `in ${span(d)}` : `${span(-d)} ago`;
}

function ago(t: number, now: number): string {
  return Number.isNaN(t) ? '?' : span(Math.max(0, now - t));
}

function span(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${m % 60 ? `${m % 60}m` : ''}`;
  return `${Math.floor(h / 24)}d`;
}
