/**
 * Staff and permissions from a real OpenID provider (saleor-contract.md sections 2, 4, 5):
 * scope permissions, the permissions claim, staff domains, the default group, account linking,
 * inactive users, externalVerify, and two connections (two providers) at once.
 *
 * One server and two providers for the whole file; each describe block sets the staff rules it
 * needs first, so the blocks run in file order but do not depend on each other's settings.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { upsertStaffUser } from '../../src/accounts/users.ts';
import { CORE_TOKEN_OWNER } from '../../src/tokens/jwt.ts';
import { toGlobalId } from '../../src/core/ids.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { SALEOR_PERMISSION_CODENAMES, SALEOR_SCOPES, startIdp, type TestIdp } from '../helpers/idp.ts';
import {
  DEFAULT_PLUGIN,
  REDIRECT_URI,
  adminToken,
  authenticationUrl,
  configure,
  connectionValues,
  externalCall,
  login,
  obtainTokens,
  type TokensResult,
} from '../helpers/oidc-flow.ts';

const STAFF_PLUGIN = 'oidc.staff';
/** Scopes a provider may grant that look like Saleor's but are not (whole-token match). */
const NEAR_MISS_SCOPES = ['saleor:staffing', 'xsaleor:staff', 'saleor:staff.admin', 'saleor:manage_orders_x'];

let s: TestServer;
let idp: TestIdp;
let idp2: TestIdp;
let admin: string;

beforeAll(async () => {
  idp = await startIdp({
    clients: [{ client_id: 'storefront', client_secret: 'storefront-secret', redirect_uris: [REDIRECT_URI] }],
    extraScopes: [...NEAR_MISS_SCOPES, 'SALEOR:MANAGE_PAGES'],
    accounts: [
      // 1. scope permissions
      { sub: 'olga', email: 'olga@example.com', email_verified: true, given_name: 'Olga', scopes: ['saleor:manage_orders', 'saleor:manage_users'] },
      { sub: 'sam', email: 'sam@example.com', email_verified: true, scopes: ['saleor:staff'] },
      // 2. permissions claim
      { sub: 'dave', email: 'dave@example.com', email_verified: true, scopes: [], permissions: ['saleor:manage_orders', 'saleor:MANAGE_USERS', 'manage_staff'] },
      // 3. scope permissions off: would be granted everything if it were asked for
      { sub: 'pete', email: 'pete@example.com', email_verified: true, scopes: [...SALEOR_SCOPES], permissions: ['saleor:manage_orders', 'saleor:staff'] },
      // 4. staff domains, near misses
      { sub: 'bob', email: 'bob@staff.example.com', email_verified: true, scopes: [] },
      { sub: 'carol', email: 'carol@staff.example.com', email_verified: false, scopes: [] },
      { sub: 'hank', email: 'Hank@STAFF.Example.COM', email_verified: true, scopes: [] },
      { sub: 'ivy', email: 'ivy@Other.Example', email_verified: true, scopes: [] },
      { sub: 'sub-domain', email: 'x@sub.staff.example.com', email_verified: true, scopes: [] },
      { sub: 'look-alike', email: 'y@staff.example.com.evil.test', email_verified: true, scopes: [] },
      { sub: 'mole', email: 'boss@staff.example.com', email_verified: false, scopes: [] },
      { sub: 'nora', email: 'nora@example.com', email_verified: true, scopes: [...NEAR_MISS_SCOPES] },
      { sub: 'quinn', email: 'quinn@example.com', email_verified: true, scopes: ['SALEOR:MANAGE_PAGES'] },
      // 6. linking
      { sub: 'erin', email: 'erin@example.com', email_verified: true, given_name: 'Erin', scopes: ['saleor:staff'] },
      { sub: 'erin-2', email: 'ERIN@example.com', email_verified: true, scopes: ['saleor:staff'] },
      { sub: 'fay', email: 'fay@example.com', email_verified: false, scopes: [] },
      { sub: 'gus', email: 'gus@example.com', email_verified: true, scopes: [] },
      // 7, 8
      { sub: 'ian', email: 'ian@example.com', email_verified: true, scopes: [] },
      { sub: 'vera', email: 'vera@example.com', email_verified: true, scopes: ['saleor:manage_users'] },
      // 9
      { sub: 'pat', email: 'pat@example.com', email_verified: true, given_name: 'Pat', scopes: [] },
    ],
  });
  idp2 = await startIdp({
    clients: [{ client_id: 'staff-portal', client_secret: 'staff-portal-secret', redirect_uris: [REDIRECT_URI] }],
    accounts: [{ sub: 'pat-at-staff-idp', email: 'Pat@Example.com', email_verified: true, given_name: 'Patricia', scopes: [] }],
  });
  s = await startTestServer({ OUTBOUND_ALLOW_PRIVATE_ADDRESSES: 'true', OIDC_JWKS_REFETCH_COOLDOWN_SECONDS: '0' });
  admin = await adminToken(s);
  await configure(s, admin, DEFAULT_PLUGIN, connectionValues(idp, 'storefront', 'storefront-secret'));
});

afterAll(async () => {
  await s?.close();
  await idp?.close();
  await idp2?.close();
});

// ---- helpers ---------------------------------------------------------------------------

async function rows<T = any>(sql: string, params: unknown[] = []): Promise<T[]> {
  return (await s.running.app.db.pool.query(sql, params)).rows as T[];
}

interface UserRow {
  id: number;
  email: string;
  first_name: string;
  is_staff: boolean;
  is_active: boolean;
  permissions: string[];
}

