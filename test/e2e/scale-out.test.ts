/**
 * Scale-out (issue 11): three server processes on ONE PostgreSQL database, started together,
 * behave as one deployment. Run twice: cross-instance invalidation over PostgreSQL
 * LISTEN/NOTIFY, and over Redis pub/sub (REDIS_URL).
 *
 * - A login started on A completes on B (and refreshes on C).
 * - Instances starting together on an empty database create one signing key.
 * - A change made on A reaches B within 1 s: plugin deactivation, a client-secret change, an
 *   issuer change; tokensDeactivateAll, logout, user deactivation and staff demotion
 *   (permission or group removed) make B refuse the old token.
 * - Staged key rotation (`keys rotate` from the CLI): every instance publishes the new key
 *   within 1 s, before any instance signs with it; from its `signs_from` on, all sign with it;
 *   tokens cross-verify.
 * - Housekeeping removes expired rows, one instance at a time.
 *
 * "Within 1 s" is measured, not assumed: B's caches are primed with the old state first (the
 * token used, the plugin used), the change is made on A, then B is polled every POLL_MS and the
 * time from A's answer to the first poll that shows the new state must be under 1000 ms.
 *
 * One real oidc-provider (two, for the issuer change) per file, one fleet per variant. A test
 * that changes the shared plugin configuration puts it back and waits until every instance
 * shows it again, so the tests do not depend on each other.
 * (SIGTERM with requests in flight, and a server started before PostgreSQL: lifecycle.test.ts.)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_DATABASE_URL } from '../helpers/database.ts';
import { startIdp, type TestIdp } from '../helpers/idp.ts';
import { lastLine, runCli, serverClient, startFleet, type Fleet } from '../helpers/fleet.ts';
import type { TestServer } from '../helpers/server.ts';
import { DEFAULT_PLUGIN, REDIRECT_URI, authenticationUrl, configure, externalCall, login, obtainTokens } from '../helpers/oidc-flow.ts';
import { parseMetrics, sampleSum, sampleValue } from '../helpers/prometheus.ts';
import { HOUSEKEEPING_LOCK_KEY } from '../../src/db/housekeeping.ts';
import { CLIENT_REJECTED_MESSAGE } from '../../src/plugins/openid-connect/failures.ts';

const REDIS_URL = process.env['REDIS_TEST_URL'] ?? 'redis://127.0.0.1:6379';
const FLEET_SIZE = 3;
const CLIENT_ID = 'scale-out';
const CLIENT_SECRET = 'scale-out-secret-0123456789abcdef';
/** KEY_ROTATION_PUBLISH_SECONDS of the fleet (and of its CLI). */
const PUBLISH_SECONDS = 10;
const POLL_MS = 50;
/** Code exchanges per second in the client-secret test. */
const EXCHANGES_PER_SECOND = 8;
/** How long a poll goes on before it reports "not reached" (3x the 1 s requirement). */
const POLL_CAP_MS = 3000;
/** How long a test waits for every instance to show the restored configuration again. */
const CONVERGE_MS = 15_000;
const ADMIN_PERMISSIONS = 'MANAGE_PLUGINS,MANAGE_STAFF,MANAGE_USERS,MANAGE_ORDERS';
const BASELINE = (idp: TestIdp) => ({
  issuer_url: idp.issuer,
  client_id: CLIENT_ID,
  client_secret: CLIENT_SECRET,
  allowed_redirect_uris: REDIRECT_URI,
});


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Propagation<T> {
  /** From the change's answer to the sending of the first poll that showed the new state; Infinity: not within POLL_CAP_MS. */
  elapsedMs: number;
  /** What the last poll saw. */
  last: T;
}

/** Every propagation time measured in this file (printed at the end, for the record). */
const measured: number[] = [];

/** Polls `probe` every POLL_MS from `since` until `reached`, for at most POLL_CAP_MS. */
async function propagation<T>(since: number, probe: () => Promise<T>, reached: (v: T) => boolean, capMs = POLL_CAP_MS): Promise<Propagation<T>> {
  for (;;) {
    const sentAt = Date.now();
    const last = await probe();
    if (reached(last)) {
      measured.push(sentAt - since);
      return { elapsedMs: sentAt - since, last };
    }
    if (Date.now() - since > capMs) return { elapsedMs: Infinity, last };
    await sleep(POLL_MS);
  }
}

/** For failure messages: JSON.stringify would print Infinity as null. */
function shown<T>(p: Propagation<T>, last: (v: T) => unknown = (v) => v): string {
  return `${Number.isFinite(p.elapsedMs) ? `after ${p.elapsedMs} ms` : 'not reached'}; last seen: ${JSON.stringify(last(p.last))}`;
}

const kidOf = (token: string) => decodeProtectedHeader(token).kid;

async function jwksKids(s: TestServer): Promise<string[]> {
  const res = await fetch(`${s.url}/.well-known/jwks.json`);
  const body = (await res.json()) as { keys: Array<{ kid: string }> };
  return body.keys.map((k) => k.kid).sort();
}

/** `me` with a token: the user's email and permissions, or null (anonymous). */
async function me(s: TestServer, token: string): Promise<{ email: string; userPermissions: string[] } | null> {
  const r = await s.gql('{ me { email userPermissions { code } } }', {}, { token });
  const m = r.body.data?.me as { email: string; userPermissions: Array<{ code: string }> } | null | undefined;
  return m ? { email: m.email, userPermissions: m.userPermissions.map((p) => p.code) } : null;
}

