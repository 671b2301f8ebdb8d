/**
 * Provider shapes (issue 10): for each well-known provider, a test provider
 * (test/helpers/fake-provider.ts) shaped like the real one — its issuer form, discovery
 * document, id_token and access-token claims — and the server driven over HTTP against it:
 * a login (code flow) and the provider's own access token as `Authorization: Bearer`, with the
 * user, staff flag and permissions mapped from that shape, and at least one refused value each.
 *
 * Shapes: Auth0 (issuer with a trailing slash, API audience, `permissions` claim), Okta custom
 * authorization server (`scp` array, `cid`, `uid`), Keycloak (`realm_access.roles` and
 * `resource_access.<client>.roles`, `azp`), Google (no introspection, no end-session,
 * `access_type=offline`, opaque access tokens), AWS Cognito (access tokens without `aud`, with
 * `client_id`, `token_use`, `cognito:groups`), Glewlwyd (resource indicator) and Microsoft Entra
 * ID (multi-tenant `{tenantid}` issuer with `tid` and `allowed_tenants`; single tenant).
 * Each shape is its own connection to its own provider, all in one server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { JWTPayload } from 'jose';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { startFakeProvider, type FakeAuthorization, type FakeProvider } from '../helpers/fake-provider.ts';
import { REDIRECT_URI, adminToken, authenticationUrl, configure, externalCall, obtainTokens } from '../helpers/oidc-flow.ts';

const ME = '{ me { email isStaff userPermissions { code } } }';
const CLIENT_SECRET = 'shape-client-secret-0123456789abcdef';

let s: TestServer;
let admin: string;

interface Shape {
  plugin: string;
  clientId: string;
  provider: FakeProvider;
  /** The issuer exactly as the provider states it (and as configured). */
  issuer: string;
}

const shapes: Record<'auth0' | 'okta' | 'keycloak' | 'google' | 'cognito', Shape> = {} as never;

const now = () => Math.floor(Date.now() / 1000);
const perms = (...codes: string[]) => codes.map((code) => ({ code }));

async function createConnection(id: string) {
  const r = await s.gql(
    `mutation($input: OpenIdConnectConnectionCreateInput!) { openIdConnectConnectionCreate(input: $input) { plugin { id } errors { field code message } } }`,
    { input: { id, name: id } },
    { token: admin },
  );
  expect(r.body.data?.openIdConnectConnectionCreate?.errors, JSON.stringify(r.body)).toEqual([]);
}

/** A provider whose issuer is its origin + `prefix` (+ `/` when `trailingSlash`), and a connection to it. */
async function shape(
  plugin: string,
  clientId: string,
  opts: { prefix?: string; trailingSlash?: boolean; discovery?: (issuer: string) => Record<string, unknown>; values?: Record<string, string> },
): Promise<Shape> {
  const provider = await startFakeProvider();
  const prefix = opts.prefix ?? '';
  const issuer = provider.issuer + prefix + (opts.trailingSlash ? '/' : '');
  provider.discoveryOverrides.set(prefix, { issuer, ...opts.discovery?.(issuer) });
  await createConnection(plugin);
  await configure(s, admin, plugin, {
    issuer_url: issuer,
    client_id: clientId,
    client_secret: CLIENT_SECRET,
    allowed_redirect_uris: REDIRECT_URI,
    ...opts.values,
  });
  return { plugin, clientId, provider, issuer };
}

beforeAll(async () => {
  s = await startTestServer({ OUTBOUND_ALLOW_PRIVATE_ADDRESSES: 'true', OUTBOUND_TIMEOUT_MS: '1000', OIDC_JWKS_REFETCH_COOLDOWN_SECONDS: '0' });
  admin = await adminToken(s);
  await s.running.app.db.pool.query(
    `INSERT INTO permission_groups (name, permissions) VALUES ('saleor-orders', ARRAY['MANAGE_ORDERS']), ('order-managers', ARRAY['MANAGE_ORDERS', 'MANAGE_USERS'])`,
  );
  shapes.auth0 = await shape('shapes.auth0', 'auth0-spa-client', {
    trailingSlash: true,
    values: { audience: 'https://api.shop.example.com', use_oauth_scope_permissions: 'true' },
  });
  shapes.okta = await shape('shapes.okta', '0oa1storefront', {
    prefix: '/oauth2/default',
    values: { audience: 'api://default', use_oauth_scope_permissions: 'true', user_id_claim: 'uid' },
  });
  shapes.keycloak = await shape('shapes.keycloak', 'storefront', {
    prefix: '/realms/shop',
    values: { audience: 'saleor-api', groups_claim: 'realm_access.roles, resource_access.saleor-dashboard.roles' },
  });
  shapes.google = await shape('shapes.google', '1234567890-abc.apps.googleusercontent.com', {
    // Google's discovery has neither introspection nor end-session; the authorization endpoint
    // is Google's own (only built into a URL here, never requested).
    discovery: () => ({ end_session_endpoint: undefined }),
    values: { oauth_authorization_url: 'https://accounts.google.com/o/oauth2/v2/auth', accept_opaque_bearer_tokens: 'true' },
  });
  shapes.cognito = await shape('shapes.cognito', '4example0cognito0client0id', {
    prefix: '/cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Shop',
    discovery: (issuer) => ({ jwks_uri: `${issuer}/.well-known/jwks.json`, end_session_endpoint: undefined }),
    values: { groups_claim: 'cognito:groups' },
  });
});

