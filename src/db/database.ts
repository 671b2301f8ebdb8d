/**
 * Opens the database: PostgreSQL when DATABASE_URL is set, otherwise the embedded PGlite in
 * DATA_DIR. Either way the rest of the code sees one `pg` pool and one Prisma client.
 */
import pg from 'pg';
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from '../generated/prisma/client.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { openEmbeddedDatabase } from './embedded.ts';

export type Prisma = PrismaClient;

export interface Database {
  kind: 'postgresql' | 'embedded';
  prisma: PrismaClient;
  pool: pg.Pool;
  /** Cheap reachability check for /readyz. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface OpenOptions {
  /**
   * Embedded only: attach to the data directory when another process already serves it
   * (the CLI does; a second server must not).
   */
  attach: boolean;
}

/**
 * Waits for PostgreSQL to answer: a server started before its database retries with backoff,
 * saying so, for up to `timeoutMs` (DATABASE_CONNECT_TIMEOUT_SECONDS) instead of exiting.
 */
async function waitForDatabase(pool: pg.Pool, timeoutMs: number, log: Logger): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 1, delay = 250; ; attempt++, delay = Math.min(delay * 2, 5000)) {
    try {
      await pool.query('SELECT 1');
      if (attempt > 1) log.info('database reachable', { attempt });
      return;
    } catch (e) {
      if (Date.now() + delay > deadline) throw e;
      log.warn('database not reachable yet; retrying', { attempt, retryInMs: delay, errorMessage: (e as Error).message });
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

export async function openDatabase(
  config: Pick<Config, 'databaseUrl' | 'dataDir'> & Partial<Pick<Config, 'databaseConnectTimeoutMs'>>,
  log: Logger,
  options: OpenOptions,
): Promise<Database> {
  let pool: pg.Pool;
  let closeBackend = async () => {};
  let kind: Database['kind'];
  if (config.databaseUrl) {
    kind = 'postgresql';
    pool = new pg.Pool({ connectionString: config.databaseUrl, max: 10, connectionTimeoutMillis: 10_000 });
  } else {
    kind = 'embedded';
    const embedded = await openEmbeddedDatabase(config.dataDir, log, { attach: options.attach });
    // One connection: pglite-socket keeps one connection's protocol messages together only
    // inside an explicit transaction, so concurrent connections get each other's portals and
    // prepared statements (wrong rows, "portal does not exist"). PGlite runs one query at a
    // time anyway.
    pool = new pg.Pool({ ...embedded.connection, max: 1, connectionTimeoutMillis: 30_000 });
    closeBackend = embedded.close;
  }
  // An idle client that loses its server must not crash the process.
  pool.on('error', (error) => log.warn('database connection error', { errorMessage: error.message }));
  if (kind === 'postgresql') {
    try {
      await waitForDatabase(pool, config.databaseConnectTimeoutMs ?? 0, log);
    } catch (e) {
      await pool.end().catch(() => {});
      throw e;
    }
  }
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  return {
    kind,
    prisma,
    pool,
    ping: async () => {
      await pool.query('SELECT 1');
    },
    close: async () => {
      await prisma.$disconnect();
      await pool.end();
      await closeBackend();
    },
  };
}
