/**
 * The report as one self-contained HTML page: inline style and SVG, no script, nothing fetched. Every
 * value is escaped (the trail holds agent-controlled text), and the page's Content-Security-Policy
 * forbids scripts even if something were not.
 */
import type { ReportDocument } from './format.js';
import { layout, type Block, type Table } from './layout.js';
import { escapeXml } from './svg.js';

const STYLE = `
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#1b1b1b}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
.alert{padding:.7em 1em;border-radius:4px;margin:1em 0}.alert.ok{background:#e8f5e9;border:1px solid #2e7d32}
.alert.bad{background:#ffebee;border:3px solid #c62828;font-size:16px}.alert.warn{background:#fff8e1;border:1px solid #f9a825}
h4{margin-bottom:.2em}figure{margin:1em 0}details{margin-bottom:1.5em}
`;

function table(t: Table): string {
  const head = t.head.map((h) => `<th>${escapeXml(h)}</th>`).join('');
  const rows = t.rows
    .map((r) => `<tr>${r.map((v, i) => `<td${t.numeric?.includes(i) ? ' class="n"' : ''}>${escapeXml(String(v))}</td>`).join('')}</tr>`)
    .join('\n');
  return `<table><thead><tr>${head}</tr></thead><tbody>\n${rows}\n</tbody></table>`;
}

function block(b: Block): string {
  switch (b.kind) {
    case 'heading':
      return `<h${b.level}>${escapeXml(b.text)}</h${b.level}>`;
    case 'paragraph':
      return `<p>${escapeXml(b.text)}</p>`;
    case 'alert': {
      const items = b.items.length === 0 ? '' : `<ul>${b.items.map((i) => `<li>${escapeXml(i)}</li>`).join('')}</ul>`;
      return `<div class="alert ${b.tone}" role="${b.tone === 'ok' ? 'status' : 'alert'}"><strong>${escapeXml(b.title)}</strong>${items}</div>`;
    }
    case 'list':
      return `<ul>${b.items.map((i) => `<li>${escapeXml(i)}</li>`).join('\n')}</ul>`;
    case 'table':
      return table(b);
    case 'plot':
      // The SVG is built from escaped text (svg.ts).
      return `<figure>${b.svg}</figure><details><summary>${escapeXml(b.title)} as a table</summary>${table(b.table)}</details>`;
  }
}

export function renderHtml(doc: ReportDocument): string {
  const body = layout(doc).map(block).join('\n');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Airlock audit report</title>
<style>${STYLE}</style>
</head>
<body>
${body}
</body>
</html>
`;
}
