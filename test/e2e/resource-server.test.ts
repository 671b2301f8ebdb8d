/**
 * The resource server (issue 4; saleor-contract.md sections 1, 4, 5): services call our GraphQL
 * API with the provider's own access token as `Authorization: Bearer …`. Against a real
 * provider (test/helpers/idp.ts): each token kind (provider JWT, opaque token, client
 * credentials, our own token), the scope-permission rule (the configured audience is needed),
 * users created on first sight, the hot path without I/O (counted: provider requests, table
 * digests, cache misses), coalescing of 1,000 concurrent requests, the provider going down,
 * and logs without tokens.
 *
 * Refusals (expired, no exp, wrong iss, alg none, HS256, unknown kid, revoked, userinfo sub
 * mismatch, retired key), refusal caching and JWKS coalescing: resource-server-security.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { fingerprint } from '../../src/log.ts';
import { burst } from '../helpers/burst.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { startIdp, type TestIdp } from '../helpers/idp.ts';
import { DEFAULT_PLUGIN, REDIRECT_URI, adminToken, configure, connectionValues, login } from '../helpers/oidc-flow.ts';

const AUDIENCE = 'https://api.example.com';
const CLIENT_ID = 'storefront';
const CLIENT_SECRET = 'storefront-secret';
const ME = '{ me { email isStaff userPermissions { code } } }';

let s: TestServer;
let idp: TestIdp;
let admin: string;
/** Every token handed to the server (none may appear in its logs). */
const used: string[] = [];
const track = <T extends string | null | undefined>(token: T): T => {
  if (token) used.push(token);
  return token;
};

beforeAll(async () => {
  idp = await startIdp({
    clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI] }],
    accounts: [
      { sub: 'alice', email: 'alice@example.com', email_verified: true, given_name: 'Alice' },
      { sub: 'bob', email: 'bob@example.com', email_verified: true, given_name: 'Bob' },
      { sub: 'carol', email: 'carol@example.com', email_verified: true, given_name: 'Carol' },
      { sub: 'dora', email: 'Dora@Example.com', email_verified: true, given_name: 'Dora', family_name: 'Explorer' },
      { sub: 'frank', email: 'frank@example.com', email_verified: true, given_name: 'Frank' },
    ],
  });
  s = await startTestServer({
    OUTBOUND_ALLOW_PRIVATE_ADDRESSES: 'true',
    OIDC_JWKS_REFETCH_COOLDOWN_SECONDS: '0',
    OUTBOUND_TIMEOUT_MS: '1000',
  });
  admin = track(await adminToken(s));
  await configure(
    s,
    admin,
    DEFAULT_PLUGIN,
    connectionValues(idp, CLIENT_ID, CLIENT_SECRET, { audience: AUDIENCE, use_oauth_scope_permissions: 'true' }),
  );
});

afterAll(async () => {
  await s?.close();
  await idp?.close();
});

// ---- helpers ---------------------------------------------------------------------------------

/**
 * A login through the provider, so that the identity (issuer, sub) is linked to a user. The
 * account is granted no saleor:* scope at that login (TestAccount.scopes = []), so the user
 * starts as a non-staff user and every permission seen later comes from the bearer token.
 */
async function linkByLogin(sub: string) {
  const account = idp.accounts.get(sub)!;
  account.scopes = [];
  try {
    const r = await login(s, idp, DEFAULT_PLUGIN, sub);
    expect(r.errors).toEqual([]);
    track(r.token);
    track(r.refreshToken);
    expect(r.user).toMatchObject({ isStaff: false, userPermissions: [] });
    return r;
  } finally {
    delete account.scopes;
  }
}

async function ask(token: string, query = ME, variables?: Record<string, unknown>) {
  const r = await s.gql(query, variables, { token });
  expect(r.status).toBe(200);
  return r.body;
}

async function me(token: string) {
  const body = await ask(token);
  expect(body.errors).toBeUndefined();
  return body.data.me;
}

function expectDenied(body: { data?: any; errors?: Array<{ message: string; extensions?: Record<string, any> }> }, field: string) {
  expect(body.data?.[field]).toBeNull();
  expect(body.errors?.map((e) => e.extensions?.['exception']?.code)).toEqual(['PermissionDenied']);
}

const perms = (...codes: string[]) => codes.map((code) => ({ code }));

async function userRow(email: string) {
  const r = await s.running.app.db.pool.query(
    'SELECT id, email, first_name, last_name, is_staff, is_active, is_confirmed, permissions FROM users WHERE email = $1',
    [email],
  );
  return r.rows[0];
}

