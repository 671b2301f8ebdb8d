/**
 * Configuration of an OpenID Connect connection: Saleor's fields (same names, defaults and
 * validation rules) plus ours (issuer discovery, redirect allow-lists, linking policy).
 */
import { FieldError } from '../../errors.ts';
import { DEFAULT_TOKEN_ENDPOINT_AUTH_METHOD, parseTokenEndpointAuthMethod, validateTokenEndpointAuthMethod, type TokenEndpointAuthMethod } from './client-auth.ts';
import type { ConfigField, ConfigValues } from '../contract.ts';
import { isValidAllowListEntry } from './redirects.ts';
import { groupsClaimPaths, groupsClaimProblem } from './groups-claim.ts';
import { TENANT_PLACEHOLDER, isKnownMultiTenantIssuer, isTenantId, issuerTemplate } from './tenancy.ts';

export const OIDC_PLUGIN_KIND = 'openid-connect';
export const DEFAULT_OIDC_PLUGIN_ID = 'mirumee.authentication.openidconnect';
export const DEFAULT_OIDC_PLUGIN_NAME = 'OpenID Connect';

export const OIDC_FIELDS: readonly ConfigField[] = [
  { name: 'client_id', type: 'STRING', label: 'Client ID', helpText: 'Your Client ID required to authenticate on the provider side.', default: null },
  { name: 'client_secret', type: 'SECRET', label: 'Client Secret', helpText: 'Your client secret required to authenticate on provider side.', default: null },
  { name: 'enable_refresh_token', type: 'BOOLEAN', label: 'Enable refreshing token', helpText: 'Ask the provider for a refresh token (offline access) and let clients renew their tokens.', default: true },
  { name: 'issuer_url', type: 'STRING', label: 'Issuer URL', helpText: "The provider's issuer. When set, OpenID discovery always runs and the endpoint fields that are set override what it finds; the discovered issuer must equal this value (checked when the connection is activated or this URL changes). If discovery fails later, the connection keeps working when the authorization, token and JWKS URLs are all set.", default: null },
  { name: 'oauth_authorization_url', type: 'STRING', label: 'OAuth Authorization URL', helpText: 'The endpoint where the user is sent to log in.', default: null },
  { name: 'oauth_token_url', type: 'STRING', label: 'OAuth Token exchange URL', helpText: 'The endpoint that exchanges the authorization code and refresh tokens.', default: null },
  { name: 'json_web_key_set_url', type: 'STRING', label: 'JSON Web Key Set URL', helpText: "The provider's public keys (JWKS), used to verify its tokens.", default: null },
  { name: 'oauth_logout_url', type: 'STRING', label: 'OAuth logout URL', helpText: 'The end-session endpoint the user is sent to on logout.', default: null },
  { name: 'user_info_url', type: 'STRING', label: 'User info URL', helpText: 'The userinfo endpoint.', default: null },
  { name: 'introspection_url', type: 'STRING', label: 'Token introspection URL', helpText: "The provider's token introspection endpoint (RFC 7662), used to validate opaque bearer tokens. Overrides the discovered introspection_endpoint; set it for providers without discovery.", default: null },
  { name: 'revocation_url', type: 'STRING', label: 'Token revocation URL', helpText: "The provider's token revocation endpoint (RFC 7009). Overrides the discovered revocation_endpoint; set it for providers without discovery.", default: null },
  { name: 'audience', type: 'STRING', label: 'Audience', helpText: 'The API audience. Sent in the authorization request; scope permissions of bearer access tokens apply only when their aud contains it.', default: null },
  { name: 'resource', type: 'STRING', label: 'Resource indicator', helpText: 'RFC 8707: an absolute URI (no fragment) sent as `resource` in the authorization, token and refresh requests, for providers that set the access token audience from it (e.g. Glewlwyd, which otherwise puts the scope list in aud). Usually the same value as Audience.', default: null },
  { name: 'use_oauth_scope_permissions', type: 'BOOLEAN', label: 'Use OAuth scope permissions', helpText: 'Grant permissions from saleor:<permission> scopes (or a permissions claim); saleor:staff marks a staff user.', default: false },
  { name: 'staff_user_domains', type: 'STRING', label: 'Staff user domains', helpText: 'Comma-separated email domains whose users become staff (verified emails only).', default: null },
  { name: 'default_group_name_for_new_staff_users', type: 'STRING', label: 'Default permission group name for new staff users', helpText: 'Staff users join this group (created empty if missing) and get its permissions.', default: null },
  { name: 'groups_claim', type: 'STRING', label: 'Groups claim', helpText: "Claim holding the user's groups or roles, e.g. groups, roles, or a nested path such as realm_access.roles; several paths separated by commas are united (Keycloak realm and client roles: realm_access.roles, resource_access.<client id>.roles). A name containing dots is written as is: at each level the longest dotted name that exists in the token is taken (resource_access.shop.dashboard.roles finds client shop.dashboard). When set, the user is a member of exactly those of our permission groups the claims name (besides the default staff group), and such a member is staff.", default: null },
  { name: 'user_id_claim', type: 'STRING', label: 'User ID claim of access tokens', helpText: "The claim of the provider's access tokens that names the user, as the ID token's sub does (default sub). Okta custom authorization servers: uid (their access tokens put the login name in sub).", default: null },
  { name: 'allowed_redirect_uris', type: 'MULTILINE', label: 'Allowed redirect URIs', helpText: 'Comma- or newline-separated redirect URIs accepted by externalAuthenticationUrl: exact match, or an entry ending in /* matches by prefix. No query strings or fragments.', default: null },
  { name: 'allowed_post_logout_redirect_uris', type: 'MULTILINE', label: 'Allowed post-logout redirect URIs', helpText: 'Comma- or newline-separated URIs accepted as post_logout_redirect_uri. When empty, the allowed redirect URIs apply.', default: null },
  { name: 'accept_opaque_bearer_tokens', type: 'BOOLEAN', label: 'Accept opaque bearer tokens', helpText: "Validate bearer tokens that are not JWTs with this provider (introspection, or userinfo). Each connection that accepts them is shown every opaque token, so connections created with openIdConnectConnectionCreate start with it off.", default: true },
  { name: 'token_endpoint_auth_method', type: 'STRING', label: 'Token endpoint authentication method', helpText: "How the client authenticates at the token endpoint (OpenID Connect Core 9): client_secret_basic (default), client_secret_post, client_secret_jwt (an HS256 assertion keyed with the client secret, at least 32 bytes) or private_key_jwt (an assertion signed with this connection's own key, no client secret needed: register <server URL>/oidc/jwks/<plugin id> at the provider as the client's jwks_uri; rotate with `npm run cli -- connection-keys rotate <plugin id>`).", default: 'client_secret_basic' },
  { name: 'allowed_tenants', type: 'STRING', label: 'Allowed tenants (multi-tenant issuer)', helpText: "Microsoft Entra ID multi-tenant: comma-separated tenant ids (GUIDs) whose users may log in, with Issuer URL https://login.microsoftonline.com/organizations/v2.0 (or /common/v2.0, /consumers/v2.0), whose discovered issuer is https://login.microsoftonline.com/{tenantid}/v2.0. Required for such an issuer (no tenant is accepted by default), refused for any other. A token's tid must be listed and its iss must be the issuer with that tid; users are linked by that issuer, so one account in two tenants is two users.", default: null },
  { name: 'link_by_verified_email', type: 'BOOLEAN', label: 'Link existing accounts by verified email', helpText: 'On first login, link an existing account with the same email when the provider says the email is verified.', default: true },
];