afterAll(async () => {
  await s?.close();
  await Promise.all(Object.values(shapes).map((x) => x?.provider.close()));
});

// ---- helpers ---------------------------------------------------------------------------------

/** externalAuthenticationUrl for the shape's connection, read back by its provider. */
async function authorize(x: Shape): Promise<FakeAuthorization> {
  const auth = await authenticationUrl(s, x.plugin, { redirectUri: REDIRECT_URI });
  expect(auth.errors).toEqual([]);
  return x.provider.readAuthorizationUrl(JSON.parse(auth.authenticationData!).authorizationUrl);
}

/**
 * A code-flow login: the provider answers the code exchange with an id_token of `idClaims`
 * (iss, aud, iat, exp and the nonce added), the granted `scope`, and `userinfo` for its
 * access token.
 */
async function login(x: Shape, idClaims: Record<string, unknown>, opts: { scope?: string; userinfo?: Record<string, unknown> } = {}) {
  const { r, a } = await attemptLogin(x, idClaims, opts);
  expect(r.errors).toEqual([]);
  return { r, a };
}

/** {@link login}, whatever its outcome. */
async function attemptLogin(x: Shape, idClaims: Record<string, unknown>, opts: { scope?: string; userinfo?: Record<string, unknown> } = {}) {
  const a = await authorize(x);
  x.provider.token = async () =>
    x.provider.tokenResponse({
      idToken: await x.provider.sign({ iss: x.issuer, aud: x.clientId, iat: now(), exp: now() + 300, nonce: a.nonce, ...idClaims }),
      refreshToken: `rt-${randomUUID()}`,
      ...(opts.scope !== undefined ? { scope: opts.scope } : {}),
      ...(opts.userinfo ? { userinfo: opts.userinfo } : {}),
    });
  const r = await obtainTokens(s, x.plugin, { code: 'c', state: a.state });
  return { r, a };
}

/** pluginUpdate of `plugin`'s `values` (and `active` when given): its errors. */
async function updatePlugin(plugin: string, values: Record<string, string | null>, active?: boolean) {
  const r = await s.gql(
    `mutation($id: ID!, $input: PluginUpdateInput!) { pluginUpdate(id: $id, input: $input) { errors { field code message } } }`,
    { id: plugin, input: { ...(active !== undefined ? { active } : {}), configuration: Object.entries(values).map(([name, value]) => ({ name, value })) } },
    { token: admin },
  );
  expect(r.body.errors, JSON.stringify(r.body)).toBeUndefined();
  return r.body.data.pluginUpdate.errors as Array<{ field: string; code: string; message: string }>;
}

/** An access token signed by the shape's provider (iss, iat, exp added unless given). */
function accessToken(x: Shape, claims: Record<string, unknown>): Promise<string> {
  return x.provider.sign({ iss: x.issuer, iat: now(), exp: now() + 300, jti: randomUUID(), ...claims } as JWTPayload);
}

async function me(token: string) {
  const r = await s.gql(ME, undefined, { token });
  expect(r.status).toBe(200);
  expect(r.body.errors).toBeUndefined();
  return r.body.data.me as { email: string; isStaff: boolean; userPermissions: Array<{ code: string }> } | null;
}

// ---- Auth0 -----------------------------------------------------------------------------------

describe('Auth0: issuer with a trailing slash, API audience, permissions claim', () => {
  const API = 'https://api.shop.example.com';
  const SUB = 'auth0|64f0c0ffee';

  it('login: the audience is asked for, the granted saleor: scopes make a staff user', async () => {
    const x = shapes.auth0;
    expect(x.issuer.endsWith('/')).toBe(true);
    const { r, a } = await login(
      x,
      { sub: SUB, email: 'ada@auth0.example.com', email_verified: true, given_name: 'Ada' },
      // With RBAC on, Auth0 grants only the requested scopes the user has a permission for.
      { scope: 'openid profile email offline_access saleor:manage_orders' },
    );
    expect(a.url.searchParams.get('audience')).toBe(API);
    expect(a.scope.split(' ')).toEqual(expect.arrayContaining(['openid', 'offline_access', 'saleor:manage_orders']));
    expect(r.user).toMatchObject({ email: 'ada@auth0.example.com', isStaff: true, userPermissions: perms('MANAGE_ORDERS') });
  });

  it('bearer: an API access token maps its permissions claim (aud is an array with /userinfo)', async () => {
    const x = shapes.auth0;
    const token = await accessToken(x, {
      sub: SUB,
      aud: [API, `${x.issuer}userinfo`],
      azp: x.clientId,
      scope: 'openid profile email',
      permissions: ['saleor:manage_orders', 'saleor:manage_users', 'read:reports'],
    });
    expect(await me(token)).toEqual({ email: 'ada@auth0.example.com', isStaff: true, userPermissions: perms('MANAGE_USERS', 'MANAGE_ORDERS') });
  });

  it('bearer: refused for another API, or with the issuer written without its trailing slash', async () => {
    const x = shapes.auth0;
    const claims = { sub: SUB, azp: x.clientId, scope: 'openid', permissions: ['saleor:manage_plugins'] };
    expect(await me(await accessToken(x, { ...claims, aud: ['https://other-api.example.com', `${x.issuer}userinfo`] }))).toBeNull();
    expect(await me(await accessToken(x, { ...claims, aud: API, iss: x.issuer.slice(0, -1) }))).toBeNull();
  });
});

