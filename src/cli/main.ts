#!/usr/bin/env node
import { Command } from 'commander';
import { registerApprovalCommands } from './approvals.js';
import { registerAuditCommands } from './audit.js';
import { registerCaCommands } from './ca.js';
import { registerPolicyCommands } from './policy.js';
import { registerServeCommand } from './serve.js';
import { registerTokenCommands } from './token.js';

const program = new Command('airlock')
  .description('A policy proxy that puts a human in the loop of what AI agents do over HTTP')
  .version('0.1.0')
  .showHelpAfterError();

registerServeCommand(program);
registerPolicyCommands(program);
registerAuditCommands(program);
registerTokenCommands(program);
registerApprovalCommands(program);
registerCaCommands(program);

await program.parseAsync(process.argv);
