/**
 * The Saleor Dashboard against us (issue 12), driven over HTTP the way the Dashboard drives it:
 * its headers (`authorization-bearer`), its inputs (`{"redirectUri"}`, `{"code","state"}`,
 * `{"refreshToken"}`, `{"returnTo"}`), and documents of our own that make the same selections as
 * its login screen, callback, reload, app shell, plugin pages, staff and group pages and logout.
 * One real provider (oidc-provider) and one server for the file.
 *
 * The metadata mutations and the admin lists have their own files (dashboard-metadata,
 * dashboard-lists).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, decodeJwt } from 'jose';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { startIdp, type TestIdp } from '../helpers/idp.ts';
import { DEFAULT_PLUGIN, adminToken, configure } from '../helpers/oidc-flow.ts';
import { CORE_TOKEN_OWNER } from '../../src/tokens/jwt.ts';
import { SALEOR_API_VERSION } from '../../src/graphql/resolvers/shop.ts';

const DASHBOARD = 'https://dashboard.example.com';
const CALLBACK = `${DASHBOARD}/login/callback/`;
const SHOP_NAME = 'Acme Auth';

let s: TestServer;
let idp: TestIdp;
let admin: string;

// ---- documents with the Dashboard's selections -----------------------------------------------

const ADDRESS = `id firstName lastName companyName streetAddress1 streetAddress2 city cityArea postalCode
  country { code country } countryArea phone isDefaultBillingAddress isDefaultShippingAddress`;
const USER_DETAILS = `id email firstName lastName isStaff userPermissions { code name } metadata { key value }
  defaultShippingAddress { ${ADDRESS} } defaultBillingAddress { ${ADDRESS} } addresses { ${ADDRESS} }`;
const ACCOUNT_ERROR = 'code field message';
const CHANNEL = 'id isActive name slug currencyCode defaultCountry { code country } stockSettings { allocationStrategy }';

const LOGIN_SCREEN = 'query LoginScreen { shop { availableExternalAuthentications { id name } passwordLoginMode } }';
const AUTH_URL = `mutation AuthUrl($pluginId: String!, $input: JSONString!) {
  externalAuthenticationUrl(pluginId: $pluginId, input: $input) { authenticationData errors { ${ACCOUNT_ERROR} } } }`;
const OBTAIN = `mutation Obtain($pluginId: String!, $input: JSONString!) {
  externalObtainAccessTokens(pluginId: $pluginId, input: $input) { token refreshToken user { ${USER_DETAILS} } errors { ${ACCOUNT_ERROR} } } }`;
const REFRESH = `mutation Refresh($pluginId: String!, $input: JSONString!) {
  externalRefresh(pluginId: $pluginId, input: $input) { token refreshToken errors { ${ACCOUNT_ERROR} } } }`;
const REFRESH_WITH_USER = `mutation RefreshWithUser($pluginId: String!, $input: JSONString!) {
  externalRefresh(pluginId: $pluginId, input: $input) { token refreshToken user { ${USER_DETAILS} } errors { ${ACCOUNT_ERROR} } } }`;
const LOGOUT = `mutation Logout($pluginId: String!, $input: JSONString!) {
  externalLogout(pluginId: $pluginId, input: $input) { logoutData errors { ${ACCOUNT_ERROR} } } }`;
const ME = `query Me { me { id email firstName lastName isActive isStaff dateJoined metadata { key value }
  userPermissions { code name } avatar(size: 128) { url } accessibleChannels { ${CHANNEL} } restrictedAccessToChannels } }`;
const SHOP_INFO = `query Shop { shop { countries { country code } defaultCountry { country code } defaultWeightUnit
  domain { host url } languages { code language } name permissions { code name } version } }`;
const SHELL = `query Shell {
  channels { ${CHANNEL} }
  shop { announcements { title messageHtml importance type createdAt updatedAt extra } id }
  apps(first: 100) { totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { node { id name isActive type appUrl identifier problems(limit: 1) { id } brand { logo { default(size: 32, format: WEBP) } } } } }
  appExtensions(filter: { mountName: ["NAVIGATION_SIDEBAR"] }, first: 100) { edges { node { id label url mountName targetName settings permissions { code } app { id } } } }
}`;
const INSTALLS = 'query Installs { appsInstallations { id status appName manifestUrl message } }';
const LIMITS = 'query Limits { shop { limits { currentUsage { staffUsers channels } allowedUsage { staffUsers channels } } } }';
const PLUGIN = `query Plugin($id: ID!) { plugin(id: $id) { id name description
  globalConfiguration { active channel { id name slug } configuration { name value type helpText label } }
  channelConfigurations { active channel { id name slug } } } }`;
const PLUGIN_UPDATE = `mutation PluginUpdate($channelId: ID, $id: ID!, $input: PluginUpdateInput!) {
  pluginUpdate(channelId: $channelId, id: $id, input: $input) { errors { code field message }
    plugin { id globalConfiguration { active channel { id } configuration { name value } } } } }`;
const STAFF_MEMBER = 'id email firstName isActive lastLogin lastName';
const STAFF_DETAILS = `${STAFF_MEMBER} permissionGroups { id name userCanManage } userPermissions { code name } avatar(size: 120) { url } metadata { key value }`;
const STAFF_ERROR = 'code field message permissions groups';
const STAFF_ADD = `mutation StaffAdd($input: StaffCreateInput!) { staffCreate(input: $input) { errors { ${STAFF_ERROR} } user { ${STAFF_DETAILS} } } }`;
const STAFF_UPDATE = `mutation StaffUpdate($id: ID!, $input: StaffUpdateInput!) { staffUpdate(id: $id, input: $input) { errors { ${STAFF_ERROR} } user { ${STAFF_DETAILS} } } }`;
const STAFF_DELETE = `mutation StaffDelete($id: ID!) { staffDelete(id: $id) { errors { ${STAFF_ERROR} } } }`;
const STAFF_DETAILS_QUERY = `query StaffDetails($id: ID!) { user(id: $id) { ${STAFF_DETAILS} orders(first: 1) { edges { node { id } } } } }`;
const GROUP_DETAILS = `id name userCanManage restrictedAccessToChannels accessibleChannels { ${CHANNEL} } permissions { code name }
  users { ${STAFF_MEMBER} avatar(size: 128) { url } }`;
const GROUP_ERROR = 'code field message permissions users';
const GROUP_CREATE = `mutation GroupCreate($input: PermissionGroupCreateInput!) { permissionGroupCreate(input: $input) { errors { ${GROUP_ERROR} } group { ${GROUP_DETAILS} } } }`;
const GROUP_UPDATE = `mutation GroupUpdate($id: ID!, $input: PermissionGroupUpdateInput!) { permissionGroupUpdate(id: $id, input: $input) { errors { ${GROUP_ERROR} } group { ${GROUP_DETAILS} } } }`;
const GROUP_DELETE = `mutation GroupDelete($id: ID!) { permissionGroupDelete(id: $id) { errors { ${GROUP_ERROR} } } }`;
const GROUP_QUERY = `query GroupDetails($id: ID!, $userId: ID!) { permissionGroup(id: $id) { ${GROUP_DETAILS} }
  user: me { editableGroups { id } userPermissions { code sourcePermissionGroups(userId: $userId) { id } } } }`;

// ---- the Dashboard's ways -----------------------------------------------------------------------

/** A request as the Dashboard sends it: `authorization-bearer`, an Origin, credentials. */
async function dash(query: string, variables: Record<string, unknown> = {}, token?: string, headers: Record<string, string> = {}) {
  return s.gql(query, variables, { headers: { origin: DASHBOARD, ...(token ? { 'authorization-bearer': token } : {}), ...headers } });
}