// ---- Okta ------------------------------------------------------------------------------------

describe('Okta custom authorization server: scp array, cid, uid', () => {
  const UID = '00u1okta2user3id';
  const LOGIN = 'olga@okta.example.com';

  it('login: saleor:staff granted, staff without permissions', async () => {
    const x = shapes.okta;
    const { r, a } = await login(x, { sub: UID, email: 'olga@okta.example.com', email_verified: true, ver: 1 }, { scope: 'openid profile email offline_access saleor:staff' });
    expect(a.url.searchParams.get('audience')).toBe('api://default');
    expect(r.user).toMatchObject({ email: 'olga@okta.example.com', isStaff: true, userPermissions: [] });
  });

  it('bearer: permissions from the scp array of an api://default token', async () => {
    const x = shapes.okta;
    const token = await accessToken(x, {
      ver: 1,
      aud: 'api://default',
      cid: x.clientId,
      // Okta's access-token sub is the user's login; uid is the user id (the id_token's sub).
      uid: UID,
      sub: LOGIN,
      scp: ['openid', 'email', 'saleor:manage_products', 'saleor:manage_orders'],
    });
    expect(await me(token)).toEqual({ email: 'olga@okta.example.com', isStaff: true, userPermissions: perms('MANAGE_ORDERS', 'MANAGE_PRODUCTS') });
    // The identity stays the one the login linked (uid), no second one by login name.
    const links = await s.running.app.db.pool.query('SELECT subject FROM external_identities WHERE plugin_id = $1', [x.plugin]);
    expect(links.rows).toEqual([{ subject: UID }]);
  });

  it('bearer: refused for another audience; an scp item that is not one scope-token grants nothing', async () => {
    const x = shapes.okta;
    const base = { ver: 1, cid: x.clientId, uid: UID, sub: LOGIN };
    expect(await me(await accessToken(x, { ...base, aud: 'api://other', scp: ['saleor:manage_plugins'] }))).toBeNull();
    expect(
      await me(await accessToken(x, { ...base, aud: 'api://default', scp: ['openid saleor:manage_plugins', 'saleor:staff\tsaleor:manage_staff', 'manage_orders', 42] })),
    ).toEqual({ email: 'olga@okta.example.com', isStaff: false, userPermissions: [] });
  });

  it('bearer: without user_id_claim = uid the login name in sub is not the user; a bad claim name is refused', async () => {
    const x = shapes.okta;
    const token = await accessToken(x, { ver: 1, aud: 'api://default', cid: x.clientId, uid: UID, sub: LOGIN, scp: ['saleor:manage_orders'] });
    const update = (value: string | null) =>
      s.gql(
        `mutation($id: ID!, $input: PluginUpdateInput!) { pluginUpdate(id: $id, input: $input) { errors { field code } } }`,
        { id: x.plugin, input: { configuration: [{ name: 'user_id_claim', value }] } },
        { token: admin },
      );
    expect((await update('')).body.data.pluginUpdate.errors).toEqual([]);
    try {
      expect((await me(token))?.email ?? null).not.toBe('olga@okta.example.com');
      expect((await update('uid; drop')).body.data.pluginUpdate.errors).toEqual([{ field: 'userIdClaim', code: 'PLUGIN_MISCONFIGURED' }]);
    } finally {
      expect((await update('uid')).body.data.pluginUpdate.errors).toEqual([]);
    }
    expect((await me(token))?.email).toBe('olga@okta.example.com');
  });

  it("bearer: another user's uid is not this user; a client-credentials token (sub = cid) is an app", async () => {
    const x = shapes.okta;
    expect(await me(await accessToken(x, { ver: 1, aud: 'api://default', cid: x.clientId, uid: '00u9someone9else', sub: LOGIN, scp: ['saleor:manage_orders'] }))).toBeNull();
    const app = await accessToken(x, { ver: 1, aud: 'api://default', cid: x.clientId, sub: x.clientId, scp: ['saleor:manage_staff'] });
    expect(await me(app)).toBeNull();
    const staff = await s.gql('{ staffUsers(first: 50) { edges { node { email } } } }', undefined, { token: app });
    expect(staff.body.errors).toBeUndefined();
    const expected = (await s.running.app.db.pool.query('SELECT email FROM users WHERE is_staff ORDER BY email')).rows.map((r) => r.email);
    expect(staff.body.data.staffUsers.edges.map((e: any) => e.node.email)).toEqual(expected);
  });
});

// ---- Keycloak --------------------------------------------------------------------------------

