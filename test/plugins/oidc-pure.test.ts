/**
 * Pure rules of the OIDC plugin: provider quirks and scopes, redirect allow-lists, staff rules.
 */
import { describe, expect, it } from 'vitest';
import { extraAuthorizationParams, isCognito, isGoogle, requestedScope } from '../../src/plugins/openid-connect/quirks.ts';
import { isAllowedRedirect, isValidAllowListEntry } from '../../src/plugins/openid-connect/redirects.ts';
import { decideStaff, emailDomain } from '../../src/accounts/staff.ts';
import { permissionScopes } from '../../src/accounts/permissions.ts';
import { groupsFromClaims, parseOidcSettings, splitList, validateOidcSettings } from '../../src/plugins/openid-connect/settings.ts';

describe('provider quirks', () => {
  it.each([
    [{ authorizationUrl: 'https://accounts.google.com/o/oauth2/v2/auth' }, true],
    [{ issuer: 'https://accounts.google.com' }, true],
    [{ authorizationUrl: 'https://www.googleapis.com/x' }, true],
    [{ authorizationUrl: 'https://googleapis.com/x' }, true],
    [{ authorizationUrl: 'https://ACCOUNTS.GOOGLE.COM/auth' }, true],
    [{ authorizationUrl: 'https://accounts.google.com.evil.test/auth' }, false],
    [{ authorizationUrl: 'https://evil.test/accounts.google.com' }, false],
    [{ authorizationUrl: 'not a url' }, false],
    [{}, false],
  ])('isGoogle(%j) = %s', (urls, expected) => {
    expect(isGoogle(urls)).toBe(expected);
  });

  it('detects AWS Cognito by its JWKS URL', () => {
    expect(isCognito('https://cognito-idp.eu-west-1.amazonaws.com/pool/.well-known/jwks.json')).toBe(true);
    expect(isCognito('https://idp.example.com/jwks')).toBe(false);
    expect(isCognito(undefined)).toBe(false);
  });

  const base = { useScopePermissions: false, enableRefreshToken: true, google: false, cognito: false };
  it('asks for offline_access with prompt=consent when refresh is on', () => {
    expect(requestedScope(base)).toBe('openid profile email offline_access');
    expect(extraAuthorizationParams(base)).toEqual({ prompt: 'consent' });
  });
  it('asks Google for access_type=offline instead of offline_access', () => {
    expect(requestedScope({ ...base, google: true })).toBe('openid profile email');
    expect(extraAuthorizationParams({ ...base, google: true })).toEqual({ access_type: 'offline' });
  });
  it('asks Cognito for neither', () => {
    expect(requestedScope({ ...base, cognito: true })).toBe('openid profile email');
    expect(extraAuthorizationParams({ ...base, cognito: true })).toEqual({});
  });
  it('asks for nothing offline when refresh is off', () => {
    expect(requestedScope({ ...base, enableRefreshToken: false })).toBe('openid profile email');
    expect(extraAuthorizationParams({ ...base, enableRefreshToken: false, google: true })).toEqual({});
  });
  it('adds every saleor: scope and saleor:staff with scope permissions', () => {
    const scope = requestedScope({ ...base, useScopePermissions: true }).split(' ');
    expect(scope.slice(0, 3)).toEqual(['openid', 'profile', 'email']);
    expect(scope.slice(3, -1)).toEqual(permissionScopes());
    expect(scope).toContain('saleor:staff');
    expect(scope).toContain('saleor:manage_plugins');
    expect(scope.at(-1)).toBe('offline_access');
    expect(scope).toHaveLength(3 + 26 + 1);
  });
});

describe('redirect allow-lists', () => {
  const list = ['https://shop.example.com/auth/callback', 'https://shop.example.com/preview/*', 'http://localhost:3000/cb'];
  it.each([
    ['https://shop.example.com/auth/callback', true],
    ['https://shop.example.com/auth/callback/', false],
    ['https://shop.example.com/auth/callback?x=1', false],
    ['https://SHOP.example.com/auth/callback', false],
    ['https://shop.example.com/auth/callback#frag', false],
    ['https://shop.example.com/preview/pr-1/cb', true],
    ['https://shop.example.com/preview/', true],
    ['https://shop.example.com/preview', false],
    ['https://shop.example.com/preview//evil.test/x', false],
    ['https://shop.example.com/preview/x#y', false],
    ['https://shop.example.com/preview/../admin', false],
    ['https://shop.example.com/preview/a/../../admin', false],
    ['https://shop.example.com/preview/..', false],
    ['https://shop.example.com/preview/%2e%2e/admin', false],
    ['https://shop.example.com/preview/a%2fb', false],
    ['https://shop.example.com/preview/a\\b', false],
    ['https://shop.example.com/preview/a..b/c', true],
    ['https://shop.example.com/preview/.well-known', true],
    ['https://shop.example.com/preview/cb?next=home', false],
    ['https://user:pass@shop.example.com/preview/x', false],
    ['https://shop.example.com.evil.test/preview/x', false],
    ['http://localhost:3000/cb', true],
    ['javascript:alert(1)', false],
    ['', false],
    ['not a url', false],
  ])('%s → %s', (uri, expected) => {
    expect(isAllowedRedirect(uri, list)).toBe(expected);
  });

  it.each([
    ['https://shop.example.com/cb', true],
    ['https://shop.example.com/*', true],
    ['https://shop.example.com*', false],
    ['https://*.example.com/cb', false],
    ['https://shop.example.com/a*/b', false],
    ['ftp://shop.example.com/cb', false],
    ['https://shop.example.com/cb#x', false],
    ['https://shop.example.com/cb?x=1', false],
    ['/relative', false],
  ])('allow-list entry %s valid: %s', (entry, expected) => {
    expect(isValidAllowListEntry(entry)).toBe(expected);
  });
});