/** The Dashboard's login: the SSO button, the provider, the callback. */
async function dashboardLogin(account: string) {
  const url = await dash(AUTH_URL, { pluginId: DEFAULT_PLUGIN, input: JSON.stringify({ redirectUri: CALLBACK }) });
  expect(url.body.data.externalAuthenticationUrl.errors).toEqual([]);
  const { authorizationUrl } = JSON.parse(url.body.data.externalAuthenticationUrl.authenticationData);
  const consent = await idp.authorize(authorizationUrl, { login: account });
  expect(consent.redirectUri.startsWith(CALLBACK)).toBe(true);
  const r = await dash(OBTAIN, { pluginId: DEFAULT_PLUGIN, input: JSON.stringify({ code: consent.code, state: consent.state }) });
  expect(r.status).toBe(200);
  expect(r.body.errors).toBeUndefined();
  // The browser keeps the refresh cookie we set (the Dashboard itself never reads it).
  const cookie = r.headers.getSetCookie().find((c) => c.startsWith('refreshToken='))!.split(';')[0]!;
  return { ...(r.body.data.externalObtainAccessTokens as { token: string; refreshToken: string; user: any; errors: unknown[] }), providerCookies: consent.cookies, cookie };
}

function errorCodes(body: { errors?: Array<{ extensions?: Record<string, any> }> }) {
  return (body.errors ?? []).map((e) => e.extensions?.['exception']?.code);
}

