import type { Command } from 'commander';
import type { KeyObject } from 'node:crypto';
import { loadVerifyKeys } from '../audit/signing.js';
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
    .option('--public-key <pem...>', 'Ed25519 public key(s) of --audit-signing-key: the chain\'s signed heads must verify with one')
    .description('check the hash chain (and its signatures); names the first line edited, removed, reordered, malformed or wrongly signed')
    .action(async (file: string, flags: { publicKey?: string[] }) => {
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
        result = await verifyAuditFile(file === '-' ? '/dev/stdin' : file, keys === undefined ? {} : { keys });
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
      }
    });
}
