/**
 * Structured logging: one JSON object per line on stdout.
 * Callers pass only identifying data; tokens, codes, secrets, cookies and Authorization
 * headers must never be handed to the logger (use `fingerprint` to refer to one).
 */
import { createHash } from 'node:crypto';
import type { LogLevel } from './config.ts';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

/** A short, non-reversible reference to a secret value (first 12 hex chars of its SHA-256). */
export function fingerprint(value: string): string {
  return createHash('sha256').update(value).digest('hex').slice(0, 12);
}

/** Serialises an Error without leaking anything but its name, message and stack. */
export function describeError(error: unknown): LogFields {
  if (error instanceof Error) {
    return { errorName: error.name, errorMessage: error.message, stack: error.stack };
  }
  return { errorMessage: String(error) };
}

export function createLogger(
  level: LogLevel = 'info',
  base: LogFields = {},
  write: (line: string) => void = (line) => process.stdout.write(line),
): Logger {
  const min = RANK[level];
  const emit = (lvl: LogLevel, message: string, fields?: LogFields) => {
    if (RANK[lvl] < min) return;
    const record = { level: lvl, time: new Date().toISOString(), message, ...base, ...fields };
    let line: string;
    try {
      line = JSON.stringify(record, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
    } catch {
      line = JSON.stringify({ level: lvl, time: record.time, message, note: 'unserialisable fields' });
    }
    write(line + '\n');
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(level, { ...base, ...fields }, write),
  };
}
