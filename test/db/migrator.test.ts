/**
 * The migrator on a real database (embedded PGlite, and PostgreSQL in the `postgresql`
 * project): apply on an empty database, re-run as a no-op, Prisma-compatible history rows,
 * a failing migration rolled back whole, concurrent migrators, and a server that refuses to
 * start over an unfinished migration.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/db/database.ts';
import { migrate, MigrationError, readMigrations } from '../../src/db/migrator.ts';
import { createLogger } from '../../src/log.ts';
import { loadConfig } from '../../src/config.ts';
import { startServer } from '../../src/app.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { TEST_SECRET_KEY } from '../helpers/server.ts';

const logs: string[] = [];
const log = createLogger('debug', {}, (l) => logs.push(l));
let dataDir: string;
let testDb: TestDatabase;
let db: Database;

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'sat-mig-'));
  testDb = await createTestDatabase();
  db = await openDatabase({ databaseUrl: testDb.url, dataDir }, log, { attach: false });
});

afterAll(async () => {
  await db?.close();
  await testDb?.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

const tables = async () =>
  (await db.pool.query<{ t: string }>(`SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`)).rows.map((r) => r.t);

describe('migrate', () => {
  const migrations = readMigrations();

  it('finds the repository migrations in order', () => {
    expect(migrations.length).toBeGreaterThanOrEqual(1);
    const names = migrations.map((m) => m.name);
    expect(names).toEqual([...names].sort());
    expect(names[0]).toMatch(/^\d{14}_init$/);
  });

  it('applies every migration to an empty database and records it as Prisma does', async () => {
    expect(await tables()).toEqual([]);
    const applied = await migrate(db.pool, log, migrations);
    expect(applied).toEqual(migrations.map((m) => m.name));
    expect(await tables()).toEqual(
      expect.arrayContaining(['users', 'external_identities', 'permission_groups', 'group_members', 'plugin_configurations', 'signing_keys', 'sessions', 'authorization_requests', 'audit_events', '_prisma_migrations']),
    );
    const { rows } = await db.pool.query(`SELECT * FROM "_prisma_migrations" ORDER BY migration_name`);
    expect(rows).toHaveLength(migrations.length);
    const first = rows[0];
    expect(first.migration_name).toBe(migrations[0]!.name);
    expect(first.checksum).toBe(createHash('sha256').update(migrations[0]!.sql).digest('hex'));
    expect(first.finished_at).toBeInstanceOf(Date);
    expect(first.rolled_back_at).toBeNull();
    expect(first.applied_steps_count).toBe(1);
    expect(first.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('is a no-op when run again', async () => {
    const before = (await db.pool.query(`SELECT count(*)::int AS n FROM "_prisma_migrations"`)).rows[0].n;
    expect(await migrate(db.pool, log, migrations)).toEqual([]);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM "_prisma_migrations"`)).rows[0].n).toBe(before);
  });

  it('rolls a failing migration back whole and records nothing', async () => {
    const bad = {
      name: '20990101000000_broken',
      sql: 'CREATE TABLE half_done (id int);\nALTER TABLE users ADD COLUMN oops int;\nSELECT * FROM no_such_table;',
      checksum: 'x'.repeat(64),
    };
    const error = await migrate(db.pool, log, [...migrations, bad]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationError);
    expect((error as Error).message).toContain('20990101000000_broken');
    expect((error as Error).message).toContain('no_such_table');
    expect(await tables()).not.toContain('half_done');
    const cols = await db.pool.query(`SELECT column_name FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'oops'`);
    expect(cols.rowCount).toBe(0);
    const history = await db.pool.query(`SELECT 1 FROM "_prisma_migrations" WHERE migration_name = $1`, [bad.name]);
    expect(history.rowCount).toBe(0);
  });

  it('applies a pending migration once when two migrators race', async () => {
    const next = { name: '20990102000000_add_table', sql: 'CREATE TABLE race_check (id int);', checksum: 'y'.repeat(64) };
    let second: Database | undefined;
    // On PostgreSQL a second pool is a second client of the server; on PGlite the CLI-style
    // attach goes through the same socket. Either way the advisory lock serialises them.
    second = await openDatabase({ databaseUrl: testDb.url, dataDir }, log, { attach: true });
    try {
      const results = await Promise.all([
        migrate(db.pool, log, [...migrations, next]),
        migrate(second.pool, log, [...migrations, next]),
      ]);
      expect(results.flat()).toEqual([next.name]);
      const history = await db.pool.query(`SELECT count(*)::int AS n FROM "_prisma_migrations" WHERE migration_name = $1`, [next.name]);
      expect(history.rows[0].n).toBe(1);
    } finally {
      await second.close();
    }
  });

  it('makes the server refuse to start while a migration is recorded as unfinished', async () => {
    await db.pool.query(
      `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, applied_steps_count) VALUES ($1, $2, $3, now(), 0)`,
      ['00000000-0000-4000-8000-000000000001', 'z'.repeat(64), '20990103000000_half_applied'],
    );
    // Release the database (on PGlite only one process may own the directory), then start
    // a real server on it: it must refuse, naming the migration.
    await db.close();
    const config = loadConfig({
      PORT: '0',
      HOST: '127.0.0.1',
      DATA_DIR: dataDir,
      SECRET_KEY: TEST_SECRET_KEY,
      ...(testDb.url ? { DATABASE_URL: testDb.url } : {}),
    });
    await expect(startServer(config, log)).rejects.toThrow(/20990103000000_half_applied.*started but not finished/);
    db = await openDatabase({ databaseUrl: testDb.url, dataDir }, log, { attach: false });
    await db.pool.query(`DELETE FROM "_prisma_migrations" WHERE migration_name = '20990103000000_half_applied'`);
  });
});
