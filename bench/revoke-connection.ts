/**
 * `npx tsx bench/revoke-connection.ts`: what ending every session of one connection costs (a
 * connection deleted, or pointed at another provider), with many sessions in PostgreSQL.
 *
 * Creates the database `bench_revoke` (BENCH_REVOKE_PG, default
 * postgresql://postgres@127.0.0.1:5432; dropped at the start and at the end), builds the
 * services as the server does (src/app.ts createServices: migrations, the LISTEN/NOTIFY
 * invalidation channel), seeds BENCH_REVOKE_SESSIONS (1,000,000) live sessions of one connection
 * with generate_series, and times two ways of ending them, each on a fresh seed:
 *   - "ids announced" (the baseline: how it was done until 4360d92): the ids loaded, one UPDATE,
 *     then every id announced on the channel (100 per message);
 *   - "one UPDATE" (SessionService.revokeConnection, as the server does it now): the UPDATE only,
 *     then one configuration-change announcement.
 * Prints the time, the sessions still live afterwards (must be 0), the invalidation messages each
 * sent (from the metrics) and the process RSS.
 */
import pg from 'pg';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/log.ts';
import { createServices } from '../src/app.ts';
import { SECRET, adminQuery } from './lib.ts';
import { parseMetrics, sampleValue } from '../test/helpers/prometheus.ts';

const SESSIONS = Number(process.env['BENCH_REVOKE_SESSIONS'] ?? 1_000_000);
const PG = process.env['BENCH_REVOKE_PG'] ?? 'postgresql://postgres@127.0.0.1:5432';
const DB = 'bench_revoke';
const PLUGIN = 'bench.revoke';

const admin = (sql: string) => adminQuery(PG, sql);

async function main(): Promise<void> {
  const url = `${PG}/${DB}`;
  await admin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin(`CREATE DATABASE ${DB}`);
  const config = loadConfig({ ...process.env, DATABASE_URL: url, SECRET_KEY: SECRET, LOG_LEVEL: 'warn', NODE_ENV: 'development' });
  const app = await createServices(config, createLogger('warn'), 'server');
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    const userId = (await db.query<{ id: number }>(`INSERT INTO users (email, token_key, updated_at) VALUES ('bench@example.com', 'k', now()) RETURNING id`)).rows[0]!.id;
    const seed = async () => {
      await db.query('TRUNCATE sessions');
      await db.query(
        `INSERT INTO sessions (id, user_id, plugin_id, issuer, subject, refresh_token_id, expires_at)
         SELECT md5('s' || g), $1, $2, 'https://idp.example.com', 'sub-' || g, md5('r' || g), now() + interval '30 days'
         FROM generate_series(1, $3::int) g`,
        [userId, PLUGIN, SESSIONS],
      );
      await db.query('VACUUM ANALYZE sessions');
    };
    const sent = async (kind: string) => sampleValue(parseMetrics((await app.metrics.render()).body), 'saleor_auth_invalidation_messages_total', { direction: 'sent', kind }) ?? 0;
    const ways: Array<[string, () => Promise<number>]> = [
      ['ids announced (before)', async () => {
        const ids = await app.db.prisma.session.findMany({ where: { pluginId: PLUGIN, revokedAt: null }, select: { id: true } });
        const { count } = await app.db.prisma.session.updateMany({ where: { pluginId: PLUGIN, revokedAt: null }, data: { revokedAt: new Date(), revokedReason: 'connection-reconfigured' } });
        await app.bus.publish({ topic: 'sessions', ids: ids.map((x) => x.id) });
        return count;
      }],
      ['one UPDATE (now)', async () => {
        const count = await app.sessions.revokeConnection(PLUGIN, 'connection-reconfigured');
        // The announcement is sent without waiting for it: let it go out before counting.
        await new Promise((r) => setTimeout(r, 100));
        return count;
      }],
    ];
    console.log(`${SESSIONS} live sessions of one connection, PostgreSQL, node ${process.version}`);
    console.log(['way'.padEnd(24), 'revoked'.padStart(9), 'seconds'.padStart(8), 'live after'.padStart(10), 'messages'.padStart(9), 'RSS MB'.padStart(7)].join(' '));
    for (const [name, revoke] of ways) {
      await seed();
      const messages0 = (await sent('sessions')) + (await sent('plugins'));
      const t0 = performance.now();
      const count = await revoke();
      const seconds = (performance.now() - t0) / 1000;
      const messages = (await sent('sessions')) + (await sent('plugins')) - messages0;
      const live = (await db.query<{ n: string }>('SELECT count(*) AS n FROM sessions WHERE revoked_at IS NULL')).rows[0]!.n;
      console.log([name.padEnd(24), String(count).padStart(9), seconds.toFixed(2).padStart(8), live.padStart(10), String(messages).padStart(9), (process.memoryUsage().rss / 1e6).toFixed(0).padStart(7)].join(' '));
    }
  } finally {
    await db.end();
    await app.bus.close();
    await app.db.close();
    await admin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