/** One digest per table, of every row (as bench/run.ts): any insert, update or delete changes it. */
async function tableDigests(): Promise<Record<string, string>> {
  const pool = s.running.app.db.pool;
  const tables = (await pool.query(`SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`)).rows.map(
    (r) => r.tablename as string,
  );
  const out: Record<string, string> = {};
  for (const t of tables) {
    const r = await pool.query(`SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) AS d FROM "${t}" t`);
    out[t] = r.rows[0].d;
  }
  return out;
}

const misses = () => s.running.app.authenticator.misses;

// ---- token kinds and permissions ------------------------------------------------------------

let aliceJwt: string;
let aliceOurToken: string;

/**
 * Opaque tokens from oidc-provider carry no audience unless a resource was asked for, and then
 * its userinfo refuses them: such cases run with no audience configured, where a token must
 * have been issued to our own client instead.
 */
async function withoutAudience(fn: () => Promise<void>): Promise<void> {
  await configure(s, admin, DEFAULT_PLUGIN, { audience: '' });
  try {
    await fn();
  } finally {
    await configure(s, admin, DEFAULT_PLUGIN, { audience: AUDIENCE });
  }
}

describe('provider JWT access tokens', () => {
  it('for our audience: the linked user, staff with the permissions of its saleor: scopes', async () => {
    const r = await linkByLogin('alice');
    aliceOurToken = r.token!;
    aliceJwt = track(
      await idp.issueAccessToken({ sub: 'alice', clientId: CLIENT_ID, scope: 'saleor:manage_orders saleor:manage_users', resource: AUDIENCE, format: 'jwt' }),
    );
    expect(decodeJwt(aliceJwt)).toMatchObject({ iss: idp.issuer, sub: 'alice', aud: AUDIENCE, scope: 'saleor:manage_orders saleor:manage_users' });

    expect(await me(aliceJwt)).toEqual({ email: 'alice@example.com', isStaff: true, userPermissions: perms('MANAGE_USERS', 'MANAGE_ORDERS') });

    // A field needing MANAGE_USERS (or MANAGE_STAFF) works ...
    const user = await ask(aliceJwt, 'query($e: String!) { user(email: $e) { email firstName } }', { e: 'alice@example.com' });
    expect(user).toEqual({ data: { user: { email: 'alice@example.com', firstName: 'Alice' } } });
    // ... one needing MANAGE_PLUGINS does not.
    expectDenied(await ask(aliceJwt, '{ plugins(first: 5) { totalCount } }'), 'plugins');

    // The staff decision is stored (written once, on change).
    expect(await userRow('alice@example.com')).toMatchObject({ is_staff: true, is_active: true, permissions: ['MANAGE_USERS', 'MANAGE_ORDERS'] });
  });

  it('without the configured audience: refused (anonymous), nothing changes', async () => {
    const before = await userRow('alice@example.com');
    const other = track(
      await idp.issueAccessToken({ sub: 'alice', clientId: CLIENT_ID, scope: 'saleor:manage_plugins', resource: 'https://other.example.com', format: 'jwt' }),
    );
    expect(decodeJwt(other)).toMatchObject({ iss: idp.issuer, sub: 'alice', aud: 'https://other.example.com' });
    expect(await me(other)).toBeNull();
    expectDenied(await ask(other, '{ plugins(first: 5) { totalCount } }'), 'plugins');
    expect(await userRow('alice@example.com')).toEqual(before);
  });
});