beforeAll(async () => {
  idp = await startIdp({
    clients: [{ client_id: 'saleor-dashboard', client_secret: 'dashboard-secret-0123456789', redirect_uris: [CALLBACK], post_logout_redirect_uris: [DASHBOARD] }],
    accounts: [
      { sub: 'stella', email: 'stella@example.com', email_verified: true, given_name: 'Stella', family_name: 'Staff', scopes: ['saleor:staff', 'saleor:manage_plugins', 'saleor:manage_staff', 'saleor:manage_orders'] },
      { sub: 'gina', email: 'gina@example.com', email_verified: true, given_name: 'Gina', scopes: [], groups: ['Support', 'Unknown group'] },
    ],
  });
  s = await startTestServer({ OUTBOUND_ALLOW_PRIVATE_ADDRESSES: 'true', SHOP_NAME, ALLOWED_GRAPHQL_ORIGINS: DASHBOARD });
  admin = await adminToken(s);
  await configure(s, admin, DEFAULT_PLUGIN, {
    issuer_url: idp.issuer,
    client_id: 'saleor-dashboard',
    client_secret: 'dashboard-secret-0123456789',
    allowed_redirect_uris: CALLBACK,
    allowed_post_logout_redirect_uris: DASHBOARD,
    use_oauth_scope_permissions: 'true',
    groups_claim: 'groups',
  });
});

afterAll(async () => {
  await s?.close();
  await idp?.close();
});

