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

/** BigInt values (Prisma ids, counts) as strings; only used when a line has one. */
const bigintReplacer = (_k: string, v: unknown): unknown => (typeof v === 'bigint' ? v.toString() : v);

/**
 * `new Date().toISOString()` without a Date per line: the part up to the second is formatted
 * once per second, the milliseconds appended (years 0 to 9999, as toISOString writes them).
 */
let lastMs = -1;
let lastIso = '';
let lastSecond = -1;
let secondPrefix = '';
function isoNow(): string {
  const now = Date.now();
  if (now === lastMs) return lastIso;
  const ms = now % 1000;
  const second = now - ms;
  if (second !== lastSecond) {
    lastSecond = second;
    secondPrefix = new Date(second).toISOString().slice(0, 20);
  }
  lastMs = now;
  lastIso = `${secondPrefix}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z`;
  return lastIso;
}

const RESERVED = new Set(['level', 'time', 'message']);
/** Whether `fields` names a key of `base` or a reserved one (then the line is built the slow way). */
function collides(fields: LogFields, base: LogFields): boolean {
  for (const k in fields) if (RESERVED.has(k) || Object.hasOwn(base, k)) return true;
  return false;
}

/**
 * Lines for process.stdout, written in batches: at most LOG_FLUSH_MS after the first line of a
 * batch, at once when 64 KB are waiting, and when the process exits (one write call for many
 * lines rather than one per line: a write to a pipe or a file is a system call, and on these
 * machines a system call costs as much as several requests' worth of JavaScript). Lines are
 * written in order; a process killed outright (SIGKILL, out of memory) loses at most the lines
 * of its last LOG_FLUSH_MS.
 */
export const LOG_FLUSH_MS = 10;
let pending = '';
let flushTimer: NodeJS.Timeout | undefined;
let exitHookInstalled = false;
function flushStdout(): void {
  if (flushTimer !== undefined) {
    clearTimeout(flushTimer);
    flushTimer = undefined;
  }
  if (pending === '') return;
  const out = pending;
  pending = '';
  process.stdout.write(out);
}
function writeStdout(line: string): void {
  pending += line;
  if (pending.length >= 64 * 1024) {
    flushStdout();
    return;
  }
  if (flushTimer !== undefined) return;
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', flushStdout);
  }
  // Unreferenced: a batch waiting to be written keeps no process alive (the exit hook writes it).
  flushTimer = setTimeout(flushStdout, LOG_FLUSH_MS).unref();
}

class JsonLogger implements Logger {
  /** `base` serialised without its braces (`"a":1,"b":2`), once; null: not serialisable that way. */
  private baseJson: string | null | undefined;

  constructor(
    private readonly min: number,
    private readonly base: LogFields,
    private readonly write: (line: string) => void,
  ) {}

  private emit(lvl: LogLevel, message: string, fields?: LogFields): void {
    this.write(this.fastLine(lvl, message, fields) ?? this.line(lvl, message, fields));
  }

  /**
   * The line as `line` writes it, from strings: base serialised once per logger, the fields once
   * per line, no merged record. Undefined when that could differ from `line` (a field that names
   * a base or reserved key, so that it would replace it in place; something JSON.stringify
   * refuses, such as a BigInt).
   */
  private fastLine(lvl: LogLevel, message: string, fields: LogFields | undefined): string | undefined {
    if (this.baseJson === undefined) {
      let json: string | null = null;
      try {
        const whole = collides(this.base, {}) ? undefined : JSON.stringify(this.base);
        if (whole !== undefined && whole[0] === '{') json = whole.slice(1, -1);
      } catch {
        json = null;
      }
      this.baseJson = json;
    }
    if (this.baseJson === null || (fields && collides(fields, this.base))) return undefined;
    let fieldsJson = '';
    if (fields) {
      try {
        fieldsJson = JSON.stringify(fields);
      } catch {
        return undefined;
      }
      // A toJSON of the fields' own may turn them into something other than an object.
      if (fieldsJson === undefined || fieldsJson[0] !== '{') return undefined;
      fieldsJson = fieldsJson.slice(1, -1);
    }
    const rest = this.baseJson && fieldsJson ? `${this.baseJson},${fieldsJson}` : this.baseJson || fieldsJson;
    return `{"level":"${lvl}","time":"${isoNow()}","message":${JSON.stringify(message)}${rest ? `,${rest}` : ''}}\n`;
  }

  private line(lvl: LogLevel, message: string, fields?: LogFields): string {
    const record = { level: lvl, time: isoNow(), message, ...this.base, ...fields };
    let line: string;
    try {
      line = JSON.stringify(record, bigintReplacer);
    } catch {
      line = JSON.stringify({ level: lvl, time: record.time, message, note: 'unserialisable fields' });
    }
    return line + '\n';
  }

  debug(message: string, fields?: LogFields): void {
    if (this.min <= RANK.debug) this.emit('debug', message, fields);
  }
  info(message: string, fields?: LogFields): void {
    if (this.min <= RANK.info) this.emit('info', message, fields);
  }
  warn(message: string, fields?: LogFields): void {
    if (this.min <= RANK.warn) this.emit('warn', message, fields);
  }
  error(message: string, fields?: LogFields): void {
    if (this.min <= RANK.error) this.emit('error', message, fields);
  }
  child(fields: LogFields): Logger {
    return new JsonLogger(this.min, { ...this.base, ...fields }, this.write);
  }
}

/**
 * A logger writing one JSON object per line: `level`, `time`, `message`, then `base`, then the
 * call's fields (later keys win). Without `write`, lines go to stdout (batched per event-loop
 * turn, see writeStdout).
 */
export function createLogger(level: LogLevel = 'info', base: LogFields = {}, write: (line: string) => void = writeStdout): Logger {
  return new JsonLogger(RANK[level], base, write);
}