/** A query that needs MANAGE_STAFF: 'allowed', or the refusal's code. */
async function staffQuery(s: TestServer, token: string): Promise<string> {
  const r = await s.gql('{ staffUsers(first: 1) { totalCount } }', {}, { token });
  if (r.body.data?.staffUsers && !r.body.errors) return 'allowed';
  return String(r.body.errors?.[0]?.extensions?.['exception']?.code ?? r.body.errors?.[0]?.extensions?.['code'] ?? JSON.stringify(r.body));
}

/** The authorization URL B builds for a login start, or what it answered instead. */
async function loginStart(s: TestServer, pluginId = DEFAULT_PLUGIN): Promise<{ authorizationUrl?: string; answer: unknown }> {
  const r = await authenticationUrl(s, pluginId, { redirectUri: REDIRECT_URI });
  const data = r.authenticationData ? (JSON.parse(r.authenticationData) as { authorizationUrl?: string }) : {};
  return data.authorizationUrl ? { authorizationUrl: data.authorizationUrl, answer: r } : { answer: r };
}

let idp: TestIdp;
/** A second provider with the same client, for the issuer change. */
let idp2: TestIdp;
let workDir: string;

describe.skipIf(!TEST_DATABASE_URL)('scale-out: three instances on one PostgreSQL database', () => {
  beforeAll(async () => {
    const client = { client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI] };
    [idp, idp2] = await Promise.all([startIdp({ clients: [client], accounts: [] }), startIdp({ clients: [client], accounts: [] })]);
    workDir = mkdtempSync(path.join(os.tmpdir(), 'scale-out-'));
  });
  afterAll(async () => {
    const sorted = [...measured].sort((x, y) => x - y);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
    console.log(`scale-out propagation (change answered on A -> first poll showing it on B, ${POLL_MS} ms polls): n=${sorted.length} median=${at(0.5)} ms p90=${at(0.9)} ms max=${sorted.at(-1)} ms`);
    await idp?.close();
    await idp2?.close();
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  describe.each([
    { name: 'LISTEN/NOTIFY', redis: false },
    { name: 'Redis pub/sub', redis: true },
  ])('invalidation over $name', (variant) => {
    // Redis is part of the test environment (started before every run): its absence fails here.
    describe(`${FLEET_SIZE} instances`, () => {
      let fleet: Fleet;
      let servers: TestServer[];
      let a: TestServer;
      let b: TestServer;
      let c: TestServer;
      let db: pg.Client;
      let admin: string;
      /** Signing keys right after the instances started together, and each instance's JWKS then. */
      let keysAtStart: string[];
      let jwksAtStart: string[][];
      /** Redis variant: the most subscribers any one channel had once the fleet was up. */
      let redisSubscribers: number | undefined;
      const tag = variant.redis ? 'rd' : 'ln';
      let accountSeq = 0;

      /** A new provider account (verified email) for one test. */
      function account(name: string): { sub: string; email: string } {
        const sub = `${tag}-${name}-${++accountSeq}`;
        const email = `${sub}@example.com`;
        idp.accounts.set(sub, { sub, email, email_verified: true });
        idp2.accounts.set(sub, { sub, email, email_verified: true });
        return { sub, email };
      }

      async function loginOn(s: TestServer, sub: string) {
        const r = await login(s, idp, DEFAULT_PLUGIN, sub);
        expect(r.errors, `login of ${sub}`).toEqual([]);
        return { token: r.token as string, refreshToken: r.refreshToken as string, user: r.user };
      }

      async function gqlOk(s: TestServer, query: string, variables: Record<string, unknown>, field: string) {
        const r = await s.gql(query, variables, { token: admin });
        expect(r.body.errors, JSON.stringify(r.body.errors)).toBeUndefined();
        expect(r.body.data[field].errors).toEqual([]);
        return r.body.data[field];
      }

      /** A staff user made by the admin on A (direct permissions and groups), who then logs in on `on`. */
      async function staffLogin(on: TestServer, name: string, input: { addPermissions?: string[]; addGroups?: string[] }) {
        const { sub, email } = account(name);
        const created = await gqlOk(
          a,
          'mutation($input: StaffCreateInput!) { staffCreate(input: $input) { user { id } errors { field code message } } }',
          { input: { email, ...input } },
          'staffCreate',
        );
        const session = await loginOn(on, sub);
        return { id: created.user.id as string, email, ...session };
      }

      async function staffUpdate(id: string, input: Record<string, unknown>) {
        await gqlOk(a, 'mutation($id: ID!, $input: StaffUpdateInput!) { staffUpdate(id: $id, input: $input) { user { id } errors { field code message } } }', { id, input }, 'staffUpdate');
      }

      const pluginView = async (s: TestServer) =>
        (await s.gql('query($id: ID!) { plugin(id: $id) { globalConfiguration { active configuration { name value } } } }', { id: DEFAULT_PLUGIN }, { token: admin })).body.data?.plugin;

      /** Puts the plugin back to the baseline on A and waits until every instance shows A's configuration. */
      async function restoreBaseline() {
        await configure(a, admin, DEFAULT_PLUGIN, BASELINE(idp), true);
        const wanted = JSON.stringify(await pluginView(a));
        const deadline = Date.now() + CONVERGE_MS;
        for (const s of servers) {
          while (JSON.stringify(await pluginView(s)) !== wanted && Date.now() < deadline) await sleep(100);
          expect(JSON.stringify(await pluginView(s)), `${s.url} did not show the restored configuration within ${CONVERGE_MS} ms`).toBe(wanted);
        }
        expect((await loginStart(b)).authorizationUrl).toMatch(new RegExp(`^${idp.issuer}/`));
      }

      beforeAll(async () => {
        const configFile = path.join(workDir, `plugins-${tag}.json`);
        writeFileSync(configFile, JSON.stringify({ plugins: [{ id: DEFAULT_PLUGIN, active: true, configuration: BASELINE(idp) }] }));
        fleet = await startFleet({
          size: FLEET_SIZE,
          env: {
            OUTBOUND_ALLOW_PRIVATE_ADDRESSES: 'true',
            RATE_LIMIT_PER_IP_PER_MINUTE: '0',
            HOUSEKEEPING_INTERVAL_SECONDS: '1',
            KEY_ROTATION_PUBLISH_SECONDS: String(PUBLISH_SECONDS),
            PLUGINS_CONFIG_FILE: configFile,
            ...(variant.redis ? { REDIS_URL } : {}),
          },
        });
        if (variant.redis) {
          const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
          await redis.connect();
          try {
            const channels = (await redis.call('PUBSUB', 'CHANNELS')) as string[];
            const counts = channels.length ? ((await redis.call('PUBSUB', 'NUMSUB', ...channels)) as Array<string | number>) : [];
            redisSubscribers = Math.max(0, ...counts.filter((_, i) => i % 2 === 1).map(Number));
          } finally {
            await redis.quit();
          }
        }
        servers = fleet.servers.map(serverClient);
        [a, b, c] = servers as [TestServer, TestServer, TestServer];
        db = new pg.Client({ connectionString: fleet.database.url });
        await db.connect();
        keysAtStart = (await db.query<{ kid: string }>('SELECT kid FROM signing_keys ORDER BY kid')).rows.map((r) => r.kid);
        jwksAtStart = await Promise.all(servers.map(jwksKids));
        const created = await runCli(fleet, ['staff', 'create', '--email', `${tag}-admin@example.com`, '--permissions', ADMIN_PERMISSIONS]);
        if (created.code !== 0) throw new Error(`staff create failed (${created.code}): ${created.stderr}`);
        admin = lastLine(created.stdout);
      });

      afterAll(async () => {
        await db?.end();
        if (process.env['DEBUG_LOGS']) for (const p of fleet?.servers ?? []) for (const l of p.stdout) if (/"level":"(error|warn)"/.test(l)) console.log(p.port, l.slice(0, 1500));
        await fleet?.close();
      });

      // ---- the deployment ------------------------------------------------------------------

      it('instances starting together on an empty database create one signing key, which every instance publishes', () => {
        expect(keysAtStart).toHaveLength(1);
        expect(jwksAtStart).toEqual(servers.map(() => keysAtStart));
      });

      it(`every instance subscribes to invalidations through ${variant.name}`, async () => {
        if (variant.redis) {
          // Every instance subscribed to the deployment's channel (other processes on this Redis
          // can only add subscribers, never hide ours).
          expect(redisSubscribers).toBeGreaterThanOrEqual(FLEET_SIZE);
        } else {
          const { rows } = await db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN %'`,
          );
          expect(rows[0]!.n).toBeGreaterThanOrEqual(FLEET_SIZE);
        }
      });

      it('a login started on A completes on B, refreshes on C, and its token is accepted everywhere', async () => {
        const { sub, email } = account('across');
        const start = await loginStart(a);
        expect(start.authorizationUrl).toMatch(new RegExp(`^${idp.issuer}/auth\\?`));
        const result = await idp.authorize(start.authorizationUrl!, { login: sub });
        expect(result.code).toEqual(expect.any(String));
        const tokens = await obtainTokens(b, DEFAULT_PLUGIN, { code: result.code, state: result.state });
        expect(tokens.errors).toEqual([]);
        expect(tokens.user).toMatchObject({ email });
        for (const s of servers) expect(await me(s, tokens.token!)).toEqual({ email, userPermissions: [] });
        const refreshed = await externalCall(c, 'externalRefresh', DEFAULT_PLUGIN, { refreshToken: tokens.refreshToken });
        expect(refreshed.errors).toEqual([]);
        for (const s of servers) expect(await me(s, refreshed.token)).toEqual({ email, userPermissions: [] });
        // The state was single use across instances: completing it again (on A) fails.
        const again = await obtainTokens(a, DEFAULT_PLUGIN, { code: result.code, state: result.state });
        expect(again.token).toBeNull();
        expect(again.errors).not.toEqual([]);
      });

      it('the first two logins of a new identity, at once on A and on B: both succeed, as one user with one linked identity', async () => {
        for (let round = 0; round < 3; round++) {
          const { sub, email } = account(`first-race-${round}`);
          // Two authorizations at the provider, then both code exchanges sent together.
          const startA = await idp.authorize((await loginStart(a)).authorizationUrl!, { login: sub });
          const startB = await idp.authorize((await loginStart(b)).authorizationUrl!, { login: sub });
          const [onA, onB] = await Promise.all([
            obtainTokens(a, DEFAULT_PLUGIN, { code: startA.code, state: startA.state }),
            obtainTokens(b, DEFAULT_PLUGIN, { code: startB.code, state: startB.state }),
          ]);
          expect([onA.errors, onB.errors]).toEqual([[], []]);
          expect(onA.user).toMatchObject({ email });
          expect(onB.user).toMatchObject({ email });
          const users = await db.query<{ id: number }>('SELECT id FROM users WHERE email = $1', [email]);
          expect(users.rowCount).toBe(1);
          const links = await db.query('SELECT 1 FROM external_identities WHERE subject = $1 AND user_id = $2', [sub, users.rows[0]!.id]);
          expect(links.rowCount).toBe(1);
          for (const s of servers) for (const t of [onA.token!, onB.token!]) expect(await me(s, t)).toEqual({ email, userPermissions: [] });
        }
      });

      // ---- plugin configuration changed on A -----------------------------------------------

      it('deactivating the plugin on A: within 1 s B refuses its tokens (ours and the provider\'s) and starts no login', async () => {
        const { sub, email } = account('deactivated');
        const ours = await loginOn(b, sub);
        const providers = await idp.issueAccessToken({ sub, clientId: CLIENT_ID, scope: 'openid email', format: 'opaque' });
        // B's caches hold the old state: the plugin active, both tokens accepted.
        expect(await me(b, ours.token)).toEqual({ email, userPermissions: [] });
        expect(await me(b, providers)).toEqual({ email, userPermissions: [] });
        expect((await loginStart(b)).authorizationUrl).toMatch(new RegExp(`^${idp.issuer}/`));
        try {
          await configure(a, admin, DEFAULT_PLUGIN, {}, false);
          const changedAt = Date.now();
          const [ourToken, providerToken, start] = await Promise.all([
            propagation(changedAt, () => me(b, ours.token), (m) => m === null),
            propagation(changedAt, () => me(b, providers), (m) => m === null),
            propagation(changedAt, () => loginStart(b), (s) => s.authorizationUrl === undefined),
          ]);
          expect(ourToken.elapsedMs, `B still accepted our plugin-minted token: ${JSON.stringify(ourToken.last)}`).toBeLessThan(1000);
          expect(providerToken.elapsedMs, `B still accepted the provider's token: ${JSON.stringify(providerToken.last)}`).toBeLessThan(1000);
          expect(start.elapsedMs, `B still started logins: ${JSON.stringify(start.last)}`).toBeLessThan(1000);
          expect(await me(c, ours.token)).toBeNull();

          // Activated again on A: within 1 s B starts logins again.
          await configure(a, admin, DEFAULT_PLUGIN, {}, true);
          const activatedAt = Date.now();
          const again = await propagation(activatedAt, () => loginStart(b), (s) => s.authorizationUrl !== undefined);
          expect(again.elapsedMs, `B still started no login: ${JSON.stringify(again.last)}`).toBeLessThan(1000);
        } finally {
          await restoreBaseline();
        }
      });

      it('a connection created and activated on A serves logins on B within 1 s; deleted on A, B refuses its tokens within 1 s', async () => {
        const pluginId = `${tag}.second-idp`;
        const created = await a.gql(
          'mutation($input: OpenIdConnectConnectionCreateInput!) { openIdConnectConnectionCreate(input: $input) { errors { field code message } } }',
          { input: { id: pluginId, name: 'Second IdP' } },
          { token: admin },
        );
        expect(created.body.data.openIdConnectConnectionCreate.errors).toEqual([]);
        expect((await loginStart(b, pluginId)).authorizationUrl).toBeUndefined(); // inactive: B knows it so
        await configure(a, admin, pluginId, BASELINE(idp2), true);
        const activatedAt = Date.now();
        const start = await propagation(activatedAt, () => loginStart(b, pluginId), (x) => x.authorizationUrl !== undefined);
        expect(start.elapsedMs, `B started no login: ${JSON.stringify(start.last)}`).toBeLessThan(1000);
        expect(start.last.authorizationUrl).toMatch(new RegExp(`^${idp2.issuer}/auth\\?`));

        const { sub, email } = account('second-idp');
        const session = await login(b, idp2, pluginId, sub);
        expect(session.errors).toEqual([]);
        expect(await me(b, session.token!)).toEqual({ email, userPermissions: [] });
        const deleted = await a.gql('mutation($id: ID!) { openIdConnectConnectionDelete(id: $id) { errors { field code message } } }', { id: pluginId }, { token: admin });
        expect(deleted.body.data.openIdConnectConnectionDelete.errors).toEqual([]);
        const deletedAt = Date.now();
        const [token, starts] = await Promise.all([
          propagation(deletedAt, () => me(b, session.token!), (m) => m === null),
          propagation(deletedAt, () => loginStart(b, pluginId), (x) => x.authorizationUrl === undefined),
        ]);
        expect(token.elapsedMs, `B still accepted the deleted connection's token: ${JSON.stringify(token.last)}`).toBeLessThan(1000);
        expect(starts.elapsedMs, `B still started logins: ${JSON.stringify(starts.last)}`).toBeLessThan(1000);
      });

      it('a client-secret change on A: within 1 s B\'s code exchanges use it (the provider refuses a wrong one), and so again when it is put back', async () => {
        const { sub } = account('secret');
        await loginOn(b, sub); // B's connection is warm, with the right secret
        // Logins started on B and authorized at the provider, ready to complete (codes live 60 s).
        const pending: Array<{ code: string; state: string }> = [];
        for (let i = 0; i < 2 * EXCHANGES_PER_SECOND; i++) {
          const start = await loginStart(b);
          const r = await idp.authorize(start.authorizationUrl!, { login: sub });
          pending.push({ code: r.code!, state: r.state! });
        }
        /** One completion on B every 1000/EXCHANGES_PER_SECOND ms, for 1 s, until `outcome` is seen. */
        const completeUntil = async (changedAt: number, outcome: 'refused' | 'accepted') => {
          const seen: Array<{ sentMs: number; errors: string[] }> = [];
          for (let i = 0; i < EXCHANGES_PER_SECOND; i++) {
            await sleep(Math.max(0, changedAt + (i * 1000) / EXCHANGES_PER_SECOND - Date.now()));
            const sentMs = Date.now() - changedAt;
            const r = await obtainTokens(b, DEFAULT_PLUGIN, pending.shift()!);
            seen.push({ sentMs, errors: r.errors.map((e) => e.message) });
            if ((r.errors.length > 0) === (outcome === 'refused')) break;
          }
          return seen;
        };
        try {
          await configure(a, admin, DEFAULT_PLUGIN, { client_secret: 'a-secret-the-provider-does-not-know-wxyz' });
          const wrong = await completeUntil(Date.now(), 'refused');
          // The last completion within the first second was refused by the provider: B used the new secret.
          expect(wrong.at(-1), `completions on B after the change: ${JSON.stringify(wrong)}`).toEqual({ sentMs: expect.any(Number), errors: [CLIENT_REJECTED_MESSAGE] });
          expect(wrong.at(-1)!.sentMs).toBeLessThan(1000);
          const conf = (await pluginView(b)).globalConfiguration.configuration as Array<{ name: string; value: string | null }>;
          expect(conf.find((x) => x.name === 'client_secret')?.value).toBe('wxyz');

          // Put back on A right after B took the change in: B does not wait for a cache to age.
          await configure(a, admin, DEFAULT_PLUGIN, { client_secret: CLIENT_SECRET });
          const right = await completeUntil(Date.now(), 'accepted');
          expect(right.at(-1), `completions on B after the secret was put back: ${JSON.stringify(right)}`).toEqual({ sentMs: expect.any(Number), errors: [] });
          expect(right.at(-1)!.sentMs).toBeLessThan(1000);
        } finally {
          await restoreBaseline();
        }
      });

      it('an issuer change on A: within 1 s B sends logins to the new issuer (and refuses the old sessions\' tokens), and back when it is changed back', async () => {
        expect((await loginStart(b)).authorizationUrl).toMatch(new RegExp(`^${idp.issuer}/auth\\?`));
        // A session of the old issuer, its token cached on B.
        const old = account('old-issuer');
        const oldSession = await loginOn(a, old.sub);
        expect(await me(b, oldSession.token)).toEqual({ email: old.email, userPermissions: [] });
        try {
          await configure(a, admin, DEFAULT_PLUGIN, { issuer_url: idp2.issuer });
          const changedAt = Date.now();
          // The change ended the connection's sessions (one UPDATE, announced as a configuration
          // change, not session by session): B forgets the token it had cached.
          const refused = await propagation(changedAt, () => me(b, oldSession.token), (m) => m === null);
          expect(refused.elapsedMs, `B still accepted the old session's token: ${JSON.stringify(refused.last)}`).toBeLessThan(1000);
          const start = await propagation(changedAt, () => loginStart(b), (s) => s.authorizationUrl?.startsWith(`${idp2.issuer}/auth?`) === true);
          expect(start.elapsedMs, `B still answered ${JSON.stringify(start.last)}`).toBeLessThan(1000);
          // And such a login completes on B, at the new provider.
          const { sub, email } = account('new-issuer');
          const r = await idp2.authorize(start.last.authorizationUrl!, { login: sub });
          const tokens = await obtainTokens(b, DEFAULT_PLUGIN, { code: r.code, state: r.state });
          expect(tokens.errors).toEqual([]);
          expect(tokens.user).toMatchObject({ email });

          // Changed back on A right after B took the change in: B does not wait for a cache to age.
          await configure(a, admin, DEFAULT_PLUGIN, { issuer_url: idp.issuer });
          const backAt = Date.now();
          const back = await propagation(backAt, () => loginStart(b), (s) => s.authorizationUrl?.startsWith(`${idp.issuer}/auth?`) === true);
          expect(back.elapsedMs, `B still answered ${JSON.stringify(back.last)}`).toBeLessThan(1000);
        } finally {
          await restoreBaseline();
        }
      });

      // ---- users and sessions changed on A ---------------------------------------------------

      it('tokensDeactivateAll on A: within 1 s B refuses the old token', async () => {
        const { sub, email } = account('deactivate-all');
        const session = await loginOn(a, sub);
        expect(await me(b, session.token)).toEqual({ email, userPermissions: [] });
        const r = await a.gql('mutation { tokensDeactivateAll { errors { field code message } } }', {}, { token: session.token });
        expect(r.body.data.tokensDeactivateAll.errors).toEqual([]);
        const changedAt = Date.now();
        const seen = await propagation(changedAt, () => me(b, session.token), (m) => m === null);
        expect(seen.elapsedMs, `B still accepted the token: ${JSON.stringify(seen.last)}`).toBeLessThan(1000);
        expect(await me(a, session.token)).toBeNull();
      });

      it('logout on A: within 1 s B refuses the session\'s access token', async () => {
        const { sub, email } = account('logout');
        const session = await loginOn(b, sub);
        expect(await me(b, session.token)).toEqual({ email, userPermissions: [] });
        const out = await externalCall(a, 'externalLogout', DEFAULT_PLUGIN, { refreshToken: session.refreshToken });
        expect(out.errors).toEqual([]);
        const changedAt = Date.now();
        const seen = await propagation(changedAt, () => me(b, session.token), (m) => m === null);
        expect(seen.elapsedMs, `B still accepted the token: ${JSON.stringify(seen.last)}`).toBeLessThan(1000);
        const refresh = await externalCall(b, 'externalRefresh', DEFAULT_PLUGIN, { refreshToken: session.refreshToken });
        expect(refresh.token).toBeNull();
      });

      it('deactivating a user on A: within 1 s B refuses their token', async () => {
        const user = await staffLogin(b, 'deactivated-user', {});
        expect(await me(b, user.token)).toEqual({ email: user.email, userPermissions: [] });
        await staffUpdate(user.id, { isActive: false });
        const changedAt = Date.now();
        const seen = await propagation(changedAt, () => me(b, user.token), (m) => m === null);
        expect(seen.elapsedMs, `B still accepted the token: ${JSON.stringify(seen.last)}`).toBeLessThan(1000);
      });

      it('a staff demotion on A (permission removed): within 1 s B refuses what the old token may no longer do', async () => {
        const user = await staffLogin(b, 'demoted', { addPermissions: ['MANAGE_STAFF'] });
        expect(await me(b, user.token)).toEqual({ email: user.email, userPermissions: ['MANAGE_STAFF'] });
        expect(await staffQuery(b, user.token)).toBe('allowed');
        await staffUpdate(user.id, { removePermissions: ['MANAGE_STAFF'] });
        const changedAt = Date.now();
        const seen = await propagation(changedAt, () => staffQuery(b, user.token), (v) => v === 'PermissionDenied');
        expect(seen.elapsedMs, `B answered ${seen.last}`).toBeLessThan(1000);
        expect(await me(b, user.token)).toEqual({ email: user.email, userPermissions: [] });
      });

      it('a staff demotion on A (group removed): within 1 s B refuses what the old token may no longer do', async () => {
        const group = await gqlOk(
          a,
          'mutation($input: PermissionGroupCreateInput!) { permissionGroupCreate(input: $input) { group { id } errors { field code message } } }',
          { input: { name: `${tag} staff managers ${++accountSeq}`, addPermissions: ['MANAGE_STAFF'] } },
          'permissionGroupCreate',
        );
        const user = await staffLogin(b, 'group-demoted', { addGroups: [group.group.id] });
        expect(await me(b, user.token)).toEqual({ email: user.email, userPermissions: ['MANAGE_STAFF'] });
        expect(await staffQuery(b, user.token)).toBe('allowed');
        await staffUpdate(user.id, { removeGroups: [group.group.id] });
        const changedAt = Date.now();
        const seen = await propagation(changedAt, () => staffQuery(b, user.token), (v) => v === 'PermissionDenied');
        expect(seen.elapsedMs, `B answered ${seen.last}`).toBeLessThan(1000);
      });

      // ---- signing keys --------------------------------------------------------------------

      it('staged rotation: every instance publishes the new key within 1 s, none signs with it before signs_from, then all do; tokens cross-verify', async () => {
        const { sub, email } = account('rotation');
        // One session per instance: each instance mints from its own (no refresh contention).
        const sessions: Array<Awaited<ReturnType<typeof loginOn>>> = [];
        for (const s of servers) sessions.push(await loginOn(s, sub));
        const session = sessions[0]!;
        const oldKid = kidOf(session.token);
        const kidsBefore = await jwksKids(a);
        expect(kidsBefore).toContain(oldKid);
        for (const s of servers) expect(await jwksKids(s)).toEqual(kidsBefore);
        for (const s of servers) for (const x of sessions) expect(await me(s, x.token)).toEqual({ email, userPermissions: [] });

        /** A fresh access token minted by instance `i` (tokenRefresh: the session's refresh token is kept). */
        const mint = async (i: number) => {
          const r = await servers[i]!.gql('mutation($t: String!) { tokenRefresh(refreshToken: $t) { token errors { field code message } } }', {
            t: sessions[i]!.refreshToken,
          });
          expect(r.body.data.tokenRefresh.errors).toEqual([]);
          return { token: r.body.data.tokenRefresh.token as string, at: Date.now() };
        };
        for (const i of servers.keys()) expect(kidOf((await mint(i)).token)).toBe(oldKid);

        const rotated = await runCli(fleet, ['keys', 'rotate']);
        const rotatedAt = Date.now();
        expect(rotated.code, rotated.stderr).toBe(0);
        const newest = await db.query<{ kid: string; row: Record<string, string | null> }>(
          'SELECT kid, to_jsonb(k) AS row FROM signing_keys k ORDER BY created_at DESC LIMIT 1',
        );
        const newKid = newest.rows[0]!.kid;
        expect(newKid).not.toBe(oldKid);
        expect(rotated.stdout).toContain(newKid);
        const row = newest.rows[0]!.row;
        // When the new key starts signing (staged: signs_from; else created_at + the publish time).
        const signsFrom = row['signs_from'] ? Date.parse(row['signs_from']) : Date.parse(row['created_at']!) + PUBLISH_SECONDS * 1000;

        // Published everywhere within 1 s...
        const published = await Promise.all(servers.map((s) => propagation(rotatedAt, () => jwksKids(s), (kids) => kids.includes(newKid))));
        expect(published.map((p) => p.elapsedMs < 1000), `JWKS: ${published.map((p) => shown(p)).join(' | ')}`).toEqual(servers.map(() => true));
        // ... while every instance still signs with the old key.
        const early = [await mint(0), await mint(1), await mint(2)];
        expect(early.every((t) => t.at < signsFrom), `the test was too slow: tokens minted ${early.map((t) => t.at - signsFrom)} ms after signs_from`).toBe(true);
        expect(early.map((t) => kidOf(t.token))).toEqual([oldKid, oldKid, oldKid]);
        for (const s of servers) expect(await jwksKids(s)).toEqual([...kidsBefore, newKid].sort());

        // From signs_from on, every instance signs with the new key.
        await sleep(Math.max(0, signsFrom - Date.now()));
        const switched = await Promise.all(
          servers.map((_, i) =>
            propagation(signsFrom, () => mint(i), (t) => kidOf(t.token) === newKid, PUBLISH_SECONDS * 1000 + POLL_CAP_MS),
          ),
        );
        expect(switched.map((p) => p.elapsedMs < 1000), `signing with the new key from signs_from: ${switched.map((p) => shown(p, (t) => kidOf(t.token))).join(' | ')}`).toEqual(
          servers.map(() => true),
        );
        const [fromA, fromB, fromC] = switched.map((p) => p.last.token) as [string, string, string];
        // Tokens cross-verify: each instance accepts the others' new tokens, and the old ones still.
        for (const [token, others] of [
          [fromA, [b, c]],
          [fromB, [a, c]],
          [fromC, [a, b]],
        ] as const) {
          for (const s of others) expect(await me(s, token)).toEqual({ email, userPermissions: [] });
        }
        for (const s of servers) {
          expect(await me(s, session.token)).toEqual({ email, userPermissions: [] });
          expect(await me(s, early[0]!.token)).toEqual({ email, userPermissions: [] });
          expect(await me(s, admin)).toMatchObject({ email: `${tag}-admin@example.com` });
          expect(await jwksKids(s)).toEqual([...kidsBefore, newKid].sort());
        }
      }, 60_000);

      // ---- housekeeping --------------------------------------------------------------------

      it('/metrics of each instance counts the invalidations it sent and received, and its pool in use', async () => {
        // Runs after the changes above: A made them, B and C heard them (NODE_ENV is not
        // production and no METRICS_* is set: served without a token).
        const scrape = async (server: TestServer) => {
          const res = await fetch(`${server.url}/metrics`);
          expect(res.status).toBe(200);
          return parseMetrics(await res.text());
        };
        const [ma, mb, mc] = await Promise.all([scrape(a), scrape(b), scrape(c)]);
        const name = 'saleor_auth_invalidation_messages_total';
        expect(sampleSum(ma, name, { direction: 'sent', kind: 'plugins' })).toBeGreaterThanOrEqual(4);
        expect(sampleSum(ma, name, { direction: 'sent', kind: 'users' })).toBeGreaterThanOrEqual(2);
        for (const m of [mb, mc]) {
          expect(sampleSum(m, name, { direction: 'received', kind: 'plugins' })).toBeGreaterThanOrEqual(4);
          expect(sampleSum(m, name, { direction: 'received', kind: 'users' })).toBeGreaterThanOrEqual(2);
          expect(sampleSum(m, name, { direction: 'received', kind: 'sessions' })).toBeGreaterThanOrEqual(1);
          // The CLI's rotation reached every instance.
          expect(sampleSum(m, name, { direction: 'received', kind: 'keys' })).toBeGreaterThanOrEqual(1);
        }
        for (const m of [ma, mb, mc]) {
          const inUse = sampleValue(m, 'saleor_auth_db_pool_connections_in_use');
          expect(inUse).toBeGreaterThanOrEqual(0);
          expect(inUse).toBeLessThanOrEqual(10);
        }
      });

      it('housekeeping removes expired rows, one instance at a time', async () => {
        const DAY = 86_400_000;
        const ago = (ms: number) => new Date(Date.now() - ms);
        const marks = fleet.servers.map((p) => p.stdout.length);
        const userId = (
          await db.query<{ id: number }>(`INSERT INTO users (email, token_key, updated_at) VALUES ($1, 'k', now()) RETURNING id`, [`${tag}-hk@example.com`])
        ).rows[0]!.id;
        const blocker = new pg.Client({ connectionString: fleet.database.url });
        await blocker.connect();
        try {
          // Hold up whichever instance runs next in its last step (old audit events), holding its lock.
          await blocker.query('BEGIN');
          await blocker.query('LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE');
          await blocker.query(`INSERT INTO audit_events (type, outcome, at) VALUES ('hk-old', 'ok', $1), ('hk-old', 'ok', $1), ('hk-live', 'ok', now())`, [ago(400 * DAY)]);
          await db.query(
            `INSERT INTO used_logout_tokens (issuer, jti, expires_at) VALUES ('https://hk', 'hk-old-1', $1), ('https://hk', 'hk-old-2', $1), ('https://hk', 'hk-old-3', $1), ('https://hk', 'hk-live', $2)`,
            [ago(60_000), new Date(Date.now() + DAY)],
          );
          const authRequest = `INSERT INTO authorization_requests (state_hash, plugin_id, redirect_uri, nonce, code_verifier_encrypted, expires_at) VALUES ($1, 'p', 'https://shop.example.com/cb', 'n', 'x', $2)`;
          await db.query(authRequest, ['hk-old-1', ago(DAY)]);
          await db.query(authRequest, ['hk-old-2', ago(DAY)]);
          await db.query(authRequest, ['hk-live', new Date(Date.now() + 600_000)]);
          const session = `INSERT INTO sessions (id, user_id, plugin_id, issuer, subject, refresh_token_id, expires_at, revoked_at) VALUES ($1, $2, 'p', 'https://hk', 's', $1, $3, $4)`;
          await db.query(session, ['hk-old-revoked', userId, new Date(Date.now() + DAY), ago(30 * DAY)]);
          await db.query(session, ['hk-old-expired', userId, ago(30 * DAY), null]);
          await db.query(session, ['hk-live', userId, new Date(Date.now() + DAY), null]);

          const lockHolders = async () =>
            (
              await db.query<{ n: number }>(
                `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
                [HOUSEKEEPING_LOCK_KEY],
              )
            ).rows[0]!.n;
          const jtis = async () => (await db.query<{ jti: string }>(`SELECT jti FROM used_logout_tokens WHERE issuer = 'https://hk' ORDER BY jti`)).rows.map((r) => r.jti);

          /** Backends of this database waiting for a lock (the run held up by the blocker). */
          const waiting = async () =>
            (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)).rows[0]!.n;

          // One instance took the housekeeping lock and is held up in the middle of its run.
          const held = await propagation(Date.now(), async () => ({ holders: await lockHolders(), waiting: await waiting() }), (v) => v.holders === 1 && v.waiting >= 1, 10_000);
          expect(held.last).toEqual({ holders: 1, waiting: 1 });

          // Meanwhile the other instances' timers (every second) do nothing: a row that expires now stays.
          await db.query(`INSERT INTO used_logout_tokens (issuer, jti, expires_at) VALUES ('https://hk', 'hk-during-hold', $1)`, [ago(60_000)]);
          await sleep(2500);
          expect(await jtis()).toContain('hk-during-hold');
          expect({ holders: await lockHolders(), waiting: await waiting() }).toEqual({ holders: 1, waiting: 1 });

          await blocker.query('COMMIT');
          const done = await propagation(
            Date.now(),
            async () => ({
              jtis: await jtis(),
              audit: (await db.query<{ type: string }>(`SELECT type FROM audit_events WHERE type LIKE 'hk-%' ORDER BY type`)).rows.map((r) => r.type),
            }),
            (v) => v.jtis.length === 1 && v.audit.length === 1,
            10_000,
          );
          expect(done.last).toEqual({ jtis: ['hk-live'], audit: ['hk-live'] });
        } finally {
          await blocker.query('ROLLBACK').catch(() => {});
          await blocker.end();
        }
        const left = async (table: string, column: string) =>
          (await db.query<{ v: string }>(`SELECT ${column} AS v FROM ${table} WHERE ${column} LIKE 'hk-%' ORDER BY 1`)).rows.map((r) => r.v);
        expect(await left('authorization_requests', 'state_hash')).toEqual(['hk-live']);
        expect(await left('sessions', 'id')).toEqual(['hk-live']);
        // Each deletion was made, and logged, once. A line reaches us after its deletion is
        // visible (it is written in batches, then through a pipe): wait for it, then no more.
        const loggedSums = async () => {
          const logged = fleet.servers.flatMap((p, i) =>
            p.stdout.slice(marks[i]).flatMap((line) => {
              try {
                const r = JSON.parse(line) as Record<string, unknown>;
                return r['message'] === 'housekeeping' ? [r] : [];
              } catch {
                return [];
              }
            }),
          );
          return {
            usedLogoutTokens: logged.reduce((n, r) => n + Number(r['usedLogoutTokens'] ?? 0), 0),
            auditEvents: logged.reduce((n, r) => n + Number(r['auditEvents'] ?? 0), 0),
          };
        };
        const logWait = Date.now() + 5_000;
        while (Date.now() < logWait) {
          const sums = await loggedSums();
          if (sums.usedLogoutTokens >= 4 && sums.auditEvents >= 2) break;
          await sleep(50);
        }
        expect(await loggedSums()).toEqual({ usedLogoutTokens: 4, auditEvents: 2 });
      }, 60_000);
    });
  });
});
