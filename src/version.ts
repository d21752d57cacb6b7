import { readFileSync } from 'node:fs';

/** Airlock's own version, from the installed package (src/ and dist/ both sit one level below it). */
export const AIRLOCK_VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