describe('opaque access tokens (introspection)', () => {
  it('identify the user; saleor: scopes apply when the introspected aud contains our audience', async () => {
    await linkByLogin('bob');
    const opaque = track(
      await idp.issueAccessToken({ sub: 'bob', clientId: CLIENT_ID, scope: 'saleor:manage_staff', resource: AUDIENCE, format: 'opaque' }),
    );
    expect(opaque.split('.')).toHaveLength(1);
    idp.resetCounts();
    expect(await me(opaque)).toEqual({ email: 'bob@example.com', isStaff: true, userPermissions: perms('MANAGE_STAFF') });
    expect(idp.counts()['/token/introspection']).toBe(1);
    const staff = await ask(opaque, '{ staffUsers(first: 10) { totalCount edges { node { email } } } }');
    expect(staff.errors).toBeUndefined();
    expect(staff.data.staffUsers.edges.map((e: any) => e.node.email)).toContain('bob@example.com');
    expect(await userRow('bob@example.com')).toMatchObject({ is_staff: true, permissions: ['MANAGE_STAFF'] });
  });

  it('identify the user; saleor: scopes do not apply without our audience', async () =>
    withoutAudience(async () => {
    await linkByLogin('carol');
    const opaque = track(
      await idp.issueAccessToken({ sub: 'carol', clientId: CLIENT_ID, scope: 'openid email saleor:manage_staff saleor:staff', format: 'opaque' }),
    );
    idp.resetCounts();
    expect(await me(opaque)).toEqual({ email: 'carol@example.com', isStaff: false, userPermissions: [] });
    expect(idp.counts()['/token/introspection']).toBe(1);
    expectDenied(await ask(opaque, '{ staffUsers(first: 10) { totalCount } }'), 'staffUsers');
    expect(await userRow('carol@example.com')).toMatchObject({ is_staff: false, permissions: [] });
  }));

  it('create and link an unknown user on first sight (email from userinfo)', async () =>
    withoutAudience(async () => {
    expect(await userRow('dora@example.com')).toBeUndefined();
    const opaque = track(await idp.issueAccessToken({ sub: 'dora', clientId: CLIENT_ID, scope: 'openid email profile', format: 'opaque' }));
    idp.resetCounts();
    expect(await me(opaque)).toEqual({ email: 'dora@example.com', isStaff: false, userPermissions: [] });
    expect(idp.counts()).toMatchObject({ '/token/introspection': 1, '/me': 1 });
    const row = await userRow('dora@example.com');
    expect(row).toMatchObject({
      email: 'dora@example.com',
      first_name: 'Dora',
      last_name: 'Explorer',
      is_staff: false,
      is_active: true,
      is_confirmed: true,
      permissions: [],
    });
    const links = await s.running.app.db.pool.query('SELECT user_id, plugin_id, issuer, subject FROM external_identities WHERE subject = $1', ['dora']);
    expect(links.rows).toEqual([{ user_id: row.id, plugin_id: DEFAULT_PLUGIN, issuer: idp.issuer, subject: 'dora' }]);
  }));
});

describe('client-credentials tokens', () => {
  it('are an app: no me, protected fields by the permissions of their scopes', async () => {
    const usersBefore = (await s.running.app.db.pool.query('SELECT count(*)::int AS n FROM users')).rows[0].n;
    const withStaff = track(await idp.issueAccessToken({ clientId: CLIENT_ID, scope: 'saleor:manage_staff', resource: AUDIENCE, format: 'jwt' }));
    expect(decodeJwt(withStaff)).toMatchObject({ iss: idp.issuer, aud: AUDIENCE, sub: CLIENT_ID, scope: 'saleor:manage_staff' });
    expect(await me(withStaff)).toBeNull();
    const staff = await ask(withStaff, '{ staffUsers(first: 50) { totalCount edges { node { email } } } }');
    expect(staff.errors).toBeUndefined();
    const expected = (await s.running.app.db.pool.query('SELECT email FROM users WHERE is_staff ORDER BY email')).rows.map((r) => r.email);
    expect(staff.data.staffUsers.totalCount).toBe(expected.length);
    expect(staff.data.staffUsers.edges.map((e: any) => e.node.email)).toEqual(expected);

    const withoutStaff = track(await idp.issueAccessToken({ clientId: CLIENT_ID, scope: 'saleor:manage_orders', resource: AUDIENCE, format: 'jwt' }));
    expect(await me(withoutStaff)).toBeNull();
    expectDenied(await ask(withoutStaff, '{ staffUsers(first: 50) { totalCount } }'), 'staffUsers');
    expectDenied(await ask(withoutStaff, '{ plugins(first: 5) { totalCount } }'), 'plugins');

    // Without our audience the scopes give nothing.
    const foreign = track(
      await idp.issueAccessToken({ clientId: CLIENT_ID, scope: 'saleor:manage_staff', resource: 'https://other.example.com', format: 'jwt' }),
    );
    expectDenied(await ask(foreign, '{ staffUsers(first: 50) { totalCount } }'), 'staffUsers');
    // No user for a machine.
    expect((await s.running.app.db.pool.query('SELECT count(*)::int AS n FROM users')).rows[0].n).toBe(usersBefore);
  });
});

// ---- the hot path ---------------------------------------------------------------------------