describe('Keycloak: realm roles as groups, audience mapper', () => {
  const SUB = 'f1c2a3b4-0000-4000-8000-00000000cafe';

  it('login: realm roles from userinfo join the permission group of the same name', async () => {
    const x = shapes.keycloak;
    const { r } = await login(
      x,
      { sub: SUB, email: 'kim@keycloak.example.com', email_verified: true, preferred_username: 'kim', typ: 'ID', azp: x.clientId },
      {
        scope: 'openid profile email offline_access',
        userinfo: { sub: SUB, email: 'kim@keycloak.example.com', realm_access: { roles: ['saleor-orders', 'offline_access', 'default-roles-shop'] } },
      },
    );
    expect(r.user).toMatchObject({ email: 'kim@keycloak.example.com', isStaff: true, userPermissions: perms('MANAGE_ORDERS'), permissionGroups: [{ name: 'saleor-orders' }] });
  });

  it('bearer: realm_access.roles of an access token with the mapped audience', async () => {
    const x = shapes.keycloak;
    const base = {
      sub: SUB,
      typ: 'Bearer',
      azp: x.clientId,
      scope: 'openid email profile',
      email: 'kim@keycloak.example.com',
      email_verified: true,
      resource_access: { account: { roles: ['manage-account'] } },
    };
    expect(await me(await accessToken(x, { ...base, aud: ['saleor-api', 'account'], realm_access: { roles: ['saleor-orders', 'offline_access'] } }))).toEqual({
      email: 'kim@keycloak.example.com',
      isStaff: true,
      userPermissions: perms('MANAGE_ORDERS'),
    });
    // Without the role, the membership and its permissions go (the staff flag is not taken
    // back: scope permissions are off for this connection, so the provider does not decide it).
    expect(await me(await accessToken(x, { ...base, aud: ['saleor-api', 'account'], realm_access: { roles: ['default-roles-shop'] } }))).toEqual({
      email: 'kim@keycloak.example.com',
      isStaff: true,
      userPermissions: [],
    });
  });

  it("bearer: refused without the audience mapper (aud 'account' only)", async () => {
    const x = shapes.keycloak;
    expect(
      await me(await accessToken(x, { sub: SUB, typ: 'Bearer', azp: x.clientId, aud: 'account', email: 'kim@keycloak.example.com', realm_access: { roles: ['saleor-orders'] } })),
    ).toBeNull();
  });

  // groups_claim = 'realm_access.roles, resource_access.saleor-dashboard.roles' (beforeAll).
  const names = (groups: Array<{ name: string }>) => groups.map((g) => g.name).sort();

  it('login: realm roles and the roles of our client (resource_access.saleor-dashboard.roles) are united', async () => {
    const x = shapes.keycloak;
    const { r } = await login(
      x,
      { sub: SUB, email: 'kim@keycloak.example.com', email_verified: true, typ: 'ID', azp: x.clientId },
      {
        userinfo: {
          sub: SUB,
          email: 'kim@keycloak.example.com',
          realm_access: { roles: ['saleor-orders', 'offline_access'] },
          resource_access: { 'saleor-dashboard': { roles: ['order-managers'] }, account: { roles: ['manage-account'] } },
        },
      },
    );
    expect(r.user).toMatchObject({ isStaff: true, userPermissions: perms('MANAGE_USERS', 'MANAGE_ORDERS') });
    expect(names(r.user.permissionGroups)).toEqual(['order-managers', 'saleor-orders']);
  });

  const bearer = (x: Shape, claims: Record<string, unknown>) =>
    accessToken(x, { sub: SUB, typ: 'Bearer', azp: x.clientId, aud: ['saleor-api', 'account'], scope: 'openid email profile', email: 'kim@keycloak.example.com', email_verified: true, ...claims });

  it('bearer: client roles alone count; the roles of another client are not used', async () => {
    const x = shapes.keycloak;
    expect(await me(await bearer(x, { realm_access: { roles: ['offline_access'] }, resource_access: { 'saleor-dashboard': { roles: ['order-managers'] } } }))).toEqual({
      email: 'kim@keycloak.example.com',
      isStaff: true,
      userPermissions: perms('MANAGE_USERS', 'MANAGE_ORDERS'),
    });
    // order-managers as a role of another client (and of the account client) grants nothing.
    expect(
      await me(await bearer(x, { realm_access: { roles: ['saleor-orders'] }, resource_access: { 'other-client': { roles: ['order-managers'] }, account: { roles: ['order-managers'] } } })),
    ).toEqual({ email: 'kim@keycloak.example.com', isStaff: true, userPermissions: perms('MANAGE_ORDERS') });
    const groups = await s.running.app.db.pool.query(
      `SELECT g.name FROM permission_groups g JOIN group_members m ON m.group_id = g.id JOIN users u ON u.id = m.user_id WHERE u.email = $1 ORDER BY g.name`,
      ['kim@keycloak.example.com'],
    );
    expect(groups.rows.map((row) => row.name)).toEqual(['saleor-orders']);
  });

  it('a client id with dots is written as is; a groups claim that is not a list of claim paths is refused', async () => {
    const x = shapes.keycloak;
    const stored = async () => (await s.running.app.plugins.values(x.plugin))?.['groups_claim'];
    const before = await stored();
    for (const bad of ['realm_access..roles', 'realm_access.roles,, resource_access.saleor-dashboard.roles', 'realm access.roles', 'resource_access.saleor-dashboard.roles.']) {
      expect(await updatePlugin(x.plugin, { groups_claim: bad })).toEqual([{ field: 'groupsClaim', code: 'PLUGIN_MISCONFIGURED', message: expect.any(String) }]);
    }
    expect(await stored()).toBe(before);
    expect(await updatePlugin(x.plugin, { groups_claim: 'realm_access.roles, resource_access.shop.dashboard.roles' })).toEqual([]);
    try {
      const token = await bearer(x, {
        realm_access: { roles: [] },
        resource_access: { 'shop.dashboard': { roles: ['order-managers'] }, shop: { roles: ['saleor-orders'] } },
      });
      expect(await me(token)).toEqual({ email: 'kim@keycloak.example.com', isStaff: true, userPermissions: perms('MANAGE_USERS', 'MANAGE_ORDERS') });
    } finally {
      expect(await updatePlugin(x.plugin, { groups_claim: before as string })).toEqual([]);
    }
  });
});

// ---- Google ----------------------------------------------------------------------------------

