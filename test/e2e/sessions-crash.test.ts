/**
 * kill -9 of the server in the middle of 200 refreshes (issue 9): the server runs as a child
 * process on a DATA_DIR / database that outlives it, the provider (a real oidc-provider, which
 * rotates its refresh tokens) runs in the test process. N sessions refresh 5 times each, in
 * parallel, every refresh with the token the previous one returned; the server is killed after
 * KILL_AFTER answers and restarted on the same data within the reuse interval. Then every
 * session must refresh with the newest token its client holds (for a request whose answer was
 * lost, the older one), and go on refreshing. DEBUG_LOGS=1 prints where the kill left the
 * sessions, and the servers' warnings and errors.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { startIdp, type TestIdp } from '../helpers/idp.ts';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { DEFAULT_PLUGIN, REDIRECT_URI, login } from '../helpers/oidc-flow.ts';
import type { GqlResponse, TestServer } from '../helpers/server.ts';

const CLIENT_ID = 'crash-client';
const CLIENT_SECRET = 'crash-client-secret-0123456789abcdef';
const N = 40;
const PER_SESSION = 5;
const KILL_AFTER = 80;
const KILL_DELAY_MS = 25;
/** REFRESH_TOKEN_REUSE_INTERVAL_SECONDS (the default). */
const REUSE_WINDOW_MS = 30_000;

type Errors = Array<{ field: string; code: string; message: string }>;

let idp: TestIdp;
let dir: string;
let dataDir: string;
let database: TestDatabase;
let env: Record<string, string>;
let proc: ServerProcess | undefined;
/** Every server process of this file (for DEBUG_LOGS=1). */
const procs: ServerProcess[] = [];

beforeAll(async () => {
  idp = await startIdp({
    clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI] }],
    accounts: Array.from({ length: N }, (_, i) => ({ sub: `crash-${i}`, email: `crash-${i}@example.com`, email_verified: true })),
  });
  dir = mkdtempSync(path.join(os.tmpdir(), 'crash-'));
  dataDir = path.join(dir, 'data');
  database = await createTestDatabase();
  const configFile = path.join(dir, 'plugins.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      plugins: [
        {
          id: DEFAULT_PLUGIN,
          active: true,
          configuration: { issuer_url: idp.issuer, client_id: CLIENT_ID, client_secret: CLIENT_SECRET, allowed_redirect_uris: REDIRECT_URI },
        },
      ],
    }),
  );
  env = { OUTBOUND_ALLOW_PRIVATE_ADDRESSES: 'true', RATE_LIMIT_PER_IP_PER_MINUTE: '0', PLUGINS_CONFIG_FILE: configFile };
  proc = await startServerProcess({ dataDir, database, env });
  procs.push(proc);
});

afterAll(async () => {
  if (process.env['DEBUG_LOGS']) for (const p of procs) for (const l of p.stdout) if (/"level":"(error|warn)"/.test(l)) console.log(l.slice(0, 1500));
  await proc?.stop();
  await idp?.close();
  await database?.drop().catch(() => {});
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The bits of TestServer the login helpers use, aimed at whichever process runs now. */
const server = {
  get url() {
    return proc!.url;
  },
  async gql(query: string, variables?: Record<string, unknown>, opts: { token?: string } = {}): Promise<GqlResponse> {
    const res = await fetch(`${proc!.url}/graphql/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}) },
      body: JSON.stringify({ query, variables }),
    });
    return { status: res.status, headers: res.headers, body: JSON.parse(await res.text()) };
  },
} as unknown as TestServer;

interface RefreshAnswer {
  status: number;
  errors: Errors;
  token: string | null;
  refreshToken: string | null;
}

/** externalRefresh; throws when no complete answer came back (the response was lost). */
async function refresh(refreshToken: string): Promise<RefreshAnswer> {
  const res = await fetch(`${proc!.url}/graphql/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      query: `mutation($p: String!, $i: JSONString!) { externalRefresh(pluginId: $p, input: $i) { token refreshToken errors { field code message } } }`,
      variables: { p: DEFAULT_PLUGIN, i: JSON.stringify({ refreshToken }) },
    }),
  });
  const body = JSON.parse(await res.text()) as { data?: { externalRefresh?: Omit<RefreshAnswer, 'status'> } | null; errors?: unknown };
  const r = body.data?.externalRefresh;
  if (!r) return { status: res.status, errors: [{ field: 'graphql', code: 'ERROR', message: JSON.stringify(body.errors) }], token: null, refreshToken: null };
  return { status: res.status, ...r };
}

async function me(token: string | null) {
  if (!token) return null;
  const r = await server.gql('{ me { email } }', {}, { token });
  return (r.body.data?.me as { email: string } | null) ?? null;
}

/** A `pg` client on the server's database (the embedded one through its Unix socket). */
async function dbClient(): Promise<pg.Client> {
  const c = new pg.Client(database.url ? { connectionString: database.url } : { host: dataDir, port: 5432, user: 'postgres', database: 'postgres' });
  await c.connect();
  return c;
}

