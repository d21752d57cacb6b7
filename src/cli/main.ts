#!/usr/bin/env -S node --max-semi-space-size=16
// The V8 flag caps the young generation at 16 MiB per semi-space (Node 20's limit). Node 24 grows it to
// 64 MiB under load, whose pages stay resident: with many connections held for approval that is tens of
// MiB of RSS for no gain in throughput (measured in docs/architecture.md).
import { Command } from 'commander';
import { AIRLOCK_VERSION } from '../version.js';
import { registerServeCommand } from './serve.js';

const program = new Command('airlock')
  .description('A policy proxy that puts a human in the loop of what AI agents do over HTTP')
  .version(AIRLOCK_VERSION)
  .showHelpAfterError()
  // Usage errors (an unknown option or command, a missing argument) exit 2, like a malformed value;
  // 1 is kept for a command that ran and failed. Help and --version exit 0.
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

registerServeCommand(program);
// `serve` runs for as long as the sidecar does: it does not load the other commands' modules (YAML
// and schema parsing, certificate generation), which would only take memory; `--version` loads none.
if (process.argv[2] !== 'serve' && process.argv[2] !== '--version' && process.argv[2] !== '-V') {
  // `airlock … | head` closes the pipe early: that is the reader's choice, not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  const [approvals, audit, ca, policy, token] = await Promise.all([
    import('./approvals.js'),
    import('./audit.js'),
    import('./ca.js'),
    import('./policy.js'),
    import('./token.js'),
  ]);
  policy.registerPolicyCommands(program);
  audit.registerAuditCommands(program);
  token.registerTokenCommands(program);
  approvals.registerApprovalCommands(program);
  ca.registerCaCommands(program);
}

await program.parseAsync(process.argv);
