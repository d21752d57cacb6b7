import type { PolicyError } from './types.js';

/** `file:line:col message`; problems with a whole folder or file (line 0) have no position. */
export function formatPolicyError(e: PolicyError): string {
  return e.line > 0 ? `${e.file}:${e.line}:${e.col} ${e.message}` : `${e.file}: ${e.message}`;
}
