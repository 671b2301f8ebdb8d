/**
 * Housekeeping (issue 11): a run deletes exactly the rows past their time (expired
 * authorization requests, sessions expired or revoked longer ago than the retention, used
 * logout-token ids, retired signing keys past their window, old audit events), in batches, and
 * keeps everything else, the current signing key included. The server's own timer does it and
 * logs counts. On PostgreSQL: one instance at a time (advisory lock); a run that finds the lock
 * held does nothing, and two concurrent runs delete each row once.
 */
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { TEST_DATABASE_URL } from '../helpers/database.ts';
import { HOUSEKEEPING_LOCK_KEY, runHousekeeping, type HousekeepingOptions } from '../../src/db/housekeeping.ts';
import type { Prisma } from '../../src/db/database.ts';

const DAY = 86_400_000;
const OPTIONS: HousekeepingOptions = { sessionRetentionDays: 7, auditRetentionDays: 90, batchSize: 2 };

let s: TestServer;
let prisma: Prisma;
let userId: number;
let currentKid: string;

beforeAll(async () => {
  s = await startTestServer({ HOUSEKEEPING_INTERVAL_SECONDS: '0' });
  prisma = s.running.app.db.prisma;
  userId = (await prisma.user.create({ data: { email: 'hk@example.com', tokenKey: 'k' } })).id;
  currentKid = s.running.app.keyring.signingKey().kid;
});
afterAll(async () => {
  await s?.close();
});

/** Empties the tables housekeeping works on (the current signing key stays). */
async function clear() {
  await prisma.authorizationRequest.deleteMany();
  await prisma.session.deleteMany();
  await prisma.usedLogoutToken.deleteMany();
  await prisma.signingKey.deleteMany({ where: { kid: { not: currentKid } } });
  await prisma.auditEvent.deleteMany();
}

function at(now: Date, offsetMs: number): Date {
  return new Date(now.getTime() + offsetMs);
}

/** Inserts rows on both sides of every cutoff; names starting with "old" must go. */
async function seed(now: Date) {
  const authReq = (stateHash: string, expiresAt: Date) => ({
    stateHash, pluginId: 'p', redirectUri: 'https://shop.example.com/cb', nonce: 'n', codeVerifierEncrypted: 'x', expiresAt,
  });
  await prisma.authorizationRequest.createMany({
    data: [
      authReq('old-1', at(now, -120_000)),
      authReq('old-2', at(now, -3600_000)),
      authReq('old-3', at(now, -DAY)),
      authReq('live-margin', at(now, -10_000)), // expired 10 s ago: inside the margin
      authReq('live', at(now, 600_000)),
    ],
  });
  const session = (id: string, expiresAt: Date, revokedAt: Date | null = null) => ({
    id, userId, pluginId: 'p', issuer: 'https://idp', subject: 'sub', refreshTokenId: `r-${id}`, expiresAt, revokedAt,
  });
  await prisma.session.createMany({
    data: [
      session('old-expired', at(now, -8 * DAY)),
      session('old-revoked', at(now, 20 * DAY), at(now, -8 * DAY)),
      session('live-expired-recently', at(now, -6 * DAY)),
      session('live-revoked-recently', at(now, 20 * DAY), at(now, -6 * DAY)),
      session('live', at(now, 20 * DAY)),
    ],
  });
  await prisma.usedLogoutToken.createMany({
    data: [
      { issuer: 'https://idp', jti: 'old-1', expiresAt: at(now, -1000) },
      { issuer: 'https://idp', jti: 'old-2', expiresAt: at(now, -DAY) },
      { issuer: 'https://idp', jti: 'live', expiresAt: at(now, 60_000) },
    ],
  });
  const key = (kid: string, retiredAt: Date | null, verifyUntil: Date | null) => ({
    kid, alg: 'RS256', publicJwk: {}, privateJwkEncrypted: 'x', createdAt: at(now, -30 * DAY), retiredAt, verifyUntil,
  });
  await prisma.signingKey.createMany({
    data: [
      key('old-retired', at(now, -20 * DAY), at(now, -1000)),
      key('live-retired-verifying', at(now, -DAY), at(now, DAY)),
    ],
  });
  await prisma.auditEvent.createMany({
    data: [
      { type: 'old', outcome: 'ok', at: at(now, -91 * DAY) },
      { type: 'old', outcome: 'ok', at: at(now, -365 * DAY) },
      { type: 'old', outcome: 'ok', at: at(now, -100 * DAY) },
      { type: 'live', outcome: 'ok', at: at(now, -89 * DAY) },
      { type: 'live', outcome: 'ok', at: now },
    ],
  });
}