describe('kill -9 during refreshes', () => {
  it(`${N} sessions, ${N * PER_SESSION} rotating refreshes, SIGKILL after ${KILL_AFTER} answers: every session works after the restart`, async () => {
    // N logins through the provider, one after the other.
    const sessions: Array<{ account: string; newest: string; answered: number; lost: number; failures: unknown[] }> = [];
    for (let i = 0; i < N; i++) {
      const account = `crash-${i}`;
      const l = await login(server, idp, DEFAULT_PLUGIN, account);
      expect(l.errors, account).toEqual([]);
      expect(l.refreshToken, account).toEqual(expect.any(String));
      sessions.push({ account, newest: l.refreshToken as string, answered: 0, lost: 0, failures: [] });
    }
    const sids = sessions.map((x) => decodeJwt(x.newest)['sid'] as string);
    expect(new Set(sids).size).toBe(N);

    // The storm: every session refreshes PER_SESSION times in a row, all sessions at once.
    const victim = proc!;
    let answers = 0;
    let killedAt = 0;
    await Promise.all(
      sessions.map(async (sess) => {
        for (let i = 0; i < PER_SESSION && killedAt === 0; i++) {
          let r: RefreshAnswer;
          try {
            r = await refresh(sess.newest);
          } catch {
            sess.lost++; // no answer: the client keeps the token it had
            return;
          }
          if (r.status !== 200 || r.errors.length || !r.refreshToken) {
            sess.failures.push({ status: r.status, errors: r.errors });
            return;
          }
          sess.newest = r.refreshToken;
          sess.answered++;
          if (++answers === KILL_AFTER) {
            // A moment later, so that the requests in flight are caught at every stage.
            setTimeout(() => {
              killedAt = Date.now();
              victim.kill('SIGKILL');
            }, KILL_DELAY_MS);
          }
        }
      }),
    );
    const exit = await victim.exited;
    expect(exit.signal).toBe('SIGKILL');
    const lost = sessions.reduce((n, x) => n + x.lost, 0);
    // Nothing failed before the kill; the kill cut requests in flight.
    expect(sessions.flatMap((x) => x.failures)).toEqual([]);
    expect(answers).toBeGreaterThanOrEqual(KILL_AFTER);
    expect(answers).toBeLessThan(N * PER_SESSION);
    expect(lost).toBeGreaterThan(0);

    // Restart on the same data, within the reuse interval.
    proc = await startServerProcess({ dataDir, database, env });
    procs.push(proc);
    const restartMs = Date.now() - killedAt;
    expect(restartMs).toBeLessThan(REUSE_WINDOW_MS - 5_000);

    // Where the kill left each session: the client's newest token is the session's current one,
    // or the one rotated away last (the answer was lost), or a lease is still held.
    const db0 = await dbClient();
    let states: string[];
    try {
      const rows = (await db0.query('SELECT id, refresh_token_id, previous_refresh_token_id, refresh_lease_until FROM sessions WHERE id = ANY($1)', [sids])).rows as Array<{
        id: string;
        refresh_token_id: string;
        previous_refresh_token_id: string | null;
        refresh_lease_until: Date | null;
      }>;
      const byId = new Map(rows.map((r) => [r.id, r]));
      states = sessions.map((sess, i) => {
        const row = byId.get(sids[i]!)!;
        const rti = decodeJwt(sess.newest)['rti'];
        const lease = row.refresh_lease_until && row.refresh_lease_until.getTime() > Date.now() ? '+lease' : '';
        return (rti === row.refresh_token_id ? 'current' : rti === row.previous_refresh_token_id ? 'previous' : 'older') + lease;
      });
    } finally {
      await db0.end();
    }
    const tally = (xs: string[]) => Object.fromEntries([...new Set(xs)].sort().map((x) => [x, xs.filter((y) => y === x).length]));
    if (process.env['DEBUG_LOGS']) console.log(JSON.stringify({ answers, lost, restartMs, states: tally(states) }));
    // The client holds the current token or, where the answer was lost after the rotation, the
    // previous one. (How many are 'previous' depends on where the kill fell; the reuse grace
    // itself is tested deterministically in sessions-resilience.test.ts.)
    expect(states.filter((x) => !/^(current|previous)(\+lease)?$/.test(x))).toEqual([]);

    // Every session refreshes with the newest token its client holds, then goes on.
    const after = await Promise.all(
      sessions.map(async (sess) => {
        const first = await refresh(sess.newest);
        const second = first.refreshToken ? await refresh(first.refreshToken) : null;
        return {
          account: sess.account,
          errors: first.errors,
          me: await me(first.token),
          nextErrors: second?.errors ?? 'no refresh token returned',
          nextMe: await me(second?.token ?? null),
        };
      }),
    );
    expect(after).toEqual(
      sessions.map((sess) => ({
        account: sess.account,
        errors: [],
        me: { email: `${sess.account}@example.com` },
        nextErrors: [],
        nextMe: { email: `${sess.account}@example.com` },
      })),
    );

    const db = await dbClient();
    try {
      const rows = await db.query('SELECT id, revoked_at, revoked_reason FROM sessions WHERE id = ANY($1) ORDER BY id', [sids]);
      expect(rows.rows).toHaveLength(N);
      expect(rows.rows.filter((r: { revoked_at: Date | null }) => r.revoked_at !== null)).toEqual([]);
    } finally {
      await db.end();
    }
    expect(idp.serverErrors).toEqual([]);
    expect(proc.alive()).toBe(true);
  }, 150_000);
});