async function userRow(email: string): Promise<UserRow | undefined> {
  return (await rows<UserRow>('SELECT id, email, first_name, is_staff, is_active, permissions FROM users WHERE email = $1', [email]))[0];
}

async function identitiesOf(userId: number) {
  return rows<{ plugin_id: string; issuer: string; subject: string }>(
    'SELECT plugin_id, issuer, subject FROM external_identities WHERE user_id = $1 ORDER BY id',
    [userId],
  );
}

async function identityRows(subject: string) {
  return rows('SELECT user_id FROM external_identities WHERE subject = $1', [subject]);
}

async function lastGrantedScope(userId: number, pluginId = DEFAULT_PLUGIN): Promise<string[]> {
  const [row] = await rows<{ granted_scope: string | null }>(
    'SELECT granted_scope FROM sessions WHERE user_id = $1 AND plugin_id = $2 ORDER BY created_at DESC LIMIT 1',
    [userId, pluginId],
  );
  return (row?.granted_scope ?? '').split(' ').filter(Boolean);
}

/** The staff rules of the default connection; every rule is set (unset ones to their default). */
async function staffRules(rules: { scopePermissions: boolean; domains?: string; group?: string; linkByVerifiedEmail?: boolean }) {
  await configure(s, admin, DEFAULT_PLUGIN, {
    use_oauth_scope_permissions: String(rules.scopePermissions),
    staff_user_domains: rules.domains ?? '',
    default_group_name_for_new_staff_users: rules.group ?? '',
    link_by_verified_email: String(rules.linkByVerifiedEmail ?? true),
  });
}

const codes = (user: { userPermissions: Array<{ code: string }> | null }) => user.userPermissions?.map((p) => p.code);

/** Logs in and checks that it worked. */
async function loginOk(account: string, provider = idp, pluginId = DEFAULT_PLUGIN): Promise<TokensResult> {
  const r = await login(s, provider, pluginId, account);
  expect(r.errors).toEqual([]);
  expect(r.token).toEqual(expect.any(String));
  return r;
}

async function me(token: string) {
  const r = await s.gql('{ me { email isStaff userPermissions { code } } }', {}, { token });
  return r.body.data.me as { email: string; isStaff: boolean; userPermissions: Array<{ code: string }> };
}

async function authorizationScope(pluginId = DEFAULT_PLUGIN): Promise<string[]> {
  const r = await authenticationUrl(s, pluginId, { redirectUri: REDIRECT_URI });
  expect(r.errors).toEqual([]);
  return new URL(JSON.parse(r.authenticationData!).authorizationUrl).searchParams.get('scope')!.split(' ');
}

const CREATE = `mutation($input: OpenIdConnectConnectionCreateInput!) {
  openIdConnectConnectionCreate(input: $input) { plugin { id name } errors { field code message } } }`;
const DELETE = `mutation($id: ID!) { openIdConnectConnectionDelete(id: $id) { errors { field code message } } }`;
const SHOP = '{ shop { availableExternalAuthentications { id name } } }';

// ---- 1. scope permissions -----------------------------------------------------------------

describe('scope permissions on', () => {
  it('asks for every saleor:<codename> scope, saleor:staff and offline_access', async () => {
    await staffRules({ scopePermissions: true });
    const scope = await authorizationScope();
    expect(SALEOR_PERMISSION_CODENAMES).toHaveLength(25);
    expect([...scope].sort()).toEqual(['openid', 'profile', 'email', ...SALEOR_SCOPES, 'offline_access'].sort());
    expect(scope).toHaveLength(3 + 25 + 1 + 1);
  });

  it('grants the permissions of the granted scopes and makes the user staff', async () => {
    await staffRules({ scopePermissions: true });
    const r = await loginOk('olga');
    expect(r.user).toMatchObject({ email: 'olga@example.com', isStaff: true });
    expect(codes(r.user)).toEqual(['MANAGE_USERS', 'MANAGE_ORDERS']);
    expect(decodeJwt(r.token!)).toMatchObject({ owner: DEFAULT_PLUGIN, is_staff: true, permissions: ['MANAGE_USERS', 'MANAGE_ORDERS'] });
    expect(await me(r.token!)).toEqual({
      email: 'olga@example.com',
      isStaff: true,
      userPermissions: [{ code: 'MANAGE_USERS' }, { code: 'MANAGE_ORDERS' }],
    });
    const row = (await userRow('olga@example.com'))!;
    expect(row).toMatchObject({ is_staff: true, permissions: ['MANAGE_USERS', 'MANAGE_ORDERS'] });
    // The provider granted exactly those two of the saleor scopes (the harness restriction works).
    expect((await lastGrantedScope(row.id)).filter((t) => t.startsWith('saleor:')).sort()).toEqual(['saleor:manage_orders', 'saleor:manage_users']);
  });

  it('saleor:staff alone makes a staff user with no permissions', async () => {
    await staffRules({ scopePermissions: true });
    const r = await loginOk('sam');
    expect(r.user).toMatchObject({ email: 'sam@example.com', isStaff: true, userPermissions: [] });
    expect(decodeJwt(r.token!)).toMatchObject({ is_staff: true, permissions: [] });
    expect(await me(r.token!)).toEqual({ email: 'sam@example.com', isStaff: true, userPermissions: [] });
    expect(await userRow('sam@example.com')).toMatchObject({ is_staff: true, permissions: [] });
  });

  it('a user granted no saleor scope at the next login loses staff and permissions', async () => {
    await staffRules({ scopePermissions: true });
    idp.accounts.get('olga')!.scopes = [];
    try {
      const r = await loginOk('olga');
      expect(r.user).toMatchObject({ email: 'olga@example.com', isStaff: false, userPermissions: [] });
      expect(decodeJwt(r.token!)).toMatchObject({ is_staff: false, permissions: [] });
      expect(await me(r.token!)).toEqual({ email: 'olga@example.com', isStaff: false, userPermissions: [] });
      expect(await userRow('olga@example.com')).toMatchObject({ is_staff: false, permissions: [] });
    } finally {
      idp.accounts.get('olga')!.scopes = ['saleor:manage_orders', 'saleor:manage_users'];
    }
  });
});

