/** The inbox's only stylesheet and script (served from /inbox/, allowed by the Content-Security-Policy). */

export const CSS = `
:root { color-scheme: light dark; --fg: #1b1f24; --muted: #5b6570; --bg: #fff; --line: #d8dde3; --ok: #1a7f37; --no: #b42318; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #9aa4ae; --bg: #0d1117; --line: #30363d; } }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; gap: .5rem; justify-content: space-between; align-items: center; padding: .75rem 1rem; border-bottom: 1px solid var(--line); }
.brand { font-weight: 600; color: inherit; text-decoration: none; }
.who { display: flex; gap: .5rem; align-items: center; font-size: .9rem; }
main { max-width: 60rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.25rem; overflow-wrap: anywhere; }
.tabs { display: flex; flex-wrap: wrap; gap: .75rem; font-size: .9rem; }
.tabs a[aria-current] { font-weight: 600; }
.list { list-style: none; padding: 0; }
.item { padding: .75rem 0; border-bottom: 1px solid var(--line); overflow-wrap: anywhere; }
.item a { color: inherit; text-decoration: none; }
.meta, .muted { color: var(--muted); font-size: .875rem; }
.method { font-weight: 700; }
code { font: .9em ui-monospace, monospace; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; overflow-wrap: anywhere; }
@media (max-width: 40rem) { .facts { grid-template-columns: 1fr; } .facts dd { margin-bottom: .5rem; } }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: rgba(127,127,127,.1); padding: .75rem; }
blockquote.reason { margin: 1rem 0; padding: .5rem 1rem; border-left: 3px solid var(--line); overflow-wrap: anywhere; }
.actions { display: flex; flex-wrap: wrap; gap: 1rem; margin-top: 1rem; align-items: flex-start; }
.actions form { display: flex; gap: .5rem; flex-wrap: wrap; align-items: center; }
button { font: inherit; padding: .5rem 1rem; border-radius: .375rem; border: 1px solid var(--line); background: transparent; color: inherit; cursor: pointer; }
button.approve { background: var(--ok); color: #fff; border-color: var(--ok); }
button.deny { background: var(--no); color: #fff; border-color: var(--no); }
input { font: inherit; padding: .45rem; min-width: 12rem; }
.refusal { color: var(--no); }
.actions form.approve-form { flex-direction: column; align-items: flex-start; }
details.more label { display: block; margin: .5rem 0; }
details.more textarea { display: block; width: min(36rem, 90vw); font: .9rem ui-monospace, monospace; }
.notice { padding: .5rem 1rem; border: 1px solid var(--line); }
.state { font-weight: 600; text-transform: uppercase; font-size: .8rem; letter-spacing: .04em; }
`;

/** Live updates: another approver's vote, a decision or an expiry reloads what is on screen. */
export const JS = `
'use strict';
// A form on its way (this person's own decision) is not interrupted by the update it causes.
let submitting = false;
document.addEventListener('submit', () => { submitting = true; });
const source = new EventSource('/inbox/events');
source.addEventListener('message', (event) => {
  const change = JSON.parse(event.data);
  const list = document.getElementById('list');
  const shown = document.getElementById('state');
  if (submitting) return;
  if (list !== null || (shown !== null && shown.dataset.id === change.id)) window.location.reload();
});
`;
