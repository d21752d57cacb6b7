import { pino, type Logger } from 'pino';

export type { Logger };

/** Operational logs go to stderr as JSON, so stdout can carry the audit trail on its own. */
export function createLogger(level: string = process.env.AIRLOCK_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { service: 'airlock' }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2));
}
