import type { Command } from 'commander';
import { verifyAuditFile } from '../audit/verify.js';

/**
 * `airlock audit verify FILE`: exit 0 when the chain is intact, 1 naming the first broken line,
 * 2 when the file cannot be read at all.
 */
export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the audit trail');
  audit
    .command('verify')
    .argument('<file>', 'audit file (JSON lines); "-" or /dev/stdin to read several rotated files piped in order')
    .description('check the hash chain; names the first line edited, removed, reordered or malformed')
    .action(async (file: string) => {
      let result;
      try {
        result = await verifyAuditFile(file === '-' ? '/dev/stdin' : file);
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
        console.log(`ok: ${result.lines} ${result.lines === 1 ? 'event' : 'events'}, chain intact`);
      }
    });
}