describe('login screen, callback and reload', () => {
  it('offers the SSO button, no password login', async () => {
    const r = await dash(LOGIN_SCREEN);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ data: { shop: { availableExternalAuthentications: [{ id: DEFAULT_PLUGIN, name: 'OpenID Connect' }], passwordLoginMode: 'DISABLED' } } });
    // The Dashboard sends credentials: its origin is echoed, never `*`.
    expect(r.headers.get('access-control-allow-origin')).toBe(DASHBOARD);
    expect(r.headers.get('access-control-allow-credentials')).toBe('true');
  });

  it('logs a staff user in with the whole user the callback selects, and tokens the Dashboard can decode', async () => {
    const login = await dashboardLogin('stella');
    expect(login.errors).toEqual([]);
    expect(login.user).toEqual({
      id: expect.any(String),
      email: 'stella@example.com',
      firstName: 'Stella',
      lastName: 'Staff',
      isStaff: true,
      userPermissions: [
        { code: 'MANAGE_STAFF', name: expect.any(String) },
        { code: 'MANAGE_ORDERS', name: expect.any(String) },
        { code: 'MANAGE_PLUGINS', name: expect.any(String) },
      ],
      metadata: [],
      defaultShippingAddress: null,
      defaultBillingAddress: null,
      addresses: [],
    });
    // The Dashboard reads `owner` (not "saleor": it refreshes with externalRefresh) and `exp`.
    for (const token of [login.token, login.refreshToken]) {
      const claims = decodeJwt(token);
      expect(claims['owner']).toBe(DEFAULT_PLUGIN);
      expect(typeof claims.exp).toBe('number');
    }
    expect(decodeJwt(login.token).iss).toBe(s.config.issuer);
  });

  it('reloads: externalRefresh with the stored refresh token returns a new pair and the user; the old token then fails in errors, not at the top', async () => {
    const login = await dashboardLogin('stella');
    const r = await dash(REFRESH_WITH_USER, { pluginId: DEFAULT_PLUGIN, input: JSON.stringify({ refreshToken: login.refreshToken }) });
    expect(r.body.errors).toBeUndefined();
    const refreshed = r.body.data.externalRefresh;
    expect(refreshed.errors).toEqual([]);
    expect(refreshed.user.email).toBe('stella@example.com');
    expect(refreshed.user.addresses).toEqual([]);
    expect(refreshed.refreshToken).toEqual(expect.any(String));
    expect(refreshed.refreshToken).not.toBe(login.refreshToken);
    const me = await dash(ME, {}, refreshed.token);
    expect(me.body.data.me.email).toBe('stella@example.com');
    // The proactive refresh (no user selected) with the new refresh token works too.
    const again = await dash(REFRESH, { pluginId: DEFAULT_PLUGIN, input: JSON.stringify({ refreshToken: refreshed.refreshToken }) });
    expect(again.body.data.externalRefresh.errors).toEqual([]);
    // A garbage refresh token: a typed error in the payload, token null (the Dashboard logs out).
    const bad = await dash(REFRESH_WITH_USER, { pluginId: DEFAULT_PLUGIN, input: JSON.stringify({ refreshToken: 'not-a-jwt' }) });
    expect(bad.status).toBe(200);
    expect(bad.body.errors).toBeUndefined();
    expect(bad.body.data.externalRefresh).toMatchObject({ token: null, refreshToken: null, user: null, errors: [{ field: 'refreshToken', code: 'INVALID' }] });
  });
});