/** Splits a comma- or newline-separated list, dropping blanks. */
export function splitList(value: string | boolean | null | undefined): string[] {
  if (typeof value !== 'string') return [];
  return value
    .split(/[\n,]/)
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.hostname !== '';
  } catch {
    return false;
  }
}

function text(values: ConfigValues, name: string): string {
  const v = values[name];
  return typeof v === 'string' ? v.trim() : '';
}

/** Endpoint fields that are never required, but must be valid URLs when set. */
const OPTIONAL_ENDPOINTS = [
  ['oauth_logout_url', 'oauthLogoutUrl', 'OAuth logout URL'],
  ['introspection_url', 'introspectionUrl', 'Token introspection URL'],
  ['revocation_url', 'revocationUrl', 'Token revocation URL'],
] as const;

/** RFC 8707 section 2: an absolute URI, no fragment. */
function isResourceIndicator(value: string): boolean {
  if (!/^[a-z][a-z0-9+.-]*:/i.test(value) || value.includes('#') || /\s/.test(value)) return false;
  try {
    new URL(value);
    return true;
  } catch {
    return false;
  }
}

export const misconfigured = (field: string, message: string) => new FieldError(field, 'PLUGIN_MISCONFIGURED', message);

/**
 * Saleor's rules, extended. Client id and secret are always required. The issuer is required
 * too: it is what id_tokens are checked against (`iss`), and with it OpenID discovery fills the
 * endpoint fields left empty. Endpoint fields that are set must be valid URLs; without an
 * issuer Saleor's rules name the endpoints that would be needed (if an authorization or token
 * URL is set: JWKS + authorization + token; else if a userinfo URL is set: JWKS + userinfo;
 * else all four). At least one allowed redirect URI is required. The optional endpoint fields
 * (logout, introspection, revocation) must be valid http(s) URLs when set (the guarded fetch
 * refuses plain http at request time unless OUTBOUND_ALLOW_PRIVATE_ADDRESSES is on).
 *
 * Only what can be told without the network is checked here; the issuer's discovery document
 * is checked when a connection is activated (`validateOidcActivation` in index.ts).
 */