// ---- 2. permissions claim -------------------------------------------------------------------

describe('permissions claim', () => {
  it('is parsed case-sensitively and needs the saleor: prefix', async () => {
    await staffRules({ scopePermissions: true });
    const r = await loginOk('dave');
    expect(r.user).toMatchObject({ email: 'dave@example.com', isStaff: true });
    expect(codes(r.user)).toEqual(['MANAGE_ORDERS']);
    expect(decodeJwt(r.token!)).toMatchObject({ is_staff: true, permissions: ['MANAGE_ORDERS'] });
    const row = (await userRow('dave@example.com'))!;
    expect(row).toMatchObject({ is_staff: true, permissions: ['MANAGE_ORDERS'] });
    expect((await lastGrantedScope(row.id)).filter((t) => t.startsWith('saleor:'))).toEqual([]);
  });
});

// ---- 3. scope permissions off ---------------------------------------------------------------

describe('scope permissions off', () => {
  it('asks for no saleor scope and ignores a permissions claim', async () => {
    await staffRules({ scopePermissions: false });
    expect(await authorizationScope()).toEqual(['openid', 'profile', 'email', 'offline_access']);
    const r = await loginOk('pete');
    expect(r.user).toMatchObject({ email: 'pete@example.com', isStaff: false, userPermissions: [] });
    expect(decodeJwt(r.token!)).toMatchObject({ is_staff: false, permissions: [] });
    const row = (await userRow('pete@example.com'))!;
    expect(row).toMatchObject({ is_staff: false, permissions: [] });
    expect((await lastGrantedScope(row.id)).sort()).toEqual(['email', 'offline_access', 'openid', 'profile']);
  });
});

// ---- 4. staff domains -----------------------------------------------------------------------

describe('staff user domains', () => {
  it('make a user with a verified email in a listed domain staff, compared case-insensitively', async () => {
    await staffRules({ scopePermissions: false, domains: 'Staff.Example.com, other.example' });
    for (const [account, email] of [
      ['bob', 'bob@staff.example.com'],
      ['hank', 'hank@staff.example.com'],
      ['ivy', 'ivy@other.example'],
    ] as const) {
      const r = await loginOk(account);
      expect(r.user, account).toMatchObject({ email, isStaff: true, userPermissions: [] });
      expect(decodeJwt(r.token!), account).toMatchObject({ is_staff: true, permissions: [] });
      expect(await userRow(email), account).toMatchObject({ is_staff: true, permissions: [] });
    }
  });

  it('do not make staff: an unverified email, a sub-domain, a look-alike domain', async () => {
    await staffRules({ scopePermissions: false, domains: 'Staff.Example.com, other.example' });
    for (const [account, email] of [
      ['carol', 'carol@staff.example.com'],
      ['sub-domain', 'x@sub.staff.example.com'],
      ['look-alike', 'y@staff.example.com.evil.test'],
    ] as const) {
      const r = await loginOk(account);
      expect(r.user, account).toMatchObject({ email, isStaff: false, userPermissions: [] });
      expect(await userRow(email), account).toMatchObject({ is_staff: false, permissions: [] });
    }
  });

  it('only a verified email counts: an unverified staff-domain email kept because the new one is taken does not make staff', async () => {
    await staffRules({ scopePermissions: false, domains: 'Staff.Example.com, other.example' });
    const account = idp.accounts.get('mole')!;
    const first = await loginOk('mole');
    expect(first.user).toMatchObject({ email: 'boss@staff.example.com', isStaff: false });
    const mole = (await userRow('boss@staff.example.com'))!;
    const peteBefore = await userRow('pete@example.com');
    expect(peteBefore).toBeDefined();
    try {
      // The provider now asserts a verified email that another user owns here: it is not
      // copied, so the stored email stays the never-verified staff-domain one.
      account.email = 'pete@example.com';
      account.email_verified = true;
      const r = await loginOk('mole');
      expect(r.user).toMatchObject({ id: toGlobalId('User', mole.id), email: 'boss@staff.example.com' });
      expect(await userRow('pete@example.com')).toEqual(peteBefore);
      // The verified email (pete@example.com) is not in a staff domain; boss@staff.example.com
      // was never verified by the provider.
      expect(r.user).toMatchObject({ isStaff: false, userPermissions: [] });
      expect(decodeJwt(r.token!)).toMatchObject({ is_staff: false, permissions: [] });
      expect(await userRow('boss@staff.example.com')).toMatchObject({ id: mole.id, is_staff: false });
    } finally {
      account.email = 'boss@staff.example.com';
      account.email_verified = false;
    }
  });

  it('near-miss scopes (saleor:staffing, xsaleor:staff, …) do not make staff; scope tokens are lower-cased', async () => {
    await staffRules({ scopePermissions: true, domains: 'Staff.Example.com, other.example' });
    const nora = await loginOk('nora');
    expect(nora.user).toMatchObject({ email: 'nora@example.com', isStaff: false, userPermissions: [] });
    const noraRow = (await userRow('nora@example.com'))!;
    expect(noraRow).toMatchObject({ is_staff: false, permissions: [] });
    // The provider really granted them (unasked).
    expect(await lastGrantedScope(noraRow.id)).toEqual(expect.arrayContaining(NEAR_MISS_SCOPES));

    const quinn = await loginOk('quinn');
    expect(quinn.user).toMatchObject({ email: 'quinn@example.com', isStaff: true });
    expect(codes(quinn.user)).toEqual(['MANAGE_PAGES']);
    const quinnRow = (await userRow('quinn@example.com'))!;
    expect(quinnRow).toMatchObject({ is_staff: true, permissions: ['MANAGE_PAGES'] });
    expect(await lastGrantedScope(quinnRow.id)).toContain('SALEOR:MANAGE_PAGES');

    // A staff domain still makes staff with scope permissions on (no permissions).
    const bob = await loginOk('bob');
    expect(bob.user).toMatchObject({ email: 'bob@staff.example.com', isStaff: true, userPermissions: [] });
  });
});