describe('app shell', () => {
  let token: string;
  beforeAll(async () => {
    token = (await dashboardLogin('stella')).token;
  });

  it('me: the staff user with no avatar, no channels and unrestricted channel access', async () => {
    const r = await dash(ME, {}, token);
    expect(r.body.errors).toBeUndefined();
    expect(r.body.data.me).toMatchObject({
      email: 'stella@example.com',
      isActive: true,
      isStaff: true,
      metadata: [],
      avatar: null,
      accessibleChannels: [],
      restrictedAccessToChannels: false,
    });
    expect(r.body.data.me.userPermissions.map((p: { code: string }) => p.code).sort()).toEqual(['MANAGE_ORDERS', 'MANAGE_PLUGINS', 'MANAGE_STAFF']);
  });

  it('shop: name from SHOP_NAME, domain from PUBLIC_URL, the API version, and no commerce data', async () => {
    const r = await dash(SHOP_INFO, {}, token);
    expect(r.body.errors).toBeUndefined();
    const publicUrl = new URL(s.config.publicUrl);
    expect(r.body.data.shop).toEqual({
      countries: [],
      defaultCountry: null,
      defaultWeightUnit: null,
      domain: { host: publicUrl.host, url: `${s.config.publicUrl}/` },
      languages: [],
      name: SHOP_NAME,
      permissions: expect.arrayContaining([{ code: 'MANAGE_PLUGINS', name: expect.any(String) }]),
      version: SALEOR_API_VERSION,
    });
    expect(r.body.data.shop.permissions).toHaveLength(25);
    expect(SALEOR_API_VERSION).toMatch(/^3\.\d+\.\d+$/);
  });

  it('channels, announcements, apps and app extensions: empty, and answered', async () => {
    const r = await dash(SHELL, {}, token);
    expect(r.body.errors).toBeUndefined();
    expect(r.body.data).toEqual({
      channels: [],
      shop: { announcements: [], id: expect.any(String) },
      apps: { totalCount: 0, pageInfo: { hasNextPage: false, hasPreviousPage: false, startCursor: null, endCursor: null }, edges: [] },
      appExtensions: { edges: [] },
    });
    const limits = await dash(LIMITS, {}, token);
    const staffCount = await s.running.app.db.prisma.user.count({ where: { isStaff: true } });
    expect(limits.body.data.shop.limits).toEqual({ currentUsage: { staffUsers: staffCount, channels: null }, allowedUsage: { staffUsers: null, channels: null } });
  });

  it('keeps staff-only fields from anonymous callers and customers', async () => {
    const anonymous = await dash(SHELL);
    expect(anonymous.body.data).toBeNull();
    expect(errorCodes(anonymous.body)).toContain('PermissionDenied');
    const version = await dash('{ shop { name version } }');
    expect(version.body.data).toBeNull();
    expect(errorCodes(version.body)).toEqual(['PermissionDenied']);
    // appsInstallations needs MANAGE_APPS, which this staff user lacks.
    const installs = await dash(INSTALLS, {}, token);
    expect(installs.body.data).toBeNull();
    expect(errorCodes(installs.body)).toEqual(['PermissionDenied']);
    const withApps = await adminToken(s, ['MANAGE_APPS']);
    expect((await dash(INSTALLS, {}, withApps)).body).toEqual({ data: { appsInstallations: [] } });
  });

  it('an expired access token answers ExpiredSignatureError; the Dashboard refreshes and retries', async () => {
    const login = await dashboardLogin('stella');
    const key = s.running.app.keyring.signingKey();
    const claims = decodeJwt(login.token);
    const past = Math.floor(Date.now() / 1000) - 3600;
    const expired = await new SignJWT({ ...claims, iat: past, exp: past + 300 }).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' }).sign(key.privateKey);
    const r = await dash(ME, {}, expired);
    expect(r.status).toBe(200);
    expect(r.body.data).toEqual({ me: null });
    expect(r.body.errors).toHaveLength(1);
    expect(r.body.errors![0]).toMatchObject({ message: 'Signature has expired', extensions: { exception: { code: 'ExpiredSignatureError' } } });
    // The retry after the refresh succeeds.
    const refreshed = await dash(REFRESH, { pluginId: DEFAULT_PLUGIN, input: JSON.stringify({ refreshToken: login.refreshToken }) });
    const retry = await dash(ME, {}, refreshed.body.data.externalRefresh.token);
    expect(retry.body.data.me.email).toBe('stella@example.com');
  });

  it('every error carries extensions.exception.code (older Dashboards read it unchecked)', async () => {
    const r = await dash('query Bad { shop { noSuchField } }', {}, token);
    expect(r.status).toBe(400);
    expect(r.body.errors![0]!.extensions).toMatchObject({ code: 'GRAPHQL_VALIDATION_FAILED', exception: { code: 'GRAPHQL_VALIDATION_FAILED' } });
    // Operations this server does not offer fail validation cleanly.
    for (const query of ['mutation { tokenCreate(email: "a@b.c", password: "x") { token } }', 'mutation { userAvatarDelete { errors { code } } }']) {
      const refused = await dash(query, {}, token);
      expect(refused.status).toBe(400);
      expect(errorCodes(refused.body)).toEqual(['GRAPHQL_VALIDATION_FAILED']);
    }
  });
});