describe('staff rules', () => {
  const rules = { useScopePermissions: true, staffDomains: ['staff.example.com'] };
  const grant = (over: object) => ({ scope: '', email: 'a@example.com', emailVerified: true, ...over });
  it.each([
    ['permissions from the scope make staff', rules, grant({ scope: 'openid saleor:manage_orders saleor:manage_users' }), { isStaff: true, permissions: ['MANAGE_USERS', 'MANAGE_ORDERS'] }],
    ['saleor:staff alone: staff without permissions', rules, grant({ scope: 'openid saleor:staff' }), { isStaff: true, permissions: [] }],
    ['substring is not the staff token', rules, grant({ scope: 'saleor:staffing xsaleor:staff' }), { isStaff: false, permissions: [] }],
    ['permissions claim', rules, grant({ permissionsClaim: ['saleor:manage_pages', 'saleor:MANAGE_USERS'] }), { isStaff: true, permissions: ['MANAGE_PAGES'] }],
    ['verified staff domain', rules, grant({ email: 'x@Staff.Example.com' }), { isStaff: true, permissions: [] }],
    ['unverified staff domain', rules, grant({ email: 'x@staff.example.com', emailVerified: false }), { isStaff: false, permissions: [] }],
    ['sub-domain is not the domain', rules, grant({ email: 'x@a.staff.example.com' }), { isStaff: false, permissions: [] }],
    ['scope permissions off: scopes ignored', { ...rules, useScopePermissions: false }, grant({ scope: 'saleor:staff saleor:manage_users' }), { isStaff: false, permissions: [] }],
    ['scope permissions off: domain still counts', { ...rules, useScopePermissions: false }, grant({ email: 'x@staff.example.com' }), { isStaff: true, permissions: [] }],
  ])('%s', (_name, r, g, expected) => {
    expect(decideStaff(r, g)).toEqual(expected);
  });

  it('takes the domain after the last @, lower-cased', () => {
    expect(emailDomain('"a@b"@Example.COM')).toBe('example.com');
    expect(emailDomain('nodomain')).toBe('');
  });
});

describe('connection settings', () => {
  it('splits comma and newline lists', () => {
    expect(splitList('a, b\nc,,\n')).toEqual(['a', 'b', 'c']);
    expect(splitList(null)).toEqual([]);
  });

  it('falls back to the redirect allow-list for post-logout redirects and reads typed values', () => {
    const s = parseOidcSettings({
      client_id: 'c',
      client_secret: 's',
      issuer_url: 'https://idp.example.com',
      allowed_redirect_uris: 'https://a.example.com/cb',
      staff_user_domains: '@Staff.Example.com, other.example',
      enable_refresh_token: false,
    });
    expect(s.allowedPostLogoutRedirectUris).toEqual(['https://a.example.com/cb']);
    expect(s.staffDomains).toEqual(['staff.example.com', 'other.example']);
    expect(s.enableRefreshToken).toBe(false);
    expect(s.useScopePermissions).toBe(false);
    expect(s.linkByVerifiedEmail).toBe(true);
    expect(s.tokenEndpointAuthMethod).toBe('client_secret_basic');
    expect(s.audience).toBeUndefined();
  });

  it('reports Saleor\'s endpoint fields when there is no issuer', () => {
    const fields = validateOidcSettings({ client_id: 'c', client_secret: 's', allowed_redirect_uris: 'https://a.example.com/cb' }).map((e) => [e.field, e.code]);
    expect(fields).toEqual([
      ['issuerUrl', 'PLUGIN_MISCONFIGURED'],
      ['oauthAuthorizationUrl', 'PLUGIN_MISCONFIGURED'],
      ['oauthTokenUrl', 'PLUGIN_MISCONFIGURED'],
      ['jsonWebKeySetUrl', 'PLUGIN_MISCONFIGURED'],
      ['userInfoUrl', 'PLUGIN_MISCONFIGURED'],
    ]);
    const withUserinfo = validateOidcSettings({
      client_id: 'c', client_secret: 's', allowed_redirect_uris: 'https://a.example.com/cb', user_info_url: 'https://idp.example.com/me',
    }).map((e) => e.field);
    expect(withUserinfo).toEqual(['issuerUrl', 'jsonWebKeySetUrl']);
    expect(validateOidcSettings({ client_id: 'c', client_secret: 's', allowed_redirect_uris: 'https://a.example.com/cb', issuer_url: 'https://idp.example.com', token_endpoint_auth_method: 'none' }).map((e) => e.field)).toEqual(['tokenEndpointAuthMethod']);
  });
});

describe('groups claim', () => {
  const claims = {
    groups: ['Editors', 42, '', 'Support'],
    role: 'Admins',
    realm_access: { roles: ['Editors', 'offline_access'] },
    'https://example.com/groups': ['Namespaced'],
    nested: { not: 'an array' },
  };
  it.each([
    ['groups', ['Editors', 'Support']],
    ['role', ['Admins']],
    ['realm_access.roles', ['Editors', 'offline_access']],
    ['https://example.com/groups', ['Namespaced']],
    ['nested.not', ['an array']],
    ['nested.missing', []],
    ['missing', []],
    ['realm_access', []],
  ])('%s → %j', (path, expected) => {
    expect(groupsFromClaims(claims, path)).toEqual(expected);
  });
});
