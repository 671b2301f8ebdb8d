/**
 * Pure rules of the OIDC plugin: provider quirks and scopes, redirect allow-lists, staff rules,
 * connection settings, groups claim paths, multi-tenant issuers (tenancy.ts).
 */
import { describe, expect, it } from 'vitest';
import { extraAuthorizationParams, isCognito, isGoogle, requestedScope } from '../../src/plugins/openid-connect/quirks.ts';
import { isAllowedRedirect, isValidAllowListEntry } from '../../src/plugins/openid-connect/redirects.ts';
import { decideStaff, emailDomain } from '../../src/accounts/staff.ts';
import { permissionScopes } from '../../src/accounts/permissions.ts';
import { parseOidcSettings, splitList, validateOidcSettings } from '../../src/plugins/openid-connect/settings.ts';
import { audiences, jwtIssuer, scopeOf } from '../../src/plugins/openid-connect/access-token-claims.ts';
import { claimAt, groupsClaimPaths, groupsClaimProblem, groupsFromClaims } from '../../src/plugins/openid-connect/groups-claim.ts';
import {
  discoveredIssuerProblem,
  isAllowedTenantIssuer,
  isKnownMultiTenantIssuer,
  isTenantId,
  issuerTemplate,
  tenancyOf,
  tenantSegment,
  tenantTokenProblem,
} from '../../src/plugins/openid-connect/tenancy.ts';

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
    resource_access: {
      'saleor-dashboard': { roles: ['order-managers', 'Editors'] },
      account: { roles: ['manage-account'] },
      'shop.dashboard': { roles: ['dotted-client'] },
      shop: { roles: ['plain-shop'], dashboard: { roles: ['nested-shop'] } },
    },
    'https://example.com/groups': ['Namespaced'],
    'https://example.com': { groups: ['Shadowed'] },
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
    ['resource_access.saleor-dashboard.roles', ['order-managers', 'Editors']],
    // A client id with dots: the longest name that exists wins at each level.
    ['resource_access.shop.dashboard.roles', ['dotted-client']],
    ['resource_access.shop.roles', ['plain-shop']],
    ['resource_access.other-client.roles', []],
    // Only own keys of JSON objects: nothing from Object.prototype, nothing inside arrays.
    ['constructor', []],
    ['groups.length', []],
    ['__proto__', []],
    ['realm_access.roles.0', []],
  ])('%s → %j', (path, expected) => {
    expect(groupsFromClaims(claims, [path])).toEqual(expected);
  });

  it.each([
    [['realm_access.roles', 'resource_access.saleor-dashboard.roles'], ['Editors', 'offline_access', 'order-managers']],
    [['resource_access.saleor-dashboard.roles', 'realm_access.roles'], ['order-managers', 'Editors', 'offline_access']],
    [['realm_access.roles', 'resource_access.other-client.roles'], ['Editors', 'offline_access']],
    [['missing', 'role'], ['Admins']],
    [[], []],
  ])('paths %j are united → %j', (paths, expected) => {
    expect(groupsFromClaims(claims, paths)).toEqual(expected);
  });

  it('reads the value at a path with dotted names', () => {
    expect(claimAt(claims, 'resource_access.shop.dashboard')).toEqual({ roles: ['dotted-client'] });
    expect(claimAt({ a: { 'b.c': { d: 1 } } }, 'a.b.c.d')).toBe(1);
    expect(claimAt({ a: null }, 'a.b')).toBeUndefined();
  });

  it.each([
    ['realm_access.roles, resource_access.saleor-dashboard.roles', ['realm_access.roles', 'resource_access.saleor-dashboard.roles']],
    ['groups', ['groups']],
    ['  ', []],
    [null, []],
  ])('setting %j → paths %j', (value, expected) => {
    expect(groupsClaimPaths(value)).toEqual(expected);
  });

  it.each([
    ['groups', null],
    ['realm_access.roles, resource_access.saleor-dashboard.roles', null],
    ['https://example.com/groups', null],
    ['', null],
    ['realm_access..roles', /Not a claim path/],
    ['.roles', /Not a claim path/],
    ['roles.', /Not a claim path/],
    ['realm access.roles', /Not a claim path/],
    ['roles\u0000', /Not a claim path/],
    ['groups,,roles', /empty claim path/],
    ['groups,', /empty claim path/],
    [' , ', /empty claim path/],
    ['a,b,c,d,e,f,g,h,i,j,k', /At most 10/],
    ['x'.repeat(201), /Not a claim path/],
  ])('groups_claim %j → %s', (value, expected) => {
    const problem = groupsClaimProblem(value);
    if (expected === null) expect(problem).toBeNull();
    else expect(problem).toMatch(expected);
  });
});

