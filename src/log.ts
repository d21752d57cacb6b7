import { pino, type Logger } from 'pino';
import { AIRLOCK_VERSION } from './version.js';

export type { Logger };

/**
 * Operational logs go to stderr as JSON, so stdout can carry the audit trail on its own. Each line
 * names its level in words (`"level":"warn"`, as log pipelines expect) and the Airlock version that
 * wrote it.
 */
export function createLogger(level: string = process.env.AIRLOCK_LOG_LEVEL ?? 'info'): Logger {
  return pino(
    { level, base: { service: 'airlock', version: AIRLOCK_VERSION }, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } },
    pino.destination(2),
  );
}
