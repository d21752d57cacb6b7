/**
 * The README's approval walkthrough, run as written against what `npm start` runs: the lines of its
 * marked code block, with only the addresses (free ports here), the policy folder (a copy) and the
 * approval id the agent was given filled in.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { cp, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { AIRLOCK_BIN, ROOT, run } from '../helpers/harness.js';

async function walkthrough(): Promise<string[]> {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  const block = /<!-- walkthrough: approval[^>]*-->\n```sh\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(block, 'the README marks its approval walkthrough');
  return block
    .split('\n')
    .map((l) => l.replace(/\s+#\s.*$/, '').trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

describe('README: approving with the CLI after npm start', () => {
  it('works as written: token file, a held change to production, list, approve, the retry forwarded once', async () => {
    const lines = await walkthrough();
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
    const [, ...startArgs] = pkg.scripts.start.split(' ');
    const dir = await mkdtemp(join(tmpdir(), 'airlock-readme-'));
    const policies = join(dir, 'policies');
    await cp(join(ROOT, 'policies'), policies, { recursive: true });
    // npm start's own command line, on free ports and the copied folder.
    const args = startArgs.map((a) => (a === 'dist/cli/main.js' ? AIRLOCK_BIN : a === 'policies' ? policies : a === 'airlock-audit.jsonl' ? join(dir, 'audit.jsonl') : a));
    const child = spawn(process.execPath, [...args, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    const logs = createInterface({ input: child.stderr! });
    const logged: { msg: string; proxy?: string; admin?: string }[] = [];
    const waiters: { match: (r: { msg: string }) => boolean; resolve: () => void }[] = [];
    logs.on('line', (line) => {
      const rec = JSON.parse(line) as { msg: string };
      logged.push(rec);
      for (const w of [...waiters]) if (w.match(rec)) w.resolve();
    });
    const logLine = (msg: string, after = logged.length): Promise<void> =>
      logged.slice(after).some((r) => r.msg === msg) ? Promise.resolve() : new Promise((resolve) => waiters.push({ match: (r) => r.msg === msg, resolve }));
    try {
      await logLine('airlock listening', 0);
      const listening = logged.find((r) => r.msg === 'airlock listening')!;
      let id = '';
      let token = '';
      const outputs: string[] = [];
      for (const line of lines) {
        const command = line
          .replaceAll('npx airlock', `${process.execPath} ${AIRLOCK_BIN}`)
          .replaceAll('127.0.0.1:8080', listening.proxy!)
          .replaceAll('policies/', `${policies}/`)
          .replaceAll('<id>', id);
        const reloaded = logged.length;
        const r = await run('bash', ['-c', `${command}\nprintf '\\n%s' "$AIRLOCK_APPROVER_TOKEN"`], {
          ...process.env,
          AIRLOCK_ADMIN_URL: `http://${listening.admin}`,
          AIRLOCK_APPROVER_TOKEN: token,
        });
        assert.equal(r.code, 0, `${line}\n${r.stdout}${r.stderr}`);
        const out = r.stdout.slice(0, r.stdout.lastIndexOf('\n'));
        token = r.stdout.slice(r.stdout.lastIndexOf('\n') + 1);
        outputs.push(out);
        if (line.includes('--write')) {
          assert.match(token, /^[A-Za-z0-9_-]{43}$/, 'the eval line sets AIRLOCK_APPROVER_TOKEN');
          await stat(join(policies, 'oncall.local.yaml'));
          // Airlock takes the new file into force on its own.
          await logLine('policy in force', reloaded);
        }
        if (line.includes('respond-async')) {
          const answer = JSON.parse(out) as { error: string; approval_id: string; rule: string };
          assert.deepEqual([answer.error, answer.rule], ['approval_pending', 'prod-writes']);
          id = answer.approval_id;
        }
      }
      const [, , list, approve, retry] = outputs;
      assert.match(list!, new RegExp(id), 'the list shows the pending request');
      assert.match(approve!, /approved/);
      assert.match(retry!, /^\{"error":"upstream_error".*"rule":"prod-writes"/, 'forwarded (and answered 502: no such host)');
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
      await rm(dir, { recursive: true, force: true });
    }
  });
});