describe('Google: access_type=offline, no introspection, no end-session, opaque access tokens', () => {
  const SUB = '109876543210987654321';

  it('login: access_type=offline instead of the offline_access scope; logout has no provider URL', async () => {
    const x = shapes.google;
    const { r, a } = await login(
      x,
      { sub: SUB, azp: x.clientId, email: 'gus@gmail.example.com', email_verified: true, given_name: 'Gus', hd: 'gmail.example.com' },
      { scope: 'openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile' },
    );
    expect(a.url.origin + a.url.pathname).toBe('https://accounts.google.com/o/oauth2/v2/auth');
    expect(a.url.searchParams.get('access_type')).toBe('offline');
    expect(a.scope.split(' ')).not.toContain('offline_access');
    expect(r.user).toMatchObject({ email: 'gus@gmail.example.com', firstName: 'Gus', isStaff: false, userPermissions: [] });
    const out = await externalCall(s, 'externalLogout', x.plugin, {}, { authorization: `Bearer ${r.token}` });
    expect(out.errors).toEqual([]);
    expect(JSON.parse(out.logoutData)).toEqual({});
  });

  it('bearer: an opaque access token identifies the user through userinfo (no permissions)', async () => {
    const x = shapes.google;
    const reply = x.provider.tokenResponse({ userinfo: { sub: SUB, email: 'gus@gmail.example.com', email_verified: true } });
    const opaque = (reply.body as { access_token: string }).access_token;
    expect(await me(opaque)).toEqual({ email: 'gus@gmail.example.com', isStaff: false, userPermissions: [] });
    expect(x.provider.requestsTo('/userinfo').at(-1)?.headers['authorization']).toBe(`Bearer ${opaque}`);
  });

  it('bearer: an opaque token userinfo does not know is refused', async () => {
    expect(await me(`ya29.${randomUUID()}`)).toBeNull();
  });
});

// ---- AWS Cognito -----------------------------------------------------------------------------

describe('AWS Cognito: access tokens without aud, client_id, token_use, cognito:groups', () => {
  const SUB = 'a1b2c3d4-5678-90ab-cdef-000000c09n17';

  it('login: no offline_access scope; cognito:groups join the permission group of the same name', async () => {
    const x = shapes.cognito;
    const { r, a } = await login(
      x,
      {
        sub: SUB,
        'cognito:username': 'cora',
        'cognito:groups': ['order-managers'],
        email: 'cora@cognito.example.com',
        email_verified: true,
        token_use: 'id',
        auth_time: now(),
      },
      { scope: 'openid email profile' },
    );
    expect(a.scope.split(' ')).not.toContain('offline_access');
    expect(a.url.searchParams.get('prompt')).toBeNull();
    expect(r.user).toMatchObject({
      email: 'cora@cognito.example.com',
      isStaff: true,
      userPermissions: perms('MANAGE_USERS', 'MANAGE_ORDERS'),
      permissionGroups: [{ name: 'order-managers' }],
    });
  });

  const accessClaims = (x: Shape, extra: Record<string, unknown> = {}) => ({
    sub: SUB,
    client_id: x.clientId,
    token_use: 'access',
    scope: 'openid email',
    username: 'cora',
    auth_time: now(),
    'cognito:groups': ['order-managers'],
    ...extra,
  });

  it('bearer: an access token with client_id and no aud; groups from cognito:groups', async () => {
    const x = shapes.cognito;
    expect(await me(await accessToken(x, accessClaims(x)))).toEqual({ email: 'cora@cognito.example.com', isStaff: true, userPermissions: perms('MANAGE_USERS', 'MANAGE_ORDERS') });
    // Out of the group: its permissions go (the staff flag stays: scope permissions are off).
    expect(await me(await accessToken(x, accessClaims(x, { 'cognito:groups': ['other-group'] })))).toEqual({
      email: 'cora@cognito.example.com',
      isStaff: true,
      userPermissions: [],
    });
  });

  it("bearer: refused for another app client, and an id token (aud = our client, no client_id) is not an access token", async () => {
    const x = shapes.cognito;
    expect(await me(await accessToken(x, accessClaims(x, { client_id: 'another-app-client' })))).toBeNull();
    expect(
      await me(await accessToken(x, { sub: SUB, aud: x.clientId, token_use: 'id', email: 'cora@cognito.example.com', 'cognito:groups': ['order-managers'] })),
    ).toBeNull();
  });
});

// ---- Glewlwyd (RFC 8707 resource indicator) ----------------------------------------------------

