/**
 * Detector throughput on a 1 MiB JSON document of mixed content: customer records with names, notes
 * and URLs, a few emails, phone numbers, IBANs, card numbers (one failing Luhn), an SSN and a token.
 * Measured twice: the detectors alone (scan text built from the parsed body, every detector run), and
 * the whole body view the proxy builds (decode, parse, duplicate-key check, detectors). Best of runs.
 */
import { detect } from '../src/inspect/detect.js';
import { DETECTORS } from '../src/inspect/detector-ids.js';
import { NO_BODY } from '../src/inspect/body.js';
import { scanTextOf } from '../src/inspect/scan-text.js';
import { setBodyView } from '../src/policy/body-view.js';
import { loadPolicySources } from '../src/policy/load.js';
import { canonicalize } from '../src/request/canonicalize.js';

const TARGET = 1024 * 1024;

function mixedDocument(): string {
  const token = ['ghp', 'aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0dF3gH6'].join('_');
  const rows: unknown[] = [];
  for (let i = 0; JSON.stringify(rows).length < TARGET - 400; i++) {
    rows.push({
      id: 100000 + i,
      name: `Customer ${i}`,
      note: i % 3 === 0 ? 'renewal due next quarter, see https://crm.example.com/accounts' : 'lorem ipsum dolor sit amet, consectetur adipiscing elit',
      created: '2026-11-30T10:00:00Z',
      amount: i * 3.25,
      ...(i % 400 === 0 ? { email: `user${i}@example.com`, phone: '+1 415 555 2671' } : {}),
      ...(i % 1000 === 1 ? { iban: 'DE89 3704 0044 0532 0130 00', card: '4111 1111 1111 1111', other: '4111 1111 1111 1112' } : {}),
      ...(i === 5 ? { ssn: '123-45-6789', token } : {}),
    });
  }
  return JSON.stringify({ rows });
}

function best(runs: number[]): number {
  return Math.min(...runs);
}

export async function benchDetectors(): Promise<{ bytes: number; detectMBs: number; viewMBs: number }> {
  const text = mixedDocument();
  const bytes = Buffer.byteLength(text);
  const wanted = new Set(DETECTORS);
  const parsed = { ...NO_BODY, json: { value: JSON.parse(text) as unknown } };
  const detectRuns: number[] = [];
  for (let r = 0; r < 8; r++) {
    const t0 = performance.now();
    await detect(scanTextOf('', parsed, text, 'application/json'), wanted);
    detectRuns.push(performance.now() - t0);
  }

  const loaded = loadPolicySources([
    {
      file: 'd.yaml',
      text: `version: 1\nclassification: { header: X-C, levels: [low, high], detect: { ${DETECTORS.map((d) => `${d}: high`).join(', ')} } }\nrules:\n  - { id: r, match: { classification: { in: [low] } }, action: allow }\n`,
    },
  ]);
  if (!loaded.ok) throw new Error('benchmark detector policy does not load');
  const body = Buffer.from(text);
  const raw = { method: 'POST', target: 'http://h.internal/x', rawHeaders: ['Content-Type', 'application/json', 'Content-Length', String(bytes), 'X-C', 'low'] };
  const viewRuns: number[] = [];
  for (let r = 0; r < 8; r++) {
    const c = canonicalize(raw, null, loaded.policy);
    if (!c.ok) throw new Error(c.message);
    const t0 = performance.now();
    const v = await setBodyView(c.request, body, true, loaded.policy, 2 * TARGET);
    viewRuns.push(performance.now() - t0);
    if (!v.ok || c.request.classification !== 'high') throw new Error('the benchmark document should be raised to high');
  }
  const mbs = (ms: number): number => bytes / 1e6 / (ms / 1000);
  return { bytes, detectMBs: mbs(best(detectRuns)), viewMBs: mbs(best(viewRuns)) };
}
