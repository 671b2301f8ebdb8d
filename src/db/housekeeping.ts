/**
 * Housekeeping: a periodic job that deletes rows nobody needs any more.
 *
 * Rules:
 * - One instance at a time: a run first takes a PostgreSQL session advisory lock
 *   (pg_try_advisory_lock) on a dedicated pooled client, and does all its work on that client,
 *   never awaiting another pool query while holding it (the embedded database has one pooled
 *   connection: that would deadlock). When another instance holds the lock the run does nothing.
 *   With `lock: false` (the embedded database: one instance) each statement takes a pooled
 *   connection for itself only, so requests get theirs between batches.
 * - Deletes go in batches of `batchSize` rows (one short statement each, rows locked by others
 *   skipped), looping until a batch comes back short, so no request waits on us for long.
 *   Every statement repeats its condition, so a row changed meanwhile is re-checked.
 * - What goes:
 *   - authorization requests expired more than AUTHORIZATION_REQUEST_MARGIN_MS ago;
 *   - sessions expired, or revoked, more than `sessionRetentionDays` ago (kept for audits);
 *   - used logout-token ids past their expires_at (the token's max age refuses replays after);
 *   - retired signing keys past verify_until; the current signing key never;
 *   - audit events older than `auditRetentionDays`.
 * - The timer never throws: a failed run is logged, and the next one comes an interval later.
 *   One info line per run, with counts per table, only when something was deleted.
 */
import type pg from 'pg';
import type { Logger } from '../log.ts';
import { describeError } from '../log.ts';

/** Key of the advisory lock ("hskp" as a number): shared by every instance on one database. */
export const HOUSEKEEPING_LOCK_KEY = 0x68736b70;
/** Authorization requests are kept this long past their expiry (clock skew between instances). */
export const AUTHORIZATION_REQUEST_MARGIN_MS = 60_000;
const DAY_MS = 86_400_000;

export interface HousekeepingOptions {
  sessionRetentionDays: number;
  auditRetentionDays: number;
  /** Rows per DELETE statement (default 1000). */
  batchSize?: number;
  /** Take the advisory lock (default true). The embedded database has one instance: no need. */
  lock?: boolean;
  /** Stops a run between two batches (shutdown). */
  signal?: AbortSignal;
}

export interface HousekeepingCounts {
  authorizationRequests: number;
  sessions: number;
  usedLogoutTokens: number;
  signingKeys: number;
  auditEvents: number;
}

export interface HousekeepingResult {
  /** False when another instance held the lock: nothing was done. */
  ran: boolean;
  /** Whether this run took the advisory lock. */
  lockTaken: boolean;
  deleted: HousekeepingCounts;
}

type Query = (text: string, values: unknown[]) => Promise<{ rowCount: number | null }>;

/**
 * One batched delete: `condition` uses $1 (a timestamp); $2 is the batch size. The rows are
 * chosen and locked by the subquery (SKIP LOCKED: never wait for a request), and the outer
 * condition is checked again on the row actually deleted.
 */
function batchDelete(table: string, condition: string): string {
  return (
    `DELETE FROM ${table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM ${table} WHERE ${condition} ` +
    `LIMIT $2 FOR UPDATE SKIP LOCKED)) AND ${condition}`
  );
}