// ---- 5. default group -----------------------------------------------------------------------

describe('default group for new staff users', () => {
  const membership = (email: string) =>
    rows<{ name: string }>(
      'SELECT g.name FROM group_members m JOIN permission_groups g ON g.id = m.group_id JOIN users u ON u.id = m.user_id WHERE u.email = $1 ORDER BY g.name',
      [email],
    );

  it('is created empty when missing and staff users join it; non-staff users do not', async () => {
    await staffRules({ scopePermissions: true, domains: 'staff.example.com', group: 'Support' });
    expect(await rows(`SELECT 1 FROM permission_groups WHERE name = 'Support'`)).toEqual([]);

    const bob = await loginOk('bob');
    expect(bob.user).toMatchObject({ isStaff: true, userPermissions: [], permissionGroups: [{ name: 'Support' }] });
    expect(await rows(`SELECT name, permissions FROM permission_groups WHERE name = 'Support'`)).toEqual([{ name: 'Support', permissions: [] }]);
    expect(await membership('bob@staff.example.com')).toEqual([{ name: 'Support' }]);

    const olga = await loginOk('olga'); // scopes: manage_orders, manage_users
    expect(olga.user).toMatchObject({ isStaff: true, permissionGroups: [{ name: 'Support' }] });
    expect(codes(olga.user)).toEqual(['MANAGE_USERS', 'MANAGE_ORDERS']);
    expect(await membership('olga@example.com')).toEqual([{ name: 'Support' }]);

    for (const [account, email] of [
      ['carol', 'carol@staff.example.com'],
      ['look-alike', 'y@staff.example.com.evil.test'],
    ] as const) {
      const r = await loginOk(account);
      expect(r.user, account).toMatchObject({ isStaff: false, permissionGroups: [] });
      expect(await membership(email), account).toEqual([]);
    }
    expect(await rows(`SELECT count(*)::int AS n FROM permission_groups WHERE name = 'Support'`)).toEqual([{ n: 1 }]);
  });

  it("adds the group's permissions to the staff user's token", async () => {
    await staffRules({ scopePermissions: true, domains: 'staff.example.com', group: 'Support' });
    await rows(`UPDATE permission_groups SET permissions = ARRAY['MANAGE_PAGES'] WHERE name = 'Support'`);

    const bob = await loginOk('bob');
    expect(codes(bob.user)).toEqual(['MANAGE_PAGES']);
    expect(decodeJwt(bob.token!)).toMatchObject({ is_staff: true, permissions: ['MANAGE_PAGES'] });
    expect(await me(bob.token!)).toEqual({ email: 'bob@staff.example.com', isStaff: true, userPermissions: [{ code: 'MANAGE_PAGES' }] });

    const olga = await loginOk('olga');
    expect(decodeJwt(olga.token!)).toMatchObject({ is_staff: true, permissions: ['MANAGE_USERS', 'MANAGE_ORDERS', 'MANAGE_PAGES'] });
    // The group's permissions stay the group's: the user's own column holds the scope permissions.
    expect(await userRow('olga@example.com')).toMatchObject({ is_staff: true, permissions: ['MANAGE_USERS', 'MANAGE_ORDERS'] });
    expect(await userRow('bob@staff.example.com')).toMatchObject({ is_staff: true, permissions: [] });
  });
});

// ---- 6. linking -------------------------------------------------------------------------------