describe('Glewlwyd: the resource indicator makes aud the API (not the scope list); client_secret_post', () => {
  const API = 'https://api.shop.example.com/saleor';
  const SUB = 'glewlwyd-user-1';
  let x: Shape;

  beforeAll(async () => {
    x = await shape('shapes.glewlwyd', 'glewlwyd-client', {
      prefix: '/api/oidc',
      values: { audience: API, resource: API, token_endpoint_auth_method: 'client_secret_post' },
    });
  });
  afterAll(async () => x?.provider.close());

  it('login and refresh: resource is sent in the authorization, code exchange and refresh requests; credentials in the body', async () => {
    const a = await authorize(x);
    expect(a.url.searchParams.get('resource')).toBe(API);
    x.provider.token = async (req) =>
      x.provider.tokenResponse({
        idToken: await x.provider.sign({
          iss: x.issuer,
          aud: x.clientId,
          iat: now(),
          exp: now() + 300,
          sub: SUB,
          email: 'gil@glewlwyd.example.com',
          email_verified: true,
          ...(req.form.get('grant_type') === 'authorization_code' ? { nonce: a.nonce } : {}),
        }),
        refreshToken: `rt-${randomUUID()}`,
      });
    const tokenCalls = () => x.provider.requestsTo('/token');
    const before = tokenCalls().length;
    const r = await obtainTokens(s, x.plugin, { code: 'c', state: a.state });
    expect(r.errors).toEqual([]);
    const exchange = tokenCalls()[before]!;
    expect(exchange.form.get('grant_type')).toBe('authorization_code');
    expect(exchange.form.get('resource')).toBe(API);
    expect(exchange.form.get('client_secret')).toBe(CLIENT_SECRET);
    expect(exchange.headers['authorization']).toBeUndefined();

    const refreshed = await externalCall(s, 'externalRefresh', x.plugin, { refreshToken: r.refreshToken });
    expect(refreshed.errors).toEqual([]);
    const refresh = tokenCalls().at(-1)!;
    expect(refresh.form.get('grant_type')).toBe('refresh_token');
    expect(refresh.form.get('resource')).toBe(API);
  });

  it('bearer: a token whose aud is the resource is accepted; one whose aud is the scope list is refused', async () => {
    const claims = { sub: SUB, client_id: x.clientId, scope: 'openid profile email' };
    expect(await me(await accessToken(x, { ...claims, aud: API }))).toMatchObject({ email: 'gil@glewlwyd.example.com' });
    expect(await me(await accessToken(x, { ...claims, aud: ['openid', 'profile', 'email'] }))).toBeNull();
  });

  it('a resource that is not an absolute URI, or has a fragment, is refused and nothing is saved', async () => {
    for (const bad of ['api/saleor', 'https://api.shop.example.com/saleor#part', 'not a uri']) {
      const r = await s.gql(
        `mutation($id: ID!, $input: PluginUpdateInput!) { pluginUpdate(id: $id, input: $input) { errors { field code } } }`,
        { id: x.plugin, input: { configuration: [{ name: 'resource', value: bad }] } },
        { token: admin },
      );
      expect(r.body.data.pluginUpdate.errors).toEqual([{ field: 'resource', code: 'PLUGIN_MISCONFIGURED' }]);
    }
    const stored = await s.running.app.plugins.values(x.plugin);
    expect(stored?.['resource']).toBe(API);
  });
});

// ---- Microsoft Entra ID --------------------------------------------------------------------------