describe('Extensions → Installed: the plugin page', () => {
  it('shows the global plugin with no channel, masks the secret, and saves a change', async () => {
    const { token } = await dashboardLogin('stella');
    const r = await dash(PLUGIN, { id: DEFAULT_PLUGIN }, token);
    expect(r.body.errors).toBeUndefined();
    const plugin = r.body.data.plugin;
    expect(plugin.globalConfiguration.active).toBe(true);
    expect(plugin.globalConfiguration.channel).toBeNull();
    expect(plugin.channelConfigurations).toEqual([]);
    const secret = plugin.globalConfiguration.configuration.find((c: { name: string }) => c.name === 'client_secret');
    expect(secret.value).not.toContain('dashboard-secret');
    // The Dashboard drops secret fields from what it saves, and sends channelId null.
    const saved = await dash(PLUGIN_UPDATE, { channelId: null, id: DEFAULT_PLUGIN, input: { active: true, configuration: [{ name: 'staff_user_domains', value: 'staff.example.com' }] } }, token);
    expect(saved.body.data.pluginUpdate.errors).toEqual([]);
    const config = saved.body.data.pluginUpdate.plugin.globalConfiguration;
    expect(config.channel).toBeNull();
    expect(config.configuration.find((c: { name: string }) => c.name === 'staff_user_domains').value).toBe('staff.example.com');
    // The secret still works: a new login succeeds.
    expect((await dashboardLogin('stella')).errors).toEqual([]);
  });
});

