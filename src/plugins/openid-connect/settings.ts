/**
 * Configuration of an OpenID Connect connection: Saleor's fields (same names, defaults and
 * validation rules) plus ours (issuer discovery, redirect allow-lists, linking policy).
 */
import { FieldError } from '../../errors.ts';
import type { ConfigField, ConfigValues } from '../contract.ts';

export const OIDC_PLUGIN_KIND = 'openid-connect';
export const DEFAULT_OIDC_PLUGIN_ID = 'mirumee.authentication.openidconnect';
export const DEFAULT_OIDC_PLUGIN_NAME = 'OpenID Connect';

export const OIDC_FIELDS: readonly ConfigField[] = [
  { name: 'client_id', type: 'STRING', label: 'Client ID', helpText: 'Your Client ID required to authenticate on the provider side.', default: null },
  { name: 'client_secret', type: 'SECRET', label: 'Client Secret', helpText: 'Your client secret required to authenticate on provider side.', default: null },
  { name: 'enable_refresh_token', type: 'BOOLEAN', label: 'Enable refreshing token', helpText: 'Ask the provider for a refresh token (offline access) and let clients renew their tokens.', default: true },
  { name: 'issuer_url', type: 'STRING', label: 'Issuer URL', helpText: "The provider's issuer. When set, OpenID discovery fills the endpoint URLs left empty, and the discovered issuer must equal this value.", default: null },
  { name: 'oauth_authorization_url', type: 'STRING', label: 'OAuth Authorization URL', helpText: 'The endpoint where the user is sent to log in.', default: null },
  { name: 'oauth_token_url', type: 'STRING', label: 'OAuth Token exchange URL', helpText: 'The endpoint that exchanges the authorization code and refresh tokens.', default: null },
  { name: 'json_web_key_set_url', type: 'STRING', label: 'JSON Web Key Set URL', helpText: "The provider's public keys (JWKS), used to verify its tokens.", default: null },
  { name: 'oauth_logout_url', type: 'STRING', label: 'OAuth logout URL', helpText: 'The end-session endpoint the user is sent to on logout.', default: null },
  { name: 'user_info_url', type: 'STRING', label: 'User info URL', helpText: 'The userinfo endpoint.', default: null },
  { name: 'audience', type: 'STRING', label: 'Audience', helpText: 'The API audience. Sent in the authorization request; scope permissions of bearer access tokens apply only when their aud contains it.', default: null },
  { name: 'use_oauth_scope_permissions', type: 'BOOLEAN', label: 'Use OAuth scope permissions', helpText: 'Grant permissions from saleor:<permission> scopes (or a permissions claim); saleor:staff marks a staff user.', default: false },
  { name: 'staff_user_domains', type: 'STRING', label: 'Staff user domains', helpText: 'Comma-separated email domains whose users become staff (verified emails only).', default: null },
  { name: 'default_group_name_for_new_staff_users', type: 'STRING', label: 'Default permission group name for new staff users', helpText: 'Staff users join this group (created empty if missing) and get its permissions.', default: null },
  { name: 'allowed_redirect_uris', type: 'MULTILINE', label: 'Allowed redirect URIs', helpText: 'Comma- or newline-separated redirect URIs accepted by externalAuthenticationUrl (exact match; an entry ending in * matches by prefix).', default: null },
  { name: 'allowed_post_logout_redirect_uris', type: 'MULTILINE', label: 'Allowed post-logout redirect URIs', helpText: 'Comma- or newline-separated URIs accepted as post_logout_redirect_uri. When empty, the allowed redirect URIs apply.', default: null },
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

const misconfigured = (field: string, message: string) => new FieldError(field, 'PLUGIN_MISCONFIGURED', message);

/**
 * Saleor's rules, extended: with an issuer URL the endpoint fields become optional; otherwise
 * if an authorization or token URL is set, JWKS + authorization + token must be valid URLs;
 * else if a userinfo URL is set, JWKS + userinfo must be; else all four are reported.
 * Client id and secret are always required, and so is at least one allowed redirect URI.
 */
export function validateOidcSettings(values: ConfigValues): FieldError[] {
  const errors: FieldError[] = [];
  const urlField = (name: string, field: string, label: string) => {
    const v = text(values, name);
    if (!isHttpUrl(v)) errors.push(misconfigured(field, v ? `${label} is not a valid URL.` : `${label} is required.`));
  };
  if (!text(values, 'client_id')) errors.push(misconfigured('clientId', 'Client ID is required.'));
  if (!text(values, 'client_secret')) errors.push(misconfigured('clientSecret', 'Client Secret is required.'));

  const issuer = text(values, 'issuer_url');
  if (issuer) {
    urlField('issuer_url', 'issuerUrl', 'Issuer URL');
    for (const [name, field, label] of [
      ['oauth_authorization_url', 'oauthAuthorizationUrl', 'OAuth Authorization URL'],
      ['oauth_token_url', 'oauthTokenUrl', 'OAuth Token exchange URL'],
      ['json_web_key_set_url', 'jsonWebKeySetUrl', 'JSON Web Key Set URL'],
      ['user_info_url', 'userInfoUrl', 'User info URL'],
    ] as const) {
      if (text(values, name)) urlField(name, field, label);
    }
  } else if (text(values, 'oauth_authorization_url') || text(values, 'oauth_token_url')) {
    urlField('json_web_key_set_url', 'jsonWebKeySetUrl', 'JSON Web Key Set URL');
    urlField('oauth_authorization_url', 'oauthAuthorizationUrl', 'OAuth Authorization URL');
    urlField('oauth_token_url', 'oauthTokenUrl', 'OAuth Token exchange URL');
  } else if (text(values, 'user_info_url')) {
    urlField('json_web_key_set_url', 'jsonWebKeySetUrl', 'JSON Web Key Set URL');
    urlField('user_info_url', 'userInfoUrl', 'User info URL');
  } else {
    const hint = 'Set the Issuer URL, or the provider endpoints.';
    errors.push(misconfigured('jsonWebKeySetUrl', `JSON Web Key Set URL is required. ${hint}`));
    errors.push(misconfigured('oauthAuthorizationUrl', `OAuth Authorization URL is required. ${hint}`));
    errors.push(misconfigured('oauthTokenUrl', `OAuth Token exchange URL is required. ${hint}`));
    errors.push(misconfigured('userInfoUrl', `User info URL is required. ${hint}`));
  }
  if (text(values, 'oauth_logout_url')) urlField('oauth_logout_url', 'oauthLogoutUrl', 'OAuth logout URL');

  const redirects = splitList(values['allowed_redirect_uris']);
  if (redirects.length === 0) {
    errors.push(misconfigured('allowedRedirectUris', 'At least one allowed redirect URI is required.'));
  }
  for (const [name, field] of [
    ['allowed_redirect_uris', 'allowedRedirectUris'],
    ['allowed_post_logout_redirect_uris', 'allowedPostLogoutRedirectUris'],
  ] as const) {
    const bad = splitList(values[name]).filter((uri) => !isHttpUrl(uri.endsWith('*') ? uri.slice(0, -1) : uri));
    if (bad.length) errors.push(misconfigured(field, `Not a valid absolute URL: ${bad.join(', ')}`));
  }
  return errors;
}
