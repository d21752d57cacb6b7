/**
 * "Edit & approve…" in Slack: a modal with the editable parts of the held request — a JSON Patch of
 * the body, the query string, and each header the rule makes editable, prefilled — whose submission
 * becomes an edit (approvals/edit.ts) approved by the person who submitted it.
 */
import type { types as Slack } from '@slack/bolt';
import { queryChanges, type EditSpec } from '../edit.js';
import type { ApprovalRecord } from '../types.js';

type View = Slack.View;

export const EDIT_ACTION = 'airlock_edit';
export const EDIT_MODAL = 'airlock_edit_modal';
export const EDIT_BODY_BLOCK = 'edit_body';
export const EDIT_QUERY_BLOCK = 'edit_query';
const INPUT = 'value';
/** Slack's limit on a plain-text input's value. */
const MAX_INPUT = 3000;

interface Meta {
  id: string;
  channel: string;
  ts: string;
  query: string;
  headers: { name: string; value: string | null }[];
}

const headerBlock = (i: number): string => `edit_header_${i}`;

function headerValue(r: ApprovalRecord['request'], name: string): string | null {
  for (let i = 0; i + 1 < r.headers.length; i += 2) if (r.headers[i] === name) return r.headers[i + 1]!;
  return null;
}

function input(blockId: string, label: string, hint: string, initial: string | null, multiline = false): Slack.InputBlock {
  return {
    type: 'input',
    block_id: blockId,
    optional: true,
    label: { type: 'plain_text', text: label.slice(0, 2000) },
    hint: { type: 'plain_text', text: hint },
    element: {
      type: 'plain_text_input',
      action_id: INPUT,
      multiline,
      max_length: MAX_INPUT,
      ...(initial !== null && initial !== '' ? { initial_value: initial.slice(0, MAX_INPUT) } : {}),
    },
  };
}

/** The modal for `r` as it decides now (asDecided), with the rule's editable headers. */
export function editModal(r: ApprovalRecord, editableHeaders: readonly string[], channel: string, ts: string): View {
  const req = r.request;
  const headers = editableHeaders.map((name) => ({ name, value: headerValue(req, name) }));
  const meta: Meta = { id: r.id, channel, ts, query: req.query, headers };
  return {
    type: 'modal',
    callback_id: EDIT_MODAL,
    private_metadata: JSON.stringify(meta),
    title: { type: 'plain_text', text: 'Edit and approve' },
    submit: { type: 'plain_text', text: 'Approve edited' },
    close: { type: 'plain_text', text: 'Cancel' },
    blocks: [
      input(EDIT_BODY_BLOCK, 'Body changes (JSON Patch)', 'RFC 6902, e.g. [{"op":"replace","path":"/rows","value":10000}]. Empty: the body stays as it is.', null, true),
      input(EDIT_QUERY_BLOCK, 'Query string', 'Change or remove parameters; the others are kept as sent.', req.query),
      ...headers.map((h, i) => input(headerBlock(i), `Header ${h.name}`, 'Empty removes it.', h.value)),
      {
        type: 'context',
        elements: [{ type: 'mrkdwn', text: 'The edited request is checked against the policy again; approvals restart and you approve the edited version.', verbatim: true }],
      },
    ],
  };
}

type Values = Record<string, Record<string, { value?: string | null }>>;

/**
 * The edit a submitted modal asks for, or an error for one of its blocks. The query string and
 * headers are compared with what the modal showed: only what changed is edited.
 */
export function editFromModal(values: Values, privateMetadata: string): { id: string; channel: string; ts: string; edit: EditSpec } | { block: string; error: string } {
  const meta = JSON.parse(privateMetadata) as Meta;
  const edit: EditSpec = {};
  const patch = values[EDIT_BODY_BLOCK]?.[INPUT]?.value?.trim() ?? '';
  if (patch !== '') {
    try {
      edit.body = JSON.parse(patch) as EditSpec['body'];
    } catch {
      return { block: EDIT_BODY_BLOCK, error: 'This is not JSON: give a JSON Patch, an array of operations.' };
    }
  }
  const query = queryChanges(meta.query, values[EDIT_QUERY_BLOCK]?.[INPUT]?.value ?? '');
  if (query !== null) edit.query = query;
  const headers: Record<string, string | null> = {};
  meta.headers.forEach((h, i) => {
    const v = values[headerBlock(i)]?.[INPUT]?.value?.trim() ?? '';
    const now = v === '' ? null : v;
    if (now !== h.value) headers[h.name] = now;
  });
  if (Object.keys(headers).length > 0) edit.headers = headers;
  if (edit.body === undefined && edit.query === undefined && edit.headers === undefined) return { block: EDIT_BODY_BLOCK, error: 'Nothing was changed: use Approve instead.' };
  return { id: meta.id, channel: meta.channel, ts: meta.ts, edit };
}