describe('staff and permission groups, as the Dashboard pages send them', () => {
  let token: string;
  let meId: string;
  beforeAll(async () => {
    const login = await dashboardLogin('stella');
    token = login.token;
    meId = login.user.id;
  });

  it('a group created through the API is what groups_claim maps to at login', async () => {
    const created = await dash(GROUP_CREATE, { input: { name: 'Support', addPermissions: ['MANAGE_ORDERS'], addUsers: [], addChannels: [], restrictedAccessToChannels: false } }, token);
    expect(created.body.data.permissionGroupCreate.errors).toEqual([]);
    const group = created.body.data.permissionGroupCreate.group;
    expect(group).toMatchObject({ name: 'Support', userCanManage: true, restrictedAccessToChannels: false, accessibleChannels: [], users: [], permissions: [{ code: 'MANAGE_ORDERS', name: expect.any(String) }] });
    // Gina's provider says groups ["Support", "Unknown group"]: she joins Support (only), is staff, gets its permission.
    const gina = await dashboardLogin('gina');
    expect(gina.errors).toEqual([]);
    expect(gina.user.isStaff).toBe(true);
    expect(gina.user.userPermissions.map((p: { code: string }) => p.code)).toEqual(['MANAGE_ORDERS']);
    const details = await dash(GROUP_QUERY, { id: group.id, userId: meId }, token);
    expect(details.body.errors).toBeUndefined();
    expect(details.body.data.permissionGroup.users.map((u: { email: string }) => u.email)).toEqual(['gina@example.com']);
    expect(details.body.data.user.editableGroups.map((g: { id: string }) => g.id)).toContain(group.id);
    expect(await s.running.app.db.prisma.permissionGroup.count({ where: { name: 'Unknown group' } })).toBe(0);
  });

  it('refuses channels (there are none) and permissions beyond the requester, writing nothing', async () => {
    const before = await s.running.app.db.prisma.permissionGroup.count();
    const channels = await dash(GROUP_CREATE, { input: { name: 'Channelled', addPermissions: [], addChannels: ['Q2hhbm5lbDox'] } }, token);
    expect(channels.body.data.permissionGroupCreate).toMatchObject({ group: null, errors: [{ field: 'addChannels', code: 'OUT_OF_SCOPE_CHANNEL' }] });
    const beyond = await dash(GROUP_CREATE, { input: { name: 'Too much', addPermissions: ['MANAGE_APPS'], addChannels: [] } }, token);
    expect(beyond.body.data.permissionGroupCreate).toMatchObject({ group: null, errors: [{ field: 'addPermissions', code: 'OUT_OF_SCOPE_PERMISSION', permissions: ['MANAGE_APPS'] }] });
    expect(await s.running.app.db.prisma.permissionGroup.count()).toBe(before);
  });

  it('updates and deletes a group with the Dashboard inputs (empty channel lists always sent)', async () => {
    const created = await dash(GROUP_CREATE, { input: { name: 'Temp', addPermissions: [], addUsers: [], addChannels: [], restrictedAccessToChannels: false } }, token);
    const id = created.body.data.permissionGroupCreate.group.id;
    const updated = await dash(GROUP_UPDATE, { id, input: { name: 'Temporary', addPermissions: ['MANAGE_PLUGINS'], removePermissions: [], addUsers: [], removeUsers: [], addChannels: [], removeChannels: [], restrictedAccessToChannels: false } }, token);
    expect(updated.body.data.permissionGroupUpdate.errors).toEqual([]);
    expect(updated.body.data.permissionGroupUpdate.group).toMatchObject({ name: 'Temporary', permissions: [{ code: 'MANAGE_PLUGINS' }] });
    const removeChannel = await dash(GROUP_UPDATE, { id, input: { removeChannels: ['Q2hhbm5lbDox'], addChannels: [] } }, token);
    expect(removeChannel.body.data.permissionGroupUpdate.errors).toEqual([expect.objectContaining({ field: 'removeChannels', code: 'OUT_OF_SCOPE_CHANNEL' })]);
    const deleted = await dash(GROUP_DELETE, { id }, token);
    expect(deleted.body.data.permissionGroupDelete.errors).toEqual([]);
    expect(await s.running.app.db.prisma.permissionGroup.count({ where: { name: 'Temporary' } })).toBe(0);
  });

  it('invites, edits, deactivates and deletes a staff member', async () => {
    const added = await dash(STAFF_ADD, { input: { email: 'newbie@example.com', firstName: 'New', lastName: 'Bie', addGroups: [], redirectUrl: `${DASHBOARD}/new-password/` } }, token);
    expect(added.body.data.staffCreate.errors).toEqual([]);
    const user = added.body.data.staffCreate.user;
    expect(user).toMatchObject({ email: 'newbie@example.com', firstName: 'New', lastName: 'Bie', isActive: true, avatar: null, permissionGroups: [], metadata: [] });
    const details = await dash(STAFF_DETAILS_QUERY, { id: user.id }, token);
    expect(details.body.errors).toBeUndefined();
    expect(details.body.data.user).toMatchObject({ email: 'newbie@example.com', orders: { edges: [] } });
    const edited = await dash(STAFF_UPDATE, { id: user.id, input: { email: 'newbie@example.com', firstName: 'Newer', lastName: 'Bie', addGroups: [], removeGroups: [] } }, token);
    expect(edited.body.data.staffUpdate).toMatchObject({ errors: [], user: { firstName: 'Newer' } });
    const deactivated = await dash(STAFF_UPDATE, { id: user.id, input: { isActive: false } }, token);
    expect(deactivated.body.data.staffUpdate).toMatchObject({ errors: [], user: { isActive: false } });
    // Nobody deactivates themself.
    const self = await dash(STAFF_UPDATE, { id: meId, input: { isActive: false } }, token);
    expect(self.body.data.staffUpdate.user).toBeNull();
    expect(self.body.data.staffUpdate.errors).toContainEqual(expect.objectContaining({ field: 'isActive', code: 'DEACTIVATE_OWN_ACCOUNT' }));
    const deleted = await dash(STAFF_DELETE, { id: user.id }, token);
    expect(deleted.body.data.staffDelete.errors).toEqual([]);
    expect(await s.running.app.db.prisma.user.count({ where: { email: 'newbie@example.com' } })).toBe(0);
  });

  it('another user orders: MANAGE_STAFF or the user themself', async () => {
    const customer = await s.running.app.db.prisma.user.create({ data: { email: 'shopper@example.com', tokenKey: 'k-shopper' } });
    const own = await s.running.app.tokens.mintAccessToken(customer, [], CORE_TOKEN_OWNER);
    const mine = await dash('{ me { orders(first: 1) { totalCount edges { node { id } } } } }', {}, own);
    expect(mine.body).toEqual({ data: { me: { orders: { totalCount: 0, edges: [] } } } });
  });
});

