import { InvalidArgumentError, Option, type Command } from 'commander';
import type { KeyObject } from 'node:crypto';
import { CSV_TABLES, type CsvTable } from '../audit/report/csv.js';
import { parseReportTime, REPORT_FORMATS, runReport, type ReportFormat } from '../audit/report/run.js';
import { loadVerifyKeys } from '../audit/signing.js';
import { parseCheckpoint, verifyAuditFile, type Checkpoint } from '../audit/verify.js';

/** A malformed checkpoint is a usage error (exit 2). */
function checkpointOption(value: string): Checkpoint {
  const c = parseCheckpoint(value);
  if (c === null) throw new InvalidArgumentError('expected SEQ:HASH, the head printed by audit verify (e.g. 41:3f…, 64 hex digits)');
  return c;
}

/** A malformed time is a usage error (exit 2), like any malformed option value. */
function timeOption(value: string): number {
  const t = parseReportTime(value, Date.now());
  if (t === null) throw new InvalidArgumentError('expected an ISO date or time (2026-11-01, 2026-11-01T09:00:00Z) or a duration back from now (7d, 12h)');
  return t;
}

interface ReportFlags {
  since?: number;
  until?: number;
  format: ReportFormat;
  table?: CsvTable;
  output?: string;
  verify: boolean;
  publicKey?: string[];
}

/**
 * `airlock audit verify FILE`: exit 0 when the chain is intact, 1 naming the first broken line,
 * 2 when the file cannot be read at all.
 * `airlock audit report FILE...`: exit 0 when the report was written, 1 when it was written but the
 * chain is broken, 2 when nothing was written (usage, unreadable file).
 */
export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the audit trail');
  audit
    .command('verify')
    .argument('<file>', 'audit file (JSON lines); "-" or /dev/stdin to read several rotated files piped in order')
    .option('--public-key <pem...>', 'Ed25519 public key(s) of --audit-signing-key: the chain\'s signed heads must verify with one')
    .option('--after <seq:hash>', 'the file continues a chain from this checkpoint (the head printed when the previous file was verified): a rotated file verified on its own', checkpointOption)
    .description('check the hash chain (and its signatures); names the first line edited, removed, reordered, malformed or wrongly signed; prints the head to verify the next file from')
    .action(async (file: string, flags: { publicKey?: string[]; after?: Checkpoint }) => {
      let keys: KeyObject[] | undefined;
      try {
        keys = flags.publicKey === undefined ? undefined : await loadVerifyKeys(flags.publicKey);
      } catch (err) {
        console.error(`airlock audit verify: ${(err as Error).message}`);
        process.exitCode = 2;
        return;
      }
      let result;
      try {
        result = await verifyAuditFile(file === '-' ? '/dev/stdin' : file, { ...(keys === undefined ? {} : { keys }), ...(flags.after === undefined ? {} : { after: flags.after }) });
      } catch (err) {
        console.error(`airlock audit verify: cannot read ${file}: ${(err as Error).message}`);
        process.exitCode = 2;
        return;
      }
      for (const note of result.notes) console.log(`note: line ${note.line}: ${note.message}`);
      if (result.problems.length > 0) {
        for (const { line, kind, message } of result.problems) console.log(`line ${line}: ${kind}: ${message}`);
        process.exitCode = 1;
      } else if (result.lines === 0) {
        console.log('ok: 0 events, the file is empty');
      } else {
        console.log(`ok: ${result.lines} ${result.lines === 1 ? 'event' : 'events'}, chain intact${keys === undefined ? '' : ', signatures valid'}`);
        // Kept with the file (or in a log), it lets the next rotated file be verified alone.
        if (result.head) console.log(`head: ${result.head.seq}:${result.head.hash} (verify the next file with --after ${result.head.seq}:${result.head.hash})`);
      }
    });
  audit
    .command('report')
    .argument('<files...>', 'audit files (JSON lines); a rotated trail\'s files oldest first')
    .option('--since <time>', 'only events from this time: ISO date or time (UTC unless it says otherwise), or a duration back from now (7d)', timeOption)
    .option('--until <time>', 'only events before this time (same forms as --since)', timeOption)
    .addOption(new Option('--format <format>', 'output format').choices(REPORT_FORMATS).default('markdown'))
    .addOption(new Option('--table <table>', `with --format csv: the table to write (default approvals)`).choices(CSV_TABLES))
    .option('--output <file>', 'write the report here instead of stdout (Markdown: its plots are written beside it as SVG files)')
    .option('--no-verify', 'do not verify the hash chain first')
    .option('--public-key <pem...>', 'Ed25519 public key(s) of --audit-signing-key: the chain\'s signed heads must verify with one')
    .description('decisions, approvals (approvers, edits, grants, time to decide), denials, grants and policy versions over a period, as Markdown, HTML, CSV or JSON; exits 1 when the chain is broken')
    .action(async (files: string[], flags: ReportFlags) => {
      if (flags.table !== undefined && flags.format !== 'csv') {
        console.error('airlock audit report: --table applies to --format csv');
        process.exitCode = 2;
        return;
      }
      if (flags.since !== undefined && flags.until !== undefined && flags.since >= flags.until) {
        console.error('airlock audit report: --since must be before --until');
        process.exitCode = 2;
        return;
      }
      let keys: KeyObject[] | undefined;
      try {
        keys = flags.publicKey === undefined ? undefined : await loadVerifyKeys(flags.publicKey);
      } catch (err) {
        console.error(`airlock audit report: ${(err as Error).message}`);
        process.exitCode = 2;
        return;
      }
      process.exitCode = await runReport(
        {
          files,
          ...(flags.since === undefined ? {} : { since: flags.since }),
          ...(flags.until === undefined ? {} : { until: flags.until }),
          format: flags.format,
          ...(flags.table === undefined ? {} : { table: flags.table }),
          ...(flags.output === undefined ? {} : { output: flags.output }),
          verify: flags.verify,
          ...(keys === undefined ? {} : { keys }),
        },
        { stdout: (text) => void process.stdout.write(text), stderr: (line) => console.error(line) },
      );
    });
}