describe('Microsoft Entra ID multi-tenant: {tenantid} issuer, tid, allowed_tenants', () => {
  const TENANT_A = 'aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa';
  const TENANT_B = 'bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb';
  /** A real tenant, not in allowed_tenants. */
  const TENANT_C = 'cccccccc-3333-4333-8333-cccccccccccc';
  /** The app registration's client id: the id_token's aud, and (same registration exposing the API) access tokens' aud. */
  const CLIENT = '0e1f2a3b-4c5d-4e6f-8a7b-9c0d1e2f3a4b';
  /** Entra's sub is pairwise (per app); the same value in two tenants must be two users. */
  const SUB = 'AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ';
  let provider: FakeProvider;
  let x: Shape;
  let template: string;
  const tenantIssuer = (tid: string) => `${provider.issuer}/${tid}/v2.0`;

  /** Entra v2.0 id_token claims of tenant `tid` (no email_verified: Entra does not send it). */
  const idClaims = (tid: string, extra: Record<string, unknown> = {}) => ({
    ver: '2.0',
    iss: tenantIssuer(tid),
    tid,
    sub: SUB,
    oid: randomUUID(),
    preferred_username: `ada@${tid.slice(0, 8)}.example.com`,
    email: `ada@${tid.slice(0, 8)}.example.com`,
    name: 'Ada Lovelace',
    given_name: 'Ada',
    nbf: now(),
    ...extra,
  });

  /** An Entra v2.0 access token for our API (scp a space-separated string, roles an array). */
  const apiToken = (tid: string, extra: Record<string, unknown> = {}) =>
    accessToken(x, {
      ver: '2.0',
      iss: tenantIssuer(tid),
      tid,
      aud: CLIENT,
      azp: CLIENT,
      azpacr: '1',
      sub: SUB,
      oid: randomUUID(),
      scp: 'access_as_user User.Read',
      roles: ['saleor-orders'],
      nbf: now(),
      ...extra,
    });

  beforeAll(async () => {
    provider = await startFakeProvider();
    template = `${provider.issuer}/{tenantid}/v2.0`;
    // Entra's /organizations document names the template, not the URL it was fetched from.
    provider.discoveryOverrides.set('/organizations/v2.0', { issuer: template });
    await createConnection('shapes.entra');
    await configure(s, admin, 'shapes.entra', {
      issuer_url: `${provider.issuer}/organizations/v2.0`,
      client_id: CLIENT,
      client_secret: CLIENT_SECRET,
      allowed_redirect_uris: REDIRECT_URI,
      allowed_tenants: `${TENANT_A}, ${TENANT_B.toUpperCase()}`,
      audience: CLIENT,
      groups_claim: 'roles',
    });
    x = { plugin: 'shapes.entra', clientId: CLIENT, provider, issuer: tenantIssuer(TENANT_A) };
  });
  afterAll(async () => provider?.close());

  const identities = async () =>
    (await s.running.app.db.pool.query('SELECT issuer, subject, user_id FROM external_identities WHERE plugin_id = $1 ORDER BY issuer', [x.plugin])).rows as Array<{
      issuer: string;
      subject: string;
      user_id: number;
    }>;

  it('login: a user of an allowed tenant, linked by its tenant issuer; app roles join groups', async () => {
    const { r } = await login(x, idClaims(TENANT_A, { roles: ['saleor-orders'] }));
    expect(r.user).toMatchObject({ email: `ada@${TENANT_A.slice(0, 8)}.example.com`, isStaff: true, userPermissions: perms('MANAGE_ORDERS') });
    expect(await identities()).toEqual([{ issuer: tenantIssuer(TENANT_A), subject: SUB, user_id: expect.any(Number) }]);
    const session = await s.running.app.db.pool.query('SELECT issuer FROM sessions WHERE plugin_id = $1', [x.plugin]);
    expect(session.rows).toEqual([{ issuer: tenantIssuer(TENANT_A) }]);
  });

  it('login: the same sub in another allowed tenant is another user', async () => {
    const { r } = await login(x, idClaims(TENANT_B));
    expect(r.user).toMatchObject({ email: `ada@${TENANT_B.slice(0, 8)}.example.com`, isStaff: false });
    const links = await identities();
    expect(links.map((l) => [l.issuer, l.subject])).toEqual([
      [tenantIssuer(TENANT_A), SUB],
      [tenantIssuer(TENANT_B), SUB],
    ]);
    expect(links[0]!.user_id).not.toBe(links[1]!.user_id);
  });

  it('bearer: an API access token of an allowed tenant (scp string, roles array) is its tenant user', async () => {
    expect(await me(await apiToken(TENANT_A))).toEqual({ email: `ada@${TENANT_A.slice(0, 8)}.example.com`, isStaff: true, userPermissions: perms('MANAGE_ORDERS') });
    expect(await me(await apiToken(TENANT_B, { roles: [] }))).toEqual({ email: `ada@${TENANT_B.slice(0, 8)}.example.com`, isStaff: false, userPermissions: [] });
  });

  it('refused: a tenant not in allowed_tenants, at login and as bearer', async () => {
    const { r } = await attemptLogin(x, idClaims(TENANT_C));
    expect(r.errors).toEqual([{ field: 'code', code: 'INVALID', message: expect.any(String) }]);
    expect(r.token).toBeNull();
    expect(await me(await apiToken(TENANT_C))).toBeNull();
    expect((await identities()).map((l) => l.issuer)).not.toContain(tenantIssuer(TENANT_C));
  });

  it('refused: iss of one tenant with the tid of another, no tid, or the template itself', async () => {
    const bad: Array<Record<string, unknown>> = [
      { iss: tenantIssuer(TENANT_A), tid: TENANT_B },
      { iss: tenantIssuer(TENANT_C), tid: TENANT_A },
      { iss: tenantIssuer(TENANT_A), tid: undefined },
      { iss: template, tid: TENANT_A },
      { iss: `${provider.issuer}/organizations/v2.0`, tid: TENANT_A },
    ];
    for (const claims of bad) {
      const { r } = await attemptLogin(x, idClaims(TENANT_A, claims));
      expect(r.errors, JSON.stringify(claims)).toEqual([{ field: 'code', code: 'INVALID', message: expect.any(String) }]);
      expect(await me(await apiToken(TENANT_A, claims)), JSON.stringify(claims)).toBeNull();
    }
  });

  it("refused: an authorization response's iss of a tenant not allowed (RFC 9207)", async () => {
    const a = await authorize(x);
    x.provider.token = async () => x.provider.tokenResponse({ idToken: await x.provider.sign({ aud: CLIENT, iat: now(), exp: now() + 300, nonce: a.nonce, ...idClaims(TENANT_A) }) });
    const r = await obtainTokens(s, x.plugin, { code: 'c', state: a.state, iss: tenantIssuer(TENANT_C) });
    expect(r.errors).toEqual([{ field: 'code', code: 'INVALID', message: expect.any(String) }]);
  });

  it('refresh: keeps the tenant; a refreshed id_token of another tenant or a mismatching tid, or a tenant no longer allowed, ends the session', async () => {
    const ENDED = [{ field: 'refreshToken', code: 'INVALID', message: 'Unable to refresh the token.' }];
    const refreshWith = async (refreshToken: string, claims: Record<string, unknown>) => {
      x.provider.token = async () =>
        x.provider.tokenResponse({ idToken: await x.provider.sign({ aud: CLIENT, iat: now(), exp: now() + 300, ...claims }), refreshToken: `rt-${randomUUID()}` });
      return externalCall(s, 'externalRefresh', x.plugin, { refreshToken });
    };
    const same = await refreshWith((await login(x, idClaims(TENANT_A))).r.refreshToken!, idClaims(TENANT_A));
    expect(same.errors).toEqual([]);
    expect(same.user).toMatchObject({ email: `ada@${TENANT_A.slice(0, 8)}.example.com` });
    for (const other of [idClaims(TENANT_B), idClaims(TENANT_A, { tid: TENANT_B }), idClaims(TENANT_C)]) {
      const { r } = await login(x, idClaims(TENANT_A));
      expect((await refreshWith(r.refreshToken!, other)).errors, JSON.stringify(other)).toEqual(ENDED);
      // The session is over: its refresh token stays refused, even with a good id_token.
      expect((await refreshWith(r.refreshToken!, idClaims(TENANT_A))).errors).toEqual(ENDED);
    }
    // Tenant B taken off the list: its sessions are not refreshed any more, even when the
    // provider's answer has no new id_token to check.
    const { r } = await login(x, idClaims(TENANT_B));
    expect(await updatePlugin(x.plugin, { allowed_tenants: TENANT_A })).toEqual([]);
    try {
      x.provider.token = async () => x.provider.tokenResponse({ refreshToken: `rt-${randomUUID()}` });
      expect((await externalCall(s, 'externalRefresh', x.plugin, { refreshToken: r.refreshToken })).errors).toEqual(ENDED);
      const ended = await s.running.app.db.pool.query('SELECT revoked_reason FROM sessions WHERE plugin_id = $1 AND issuer = $2 AND revoked_at IS NOT NULL', [x.plugin, tenantIssuer(TENANT_B)]);
      expect(ended.rows).toEqual([{ revoked_reason: 'provider changed' }]);
      expect(await me(await apiToken(TENANT_B))).toBeNull();
    } finally {
      expect(await updatePlugin(x.plugin, { allowed_tenants: `${TENANT_A}, ${TENANT_B.toUpperCase()}` })).toEqual([]);
    }
  });

  it('activation: refused without allowed_tenants (nothing saved), with a tenant that is not a GUID, or for a single issuer', async () => {
    const stored = async (id: string) => s.running.app.plugins.values(id);
    const refused = (field: string, message: RegExp) => [{ field, code: 'PLUGIN_MISCONFIGURED', message: expect.stringMatching(message) }];
    // The active connection: emptying allowed_tenants would accept every tenant; refused.
    expect(await updatePlugin(x.plugin, { allowed_tenants: '' })).toEqual(refused('allowedTenants', /multi-tenant.*no tenant is accepted by default/));
    expect(await updatePlugin(x.plugin, { allowed_tenants: `${TENANT_A}, *` })).toEqual(refused('allowedTenants', /Not a tenant id \(GUID\): "\*"/));
    expect(await updatePlugin(x.plugin, { allowed_tenants: 'contoso.onmicrosoft.com' })).toEqual(refused('allowedTenants', /Not a tenant id/));
    expect((await stored(x.plugin))?.['allowed_tenants']).toBe(`${TENANT_A}, ${TENANT_B.toUpperCase()}`);
    // A new connection to the multi-tenant issuer without allowed tenants is not activated.
    await createConnection('shapes.entra-open');
    const base = { issuer_url: `${provider.issuer}/organizations/v2.0`, client_id: CLIENT, client_secret: CLIENT_SECRET, allowed_redirect_uris: REDIRECT_URI };
    expect(await updatePlugin('shapes.entra-open', base, true)).toEqual(refused('allowedTenants', /multi-tenant/));
    expect((await s.running.app.plugins.get('shapes.entra-open'))?.active).toBe(false);
    // The template itself is no issuer URL; an issuer URL of another form does not fit the template.
    expect(await updatePlugin('shapes.entra-open', { ...base, issuer_url: template, allowed_tenants: TENANT_A }, true)).toEqual(refused('issuerUrl', /cannot be discovered/));
    provider.discoveryOverrides.set('/tenants/v2.0', { issuer: template });
    expect(await updatePlugin('shapes.entra-open', { ...base, issuer_url: `${provider.issuer}/tenants/v2.0` }, true)).toEqual(refused('issuerUrl', /multi-tenant issuer/));
    // allowed_tenants for an issuer that is not multi-tenant: statically, or by its discovery.
    expect(await updatePlugin('shapes.entra-open', { ...base, issuer_url: tenantIssuer(TENANT_A), allowed_tenants: TENANT_A }, true)).toEqual(refused('allowedTenants', /need a multi-tenant issuer URL/));
    expect(await updatePlugin('shapes.entra-open', { ...base, issuer_url: `${provider.issuer}/common/v2.0`, allowed_tenants: TENANT_A }, true)).toEqual(refused('allowedTenants', /not multi-tenant/));
    expect((await s.running.app.plugins.get('shapes.entra-open'))?.active).toBe(false);
  });
});