export function validateOidcSettings(values: ConfigValues): FieldError[] {
  const errors: FieldError[] = [];
  const urlField = (name: string, field: string, label: string) => {
    const v = text(values, name);
    if (!isHttpUrl(v)) errors.push(misconfigured(field, v ? `${label} is not a valid URL.` : `${label} is required.`));
  };
  if (!text(values, 'client_id')) errors.push(misconfigured('clientId', 'Client ID is required.'));
  for (const problem of validateTokenEndpointAuthMethod(values['token_endpoint_auth_method'], values['client_secret'])) {
    errors.push(misconfigured(problem.field, problem.message));
  }
  const userIdClaim = text(values, 'user_id_claim');
  if (userIdClaim && !/^[A-Za-z0-9_:.-]{1,100}$/.test(userIdClaim)) {
    errors.push(misconfigured('userIdClaim', 'Use a claim name of letters, digits and _ : . - (at most 100).'));
  }
  const groupsProblem = groupsClaimProblem(text(values, 'groups_claim'));
  if (groupsProblem) errors.push(misconfigured('groupsClaim', groupsProblem));
  errors.push(...tenantErrors(values));
  const resource = text(values, 'resource');
  if (resource && !isResourceIndicator(resource)) {
    errors.push(misconfigured('resource', 'Resource indicator must be an absolute URI without a fragment (RFC 8707).'));
  }

  const endpoints = [
    ['oauth_authorization_url', 'oauthAuthorizationUrl', 'OAuth Authorization URL'],
    ['oauth_token_url', 'oauthTokenUrl', 'OAuth Token exchange URL'],
    ['json_web_key_set_url', 'jsonWebKeySetUrl', 'JSON Web Key Set URL'],
    ['user_info_url', 'userInfoUrl', 'User info URL'],
  ] as const;
  if (text(values, 'issuer_url')) {
    urlField('issuer_url', 'issuerUrl', 'Issuer URL');
    for (const [name, field, label] of endpoints) if (text(values, name)) urlField(name, field, label);
  } else {
    errors.push(misconfigured('issuerUrl', 'Issuer URL is required: ID tokens are checked against it, and discovery fills the endpoints.'));
    if (text(values, 'oauth_authorization_url') || text(values, 'oauth_token_url')) {
      urlField('json_web_key_set_url', 'jsonWebKeySetUrl', 'JSON Web Key Set URL');
      urlField('oauth_authorization_url', 'oauthAuthorizationUrl', 'OAuth Authorization URL');
      urlField('oauth_token_url', 'oauthTokenUrl', 'OAuth Token exchange URL');
    } else if (text(values, 'user_info_url')) {
      urlField('json_web_key_set_url', 'jsonWebKeySetUrl', 'JSON Web Key Set URL');
      urlField('user_info_url', 'userInfoUrl', 'User info URL');
    } else {
      for (const [, field, label] of endpoints) errors.push(misconfigured(field, `${label} is required (or set the Issuer URL).`));
    }
  }
  for (const [name, field, label] of OPTIONAL_ENDPOINTS) if (text(values, name)) urlField(name, field, label);

  const redirects = splitList(values['allowed_redirect_uris']);
  if (redirects.length === 0) {
    errors.push(misconfigured('allowedRedirectUris', 'At least one allowed redirect URI is required.'));
  }
  for (const [name, field] of [
    ['allowed_redirect_uris', 'allowedRedirectUris'],
    ['allowed_post_logout_redirect_uris', 'allowedPostLogoutRedirectUris'],
  ] as const) {
    const bad = splitList(values[name]).filter((uri) => !isValidAllowListEntry(uri));
    if (bad.length) {
      errors.push(misconfigured(field, `Not a valid absolute URL (a prefix rule must end in "/*"): ${bad.join(', ')}`));
    }
  }
  return errors;
}

/**
 * `allowed_tenants` (tenancy.ts): tenant ids only; only with a multi-tenant form of the issuer
 * URL (never the template itself, which cannot be discovered); required with one that is known
 * to be multi-tenant without asking (an Entra host). Discovery at activation checks the rest.
 */