describe('linking to existing accounts (contract section 4)', () => {
  it('links an existing account by a verified email', async () => {
    await staffRules({ scopePermissions: true });
    const erin = await upsertStaffUser(s.running.app.db.prisma, { email: 'erin@example.com', permissions: [] });
    const r = await loginOk('erin');
    expect(r.user).toMatchObject({ id: toGlobalId('User', erin.id), email: 'erin@example.com', firstName: 'Erin', isStaff: true, userPermissions: [] });
    expect(await rows(`SELECT count(*)::int AS n FROM users WHERE email = 'erin@example.com'`)).toEqual([{ n: 1 }]);
    expect(await identitiesOf(erin.id)).toEqual([{ plugin_id: DEFAULT_PLUGIN, issuer: idp.issuer, subject: 'erin' }]);
  });

  it('refuses to link when the provider did not verify the email', async () => {
    await staffRules({ scopePermissions: true });
    const fay = await upsertStaffUser(s.running.app.db.prisma, { email: 'fay@example.com', permissions: [] });
    const r = await login(s, idp, DEFAULT_PLUGIN, 'fay');
    expect(r.errors).toEqual([{ field: 'code', code: 'INVALID', message: expect.any(String) }]);
    expect(r).toMatchObject({ token: null, refreshToken: null, csrfToken: null, user: null });
    expect(await identityRows('fay')).toEqual([]);
    expect(await identitiesOf(fay.id)).toEqual([]);
  });

  it('refuses to link a verified email when link_by_verified_email is false', async () => {
    const gus = await upsertStaffUser(s.running.app.db.prisma, { email: 'gus@example.com', permissions: [] });
    await staffRules({ scopePermissions: true, linkByVerifiedEmail: false });
    const r = await login(s, idp, DEFAULT_PLUGIN, 'gus');
    expect(r.errors).toEqual([{ field: 'code', code: 'INVALID', message: expect.any(String) }]);
    expect(r.token).toBeNull();
    expect(await identitiesOf(gus.id)).toEqual([]);
    // The setting was the reason: with it back on, the same login links.
    await staffRules({ scopePermissions: true, linkByVerifiedEmail: true });
    const again = await loginOk('gus');
    expect(again.user.id).toBe(toGlobalId('User', gus.id));
    expect(await identitiesOf(gus.id)).toEqual([{ plugin_id: DEFAULT_PLUGIN, issuer: idp.issuer, subject: 'gus' }]);
  });

  it('never re-links an account to another subject at the same issuer', async () => {
    await staffRules({ scopePermissions: true });
    const erin = (await userRow('erin@example.com'))!;
    const r = await login(s, idp, DEFAULT_PLUGIN, 'erin-2');
    expect(r.errors).toEqual([{ field: 'code', code: 'INVALID', message: expect.any(String) }]);
    expect(r.token).toBeNull();
    expect(await identityRows('erin-2')).toEqual([]);
    expect(await identitiesOf(erin.id)).toEqual([{ plugin_id: DEFAULT_PLUGIN, issuer: idp.issuer, subject: 'erin' }]);
    // The original identity still logs in as that user.
    const ok = await loginOk('erin');
    expect(ok.user.id).toBe(toGlobalId('User', erin.id));
  });

  it("does not copy an email owned by another user, but still syncs the names", async () => {
    await staffRules({ scopePermissions: true });
    const account = idp.accounts.get('erin')!;
    const erin = (await userRow('erin@example.com'))!;
    const fayBefore = await userRow('fay@example.com');
    try {
      account.email = 'fay@example.com';
      account.given_name = 'Erina';
      const r = await loginOk('erin');
      expect(r.user).toMatchObject({ id: toGlobalId('User', erin.id), email: 'erin@example.com', firstName: 'Erina' });
      expect(await userRow('erin@example.com')).toMatchObject({ id: erin.id, first_name: 'Erina' });
      expect(await userRow('fay@example.com')).toEqual(fayBefore);

      // Control: a free email is copied.
      account.email = 'Erin.New@example.com';
      const moved = await loginOk('erin');
      expect(moved.user).toMatchObject({ id: toGlobalId('User', erin.id), email: 'erin.new@example.com' });
      expect(await userRow('erin.new@example.com')).toMatchObject({ id: erin.id });
      expect(await userRow('erin@example.com')).toBeUndefined();
    } finally {
      account.email = 'erin@example.com';
      account.given_name = 'Erin';
    }
    const back = await loginOk('erin');
    expect(back.user).toMatchObject({ email: 'erin@example.com', firstName: 'Erin' });
  });
});

// ---- 7. inactive users ------------------------------------------------------------------------

describe('inactive users', () => {
  it('cannot log in', async () => {
    await staffRules({ scopePermissions: true });
    const first = await loginOk('ian');
    const ian = (await userRow('ian@example.com'))!;
    expect(first.user.id).toBe(toGlobalId('User', ian.id));
    const sessionsBefore = await rows('SELECT id FROM sessions WHERE user_id = $1 ORDER BY id', [ian.id]);
    await rows('UPDATE users SET is_active = false WHERE id = $1', [ian.id]);
    try {
      const r = await login(s, idp, DEFAULT_PLUGIN, 'ian');
      expect(r.errors).toEqual([{ field: 'code', code: 'INVALID', message: 'Unable to log in.' }]);
      expect(r).toMatchObject({ token: null, refreshToken: null, csrfToken: null, user: null });
      expect(r.setCookie.filter((c) => c.startsWith('refreshToken='))).toEqual([]);
      expect(await rows('SELECT id FROM sessions WHERE user_id = $1 ORDER BY id', [ian.id])).toEqual(sessionsBefore);
      expect(await userRow('ian@example.com')).toMatchObject({ is_active: false });
    } finally {
      await rows('UPDATE users SET is_active = true WHERE id = $1', [ian.id]);
    }
  });
});

// ---- 8. externalVerify ------------------------------------------------------------------------