const EXPECTED_DELETED = { authorizationRequests: 3, sessions: 2, usedLogoutTokens: 2, signingKeys: 1, auditEvents: 3 };

async function remaining() {
  const sorted = (xs: string[]) => [...xs].sort();
  return {
    authorizationRequests: sorted((await prisma.authorizationRequest.findMany()).map((r) => r.stateHash)),
    sessions: sorted((await prisma.session.findMany()).map((r) => r.id)),
    usedLogoutTokens: sorted((await prisma.usedLogoutToken.findMany()).map((r) => r.jti)),
    signingKeys: sorted((await prisma.signingKey.findMany()).map((r) => r.kid)),
    auditEvents: sorted((await prisma.auditEvent.findMany()).map((r) => r.type)),
  };
}

const EXPECTED_LEFT = () => ({
  authorizationRequests: ['live', 'live-margin'],
  sessions: ['live', 'live-expired-recently', 'live-revoked-recently'],
  usedLogoutTokens: ['live'],
  signingKeys: [currentKid, 'live-retired-verifying'].sort(),
  auditEvents: ['live', 'live'],
});

describe('housekeeping', () => {
  beforeEach(clear);

  it('deletes exactly the rows past their time, in batches, and keeps the rest', async () => {
    const now = new Date();
    await seed(now);
    const first = await runHousekeeping(s.running.app.db.pool, OPTIONS, now);
    expect(first).toEqual({ ran: true, lockTaken: true, deleted: EXPECTED_DELETED });
    expect(await remaining()).toEqual(EXPECTED_LEFT());

    const again = await runHousekeeping(s.running.app.db.pool, OPTIONS, now);
    expect(again.deleted).toEqual({ authorizationRequests: 0, sessions: 0, usedLogoutTokens: 0, signingKeys: 0, auditEvents: 0 });
  });

  it('never deletes the current signing key, whatever its columns say', async () => {
    const now = new Date();
    await prisma.signingKey.update({ where: { kid: currentKid }, data: { verifyUntil: at(now, -DAY) } });
    try {
      const result = await runHousekeeping(s.running.app.db.pool, OPTIONS, at(now, 1000 * DAY));
      expect(result.deleted.signingKeys).toBe(0);
      expect(await prisma.signingKey.count({ where: { kid: currentKid } })).toBe(1);
    } finally {
      await prisma.signingKey.update({ where: { kid: currentKid }, data: { verifyUntil: null } });
    }
  });

  it('works without the lock (embedded database: one statement per pooled connection)', async () => {
    const now = new Date();
    await seed(now);
    const result = await runHousekeeping(s.running.app.db.pool, { ...OPTIONS, lock: false }, now);
    expect(result).toEqual({ ran: true, lockTaken: false, deleted: EXPECTED_DELETED });
    expect(await remaining()).toEqual(EXPECTED_LEFT());
  });

  it("runs on the server's timer and logs one line with the counts", async () => {
    const t = await startTestServer({ HOUSEKEEPING_INTERVAL_SECONDS: '1' });
    try {
      await t.running.app.db.prisma.usedLogoutToken.create({ data: { issuer: 'https://idp', jti: 'gone', expiresAt: new Date(Date.now() - 1000) } });
      const deadline = Date.now() + 10_000;
      while (!t.logs.some((l) => l.includes('"housekeeping"')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const line = JSON.parse(t.logs.find((l) => l.includes('"housekeeping"'))!);
      expect(line).toMatchObject({ level: 'info', usedLogoutTokens: 1, sessions: 0 });
      expect(await t.running.app.db.prisma.usedLogoutToken.count()).toBe(0);
    } finally {
      await t.close();
    }
  });
});

describe.skipIf(!TEST_DATABASE_URL)('housekeeping on PostgreSQL: one instance at a time', () => {
  beforeEach(clear);

  it('does nothing while another instance holds the lock', async () => {
    const now = new Date();
    await seed(now);
    const other = new pg.Client({ connectionString: s.database.url });
    await other.connect();
    try {
      await other.query('SELECT pg_advisory_lock($1)', [HOUSEKEEPING_LOCK_KEY]);
      const blocked = await runHousekeeping(s.running.app.db.pool, OPTIONS, now);
      expect(blocked).toEqual({
        ran: false,
        lockTaken: false,
        deleted: { authorizationRequests: 0, sessions: 0, usedLogoutTokens: 0, signingKeys: 0, auditEvents: 0 },
      });
      expect((await remaining()).sessions).toHaveLength(5);
      await other.query('SELECT pg_advisory_unlock($1)', [HOUSEKEEPING_LOCK_KEY]);
      expect(await runHousekeeping(s.running.app.db.pool, OPTIONS, now)).toEqual({ ran: true, lockTaken: true, deleted: EXPECTED_DELETED });
    } finally {
      await other.end();
    }
  });

  it('two instances running at once: one takes the lock, each row is deleted once', async () => {
    const now = new Date();
    await seed(now);
    // The second instance: its own pool on the same database.
    const otherPool = new pg.Pool({ connectionString: s.database.url, max: 2 });
    const blocker = new pg.Client({ connectionString: s.database.url });
    await blocker.connect();
    try {
      // Hold instance A in the middle of its run (its audit-event delete waits for this table lock).
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE');
      const a = runHousekeeping(s.running.app.db.pool, OPTIONS, now);
      const held = async () =>
        (await blocker.query(`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND granted AND pid <> pg_backend_pid()`, [HOUSEKEEPING_LOCK_KEY])).rowCount === 1;
      const deadline = Date.now() + 10_000;
      while (!(await held()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(await held()).toBe(true);
      const b = await runHousekeeping(otherPool, OPTIONS, now);
      await blocker.query('COMMIT');
      const resultA = await a;
      expect(resultA).toEqual({ ran: true, lockTaken: true, deleted: EXPECTED_DELETED });
      expect(b.ran).toBe(false);
      expect(b.lockTaken).toBe(false);
      expect(Object.values(b.deleted).every((n) => n === 0)).toBe(true);
      expect(await remaining()).toEqual(EXPECTED_LEFT());

      // Truly concurrent runs, neither held up: whoever gets the lock, each row goes once.
      await clear();
      await seed(now);
      const both = await Promise.all([runHousekeeping(s.running.app.db.pool, OPTIONS, now), runHousekeeping(otherPool, OPTIONS, now)]);
      const total = (k: keyof typeof EXPECTED_DELETED) => both[0].deleted[k] + both[1].deleted[k];
      for (const k of Object.keys(EXPECTED_DELETED) as Array<keyof typeof EXPECTED_DELETED>) expect(total(k)).toBe(EXPECTED_DELETED[k]);
      expect(both.some((r) => r.lockTaken)).toBe(true);
      expect(await remaining()).toEqual(EXPECTED_LEFT());
    } finally {
      await blocker.query('ROLLBACK').catch(() => {});
      await blocker.end();
      await otherPool.end();
    }
  });
});
