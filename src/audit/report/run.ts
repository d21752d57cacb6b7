/**
 * `airlock audit report`: reads the files (and verifies their chain meanwhile), renders the report in
 * the format asked for, and writes it with its plots.
 */
import type { KeyObject } from 'node:crypto';
import { stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, parse, resolve } from 'node:path';
import { parseDuration } from '../../policy/duration.js';
import { AIRLOCK_VERSION } from '../../version.js';
import { createAggregator } from './aggregate.js';
import { renderCsv, type CsvTable } from './csv.js';
import type { ReportDocument } from './format.js';
import { renderHtml } from './html.js';
import { plots } from './layout.js';
import { renderMarkdown } from './markdown.js';
import { readTrail } from './read.js';
import { verifyTrail, type TrailVerification } from './verify-files.js';

export const REPORT_FORMATS = ['markdown', 'html', 'csv', 'json'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

export interface ReportRequest {
  /** Oldest first. */
  files: readonly string[];
  /** Milliseconds since the epoch. */
  since?: number;
  until?: number;
  format: ReportFormat;
  table?: CsvTable;
  /** A file; stdout when absent. */
  output?: string;
  verify: boolean;
  keys?: readonly KeyObject[];
}

export interface ReportIo {
  stdout(text: string): void;
  stderr(line: string): void;
}

const ZONE = /(?:Z|[+-]\d\d:\d\d)$/i;
const ISO = /^\d{4}-\d\d-\d\d(?:T\d\d:\d\d(?::\d\d(?:\.\d{1,9})?)?(?:Z|[+-]\d\d:\d\d)?)?$/i;

/**
 * `--since`/`--until`: an ISO date or time (UTC unless it names a zone, like the trail), or a duration
 * (`7d`, `12h`, `1h30m`) meaning that long before `now`. Null when it is neither.
 */
export function parseReportTime(value: string, now: number): number | null {
  const ms = parseDuration(value);
  if (ms !== null) return now - ms;
  if (!ISO.test(value)) return null;
  const t = Date.parse(value.includes('T') && !ZONE.test(value) ? `${value}Z` : value);
  return Number.isFinite(t) ? t : null;
}

/** Refuses what cannot be read as a trail file, and an output that would overwrite one, before anything is written. */
async function checkInputs(files: readonly string[], output: string | undefined): Promise<void> {
  for (const file of files) {
    if (output !== undefined && resolve(output) === resolve(file)) throw new Error(`--output ${output} is one of the files read: it would overwrite the trail`);
    let info;
    try {
      info = await stat(file);
    } catch (err) {
      throw new Error(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
    }
    if (info.isDirectory()) throw new Error(`${file} is a folder: give its files, oldest first`);
  }
}

const NOT_CHECKED: TrailVerification = { checked: false, ok: true, skipped: null, signatures_checked: false, problems: [], notes: [] };

export async function buildReport(req: ReportRequest, now = new Date()): Promise<ReportDocument> {
  await checkInputs(req.files, req.output);
  const aggregator = createAggregator({ ...(req.since === undefined ? {} : { since: req.since }), ...(req.until === undefined ? {} : { until: req.until }) });
  // Both read the files, side by side: the verifier in its own stream, the aggregation here.
  const reading = readTrail(req.files, aggregator);
  const verifying = req.verify ? verifyTrail(req.files, req.keys) : Promise.resolve(NOT_CHECKED);
  const [files, verification] = await Promise.all([reading, verifying]);
  return { generated_at: now.toISOString(), airlock_version: AIRLOCK_VERSION, files, verification, ...aggregator.finish() };
}

/** The report in `format`, and the files to write beside it (Markdown's plots). */
export function render(doc: ReportDocument, req: Pick<ReportRequest, 'format' | 'table' | 'output'>): { text: string; beside: { path: string; text: string }[] } {
  switch (req.format) {
    case 'json':
      return { text: `${JSON.stringify(doc, null, 2)}\n`, beside: [] };
    case 'csv':
      return { text: renderCsv(doc, req.table), beside: [] };
    case 'html':
      return { text: renderHtml(doc), beside: [] };
    case 'markdown': {
      // On stdout there is nowhere to put an image: the text tables say the same.
      if (req.output === undefined) return { text: renderMarkdown(doc), beside: [] };
      const { name } = parse(req.output);
      const beside = plots(doc).map((p) => ({ name: p.name, path: join(dirname(req.output!), `${name}.${p.name}.svg`), text: p.svg }));
      return { text: renderMarkdown(doc, Object.fromEntries(beside.map((b) => [b.name, basename(b.path)]))), beside };
    }
  }
}

/** Exit code: 0 written (chain intact or not checked), 1 written but the chain is broken, 2 nothing written. */
export async function runReport(req: ReportRequest, io: ReportIo): Promise<number> {
  let doc: ReportDocument;
  try {
    doc = await buildReport(req);
  } catch (err) {
    io.stderr(`airlock audit report: ${(err as Error).message}`);
    return 2;
  }
  const { text, beside } = render(doc, req);
  if (req.output === undefined) io.stdout(text);
  else {
    try {
      for (const file of beside) await writeFile(file.path, file.text);
      await writeFile(req.output, text);
    } catch (err) {
      io.stderr(`airlock audit report: cannot write the report: ${(err as Error).message}`);
      return 2;
    }
  }
  const v = doc.verification;
  if (v.checked && !v.ok) {
    const first = v.problems[0];
    io.stderr(`airlock audit report: the audit chain is broken${first === undefined ? '' : ` (${first.file} line ${first.line}: ${first.kind})`}; the report says so at the top`);
    return 1;
  }
  if (v.skipped !== null) io.stderr(`airlock audit report: chain not verified: ${v.skipped}`);
  return 0;
}