describe('access token claims', () => {
  it.each([
    ['scope string', { scope: 'openid saleor:manage_orders' }, 'openid saleor:manage_orders'],
    ['Entra scp string', { scp: 'access_as_user User.Read', roles: ['saleor-orders'] }, 'access_as_user User.Read'],
    ['Okta scp array', { scp: ['openid', 'saleor:manage_orders'] }, 'openid saleor:manage_orders'],
    ['scp array item with a space is dropped', { scp: ['openid saleor:manage_plugins', 'email'] }, 'email'],
    ['scp array item not a string is dropped', { scp: [42, 'email'] }, 'email'],
    ['scope wins over scp', { scope: 'openid', scp: 'saleor:manage_orders' }, 'openid'],
    ['roles are not scope', { roles: ['saleor:manage_orders'] }, ''],
    ['none', {}, ''],
  ])('scope of %s', (_name, claims, expected) => {
    expect(scopeOf(claims)).toBe(expected);
  });

  it('reads aud as a list and the unverified issuer of JWTs only', () => {
    expect(audiences('api')).toEqual(['api']);
    expect(audiences(['a', 1, 'b'])).toEqual(['a', 'b']);
    expect(audiences(undefined)).toEqual([]);
    const jwt = (payload: object) => `e30.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.sig`;
    expect(jwtIssuer(jwt({ iss: 'https://login.microsoftonline.com/x/v2.0' }))).toBe('https://login.microsoftonline.com/x/v2.0');
    expect(jwtIssuer(jwt({ iss: 42 }))).toBeUndefined();
    expect(jwtIssuer('opaque-token')).toBeUndefined();
    expect(jwtIssuer('a.b.c')).toBeUndefined();
  });
});

// ---- multi-tenant issuers (Microsoft Entra ID) ---------------------------------------------

const TENANT_A = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const TENANT_B = '9188040d-6c67-4c5b-b112-36a304b66dad';
const ENTRA = 'https://login.microsoftonline.com';
const TEMPLATE = `${ENTRA}/{tenantid}/v2.0`;