describe('logout', () => {
  /** Follows a logoutUrl at the provider as the browser does: its confirmation form, then where it sends us. */
  async function followAtProvider(logoutUrl: string): Promise<string | null> {
    const page = await fetch(logoutUrl, { redirect: 'manual' });
    const html = await page.text();
    expect(page.status, html.slice(0, 300)).toBe(200);
    const cookies = page.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)?.[1];
    expect(action && xsrf).toBeTruthy();
    const confirm = await fetch(new URL(action!.replace(/&amp;/g, '&'), logoutUrl), {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookies },
      body: new URLSearchParams({ xsrf: xsrf!, logout: 'yes' }),
    });
    return confirm.headers.get('location');
  }

  it('returnTo on the allow-list: the provider sends the user back to the Dashboard', async () => {
    await dashboardLogin('stella');
    // The Dashboard has already dropped its tokens: only returnTo, no header, no refresh token.
    const r = await dash(LOGOUT, { pluginId: DEFAULT_PLUGIN, input: JSON.stringify({ returnTo: DASHBOARD }) });
    expect(r.body.data.externalLogout.errors).toEqual([]);
    const { logoutUrl } = JSON.parse(r.body.data.externalLogout.logoutData);
    const url = new URL(logoutUrl);
    expect(url.origin + url.pathname).toBe(`${idp.issuer}/session/end`);
    expect(url.searchParams.get('post_logout_redirect_uri')).toBe(DASHBOARD);
    expect(url.searchParams.get('client_id')).toBe('saleor-dashboard');
    // (The provider normalises the URL: the origin with a trailing slash.)
    expect(await followAtProvider(logoutUrl)).toBe(new URL(DASHBOARD).href);
  });

  it("ends the session the browser's cookie names when the Dashboard's listed origin sends it, and only then", async () => {
    const refresh = (refreshToken: string) => dash(REFRESH, { pluginId: DEFAULT_PLUGIN, input: JSON.stringify({ refreshToken }) });
    // From a page that is not listed exactly: the cookie alone is no proof (CSRF), nothing ends.
    const other = await dashboardLogin('stella');
    const forged = await dash(LOGOUT, { pluginId: DEFAULT_PLUGIN, input: JSON.stringify({ returnTo: DASHBOARD }) }, undefined, { origin: 'https://evil.example.com', cookie: other.cookie });
    expect(new URL(JSON.parse(forged.body.data.externalLogout.logoutData).logoutUrl).searchParams.get('id_token_hint')).toBeNull();
    expect((await refresh(other.refreshToken)).body.data.externalRefresh.errors).toEqual([]);
    // From the Dashboard's origin: the session ends (its refresh token is dead) and the provider gets id_token_hint.
    const login = await dashboardLogin('stella');
    const r = await dash(LOGOUT, { pluginId: DEFAULT_PLUGIN, input: JSON.stringify({ returnTo: DASHBOARD }) }, undefined, { cookie: login.cookie });
    const url = new URL(JSON.parse(r.body.data.externalLogout.logoutData).logoutUrl);
    expect(decodeJwt(url.searchParams.get('id_token_hint')!).sub).toBe('stella');
    expect(r.headers.getSetCookie().some((c) => c.startsWith('refreshToken=;') && /max-age=0/i.test(c))).toBe(true);
    const dead = await refresh(login.refreshToken);
    expect(dead.body.data.externalRefresh).toMatchObject({ token: null, errors: [{ field: 'refreshToken', code: 'INVALID' }] });
  });

  it('returnTo off the allow-list is refused, with no logout URL', async () => {
    for (const returnTo of ['https://evil.example.com', `${DASHBOARD}.evil.example.com`, 'javascript:alert(1)']) {
      const r = await dash(LOGOUT, { pluginId: DEFAULT_PLUGIN, input: JSON.stringify({ returnTo }) });
      expect(r.body.data.externalLogout).toEqual({ logoutData: null, errors: [{ field: 'returnTo', code: 'INVALID', message: expect.any(String) }] });
    }
  });
});
