import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { hashToken } from '../request/identify.js';

/** `airlock token new ID`: a fresh proxy token, its hash for the policy file, and the agent's HTTP_PROXY. */
export function registerTokenCommands(program: Command): void {
  const token = program.command('token').description('proxy tokens that identify agents');
  token
    .command('new')
    .argument('<id>', 'the identity the token is for (as named under identities: in the policy)')
    .option('--proxy <host:port>', 'the address agents use to reach Airlock', '127.0.0.1:8080')
    .description('make a random token; prints the line for the policy file and the agent HTTP_PROXY value')
    .action((id: string, opts: { proxy: string }) => {
      const secret = randomBytes(24).toString('base64url');
      console.log(`# policy file, under identities.${id}:`);
      console.log(`tokens: ["${hashToken(secret)}"]`);
      console.log('# agent environment (keep it secret):');
      // Most clients read the upper-case names; curl reads only the lower-case http_proxy.
      const url = `http://${encodeURIComponent(id)}:${secret}@${opts.proxy}`;
      for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy']) console.log(`${name}=${url}`);
    });
}