function tenantErrors(values: ConfigValues): FieldError[] {
  const errors: FieldError[] = [];
  const issuer = text(values, 'issuer_url');
  const tenants = splitList(values['allowed_tenants']);
  const bad = tenants.filter((t) => !isTenantId(t));
  if (bad.length) errors.push(misconfigured('allowedTenants', `Not a tenant id (GUID): ${bad.map((t) => JSON.stringify(t.slice(0, 60))).join(', ')}`));
  if (issuer.includes(TENANT_PLACEHOLDER)) {
    errors.push(misconfigured('issuerUrl', `Use the issuer URL with ${TENANT_PLACEHOLDER} replaced by organizations, common or consumers (the template itself cannot be discovered).`));
  } else if (tenants.length && issuer && !issuerTemplate(issuer)) {
    errors.push(misconfigured('allowedTenants', 'Allowed tenants need a multi-tenant issuer URL, such as https://login.microsoftonline.com/organizations/v2.0 (or /common/v2.0, /consumers/v2.0).'));
  } else if (!tenants.length && isKnownMultiTenantIssuer(issuer)) {
    errors.push(misconfigured('allowedTenants', 'This issuer is multi-tenant: list the tenant ids to accept. No tenant is accepted by default.'));
  }
  return errors;
}

/** A connection's configuration, typed. */
export interface OidcSettings {
  clientId: string;
  clientSecret: string;
  enableRefreshToken: boolean;
  issuerUrl: string;
  authorizationUrl: string | undefined;
  tokenUrl: string | undefined;
  jwksUrl: string | undefined;
  logoutUrl: string | undefined;
  userInfoUrl: string | undefined;
  /** RFC 7662 introspection endpoint; overrides the discovered one. */
  introspectionUrl: string | undefined;
  /** RFC 7009 revocation endpoint; overrides the discovered one. */
  revocationUrl: string | undefined;
  audience: string | undefined;
  /** RFC 8707 resource indicator sent to the provider (authorization, token, refresh requests). */
  resource: string | undefined;
  /** The claim of provider access tokens naming the user (default `sub`). */
  userIdClaim: string;
  useScopePermissions: boolean;
  staffDomains: string[];
  defaultGroupName: string | null;
  allowedRedirectUris: string[];
  /** Falls back to the redirect allow-list when empty. */
  allowedPostLogoutRedirectUris: string[];
  linkByVerifiedEmail: boolean;
  tokenEndpointAuthMethod: TokenEndpointAuthMethod;
  acceptOpaqueBearerTokens: boolean;
  /** Claim paths of the provider's groups/roles (groups-claim.ts); undefined: not mapped. */
  groupsClaimPaths: string[] | undefined;
  /** Lower-case tenant ids of a multi-tenant issuer (tenancy.ts); empty: single issuer. */
  allowedTenants: string[];
}

export function parseOidcSettings(values: ConfigValues): OidcSettings {
  const opt = (name: string) => text(values, name) || undefined;
  const bool = (name: string, fallback: boolean) => (typeof values[name] === 'boolean' ? (values[name] as boolean) : fallback);
  const redirects = splitList(values['allowed_redirect_uris']);
  const postLogout = splitList(values['allowed_post_logout_redirect_uris']);
  const groupsPaths = groupsClaimPaths(values['groups_claim']);
  return {
    clientId: text(values, 'client_id'),
    clientSecret: text(values, 'client_secret'),
    enableRefreshToken: bool('enable_refresh_token', true),
    issuerUrl: text(values, 'issuer_url'),
    authorizationUrl: opt('oauth_authorization_url'),
    tokenUrl: opt('oauth_token_url'),
    jwksUrl: opt('json_web_key_set_url'),
    logoutUrl: opt('oauth_logout_url'),
    userInfoUrl: opt('user_info_url'),
    introspectionUrl: opt('introspection_url'),
    revocationUrl: opt('revocation_url'),
    audience: opt('audience'),
    resource: opt('resource'),
    userIdClaim: opt('user_id_claim') ?? 'sub',
    useScopePermissions: bool('use_oauth_scope_permissions', false),
    staffDomains: splitList(values['staff_user_domains']).map((d) => d.toLowerCase().replace(/^@/, '')),
    defaultGroupName: opt('default_group_name_for_new_staff_users') ?? null,
    allowedRedirectUris: redirects,
    allowedPostLogoutRedirectUris: postLogout.length ? postLogout : redirects,
    linkByVerifiedEmail: bool('link_by_verified_email', true),
    tokenEndpointAuthMethod: parseTokenEndpointAuthMethod(values['token_endpoint_auth_method']) ?? DEFAULT_TOKEN_ENDPOINT_AUTH_METHOD,
    acceptOpaqueBearerTokens: bool('accept_opaque_bearer_tokens', true),
    groupsClaimPaths: groupsPaths.length ? groupsPaths : undefined,
    allowedTenants: splitList(values['allowed_tenants']).map((t) => t.toLowerCase()),
  };
}