describe('externalVerify', () => {
  const verify = (input: unknown, pluginId = DEFAULT_PLUGIN) => externalCall(s, 'externalVerify', pluginId, input);

  it('accepts a fresh access token of this plugin; its claims hold no provider token', async () => {
    await staffRules({ scopePermissions: true });
    const r = await loginOk('vera');
    const vera = (await userRow('vera@example.com'))!;
    const v = await verify({ token: r.token });
    expect(v.errors).toEqual([]);
    expect(v.isValid).toBe(true);
    expect(v.user).toMatchObject({ id: toGlobalId('User', vera.id), email: 'vera@example.com', isStaff: true });
    expect(codes(v.user)).toEqual(['MANAGE_USERS']);
    const data = JSON.parse(v.verifyData) as Record<string, unknown>;
    expect(data).toEqual(decodeJwt(r.token!));
    expect(data).toMatchObject({
      type: 'access',
      owner: DEFAULT_PLUGIN,
      email: 'vera@example.com',
      user_id: toGlobalId('User', vera.id),
      is_staff: true,
      permissions: ['MANAGE_USERS'],
    });
    for (const key of Object.keys(data)) {
      expect(key.toLowerCase(), key).not.toMatch(/oauth|id_token|access_key|refresh/);
    }
    // Nor does any value carry our refresh token or something JWT-shaped (a provider token).
    for (const value of Object.values(data)) {
      expect(value).not.toBe(r.refreshToken);
      if (typeof value === 'string') expect(value).not.toMatch(/^ey[\w-]+\.[\w-]+\.[\w-]+$/);
    }
  });

  it('refuses a refresh token, a core token, a missing and a garbage token without an error', async () => {
    const r = await loginOk('vera');
    const vera = await s.running.app.db.prisma.user.findUniqueOrThrow({ where: { email: 'vera@example.com' } });
    const core = await s.running.app.tokens.mintAccessToken(vera, [], CORE_TOKEN_OWNER);
    for (const [label, input] of [
      ['refresh token', { token: r.refreshToken }],
      ['core token', { token: core }],
      ['missing', {}],
      ['empty', { token: '' }],
      ['garbage', { token: 'garbage' }],
      ['garbage jwt', { token: 'eyJhbGciOiJub25lIn0.eyJ0eXBlIjoiYWNjZXNzIn0.' }],
    ] as const) {
      const v = await verify(input);
      expect({ label, ...v, setCookie: undefined }).toEqual({ label, user: null, isValid: false, verifyData: null, errors: [], setCookie: undefined });
    }
  });

  it('answers token/INVALID once the user is deactivated', async () => {
    const r = await loginOk('vera');
    const vera = (await userRow('vera@example.com'))!;
    await rows('UPDATE users SET is_active = false WHERE id = $1', [vera.id]);
    try {
      const v = await verify({ token: r.token });
      expect(v.errors).toEqual([{ field: 'token', code: 'INVALID', message: expect.any(String) }]);
      expect(v).toMatchObject({ user: null, isValid: false, verifyData: null });
    } finally {
      await rows('UPDATE users SET is_active = true WHERE id = $1', [vera.id]);
    }
    expect((await verify({ token: r.token })).isValid).toBe(true);
  });
});

// ---- 9. two connections -----------------------------------------------------------------------

describe('groups claim', () => {
  it('makes the user a member of exactly the named existing groups, and staff; the claim can be nested', async () => {
    await s.running.app.db.pool.query(`INSERT INTO permission_groups (name, permissions) VALUES ('Editors', ARRAY['MANAGE_PAGES']), ('Auditors', ARRAY['MANAGE_ORDERS'])`);
    await staffRules({ scopePermissions: true });
    await configure(s, admin, DEFAULT_PLUGIN, { groups_claim: 'groups' });
    try {
      idp.accounts.set('gina', { sub: 'gina', email: 'gina@example.com', email_verified: true, scopes: [], groups: ['Editors', 'No Such Group'] });
      const first = await loginOk('gina');
      expect(first.user).toMatchObject({ isStaff: true, permissionGroups: [{ name: 'Editors' }] });
      expect(codes(first.user)).toEqual(['MANAGE_PAGES']);
      expect(decodeJwt(first.token!)).toMatchObject({ is_staff: true, permissions: ['MANAGE_PAGES'] });
      expect(await rows(`SELECT count(*)::int AS n FROM permission_groups WHERE name = 'No Such Group'`)).toEqual([{ n: 0 }]);

      // The provider moves her to Auditors: she leaves Editors.
      idp.accounts.get('gina')!.groups = ['Auditors'];
      const second = await loginOk('gina');
      expect(second.user.permissionGroups).toEqual([{ name: 'Auditors' }]);
      expect(codes(second.user)).toEqual(['MANAGE_ORDERS']);

      // No group and no saleor scope, with scope permissions on: no longer staff, no group.
      idp.accounts.get('gina')!.groups = [];
      const third = await loginOk('gina');
      expect(third.user).toMatchObject({ isStaff: false, permissionGroups: [] });
      expect(codes(third.user)).toEqual([]);
    } finally {
      await configure(s, admin, DEFAULT_PLUGIN, { groups_claim: '' });
    }
  });
});

describe('scope permissions off: the provider does not demote', () => {
  it('keeps a staff user made here (CLI) staff with their permissions, and promotes by verified domain only', async () => {
    await staffRules({ scopePermissions: false, domains: 'staff.example.com' });
    idp.accounts.set('walt', { sub: 'walt', email: 'walt@example.com', email_verified: true, scopes: [] });
    const made = await upsertStaffUser(s.running.app.db.prisma, { email: 'walt@example.com', permissions: ['MANAGE_ORDERS'] });
    const r = await loginOk('walt');
    expect(r.user).toMatchObject({ email: 'walt@example.com', isStaff: true });
    expect(codes(r.user)).toEqual(['MANAGE_ORDERS']);
    expect(decodeJwt(r.token!)).toMatchObject({ is_staff: true, permissions: ['MANAGE_ORDERS'] });
    expect((await userRow('walt@example.com'))!.is_staff).toBe(true);
    expect((await userRow('walt@example.com'))!.id).toBe(made.id);
  });
});

