/** The report as Markdown (GitHub-flavoured tables). Plots are linked SVG files when written next to it, and always a text table. */
import { visible } from '../../text/visible.js';
import type { ReportDocument } from './format.js';
import { layout, type Block, type Table } from './layout.js';

/**
 * Text from the trail as literal Markdown: agent-supplied strings must not become links, images,
 * HTML (a viewer may render it), code or emphasis, nor break out of a table cell.
 */
export function escapeMarkdown(text: string): string {
  return visible(text)
    .replace(/[\\`*_[\]|~#!]/g, (c) => `\\${c}`)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;');
}

function table(t: Table): string {
  const cell = (v: string | number): string => (typeof v === 'number' ? String(v) : escapeMarkdown(v));
  const head = `| ${t.head.map(cell).join(' | ')} |`;
  const rule = `|${t.head.map((_, i) => (t.numeric?.includes(i) ? '---:' : '---')).join('|')}|`;
  return [head, rule, ...t.rows.map((r) => `| ${r.map(cell).join(' | ')} |`)].join('\n');
}

function block(b: Block, plotFiles: Readonly<Record<string, string>>): string {
  switch (b.kind) {
    case 'heading':
      return `${'#'.repeat(b.level)} ${escapeMarkdown(b.text)}`;
    case 'paragraph':
      return escapeMarkdown(b.text);
    case 'alert': {
      const mark = b.tone === 'ok' ? '✔' : '⚠';
      const items = b.items.map((i) => `> - ${escapeMarkdown(i)}`);
      return [`> ${mark} **${escapeMarkdown(b.title)}**`, ...(items.length > 0 ? ['>', ...items] : [])].join('\n');
    }
    case 'list':
      return b.items.map((i) => `- ${escapeMarkdown(i)}`).join('\n');
    case 'table':
      return table(b);
    case 'plot': {
      const file = plotFiles[b.name];
      // The file name is ours; angle brackets keep a path with spaces one link.
      const image = file === undefined ? [] : [`![${escapeMarkdown(b.title)}](<${encodeURI(file)}>)`];
      return [...image, table(b.table)].join('\n\n');
    }
  }
}

/** `plotFiles`: plot name → the SVG file written for it, relative to the report. */
export function renderMarkdown(doc: ReportDocument, plotFiles: Readonly<Record<string, string>> = {}): string {
  return layout(doc).map((b) => block(b, plotFiles)).join('\n\n') + '\n';
}