describe('hot path: no I/O for a token seen before', () => {
  /** `expected`: what `me` must answer (its permissions are checked by the tests above). */
  async function expectNoIo(token: string, expected: Record<string, unknown>) {
    const warm = await me(token); // validated at most once here
    expect(warm).toMatchObject(expected);
    idp.resetCounts();
    const digests = await tableDigests();
    const missesBefore = misses();
    for (let i = 0; i < 50; i++) expect(await me(token)).toEqual(warm);
    expect(idp.counts()).toEqual({});
    expect(misses()).toBe(missesBefore);
    expect(await tableDigests()).toEqual(digests);
  }

  it('provider JWT', async () => {
    await expectNoIo(aliceJwt, { email: 'alice@example.com' });
  });

  it('opaque token', async () =>
    withoutAudience(async () => {
    const opaque = track(await idp.issueAccessToken({ sub: 'carol', clientId: CLIENT_ID, scope: 'openid email', format: 'opaque' }));
    await expectNoIo(opaque, { email: 'carol@example.com', isStaff: false, userPermissions: [] });
  }));

  it('our own token', async () => {
    const expected = { email: 'alice@example.com', isStaff: false, userPermissions: [] };
    await expectNoIo(aliceOurToken, expected);
  });
});

// ---- coalescing -------------------------------------------------------------------------------

describe('coalescing', () => {
  it('1,000 concurrent requests with one new opaque token: one introspection, one userinfo, one user', async () =>
    withoutAudience(async () => {
    const opaque = track(await idp.issueAccessToken({ sub: 'frank', clientId: CLIENT_ID, scope: 'openid email', format: 'opaque' }));
    expect(await userRow('frank@example.com')).toBeUndefined();
    const missesBefore = misses();
    idp.resetCounts();
    const results = await burst(s.url, opaque, ME);
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    const emails = new Set(results.map((r) => r.json.data?.me?.email ?? JSON.stringify(r.json)));
    expect([...emails]).toEqual(['frank@example.com']);
    // (The connection was just reconfigured: its discovery, once, is part of the cold start.)
    const { ['/.well-known/openid-configuration']: discovery = 0, ...calls } = idp.counts();
    expect(calls).toEqual({ '/token/introspection': 1, '/me': 1 });
    expect(discovery).toBeLessThanOrEqual(1);
    expect(misses()).toBe(missesBefore + 1);
    const rows = await s.running.app.db.pool.query(`SELECT count(*)::int AS n FROM users WHERE email = 'frank@example.com'`);
    expect(rows.rows[0].n).toBe(1);
  }));
});

// ---- provider down --------------------------------------------------------------------------

describe('provider down', () => {
  it('validated tokens keep working; a new one is anonymous within the timeout, logged, and works once the provider is back', async () =>
    withoutAudience(async () => {
    const opaque = track(await idp.issueAccessToken({ sub: 'bob', clientId: CLIENT_ID, scope: 'saleor:manage_staff', resource: AUDIENCE, format: 'opaque' }));
    expect(await me(opaque)).toMatchObject({ email: 'bob@example.com' });
    const fresh = track(await idp.issueAccessToken({ sub: 'dora', clientId: CLIENT_ID, scope: 'openid email', format: 'opaque' }));
    const jwtAnswer = await me(aliceJwt);
    const opaqueAnswer = await me(opaque);
    const ourAnswer = await me(aliceOurToken);
    const logsBefore = s.logs.length;

    await idp.stop();
    try {
      expect(await me(aliceJwt)).toEqual(jwtAnswer);
      expect(jwtAnswer).toMatchObject({ email: 'alice@example.com' });
      expect(await me(opaque)).toEqual(opaqueAnswer);
      expect(await me(aliceOurToken)).toEqual(ourAnswer);
      expect(ourAnswer).toMatchObject({ email: 'alice@example.com' });

      const started = performance.now();
      expect(await me(fresh)).toBeNull();
      expect(performance.now() - started).toBeLessThan(3000);
      const logged = s.logs.slice(logsBefore).filter((l) => l.includes('provider unavailable'));
      expect(logged.length).toBeGreaterThanOrEqual(1);
      expect(logged.some((l) => l.includes(fingerprint(fresh)))).toBe(true);

      const health = await fetch(`${s.url}/healthz`);
      expect(health.status).toBe(200);
      await health.body?.cancel();
    } finally {
      await idp.start();
    }
    // Not remembered as a refusal: it works as soon as the provider is back.
    expect(await me(fresh)).toEqual({ email: 'dora@example.com', isStaff: false, userPermissions: [] });
  }));
});

describe('logs', () => {
  it('never contain a token used in this file', () => {
    expect(used.length).toBeGreaterThan(10);
    const logs = s.logs.join('\n');
    expect(logs.length).toBeGreaterThan(0);
    for (const token of used) {
      expect(logs.includes(token), `log contains ${fingerprint(token)}`).toBe(false);
      // Nor the signature part of a JWT.
      const signature = token.split('.')[2];
      if (signature && signature.length > 20) expect(logs.includes(signature)).toBe(false);
    }
  });
});
