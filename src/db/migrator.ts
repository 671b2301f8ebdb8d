/**
 * Applies prisma/migrations/<name>/migration.sql in name order and records them in
 * `_prisma_migrations` exactly as Prisma Migrate does (checksum = SHA-256 hex of the file),
 * so `prisma migrate deploy` on a machine that has Prisma's engines agrees with us.
 *
 * - Concurrency: a session-level advisory lock serialises migrators, so two servers starting
 *   at once against one database never apply a migration twice.
 * - Failure: each migration runs in one transaction together with its history row; a
 *   failing migration is rolled back whole and nothing is recorded.
 *   (Statements that cannot run inside a transaction, e.g. CREATE INDEX CONCURRENTLY,
 *   are therefore not supported in migrations.)
 */
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import type { Logger } from '../log.ts';

export const DEFAULT_MIGRATIONS_DIR = fileURLToPath(new URL('../../prisma/migrations', import.meta.url));

/** Arbitrary constant naming our advisory lock ("sa-mi" for saleor migrations). */
const ADVISORY_LOCK_KEY = 0x7361_6d69;

// Prisma's own history table definition (PostgreSQL).
const HISTORY_TABLE_DDL = `
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

export interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

export class MigrationError extends Error {
  constructor(
    readonly migration: string,
    detail: string,
  ) {
    super(
      `Migration ${migration} failed: ${detail}. ` +
        'It was rolled back: the database is as it was before this migration. Fix the migration and start again.',
    );
    this.name = 'MigrationError';
  }
}

export function readMigrations(dir: string = DEFAULT_MIGRATIONS_DIR): Migration[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(path.join(dir, d.name, 'migration.sql')))
    .map((d) => d.name)
    .sort()
    .map((name) => {
      const sql = readFileSync(path.join(dir, name, 'migration.sql'), 'utf8');
      return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    });
}

interface HistoryRow {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
  rolled_back_at: Date | null;
}

/**
 * Applies pending migrations. Returns the names applied now (empty when up to date).
 * Throws MigrationError when one fails or when the history holds an unfinished migration.
 */
export async function migrate(
  pool: pg.Pool,
  log: Logger,
  migrations: Migration[] = readMigrations(),
): Promise<string[]> {
  const client = await pool.connect();
  const applied: string[] = [];
  try {
    await client.query('SELECT pg_advisory_lock($1)', [ADVISORY_LOCK_KEY]);
    await client.query(HISTORY_TABLE_DDL);
    const { rows } = await client.query<HistoryRow>(
      'SELECT migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations"',
    );
    const unfinished = rows.find((r) => r.finished_at === null && r.rolled_back_at === null);
    if (unfinished) {
      throw new MigrationError(
        unfinished.migration_name,
        'the history table records it as started but not finished (a failed earlier attempt); ' +
          'repair the database and mark it rolled back or applied',
      );
    }
    const done = new Map(rows.filter((r) => r.finished_at !== null).map((r) => [r.migration_name, r]));
    for (const m of migrations) {
      const previous = done.get(m.name);
      if (previous) {
        if (previous.checksum !== m.checksum) {
          log.warn('migration file changed after it was applied', { migration: m.name });
        }
        continue;
      }
      const started = Date.now();
      try {
        await client.query('BEGIN');
        await client.query(m.sql);
        await client.query(
          `INSERT INTO "_prisma_migrations"
             (id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count)
           VALUES ($1, $2, now(), $3, NULL, NULL, now(), 1)`,
          [randomUUID(), m.checksum, m.name],
        );
        await client.query('COMMIT');
      } catch (e) {
        await client.query('ROLLBACK').catch(() => {});
        throw new MigrationError(m.name, e instanceof Error ? e.message : String(e));
      }
      applied.push(m.name);
      log.info('migration applied', { migration: m.name, ms: Date.now() - started });
    }
    return applied;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [ADVISORY_LOCK_KEY]).catch(() => {});
    client.release();
  }
}
