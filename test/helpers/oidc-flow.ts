/**
 * Steps of the OIDC login flow as a storefront drives them over HTTP against the real server,
 * with a real provider (test/helpers/idp.ts) in between.
 */
import { upsertStaffUser } from '../../src/accounts/users.ts';
import { CORE_TOKEN_OWNER } from '../../src/tokens/jwt.ts';
import type { PermissionCode } from '../../src/accounts/permissions.ts';
import type { TestIdp } from './idp.ts';
import type { TestServer } from './server.ts';

export const DEFAULT_PLUGIN = 'mirumee.authentication.openidconnect';
export const REDIRECT_URI = 'https://shop.example.com/auth/callback';

export const USER_FIELDS = 'id email firstName lastName isStaff isActive userPermissions { code } permissionGroups { name }';

/** An access token of a staff admin minted by the server's own services (as the CLI does). */
export async function adminToken(s: TestServer, permissions: PermissionCode[] = ['MANAGE_PLUGINS', 'MANAGE_STAFF', 'MANAGE_USERS']) {
  const app = s.running.app;
  const user = await upsertStaffUser(app.db.prisma, { email: 'root-admin@example.com', permissions });
  return app.tokens.mintAccessToken(user, permissions, CORE_TOKEN_OWNER);
}

/** pluginUpdate with the given configuration (name → value); throws on errors. */
export async function configure(
  s: TestServer,
  token: string,
  pluginId: string,
  values: Record<string, string | null>,
  active = true,
): Promise<void> {
  const r = await s.gql(
    `mutation($id: ID!, $input: PluginUpdateInput!) { pluginUpdate(id: $id, input: $input) { errors { field code message } } }`,
    { id: pluginId, input: { active, configuration: Object.entries(values).map(([name, value]) => ({ name, value })) } },
    { token },
  );
  const errors = r.body.data?.pluginUpdate?.errors ?? r.body.errors;
  if (!r.body.data?.pluginUpdate || errors.length) throw new Error(`pluginUpdate failed: ${JSON.stringify(errors)}`);
}

/** The configuration of a connection to `idp` for client `clientId`. */
export function connectionValues(idp: TestIdp, clientId: string, clientSecret: string, extra: Record<string, string | null> = {}) {
  return {
    issuer_url: idp.issuer,
    client_id: clientId,
    client_secret: clientSecret,
    allowed_redirect_uris: `${REDIRECT_URI}\nhttps://shop.example.com/other/*`,
    ...extra,
  };
}

export async function authenticationUrl(s: TestServer, pluginId: string, input: unknown) {
  const r = await s.gql(
    `mutation($p: String!, $i: JSONString!) { externalAuthenticationUrl(pluginId: $p, input: $i) { authenticationData errors { field code message } } }`,
    { p: pluginId, i: JSON.stringify(input) },
  );
  return r.body.data.externalAuthenticationUrl as { authenticationData: string | null; errors: Array<{ field: string; code: string; message: string }> };
}

const TOKENS_FIELDS = `token refreshToken csrfToken user { ${USER_FIELDS} } errors { field code message }`;

export async function obtainTokens(s: TestServer, pluginId: string, input: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${s.url}/graphql/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({
      query: `mutation($p: String!, $i: JSONString!) { externalObtainAccessTokens(pluginId: $p, input: $i) { ${TOKENS_FIELDS} } }`,
      variables: { p: pluginId, i: JSON.stringify(input) },
    }),
  });
  const body = (await res.json()) as any;
  return { ...body.data.externalObtainAccessTokens, setCookie: res.headers.getSetCookie() } as TokensResult;
}

export interface TokensResult {
  token: string | null;
  refreshToken: string | null;
  csrfToken: string | null;
  user: any;
  errors: Array<{ field: string; code: string; message: string }>;
  setCookie: string[];
}

export async function externalCall(
  s: TestServer,
  mutation: 'externalRefresh' | 'externalLogout' | 'externalVerify',
  pluginId: string,
  input: unknown,
  headers: Record<string, string> = {},
) {
  const fields = {
    externalRefresh: TOKENS_FIELDS,
    externalLogout: 'logoutData errors { field code message }',
    externalVerify: `user { ${USER_FIELDS} } isValid verifyData errors { field code message }`,
  }[mutation];
  const res = await fetch(`${s.url}/graphql/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({
      query: `mutation($p: String!, $i: JSONString!) { ${mutation}(pluginId: $p, input: $i) { ${fields} } }`,
      variables: { p: pluginId, i: JSON.stringify(input) },
    }),
  });
  const body = (await res.json()) as any;
  if (!body.data) throw new Error(JSON.stringify(body));
  return { ...body.data[mutation], setCookie: res.headers.getSetCookie() };
}

/** The whole login: authorization URL → provider login/consent → code exchange. */
export async function login(s: TestServer, idp: TestIdp, pluginId: string, account: string, redirectUri = REDIRECT_URI) {
  const auth = await authenticationUrl(s, pluginId, { redirectUri });
  if (auth.errors.length) throw new Error(`externalAuthenticationUrl: ${JSON.stringify(auth.errors)}`);
  const { authorizationUrl } = JSON.parse(auth.authenticationData!) as { authorizationUrl: string };
  const result = await idp.authorize(authorizationUrl, { login: account });
  if (!result.code || !result.state) throw new Error(`provider did not redirect with a code: ${JSON.stringify(result)}`);
  const tokens = await obtainTokens(s, pluginId, { code: result.code, state: result.state });
  return { ...tokens, authorizationUrl, code: result.code, state: result.state, providerCookies: result.cookies };
}

/** `refreshToken=<value>` out of Set-Cookie headers. */
export function refreshCookieOf(setCookie: string[]): string | undefined {
  const c = setCookie.find((h) => h.startsWith('refreshToken='));
  return c ? decodeURIComponent(c.slice('refreshToken='.length).split(';')[0]!) : undefined;
}
