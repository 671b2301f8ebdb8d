/**
 * Provider shapes (issue 10): for each well-known provider, a test provider
 * (test/helpers/fake-provider.ts) shaped like the real one — its issuer form, discovery
 * document, id_token and access-token claims — and the server driven over HTTP against it:
 * a login (code flow) and the provider's own access token as `Authorization: Bearer`, with the
 * user, staff flag and permissions mapped from that shape, and at least one refused value each.
 *
 * Shapes: Auth0 (issuer with a trailing slash, API audience, `permissions` claim), Okta custom
 * authorization server (`scp` array, `cid`, `uid`), Keycloak (`realm_access.roles`, `azp`),
 * Google (no introspection, no end-session, `access_type=offline`, opaque access tokens) and
 * AWS Cognito (access tokens without `aud`, with `client_id`, `token_use`, `cognito:groups`).
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
    values: { audience: 'saleor-api', groups_claim: 'realm_access.roles' },
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
  const a = await authorize(x);
  x.provider.token = async () =>
    x.provider.tokenResponse({
      idToken: await x.provider.sign({ iss: x.issuer, aud: x.clientId, iat: now(), exp: now() + 300, nonce: a.nonce, ...idClaims }),
      refreshToken: `rt-${randomUUID()}`,
      ...(opts.scope !== undefined ? { scope: opts.scope } : {}),
      ...(opts.userinfo ? { userinfo: opts.userinfo } : {}),
    });
  const r = await obtainTokens(s, x.plugin, { code: 'c', state: a.state });
  expect(r.errors).toEqual([]);
  return { r, a };
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
