/**
 * The real invalidation transports between two buses: PostgreSQL LISTEN/NOTIFY (postgresql
 * project) and Redis pub/sub. A message crosses in well under a second; junk published on the
 * channel by someone else is ignored; when the listening connection is killed, the bus
 * reconnects, reports a reset (messages may have been missed) and hears again.
 */
import pg from 'pg';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { InvalidationBus, type Invalidation, type InvalidationTransport } from '../../src/core/invalidation.ts';
import { PgNotifyTransport, PG_CHANNEL } from '../../src/core/invalidation-pg.ts';
import { RedisPubSubTransport } from '../../src/core/invalidation-redis.ts';
import { createLogger } from '../../src/log.ts';
import { TEST_DATABASE_URL, createTestDatabase, type TestDatabase } from '../helpers/database.ts';

const REDIS_URL = 'redis://127.0.0.1:6379';
const log = createLogger('error');

async function until(check: () => boolean, timeoutMs = 5000): Promise<number> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - started;
}

interface Harness {
  a: InvalidationBus;
  b: InvalidationBus;
  seenB: Invalidation[];
  resetsB: () => number;
  /** Publishes a raw payload on the channel, as someone else could. */
  raw(payload: string): Promise<void>;
  /** Cuts B's listening connection from the server side. */
  cutB(): Promise<void>;
  close(): Promise<void>;
}

function wire(transportA: InvalidationTransport, transportB: InvalidationTransport) {
  const a = new InvalidationBus(transportA, log);
  const b = new InvalidationBus(transportB, log);
  const seenB: Invalidation[] = [];
  let resets = 0;
  b.subscribe((m) => seenB.push(m));
  b.onReset(() => resets++);
  return { a, b, seenB, resetsB: () => resets };
}

function behaviour(name: string, make: () => Promise<Harness>) {
  describe(name, () => {
    let h: Harness;
    afterAll(async () => h?.close());

    it('a message published on A is applied on B within 1 s', async () => {
      h = await make();
      // Warm-up: the first publish may have to open a pooled connection.
      await h.a.publish({ topic: 'plugins' });
      await until(() => h.seenB.length === 1);
      h.seenB.length = 0;
      const started = Date.now();
      await h.a.publish({ topic: 'users', ids: [42] });
      await until(() => h.seenB.length === 1, 1000);
      expect(Date.now() - started).toBeLessThan(1000);
      expect(h.seenB).toEqual([{ topic: 'users', ids: [42] }]);
    });

    it('junk on the channel is ignored; the next good message still arrives', async () => {
      h.seenB.length = 0;
      await h.raw('{"o":"x","m":{"topic":"users","ids":["drop table"]}}');
      await h.raw('garbage');
      await h.a.publish({ topic: 'keys' });
      await until(() => h.seenB.length >= 1);
      expect(h.seenB).toEqual([{ topic: 'keys' }]);
    });

    it('a cut listening connection: B reconnects, reports a reset, and hears again', async () => {
      h.seenB.length = 0;
      const resetsBefore = h.resetsB();
      await h.cutB();
      await until(() => h.resetsB() > resetsBefore, 10_000);
      await h.a.publish({ topic: 'sessions', ids: ['s-1'] });
      await until(() => h.seenB.length === 1, 2000);
      expect(h.seenB).toEqual([{ topic: 'sessions', ids: ['s-1'] }]);
    });
  });
}

describe.skipIf(!TEST_DATABASE_URL)('PostgreSQL LISTEN/NOTIFY', () => {
  behaviour('between two instances on one database', async () => {
    const database: TestDatabase = await createTestDatabase();
    const pool = new pg.Pool({ connectionString: database.url, max: 2 });
    const { a, b, seenB, resetsB } = wire(new PgNotifyTransport(database.url!, pool, log), new PgNotifyTransport(database.url!, pool, log));
    await a.start();
    await b.start();
    return {
      a,
      b,
      seenB,
      resetsB,
      raw: async (payload) => {
        await pool.query('SELECT pg_notify($1, $2)', [PG_CHANNEL, payload]);
      },
      cutB: async () => {
        // Both buses listen; cut every listener but ours (B reconnects; A too, harmlessly).
        await pool.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'",
        );
      },
      close: async () => {
        await a.close();
        await b.close();
        await pool.end();
        await database.drop();
      },
    };
  });
});

behaviour('Redis pub/sub', async () => {
  const channel = `saleor-auth:invalidation:test-${process.pid}-${Date.now()}`;
  const bName = `invalidation-test-b-${process.pid}-${Date.now()}`;
  const { a, b, seenB, resetsB } = wire(new RedisPubSubTransport(REDIS_URL, channel, log), new RedisPubSubTransport(REDIS_URL, channel, log, bName));
  await a.start();
  await b.start();
  const admin = new Redis(REDIS_URL);
  return {
    a,
    b,
    seenB,
    resetsB,
    raw: async (payload) => {
      await admin.publish(channel, payload);
    },
    cutB: async () => {
      // B's subscriber connection only (other test files may be using this Redis).
      const clients = (await admin.client('LIST')) as string;
      const line = clients.split('\n').find((l) => l.includes(` name=${bName} `));
      const id = line && /id=(\d+)/.exec(line)?.[1];
      expect(id).toBeDefined();
      await admin.client('KILL', 'ID', id!);
    },
    close: async () => {
      await a.close();
      await b.close();
      await admin.quit();
    },
  };
});