describe('multi-tenant issuers', () => {
  it.each([
    [`${ENTRA}/organizations/v2.0`, TEMPLATE],
    [`${ENTRA}/common/v2.0`, TEMPLATE],
    [`${ENTRA}/consumers/v2.0`, TEMPLATE],
    [`${ENTRA}/common`, `${ENTRA}/{tenantid}`],
    ['http://127.0.0.1:4000/organizations/v2.0', 'http://127.0.0.1:4000/{tenantid}/v2.0'],
    [`${ENTRA}/${TENANT_A}/v2.0`, undefined],
    [`${ENTRA}/Organizations/v2.0`, undefined],
    [`${ENTRA}/v2.0/organizations`, undefined],
    [`${ENTRA}/organizations/v2.0?x=1`, undefined],
    [`${ENTRA}/organizations/v2.0#f`, undefined],
    [TEMPLATE, undefined],
    [`${ENTRA}/organizations/{tenantid}`, undefined],
    [ENTRA, undefined],
    ['not a url', undefined],
  ])('issuerTemplate(%s) = %s', (issuerUrl, expected) => {
    expect(issuerTemplate(issuerUrl)).toBe(expected);
  });

  it.each([
    [TENANT_A, true],
    [TENANT_A.toUpperCase(), true],
    ['organizations', false],
    [`${TENANT_A}x`, false],
    ['72f988bf86f141af91ab2d7cd011db47', false],
    ['', false],
  ])('isTenantId(%s) = %s', (value, expected) => {
    expect(isTenantId(value)).toBe(expected);
  });

  it.each([
    [`${ENTRA}/organizations/v2.0`, true],
    ['https://LOGIN.microsoftonline.com/common/v2.0', true],
    ['https://login.microsoftonline.us/organizations/v2.0', true],
    [`${ENTRA}/${TENANT_A}/v2.0`, false],
    ['https://idp.example.com/organizations/v2.0', false],
    ['https://login.microsoftonline.com.evil.test/common/v2.0', false],
  ])('isKnownMultiTenantIssuer(%s) = %s', (issuerUrl, expected) => {
    expect(isKnownMultiTenantIssuer(issuerUrl)).toBe(expected);
  });

  it.each([
    [`${ENTRA}/${TENANT_A}/v2.0`, TENANT_A],
    [`${ENTRA}/anything/v2.0`, 'anything'],
    [`${ENTRA}//v2.0`, undefined],
    [`${ENTRA}/a/b/v2.0`, undefined],
    [`${ENTRA}/${TENANT_A}/v2.0/`, undefined],
    [`https://sts.windows.net/${TENANT_A}/`, undefined],
    [`${ENTRA}/${TENANT_A}`, undefined],
  ])('tenantSegment(template, %s) = %s', (iss, expected) => {
    expect(tenantSegment(TEMPLATE, iss)).toBe(expected);
  });

  const tenancy = tenancyOf(`${ENTRA}/organizations/v2.0`, [TENANT_A.toUpperCase(), TENANT_B])!;
  it('tenancy only with allowed tenants; tenant ids compared without case', () => {
    expect(tenancyOf(`${ENTRA}/organizations/v2.0`, [])).toBeUndefined();
    expect(tenancy.template).toBe(TEMPLATE);
    expect([...tenancy.allowed]).toEqual([TENANT_A, TENANT_B]);
    expect(tenancyOf('https://idp.example.com', [TENANT_A])!.template).toBeUndefined();
  });

  it.each([
    ['tenant A', { iss: `${ENTRA}/${TENANT_A}/v2.0`, tid: TENANT_A }, null],
    ['tenant B', { iss: `${ENTRA}/${TENANT_B}/v2.0`, tid: TENANT_B }, null],
    ['tid in capitals, iss naming it so', { iss: `${ENTRA}/${TENANT_A.toUpperCase()}/v2.0`, tid: TENANT_A.toUpperCase() }, null],
    ['a tenant not allowed', { iss: `${ENTRA}/00000000-0000-0000-0000-000000000001/v2.0`, tid: '00000000-0000-0000-0000-000000000001' }, /not in allowed_tenants/],
    ['iss of tenant A, tid B', { iss: `${ENTRA}/${TENANT_A}/v2.0`, tid: TENANT_B }, /does not name its tenant/],
    ['iss of a tenant not allowed, tid A', { iss: `${ENTRA}/00000000-0000-0000-0000-000000000001/v2.0`, tid: TENANT_A }, /does not name its tenant/],
    ['no tid', { iss: `${ENTRA}/${TENANT_A}/v2.0` }, /no tid/],
    ['empty tid', { iss: `${ENTRA}/${TENANT_A}/v2.0`, tid: '' }, /no tid/],
    ['tid not a string', { iss: `${ENTRA}/${TENANT_A}/v2.0`, tid: [TENANT_A] }, /no tid/],
    ['the literal template', { iss: TEMPLATE, tid: TENANT_A }, /does not name its tenant/],
    ['the configured issuer URL', { iss: `${ENTRA}/organizations/v2.0`, tid: TENANT_A }, /does not name its tenant/],
    ['v1 issuer', { iss: `https://sts.windows.net/${TENANT_A}/`, tid: TENANT_A }, /does not name its tenant/],
    ['another host', { iss: `https://login.evil.test/${TENANT_A}/v2.0`, tid: TENANT_A }, /does not name its tenant/],
    ['no iss', { tid: TENANT_A }, /does not name its tenant/],
  ])('token of %s', (_name, claims, expected) => {
    const problem = tenantTokenProblem(tenancy, claims);
    if (expected === null) expect(problem).toBeNull();
    else expect(problem).toMatch(expected);
  });

  it('refuses every token when the issuer URL has no multi-tenant form', () => {
    expect(tenantTokenProblem(tenancyOf('https://idp.example.com', [TENANT_A])!, { iss: 'https://idp.example.com', tid: TENANT_A })).toMatch(/not a multi-tenant form/);
  });

  it.each([
    [`${ENTRA}/${TENANT_A}/v2.0`, true],
    [`${ENTRA}/${TENANT_A.toUpperCase()}/v2.0`, true],
    [`${ENTRA}/00000000-0000-0000-0000-000000000001/v2.0`, false],
    [TEMPLATE, false],
    [`${ENTRA}/organizations/v2.0`, false],
    [undefined, false],
    [42, false],
  ])('isAllowedTenantIssuer(%s) = %s', (iss, expected) => {
    expect(isAllowedTenantIssuer(tenancy, iss)).toBe(expected);
  });

  it.each([
    ['template, organizations form, tenants', `${ENTRA}/organizations/v2.0`, [TENANT_A], TEMPLATE, null],
    ['template, common form, tenants', `${ENTRA}/common/v2.0`, [TENANT_A], TEMPLATE, null],
    ['template without tenants', `${ENTRA}/organizations/v2.0`, [], TEMPLATE, 'allowedTenants'],
    ['template, issuer URL of another host', 'https://login.evil.test/organizations/v2.0', [TENANT_A], TEMPLATE, 'issuerUrl'],
    ['template, issuer URL a single tenant', `${ENTRA}/${TENANT_A}/v2.0`, [TENANT_A], TEMPLATE, 'issuerUrl'],
    ['template, issuer URL of another path', `${ENTRA}/organizations/v1.0`, [TENANT_A], TEMPLATE, 'issuerUrl'],
    ['template in another place', `${ENTRA}/organizations/v2.0`, [TENANT_A], `${ENTRA}/v2.0/{tenantid}`, 'issuerUrl'],
    ['single issuer, equal', `${ENTRA}/${TENANT_A}/v2.0`, [], `${ENTRA}/${TENANT_A}/v2.0`, null],
    ['single issuer, equal as URLs', 'https://idp.example.com', [], 'https://idp.example.com/', null],
    ['single issuer, another', 'https://idp.example.com', [], 'https://other.example.com', 'issuerUrl'],
    ['single issuer with tenants', `${ENTRA}/${TENANT_A}/v2.0`, [TENANT_A], `${ENTRA}/${TENANT_A}/v2.0`, 'allowedTenants'],
    ['organizations without a template (not Entra-shaped)', `${ENTRA}/organizations/v2.0`, [TENANT_A], `${ENTRA}/organizations/v2.0`, 'allowedTenants'],
  ])('discovered issuer: %s', (_name, issuerUrl, tenants, discovered, field) => {
    expect(discoveredIssuerProblem(issuerUrl, tenants, discovered)?.field ?? null).toBe(field);
  });
});

