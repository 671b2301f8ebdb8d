/**
 * Login through a real OpenID provider: the authorization URL, the code exchange, users,
 * staff and permissions from scopes, claims and domains, two connections at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { startIdp, type TestIdp } from '../helpers/idp.ts';
import {
  DEFAULT_PLUGIN,
  REDIRECT_URI,
  adminToken,
  authenticationUrl,
  configure,
  connectionValues,
  login,
  obtainTokens,
} from '../helpers/oidc-flow.ts';

let s: TestServer;
let idp: TestIdp;
let admin: string;

beforeAll(async () => {
  idp = await startIdp({
    clients: [{ client_id: 'storefront', client_secret: 'storefront-secret', redirect_uris: [REDIRECT_URI, 'https://shop.example.com/other/page'] }],
    accounts: [
      { sub: 'alice', email: 'Alice@Example.com', email_verified: true, given_name: 'Alice', family_name: 'Liddell' },
      { sub: 'bob', email: 'bob@staff.example.com', email_verified: true, given_name: 'Bob' },
      { sub: 'carol', email: 'carol@staff.example.com', email_verified: false },
      { sub: 'dave', email: 'dave@example.com', email_verified: true, permissions: ['saleor:manage_orders', 'saleor:MANAGE_USERS', 'other'] },
    ],
  });
  s = await startTestServer({ OUTBOUND_ALLOW_PRIVATE_ADDRESSES: 'true', OIDC_JWKS_REFETCH_COOLDOWN_SECONDS: '0' });
  admin = await adminToken(s);
  await configure(s, admin, DEFAULT_PLUGIN, connectionValues(idp, 'storefront', 'storefront-secret'));
});

afterAll(async () => {
  await s?.close();
  await idp?.close();
});

describe('externalAuthenticationUrl', () => {
  it('builds the provider URL with PKCE S256, nonce, state and the scopes', async () => {
    const r = await authenticationUrl(s, DEFAULT_PLUGIN, { redirectUri: REDIRECT_URI });
    expect(r.errors).toEqual([]);
    const url = new URL(JSON.parse(r.authenticationData!).authorizationUrl);
    expect(url.origin + url.pathname).toBe(`${idp.issuer}/auth`);
    const p = url.searchParams;
    expect(p.get('response_type')).toBe('code');
    expect(p.get('client_id')).toBe('storefront');
    expect(p.get('redirect_uri')).toBe(REDIRECT_URI);
    expect(p.get('scope')).toBe('openid profile email offline_access');
    expect(p.get('code_challenge_method')).toBe('S256');
    expect(p.get('code_challenge')).toMatch(/^[\w-]{43}$/);
    expect(p.get('nonce')).toMatch(/^[\w-]{20,}$/);
    expect(p.get('state')).toMatch(/^[\w-]{40,}$/);
    expect(p.get('prompt')).toBe('consent');
    // The state names a server-side record; only its hash is stored.
    const rows = await s.running.app.db.pool.query('SELECT state_hash, redirect_uri, expires_at, created_at FROM authorization_requests');
    expect(rows.rows.some((row) => row.state_hash === p.get('state'))).toBe(false);
    const ttl = (rows.rows.at(-1).expires_at - rows.rows.at(-1).created_at) / 1000;
    expect(ttl).toBeGreaterThan(599);
    expect(ttl).toBeLessThanOrEqual(600);
  });

  it('requires redirectUri and refuses one not on the allow-list', async () => {
    expect((await authenticationUrl(s, DEFAULT_PLUGIN, {})).errors).toEqual([
      { field: 'redirectUri', code: 'NOT_FOUND', message: 'Missing required field - redirectUri' },
    ]);
    for (const bad of ['https://evil.example.com/auth/callback', `${REDIRECT_URI}/x`, 'https://shop.example.com/other', 'https://shop.example.com/other/a#frag', 42]) {
      const r = await authenticationUrl(s, DEFAULT_PLUGIN, { redirectUri: bad });
      expect(r.authenticationData).toBeNull();
      expect(r.errors.map((e) => [e.field, e.code])).toEqual([['redirectUri', 'INVALID']]);
    }
    expect((await authenticationUrl(s, DEFAULT_PLUGIN, { redirectUri: 'https://shop.example.com/other/page' })).errors).toEqual([]);
  });
});

describe('externalObtainAccessTokens', () => {
  it('logs a new user in and mints our tokens', async () => {
    const r = await login(s, idp, DEFAULT_PLUGIN, 'alice');
    expect(r.errors).toEqual([]);
    expect(r.user).toMatchObject({ email: 'alice@example.com', firstName: 'Alice', lastName: 'Liddell', isStaff: false, isActive: true, userPermissions: [] });
    const claims = decodeJwt(r.token!);
    expect(claims).toMatchObject({ type: 'access', owner: DEFAULT_PLUGIN, email: 'alice@example.com', is_staff: false, permissions: [], iss: s.config.issuer });
    expect(claims['oauth_access_key']).toBeUndefined();
    expect(claims.exp! - claims.iat!).toBe(300);
    expect(r.refreshToken).toBeTruthy();
    expect(r.csrfToken).toMatch(/^[a-zA-Z0-9]{64}$/);
    expect(decodeJwt(r.refreshToken!)).toMatchObject({ type: 'refresh', owner: DEFAULT_PLUGIN });
    const cookie = r.setCookie.find((c) => c.startsWith('refreshToken='));
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/Path=\//);
    expect(cookie).toMatch(/SameSite=Lax/);
    const me = await s.gql('{ me { email isStaff } }', {}, { token: r.token! });
    expect(me.body.data.me).toEqual({ email: 'alice@example.com', isStaff: false });
    // The provider's refresh token is stored sealed, never in our token.
    const session = await s.running.app.db.pool.query('SELECT provider_refresh_token_enc, id_token_enc FROM sessions');
    expect(session.rows[0].provider_refresh_token_enc).toMatch(/^v1\./);
    expect(JSON.stringify(decodeJwt(r.refreshToken!))).not.toContain(session.rows[0].provider_refresh_token_enc);
  });

  it('logs the same identity in again as the same user, synced', async () => {
    idp.accounts.get('alice')!.given_name = 'Alicia';
    const r = await login(s, idp, DEFAULT_PLUGIN, 'alice');
    expect(r.errors).toEqual([]);
    expect(r.user.firstName).toBe('Alicia');
    const users = await s.running.app.db.pool.query(`SELECT count(*)::int AS n FROM users WHERE email = 'alice@example.com'`);
    expect(users.rows[0].n).toBe(1);
    const ids = await s.running.app.db.pool.query(`SELECT issuer, subject FROM external_identities`);
    expect(ids.rows).toContainEqual({ issuer: idp.issuer, subject: 'alice' });
  });

  it('refuses a state used twice, unknown, or missing, and a missing code', async () => {
    const r = await login(s, idp, DEFAULT_PLUGIN, 'alice');
    expect(r.errors).toEqual([]);
    const again = await obtainTokens(s, DEFAULT_PLUGIN, { code: r.code, state: r.state });
    expect(again.errors).toEqual([{ field: 'state', code: 'INVALID', message: expect.any(String) }]);
    expect(again.token).toBeNull();
    expect((await obtainTokens(s, DEFAULT_PLUGIN, { code: 'x', state: 'made-up' })).errors[0]).toMatchObject({ field: 'state', code: 'INVALID' });
    expect((await obtainTokens(s, DEFAULT_PLUGIN, { code: 'x' })).errors).toEqual([
      { field: 'state', code: 'NOT_FOUND', message: 'Missing required field - state' },
    ]);
    expect((await obtainTokens(s, DEFAULT_PLUGIN, { state: 'x' })).errors).toEqual([
      { field: 'code', code: 'NOT_FOUND', message: 'Missing required field - code' },
    ]);
  });

  it('answers a code the provider refuses with code/INVALID and its description', async () => {
    const auth = await authenticationUrl(s, DEFAULT_PLUGIN, { redirectUri: REDIRECT_URI });
    const state = new URL(JSON.parse(auth.authenticationData!).authorizationUrl).searchParams.get('state');
    const r = await obtainTokens(s, DEFAULT_PLUGIN, { code: 'not-a-real-code', state });
    expect(r.token).toBeNull();
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatchObject({ field: 'code', code: 'INVALID' });
    expect(r.errors[0]!.message).toMatch(/grant|code/i);
  });
});