describe('Microsoft Entra ID single tenant: an ordinary issuer', () => {
  const TENANT = 'dddddddd-4444-4444-8444-dddddddddddd';
  const CLIENT = '5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d';
  let x: Shape;

  beforeAll(async () => {
    x = await shape('shapes.entra-single', CLIENT, { prefix: `/${TENANT}/v2.0`, values: { audience: CLIENT } });
  });
  afterAll(async () => x?.provider.close());

  it('login and bearer with the tenant issuer; another tenant of the same host is refused', async () => {
    const { r } = await login(x, { ver: '2.0', tid: TENANT, sub: 'single-sub', email: 'sam@single.example.com', preferred_username: 'sam@single.example.com' });
    expect(r.user).toMatchObject({ email: 'sam@single.example.com', isStaff: false });
    const claims = { ver: '2.0', tid: TENANT, aud: CLIENT, azp: CLIENT, sub: 'single-sub', scp: 'access_as_user' };
    expect(await me(await accessToken(x, claims))).toMatchObject({ email: 'sam@single.example.com' });
    const other = 'eeeeeeee-5555-4555-8555-eeeeeeeeeeee';
    expect(await me(await accessToken(x, { ...claims, tid: other, iss: `${x.provider.issuer}/${other}/v2.0` }))).toBeNull();
  });
});