describe('connection settings: allowed tenants and groups claim', () => {
  const base = { client_id: 'c', client_secret: 's', allowed_redirect_uris: 'https://a.example.com/cb' };
  const problems = (values: Record<string, string>) => validateOidcSettings({ ...base, ...values }).map((e) => [e.field, e.code, e.message]);

  it.each([
    ['Entra organizations with a tenant', { issuer_url: `${ENTRA}/organizations/v2.0`, allowed_tenants: TENANT_A }, []],
    ['Entra common with two tenants, newline-separated', { issuer_url: `${ENTRA}/common/v2.0`, allowed_tenants: `${TENANT_A}\n${TENANT_B}` }, []],
    ['another host in multi-tenant form (checked by discovery)', { issuer_url: 'https://idp.example.com/organizations/v2.0' }, []],
    ['a single-tenant Entra issuer', { issuer_url: `${ENTRA}/${TENANT_A}/v2.0` }, []],
    ['Entra organizations without tenants', { issuer_url: `${ENTRA}/organizations/v2.0` }, [['allowedTenants', /list the tenant ids/]]],
    ['Entra consumers without tenants', { issuer_url: `${ENTRA}/consumers/v2.0`, allowed_tenants: ' , ' }, [['allowedTenants', /list the tenant ids/]]],
    ['a tenant that is not a GUID', { issuer_url: `${ENTRA}/organizations/v2.0`, allowed_tenants: `${TENANT_A}, contoso.onmicrosoft.com` }, [['allowedTenants', /Not a tenant id \(GUID\): "contoso.onmicrosoft.com"/]]],
    ['a wildcard tenant', { issuer_url: `${ENTRA}/organizations/v2.0`, allowed_tenants: '*' }, [['allowedTenants', /Not a tenant id/]]],
    ['tenants with a single issuer', { issuer_url: 'https://idp.example.com', allowed_tenants: TENANT_A }, [['allowedTenants', /need a multi-tenant issuer URL/]]],
    ['the template as issuer URL', { issuer_url: TEMPLATE, allowed_tenants: TENANT_A }, [['issuerUrl', /cannot be discovered/]]],
    ['the template as issuer URL, no tenants', { issuer_url: TEMPLATE }, [['issuerUrl', /cannot be discovered/]]],
  ])('%s', (_name, values, expected) => {
    const got = problems(values);
    expect(got.map(([field, code]) => [field, code])).toEqual(expected.map(([field]) => [field, 'PLUGIN_MISCONFIGURED']));
    expected.forEach(([, message], i) => expect(got[i]![2]).toMatch(message as RegExp));
  });

  it('refuses a groups claim that is not a list of claim paths', () => {
    expect(problems({ issuer_url: 'https://idp.example.com', groups_claim: 'realm_access..roles' }).map(([f]) => f)).toEqual(['groupsClaim']);
    expect(problems({ issuer_url: 'https://idp.example.com', groups_claim: 'realm_access.roles, resource_access.saleor-dashboard.roles' })).toEqual([]);
  });

  it('reads the tenants in lower case and the groups claim as paths', () => {
    const s = parseOidcSettings({ ...base, issuer_url: `${ENTRA}/organizations/v2.0`, allowed_tenants: `${TENANT_A.toUpperCase()}, ${TENANT_B}`, groups_claim: 'realm_access.roles, resource_access.app.roles' });
    expect(s.allowedTenants).toEqual([TENANT_A, TENANT_B]);
    expect(s.groupsClaimPaths).toEqual(['realm_access.roles', 'resource_access.app.roles']);
    const plain = parseOidcSettings({ ...base, issuer_url: 'https://idp.example.com' });
    expect(plain.allowedTenants).toEqual([]);
    expect(plain.groupsClaimPaths).toBeUndefined();
  });
});