const TASKS: ReadonlyArray<{ key: keyof HousekeepingCounts; sql: string; cutoff: (now: number, o: HousekeepingOptions) => number }> = [
  {
    key: 'authorizationRequests',
    sql: batchDelete('authorization_requests', 'expires_at < $1'),
    cutoff: (now) => now - AUTHORIZATION_REQUEST_MARGIN_MS,
  },
  {
    key: 'sessions',
    sql: batchDelete('sessions', '(expires_at < $1 OR revoked_at < $1)'),
    cutoff: (now, o) => now - o.sessionRetentionDays * DAY_MS,
  },
  {
    key: 'usedLogoutTokens',
    sql: batchDelete('used_logout_tokens', 'expires_at < $1'),
    cutoff: (now) => now,
  },
  {
    key: 'signingKeys',
    // Retired, past its window, and not the newest unretired key (the signer; if there is
    // none, the comparison is NULL and nothing is deleted).
    sql: batchDelete(
      'signing_keys',
      'retired_at IS NOT NULL AND verify_until IS NOT NULL AND verify_until < $1 AND kid <> ' +
        '(SELECT s.kid FROM signing_keys s WHERE s.retired_at IS NULL ORDER BY s.created_at DESC LIMIT 1)',
    ),
    cutoff: (now) => now,
  },
  {
    key: 'auditEvents',
    sql: batchDelete('audit_events', 'at < $1'),
    cutoff: (now, o) => now - o.auditRetentionDays * DAY_MS,
  },
];

async function deleteAll(query: Query, options: HousekeepingOptions, now: Date): Promise<HousekeepingCounts> {
  const batchSize = options.batchSize ?? 1000;
  const deleted: HousekeepingCounts = { authorizationRequests: 0, sessions: 0, usedLogoutTokens: 0, signingKeys: 0, auditEvents: 0 };
  for (const task of TASKS) {
    const cutoff = new Date(task.cutoff(now.getTime(), options));
    for (;;) {
      if (options.signal?.aborted) return deleted;
      const count = (await query(task.sql, [cutoff, batchSize])).rowCount ?? 0;
      deleted[task.key] += count;
      if (count < batchSize) break;
    }
  }
  return deleted;
}

/** One housekeeping run. Returns what it deleted, and whether it could take the lock. */
export async function runHousekeeping(pool: pg.Pool, options: HousekeepingOptions, now: Date = new Date()): Promise<HousekeepingResult> {
  if (options.lock === false) {
    const deleted = await deleteAll((text, values) => pool.query(text, values), options, now);
    return { ran: true, lockTaken: false, deleted };
  }
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    const { rows } = await client.query<{ taken: boolean }>('SELECT pg_try_advisory_lock($1) AS taken', [HOUSEKEEPING_LOCK_KEY]);
    if (!rows[0]?.taken) {
      return { ran: false, lockTaken: false, deleted: { authorizationRequests: 0, sessions: 0, usedLogoutTokens: 0, signingKeys: 0, auditEvents: 0 } };
    }
    try {
      const deleted = await deleteAll((text, values) => client.query(text, values), options, now);
      return { ran: true, lockTaken: true, deleted };
    } finally {
      // If unlocking fails, the connection is dropped below, which releases the lock too.
      await client.query('SELECT pg_advisory_unlock($1)', [HOUSEKEEPING_LOCK_KEY]).catch((e: Error) => {
        broken = e;
      });
    }
  } catch (e) {
    broken ??= e as Error;
    throw e;
  } finally {
    client.release(broken);
  }
}

export interface HousekeepingJob {
  /** Cancels the timer, stops a run in progress between two batches and waits for it. */
  stop(): Promise<void>;
}

/** Runs housekeeping every `intervalMs` (first run one interval after the start). */
export function startHousekeeping(pool: pg.Pool, options: HousekeepingOptions, intervalMs: number, log: Logger): HousekeepingJob {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  const tick = async () => {
    const started = Date.now();
    try {
      const result = await runHousekeeping(pool, { ...options, signal: abort.signal });
      const total = Object.values(result.deleted).reduce((a, b) => a + b, 0);
      if (total > 0) log.info('housekeeping', { ...result.deleted, durationMs: Date.now() - started });
      else if (!result.ran) log.debug('housekeeping skipped: another instance holds the lock');
    } catch (e) {
      log.error('housekeeping failed', describeError(e));
    }
  };
  const schedule = () => {
    if (abort.signal.aborted) return;
    timer = setTimeout(() => {
      running = tick().finally(() => {
        running = undefined;
        schedule();
      });
    }, intervalMs);
    timer.unref();
  };
  schedule();
  return {
    async stop() {
      abort.abort();
      clearTimeout(timer);
      await running;
    },
  };
}