describe('two connections at once', () => {
  it('creates a second connection (and refuses a duplicate id, a bad id, an anonymous caller)', async () => {
    const anonymous = await s.gql(CREATE, { input: { id: STAFF_PLUGIN, name: 'Staff IdP' } });
    expect(anonymous.body.data).toEqual({ openIdConnectConnectionCreate: null });
    expect(anonymous.body.errors?.[0]?.extensions?.['exception']?.code).toBe('PermissionDenied');
    expect(await rows('SELECT id FROM plugin_configurations WHERE id = $1', [STAFF_PLUGIN])).toEqual([]);

    const created = await s.gql(CREATE, { input: { id: STAFF_PLUGIN, name: 'Staff IdP' } }, { token: admin });
    expect(created.body.data.openIdConnectConnectionCreate).toEqual({ plugin: { id: STAFF_PLUGIN, name: 'Staff IdP' }, errors: [] });
    // A created connection does not see opaque bearer tokens unless told to; the built-in one does.
    const opaqueSetting = async (id: string) =>
      ((await s.gql('query($id: ID!) { plugin(id: $id) { globalConfiguration { configuration { name value } } } }', { id }, { token: admin })).body.data
        .plugin.globalConfiguration.configuration as Array<{ name: string; value: string }>).find((c) => c.name === 'accept_opaque_bearer_tokens')?.value;
    expect(await opaqueSetting(STAFF_PLUGIN)).toBe('false');
    expect(await opaqueSetting(DEFAULT_PLUGIN)).toBe('true');

    const duplicate = await s.gql(CREATE, { input: { id: STAFF_PLUGIN, name: 'Again' } }, { token: admin });
    expect(duplicate.body.data.openIdConnectConnectionCreate).toEqual({
      plugin: null,
      errors: [{ field: 'id', code: 'UNIQUE', message: expect.any(String) }],
    });
    const bad = await s.gql(CREATE, { input: { id: 'X!', name: 'Bad' } }, { token: admin });
    expect(bad.body.data.openIdConnectConnectionCreate).toEqual({
      plugin: null,
      errors: [{ field: 'id', code: 'INVALID', message: expect.any(String) }],
    });
    expect(await rows(`SELECT id, name FROM plugin_configurations WHERE id IN ('oidc.staff', 'X!') ORDER BY id`)).toEqual([
      { id: STAFF_PLUGIN, name: 'Staff IdP' },
    ]);

    await staffRules({ scopePermissions: false });
    await configure(s, admin, STAFF_PLUGIN, connectionValues(idp2, 'staff-portal', 'staff-portal-secret'));
    const shop = await s.gql(SHOP);
    const list = [...shop.body.data.shop.availableExternalAuthentications].sort((a, b) => a.id.localeCompare(b.id));
    expect(list).toEqual([
      { id: STAFF_PLUGIN, name: 'Staff IdP' },
      { id: DEFAULT_PLUGIN, name: 'OpenID Connect' },
    ].sort((a, b) => a.id.localeCompare(b.id)));
  });

  it('logs in through each; the same verified person at both providers is one user', async () => {
    const viaDefault = await loginOk('pat');
    expect(decodeJwt(viaDefault.token!)).toMatchObject({ owner: DEFAULT_PLUGIN, email: 'pat@example.com' });
    expect(decodeJwt(viaDefault.refreshToken!)).toMatchObject({ owner: DEFAULT_PLUGIN });
    const viaStaff = await loginOk('pat-at-staff-idp', idp2, STAFF_PLUGIN);
    expect(decodeJwt(viaStaff.token!)).toMatchObject({ owner: STAFF_PLUGIN, email: 'pat@example.com' });
    expect(decodeJwt(viaStaff.refreshToken!)).toMatchObject({ owner: STAFF_PLUGIN });
    expect(viaStaff.user).toMatchObject({ id: viaDefault.user.id, email: 'pat@example.com', firstName: 'Patricia' });

    const pat = (await userRow('pat@example.com'))!;
    expect(viaDefault.user.id).toBe(toGlobalId('User', pat.id));
    expect(await rows(`SELECT count(*)::int AS n FROM users WHERE email = 'pat@example.com'`)).toEqual([{ n: 1 }]);
    expect(await identitiesOf(pat.id)).toEqual([
      { plugin_id: DEFAULT_PLUGIN, issuer: idp.issuer, subject: 'pat' },
      { plugin_id: STAFF_PLUGIN, issuer: idp2.issuer, subject: 'pat-at-staff-idp' },
    ]);
    expect(idp.issuer).not.toBe(idp2.issuer);

    // Each plugin verifies its own tokens only.
    expect((await externalCall(s, 'externalVerify', STAFF_PLUGIN, { token: viaStaff.token })).isValid).toBe(true);
    expect((await externalCall(s, 'externalVerify', DEFAULT_PLUGIN, { token: viaStaff.token })).isValid).toBe(false);
    expect((await externalCall(s, 'externalVerify', STAFF_PLUGIN, { token: viaDefault.token })).isValid).toBe(false);
  });

  it('never links a verified identity into an account created with an unverified email (pre-hijacking)', async () => {
    idp.accounts.set('mallory', { sub: 'mallory', email: 'target@example.com', email_verified: false, scopes: [] });
    idp2.accounts.set('target', { sub: 'target', email: 'target@example.com', email_verified: true });
    await loginOk('mallory');
    const [account] = await rows<{ id: number; is_confirmed: boolean }>('SELECT id, is_confirmed FROM users WHERE email = $1', ['target@example.com']);
    expect(account!.is_confirmed).toBe(false);
    const r = await login(s, idp2, STAFF_PLUGIN, 'target');
    expect(r.token).toBeNull();
    expect(r.errors).toEqual([{ field: 'code', code: 'INVALID', message: 'An unconfirmed account with this email already exists.' }]);
    expect(await identitiesOf(account!.id)).toEqual([{ plugin_id: DEFAULT_PLUGIN, issuer: idp.issuer, subject: 'mallory' }]);
    // And an unverified email at the provider never replaces a stored one.
    idp.accounts.set('mallory', { sub: 'mallory', email: 'pat@example.com', email_verified: false, scopes: [] });
    await loginOk('mallory');
    expect((await rows('SELECT email FROM users WHERE id = $1', [account!.id]))[0]).toEqual({ email: 'target@example.com' });
  });

  it("refuses a state created by the other connection (and does not consume it)", async () => {
    const auth = await authenticationUrl(s, DEFAULT_PLUGIN, { redirectUri: REDIRECT_URI });
    const authorizationUrl = JSON.parse(auth.authenticationData!).authorizationUrl as string;
    const result = await idp.authorize(authorizationUrl, { login: 'pat' });
    const wrong = await obtainTokens(s, STAFF_PLUGIN, { code: result.code, state: result.state });
    expect(wrong.errors).toEqual([{ field: 'state', code: 'INVALID', message: expect.any(String) }]);
    expect(wrong.token).toBeNull();
    const right = await obtainTokens(s, DEFAULT_PLUGIN, { code: result.code, state: result.state });
    expect(right.errors).toEqual([]);
    expect(decodeJwt(right.token!)).toMatchObject({ owner: DEFAULT_PLUGIN, email: 'pat@example.com' });
  });

  it('deletes the created connection and ends its sessions; the built-in one cannot be deleted', async () => {
    const builtin = await s.gql(DELETE, { id: DEFAULT_PLUGIN }, { token: admin });
    expect(builtin.body.data.openIdConnectConnectionDelete).toEqual({ errors: [{ field: 'id', code: 'INVALID', message: expect.any(String) }] });

    const anonymous = await s.gql(DELETE, { id: STAFF_PLUGIN });
    expect(anonymous.body.data).toEqual({ openIdConnectConnectionDelete: null });
    expect(anonymous.body.errors?.[0]?.extensions?.['exception']?.code).toBe('PermissionDenied');

    const live = (pluginId: string) =>
      rows<{ n: number }>('SELECT count(*)::int AS n FROM sessions WHERE plugin_id = $1 AND revoked_at IS NULL', [pluginId]);
    expect((await live(STAFF_PLUGIN))[0]!.n).toBeGreaterThan(0);
    const defaultLive = (await live(DEFAULT_PLUGIN))[0]!.n;
    expect(defaultLive).toBeGreaterThan(0);

    const staffToken = (await loginOk('pat-at-staff-idp', idp2, STAFF_PLUGIN)).token!;
    expect((await me(staffToken))?.email).toBe('pat@example.com');

    const deleted = await s.gql(DELETE, { id: STAFF_PLUGIN }, { token: admin });
    expect(deleted.body.data.openIdConnectConnectionDelete).toEqual({ errors: [] });

    // Its tokens die with it (Saleor: a plugin-owned token needs its plugin).
    expect(await me(staffToken)).toBeNull();
    const verify = await s.gql('mutation($t: String!) { tokenVerify(token: $t) { isValid errors { field code } } }', { t: staffToken });
    expect(verify.body.data.tokenVerify).toEqual({ isValid: false, errors: [{ field: 'token', code: 'JWT_INVALID_TOKEN' }] });

    expect((await s.gql(SHOP)).body.data.shop.availableExternalAuthentications).toEqual([{ id: DEFAULT_PLUGIN, name: 'OpenID Connect' }]);
    const plugin = await s.gql('query($id: ID!) { plugin(id: $id) { id } }', { id: STAFF_PLUGIN }, { token: admin });
    expect(plugin.body).toEqual({ data: { plugin: null } });
    expect(await rows('SELECT id FROM plugin_configurations WHERE id = $1', [STAFF_PLUGIN])).toEqual([]);
    expect(await live(STAFF_PLUGIN)).toEqual([{ n: 0 }]);
    const revoked = await rows<{ revoked_at: Date | null }>('SELECT revoked_at FROM sessions WHERE plugin_id = $1', [STAFF_PLUGIN]);
    expect(revoked.length).toBeGreaterThan(0);
    for (const row of revoked) expect(row.revoked_at).toBeInstanceOf(Date);
    // The other connection's sessions are untouched.
    expect(await live(DEFAULT_PLUGIN)).toEqual([{ n: defaultLive }]);
    // The deleted id is now unknown: Saleor's empty result.
    expect(await authenticationUrl(s, STAFF_PLUGIN, { redirectUri: REDIRECT_URI })).toEqual({ authenticationData: '{}', errors: [] });
    // Deleting it again: not found.
    const again = await s.gql(DELETE, { id: STAFF_PLUGIN }, { token: admin });
    expect(again.body.data.openIdConnectConnectionDelete).toEqual({ errors: [{ field: 'id', code: 'NOT_FOUND', message: expect.any(String) }] });
  });
});
