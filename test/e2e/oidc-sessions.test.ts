/**
 * Sessions behind the OIDC plugin's refresh tokens, against a real oidc-provider IdP:
 * externalRefresh (input and cookie + CSRF), rotation and replay detection, tokenRefresh
 * routing, refresh disabled, provider refusal, expiry, tokensDeactivateAll, externalLogout,
 * back-channel logout (real delivery by the provider, and crafted tokens the receiver must
 * refuse), audit rows, and that no token or secret reaches the logs or the audit table.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, UnsecuredJWT, decodeJwt, exportJWK, generateKeyPair, type CryptoKey, type JWTPayload } from 'jose';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { startIdp, type TestIdp } from '../helpers/idp.ts';
import {
  DEFAULT_PLUGIN,
  REDIRECT_URI,
  adminToken,
  authenticationUrl,
  configure,
  connectionValues,
  externalCall,
  login,
  refreshCookieOf,
} from '../helpers/oidc-flow.ts';
import { createCsrfToken, maskCsrfSecret, unmaskCsrfToken } from '../../src/tokens/csrf.ts';

const CLIENT_ID = 'storefront';
const CLIENT_SECRET = 'storefront-secret-0123456789-abcdefghij';
const BYE = 'https://shop.example.com/bye';
const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
const INVALID_REFRESH = [{ field: 'refreshToken', code: 'INVALID', message: 'Unable to refresh the token.' }];

let s: TestServer;
let idp: TestIdp;
let admin: string;
/** The provider's signing key (generated here, handed to the IdP). */
let providerKey: CryptoKey;
let providerKid: string;
/** Every token, code and CSRF value these tests handled: none may reach logs or audit rows. */
const secrets = new Set<string>();

function remember(...values: Array<string | null | undefined>): void {
  for (const v of values) if (v) secrets.add(v);
}

const accounts = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy', 'mallory'].map((sub) => ({
  sub,
  email: `${sub}@example.com`,
  email_verified: true,
  given_name: sub[0]!.toUpperCase() + sub.slice(1),
}));

beforeAll(async () => {
  // No reuse grace here: a replayed rotated token is refused at once (sessions-resilience.test.ts
  // covers the grace window).
  s = await startTestServer({ OUTBOUND_ALLOW_PRIVATE_ADDRESSES: 'true', REFRESH_TOKEN_REUSE_INTERVAL_SECONDS: '0' });
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  providerKey = privateKey;
  providerKid = `provider-${randomUUID()}`;
  const jwk = { ...(await exportJWK(privateKey)), kid: providerKid, alg: 'RS256', use: 'sig' };
  idp = await startIdp({
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: [REDIRECT_URI],
        post_logout_redirect_uris: [BYE],
        backchannel_logout_uri: `${s.url}/oidc/backchannel-logout/${DEFAULT_PLUGIN}`,
        backchannel_logout_session_required: true,
      },
    ],
    accounts,
    keys: [jwk],
  });
  admin = await adminToken(s);
  remember(admin);
  await configure(s, admin, DEFAULT_PLUGIN, connectionValues(idp, CLIENT_ID, CLIENT_SECRET, { allowed_post_logout_redirect_uris: BYE }));
});

afterAll(async () => {
  await s?.close();
  await idp?.close();
});

// ---- local helpers ----------------------------------------------------------------------

interface SessionRow {
  id: string;
  user_id: number;
  subject: string;
  provider_sid: string | null;
  refresh_token_id: string;
  expires_at: Date;
  revoked_at: Date | null;
  revoked_reason: string | null;
}

async function signIn(account: string) {
  const r = await login(s, idp, DEFAULT_PLUGIN, account);
  remember(r.token, r.refreshToken, r.csrfToken, r.code);
  expect(r.errors).toEqual([]);
  expect(r.refreshToken).toBeTruthy();
  return r as typeof r & { token: string; refreshToken: string; csrfToken: string };
}

const sidOf = (refreshToken: string) => decodeJwt(refreshToken)['sid'] as string;

async function session(refreshToken: string): Promise<SessionRow> {
  const r = await s.running.app.db.pool.query('SELECT * FROM sessions WHERE id = $1', [sidOf(refreshToken)]);
  expect(r.rows).toHaveLength(1);
  return r.rows[0] as SessionRow;
}

async function sessionsOfSubject(subject: string): Promise<SessionRow[]> {
  const r = await s.running.app.db.pool.query('SELECT * FROM sessions WHERE subject = $1 ORDER BY created_at', [subject]);
  return r.rows as SessionRow[];
}

async function refresh(input: Record<string, unknown>, headers: Record<string, string> = {}) {
  const r = await externalCall(s, 'externalRefresh', DEFAULT_PLUGIN, input, headers);
  remember(r.token, r.refreshToken, r.csrfToken);
  return r as {
    token: string | null;
    refreshToken: string | null;
    csrfToken: string | null;
    user: { email: string } | null;
    errors: Array<{ field: string; code: string; message: string }>;
    setCookie: string[];
  };
}

async function logout(input: Record<string, unknown>, headers: Record<string, string> = {}) {
  const r = await externalCall(s, 'externalLogout', DEFAULT_PLUGIN, input, headers);
  return r as { logoutData: string | null; errors: Array<{ field: string; code: string; message: string }>; setCookie: string[] };
}

async function tokenRefresh(refreshToken: string) {
  const r = await s.gql(
    `mutation($t: String) { tokenRefresh(refreshToken: $t) { token user { email } errors { field code message } } }`,
    { t: refreshToken },
  );
  const out = r.body.data.tokenRefresh as { token: string | null; user: { email: string } | null; errors: unknown[] };
  remember(out.token, refreshCookieOf(r.headers.getSetCookie()));
  return { ...out, setCookie: r.headers.getSetCookie() };
}

async function me(token: string) {
  return (await s.gql('{ me { email } }', {}, { token })).body.data.me as { email: string } | null;
}

const cookie = (refreshToken: string) => ({ cookie: `refreshToken=${refreshToken}` });

/** Claims of a valid logout token for `extra` (sid and/or sub); members set to undefined are dropped. */
function logoutClaims(extra: Record<string, unknown>): JWTPayload {
  const now = Math.floor(Date.now() / 1000);
  return { iss: idp.issuer, aud: CLIENT_ID, iat: now, exp: now + 120, jti: randomUUID(), events: { [BACKCHANNEL_EVENT]: {} }, ...extra };
}

async function signLogout(claims: JWTPayload, key: CryptoKey | Uint8Array = providerKey, alg = 'RS256'): Promise<string> {
  const token = await new SignJWT(claims).setProtectedHeader({ alg, kid: providerKid, typ: 'logout+jwt' }).sign(key);
  remember(token);
  return token;
}

async function postBackchannel(logoutToken: string | undefined, pluginId = DEFAULT_PLUGIN) {
  const res = await fetch(`${s.url}/oidc/backchannel-logout/${encodeURIComponent(pluginId)}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: logoutToken === undefined ? '' : new URLSearchParams({ logout_token: logoutToken }).toString(),
  });
  const body = await res.text();
  return { status: res.status, cacheControl: res.headers.get('cache-control'), body };
}

// ---- externalRefresh ------------------------------------------------------------------------

describe('externalRefresh', () => {
  it('1. refreshes from the input token: new tokens, cookie, rotated session', async () => {
    const first = await signIn('alice');
    const before = await session(first.refreshToken);
    const r = await refresh({ refreshToken: first.refreshToken });
    expect(r.errors).toEqual([]);
    expect(r.token).toBeTruthy();
    expect(r.refreshToken).toBeTruthy();
    expect(r.refreshToken).not.toBe(first.refreshToken);
    expect(r.csrfToken).toMatch(/^[a-zA-Z0-9]{64}$/);
    expect(r.csrfToken).not.toBe(first.csrfToken);
    expect(r.user).toMatchObject({ email: 'alice@example.com' });
    expect(decodeJwt(r.token!)).toMatchObject({ type: 'access', owner: DEFAULT_PLUGIN, email: 'alice@example.com' });
    expect(decodeJwt(r.refreshToken!)).toMatchObject({ type: 'refresh', owner: DEFAULT_PLUGIN, sid: before.id });
    expect(await me(r.token!)).toEqual({ email: 'alice@example.com' });
    expect(refreshCookieOf(r.setCookie)).toBe(r.refreshToken);
    const setCookie = r.setCookie.find((c) => c.startsWith('refreshToken='))!;
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/Path=\//);
    expect(setCookie).toMatch(/SameSite=Lax/);
    const after = await session(r.refreshToken!);
    expect(after.id).toBe(before.id);
    expect(after.refresh_token_id).not.toBe(before.refresh_token_id);
    expect(decodeJwt(r.refreshToken!)['rti']).toBe(after.refresh_token_id);
    expect(after.revoked_at).toBeNull();
  });

  it('2. a replayed (rotated) refresh token revokes the session; the newest one stops working', async () => {
    const first = await signIn('alice');
    const second = await refresh({ refreshToken: first.refreshToken });
    expect(second.errors).toEqual([]);
    const replay = await refresh({ refreshToken: first.refreshToken });
    expect(replay.errors).toEqual(INVALID_REFRESH);
    expect(replay.token).toBeNull();
    expect(replay.refreshToken).toBeNull();
    expect(replay.csrfToken).toBeNull();
    expect(replay.user).toBeNull();
    const row = await session(first.refreshToken);
    expect(row.revoked_at).not.toBeNull();
    expect(row.revoked_reason).toBe('refresh token reuse');
    expect((await refresh({ refreshToken: second.refreshToken! })).errors).toEqual(INVALID_REFRESH);
  });

  it('3. refreshes from the cookie only with the matching CSRF token (any masking of its secret)', async () => {
    const first = await signIn('alice');
    const r1 = await refresh({ csrfToken: first.csrfToken }, cookie(first.refreshToken));
    expect(r1.errors).toEqual([]);
    expect(r1.token).toBeTruthy();
    expect(r1.refreshToken).not.toBe(first.refreshToken);
    const rt1 = r1.refreshToken!;
    const csrf1 = r1.csrfToken!;
    const rti1 = (await session(rt1)).refresh_token_id;

    const csrfError = [{ field: 'csrfToken', code: 'INVALID', message: expect.any(String) }];
    for (const input of [{}, { csrfToken: createCsrfToken() }, { csrfToken: 'garbage' }, { csrfToken: first.csrfToken }, { csrfToken: null }]) {
      const bad = await refresh(input, cookie(rt1));
      expect(bad.errors).toEqual(csrfError);
      expect(bad.token).toBeNull();
      expect(bad.refreshToken).toBeNull();
      expect(bad.setCookie.find((c) => c.startsWith('refreshToken='))).toBeUndefined();
    }
    const row = await session(rt1);
    expect(row.refresh_token_id).toBe(rti1);
    expect(row.revoked_at).toBeNull();

    const remasked = maskCsrfSecret(unmaskCsrfToken(csrf1)!);
    expect(remasked).not.toBe(csrf1);
    const r2 = await refresh({ csrfToken: remasked }, cookie(rt1));
    expect(r2.errors).toEqual([]);
    expect(r2.token).toBeTruthy();
    expect((await session(rt1)).refresh_token_id).not.toBe(rti1);
  });

  it('4. missing, garbage and access tokens', async () => {
    const missing = await refresh({});
    expect(missing.errors).toEqual([{ field: 'refreshToken', code: 'NOT_FOUND', message: 'Missing token.' }]);
    expect(missing.token).toBeNull();
    for (const bad of ['garbage', 'a.b.c', '']) {
      const r = await refresh({ refreshToken: bad });
      if (bad === '') expect(r.errors).toEqual([{ field: 'refreshToken', code: 'NOT_FOUND', message: 'Missing token.' }]);
      else expect(r.errors).toEqual(INVALID_REFRESH);
    }
    expect((await refresh({ csrfToken: createCsrfToken() }, { cookie: 'refreshToken=garbage' })).errors).toEqual(INVALID_REFRESH);
    const first = await signIn('alice');
    const asAccess = await refresh({ refreshToken: first.token });
    expect(asAccess.errors).toEqual(INVALID_REFRESH);
    expect(asAccess.token).toBeNull();
    // Nothing happened to the session behind the login.
    const row = await session(first.refreshToken);
    expect(row.revoked_at).toBeNull();
    expect(decodeJwt(first.refreshToken)['rti']).toBe(row.refresh_token_id);
  });

  it('5. tokenRefresh routes a plugin refresh token to the plugin without rotating it (@saleor/auth-sdk keeps its token)', async () => {
    const first = await signIn('alice');
    const before = await session(first.refreshToken);
    // The SDK sends the same refresh token every time the access token expires.
    for (let i = 0; i < 3; i++) {
      const r = await tokenRefresh(first.refreshToken);
      expect(r.errors).toEqual([]);
      expect(r.token).toBeTruthy();
      expect(r.user).toEqual({ email: 'alice@example.com' });
      expect(decodeJwt(r.token!)).toMatchObject({ type: 'access', owner: DEFAULT_PLUGIN });
      expect(await me(r.token!)).toEqual({ email: 'alice@example.com' });
      expect(refreshCookieOf(r.setCookie)).toBeUndefined();
    }
    const after = await session(first.refreshToken);
    expect(after.refresh_token_id).toBe(before.refresh_token_id);
    expect(after.revoked_at).toBeNull();

    // A token rotated away by externalRefresh is still refused through tokenRefresh, and revokes.
    const rotated = await refresh({ refreshToken: first.refreshToken });
    expect(rotated.errors).toEqual([]);
    const replay = await tokenRefresh(first.refreshToken);
    expect(replay.token).toBeNull();
    expect(replay.user).toBeNull();
    expect(replay.errors).toEqual(INVALID_REFRESH);
    const revoked = await session(first.refreshToken);
    expect(revoked.revoked_at).not.toBeNull();
    expect(revoked.revoked_reason).toBe('refresh token reuse');
  });

  it('6. refresh disabled: no offline_access, typed error, logins without refresh token', async () => {
    const earlier = await signIn('alice');
    await configure(s, admin, DEFAULT_PLUGIN, { enable_refresh_token: 'false' });
    try {
      const auth = await authenticationUrl(s, DEFAULT_PLUGIN, { redirectUri: REDIRECT_URI });
      expect(auth.errors).toEqual([]);
      const url = new URL(JSON.parse(auth.authenticationData!).authorizationUrl);
      expect(url.searchParams.get('scope')).toBe('openid profile email');
      expect(url.searchParams.get('scope')).not.toContain('offline_access');

      const disabled = [{ field: 'refreshToken', code: 'INVALID', message: 'Unable to refresh the token. Support for refreshing tokens is disabled' }];
      const r = await refresh({ refreshToken: earlier.refreshToken });
      expect(r.errors).toEqual(disabled);
      expect(r.token).toBeNull();
      expect((await refresh({})).errors).toEqual(disabled);
      // The session behind the earlier login is untouched.
      expect((await session(earlier.refreshToken)).refresh_token_id).toBe(decodeJwt(earlier.refreshToken)['rti']);

      const l = await login(s, idp, DEFAULT_PLUGIN, 'ivan');
      remember(l.token, l.code);
      expect(l.errors).toEqual([]);
      expect(l.token).toBeTruthy();
      expect(l.refreshToken).toBeNull();
      expect(l.csrfToken).toBeNull();
      expect(l.setCookie.find((c) => c.startsWith('refreshToken='))).toBeUndefined();
      expect(await me(l.token!)).toEqual({ email: 'ivan@example.com' });
      expect(await sessionsOfSubject('ivan')).toEqual([]);
    } finally {
      await configure(s, admin, DEFAULT_PLUGIN, { enable_refresh_token: 'true' });
    }
    const again = await refresh({ refreshToken: earlier.refreshToken });
    expect(again.errors).toEqual([]);
  });

  it('7. the provider refusing the refresh revokes the session', async () => {
    const first = await signIn('carol');
    const account = idp.accounts.get('carol')!;
    idp.accounts.delete('carol');
    try {
      const r = await refresh({ refreshToken: first.refreshToken });
      expect(r.errors).toEqual(INVALID_REFRESH);
      expect(r.token).toBeNull();
    } finally {
      idp.accounts.set('carol', account);
    }
    const row = await session(first.refreshToken);
    expect(row.revoked_at).not.toBeNull();
    expect(row.revoked_reason).toBe('provider refused: invalid_grant');
    expect((await refresh({ refreshToken: first.refreshToken })).errors).toEqual(INVALID_REFRESH);
  });

  it('8. an expired session cannot be refreshed', async () => {
    const first = await signIn('alice');
    await s.running.app.db.pool.query(`UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = $1`, [sidOf(first.refreshToken)]);
    const r = await refresh({ refreshToken: first.refreshToken });
    expect(r.errors).toEqual(INVALID_REFRESH);
    expect(r.token).toBeNull();
    expect((await session(first.refreshToken)).refresh_token_id).toBe(decodeJwt(first.refreshToken)['rti']);
  });

  it('9. tokensDeactivateAll revokes the sessions', async () => {
    const a = await signIn('bob');
    const b = await signIn('bob');
    const r = await s.gql('mutation { tokensDeactivateAll { errors { field code message } } }', {}, { token: a.token });
    expect(r.body.data.tokensDeactivateAll).toEqual({ errors: [] });
    for (const t of [a.refreshToken, b.refreshToken]) {
      const row = await session(t);
      expect(row.revoked_at).not.toBeNull();
      expect(row.revoked_reason).toBe('tokens-deactivated');
      expect((await refresh({ refreshToken: t })).errors).toEqual(INVALID_REFRESH);
    }
    expect(await me(a.token)).toBeNull();
  });

  it('9b. pointing the connection at another token endpoint ends its sessions; other edits do not', async () => {
    const a = await signIn('bob');
    await configure(s, admin, DEFAULT_PLUGIN, { staff_user_domains: 'unrelated.example' });
    expect((await session(a.refreshToken)).revoked_at).toBeNull();
    expect(await me(a.token)).not.toBeNull(); // cached
    await configure(s, admin, DEFAULT_PLUGIN, { oauth_token_url: `${idp.issuer}/token` });
    try {
      const row = await session(a.refreshToken);
      expect(row.revoked_reason).toBe('connection-reconfigured');
      // Its access token dies with it, cached or not.
      expect(await me(a.token)).toBeNull();
      expect((await refresh({ refreshToken: a.refreshToken })).errors).toEqual(INVALID_REFRESH);
      // New logins work with the new configuration.
      const b = await signIn('bob');
      expect((await refresh({ refreshToken: b.refreshToken })).errors).toEqual([]);
    } finally {
      await configure(s, admin, DEFAULT_PLUGIN, { oauth_token_url: '', staff_user_domains: '' });
    }
  });

  it('9c. a connection\'s sessions ended in one go (not listed one by one): its cached access tokens are refused at once', async () => {
    const a = await signIn('bob');
    const b = await signIn('carol');
    expect(await me(a.token)).not.toBeNull(); // cached now
    expect(await me(b.token)).not.toBeNull();
    // What a reconfiguration does after its configuration change was announced (the
    // announcement cleared the caches before the sessions ended; this one is after).
    expect(await s.running.app.sessions.revokeConnection(DEFAULT_PLUGIN, 'connection-reconfigured')).toBeGreaterThanOrEqual(2);
    expect(await me(a.token)).toBeNull();
    expect(await me(b.token)).toBeNull();
    expect((await session(b.refreshToken)).revoked_reason).toBe('connection-reconfigured');
  });
});

// ---- externalLogout -------------------------------------------------------------------------

describe('externalLogout', () => {
  it('10. revokes the session, clears the cookie and builds the end-session URL', async () => {
    const first = await signIn('frank');
    const r = await logout({ refreshToken: first.refreshToken, postLogoutRedirectUri: BYE });
    expect(r.errors).toEqual([]);
    const data = JSON.parse(r.logoutData!) as { logoutUrl: string };
    expect(Object.keys(data)).toEqual(['logoutUrl']);
    const url = new URL(data.logoutUrl);
    expect(url.origin + url.pathname).toBe(`${idp.issuer}/session/end`);
    expect(url.searchParams.get('client_id')).toBe(CLIENT_ID);
    expect(url.searchParams.get('post_logout_redirect_uri')).toBe(BYE);
    const hint = url.searchParams.get('id_token_hint');
    expect(hint).toBeTruthy();
    remember(hint);
    expect(decodeJwt(hint!)).toMatchObject({ sub: 'frank', iss: idp.issuer, aud: CLIENT_ID });
    const cleared = r.setCookie.find((c) => c.startsWith('refreshToken='));
    expect(cleared).toMatch(/^refreshToken=;/);
    expect(cleared).toMatch(/Max-Age=0/);
    expect(cleared).toMatch(/Path=\//);
    const row = await session(first.refreshToken);
    expect(row.revoked_at).not.toBeNull();
    expect(row.revoked_reason).toBe('logout');
    expect((await refresh({ refreshToken: first.refreshToken })).errors).toEqual(INVALID_REFRESH);
    // The provider accepts the URL (id_token_hint, client_id, post_logout_redirect_uri): its
    // confirmation form, once submitted, sends the browser to our post-logout URI.
    const end = await fetch(data.logoutUrl, { redirect: 'manual' });
    const html = await end.text();
    expect(end.status).toBe(200);
    expect(html).toContain(`${idp.issuer}/session/end/confirm`);
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)?.[1];
    expect(xsrf).toBeTruthy();
    const jar = end.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
    const confirm = await fetch(`${idp.issuer}/session/end/confirm`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: jar },
      body: new URLSearchParams({ xsrf: xsrf!, logout: 'yes' }).toString(),
    });
    await confirm.text();
    expect(confirm.status).toBe(303);
    expect(new URL(confirm.headers.get('location')!).origin + new URL(confirm.headers.get('location')!).pathname).toBe(BYE);
  });

  it('10b. refuses a post-logout URI off the allow-list and keeps the session', async () => {
    const first = await signIn('frank');
    for (const uri of ['https://evil.example.com/bye', REDIRECT_URI, `${BYE}/x`, `${BYE}#x`]) {
      const r = await logout({ refreshToken: first.refreshToken, postLogoutRedirectUri: uri });
      expect(r.logoutData).toBeNull();
      expect(r.errors).toEqual([{ field: 'postLogoutRedirectUri', code: 'INVALID', message: expect.any(String) }]);
    }
    const row = await session(first.refreshToken);
    expect(row.revoked_at).toBeNull();
    expect((await refresh({ refreshToken: first.refreshToken })).errors).toEqual([]);
  });

  it('10c. logout with the cookie needs the CSRF token to end the session or disclose the id_token', async () => {
    const first = await signIn('frank');
    // A cross-site request carries the cookie but not the CSRF token: nothing ended, nothing disclosed.
    for (const input of [{}, { csrfToken: 'x'.repeat(64) }]) {
      const forged = await logout(input, cookie(first.refreshToken));
      expect(forged.errors).toEqual([]);
      const forgedUrl = new URL((JSON.parse(forged.logoutData!) as { logoutUrl: string }).logoutUrl);
      expect(forgedUrl.searchParams.has('id_token_hint')).toBe(false);
      expect((await session(first.refreshToken)).revoked_at).toBeNull();
    }
    const r = await logout({ csrfToken: first.csrfToken }, cookie(first.refreshToken));
    expect(r.errors).toEqual([]);
    const url = new URL((JSON.parse(r.logoutData!) as { logoutUrl: string }).logoutUrl);
    remember(url.searchParams.get('id_token_hint'));
    expect(decodeJwt(url.searchParams.get('id_token_hint')!).sub).toBe('frank');
    expect(url.searchParams.get('post_logout_redirect_uri')).toBeNull();
    const row = await session(first.refreshToken);
    expect(row.revoked_reason).toBe('logout');
    expect(row.revoked_at).not.toBeNull();
    expect((await refresh({ csrfToken: first.csrfToken }, cookie(first.refreshToken))).errors).toEqual(INVALID_REFRESH);

    const none = await logout({});
    expect(none.errors).toEqual([]);
    const bare = new URL((JSON.parse(none.logoutData!) as { logoutUrl: string }).logoutUrl);
    expect(bare.origin + bare.pathname).toBe(`${idp.issuer}/session/end`);
    expect(bare.searchParams.get('client_id')).toBe(CLIENT_ID);
    expect(bare.searchParams.has('id_token_hint')).toBe(false);
    expect(none.setCookie.find((c) => c.startsWith('refreshToken='))).toMatch(/Max-Age=0/);
  });
});

// ---- back-channel logout ----------------------------------------------------------------------

describe('back-channel logout', () => {
  it('11. the provider ending its session revokes ours (real delivery)', async () => {
    const first = await signIn('dave');
    const other = await signIn('dave');
    const row0 = await session(first.refreshToken);
    expect(row0.provider_sid).toBeTruthy();
    const result = await idp.endSession(first.providerCookies);
    expect(result.failed).toEqual([]);
    expect(result.delivered).toContain(CLIENT_ID);
    const row = await session(first.refreshToken);
    expect(row.revoked_at).not.toBeNull();
    expect(row.revoked_reason).toBe('backchannel-logout');
    expect((await refresh({ refreshToken: first.refreshToken })).errors).toEqual(INVALID_REFRESH);
    // Another IdP session of the same user (another sid) is not affected.
    expect((await session(other.refreshToken)).revoked_at).toBeNull();
    const audit = await s.running.app.db.pool.query(
      `SELECT outcome, user_id, plugin_id, detail FROM audit_events WHERE type = 'logout.backchannel' ORDER BY id`,
    );
    expect(audit.rows).toContainEqual({ outcome: 'success', user_id: row.user_id, plugin_id: DEFAULT_PLUGIN, detail: { sessions: 1 } });
    expect(idp.serverErrors).toEqual([]);
  });

  it('12. refuses invalid logout tokens (400, no-store) and accepts valid ones', async () => {
    const live = await signIn('grace');
    const liveRow = await session(live.refreshToken);
    const target = { sid: liveRow.provider_sid, sub: 'grace' };
    const { privateKey: otherKey } = await generateKeyPair('RS256', { extractable: true });

    const refused: Array<[string, string | undefined, string?]> = [
      ['alg none', new UnsecuredJWT(logoutClaims(target)).encode()],
      ['HS256 with the client secret', await signLogout(logoutClaims(target), new TextEncoder().encode(CLIENT_SECRET), 'HS256')],
      ['another RSA key, same kid', await signLogout(logoutClaims(target), otherKey)],
      ['wrong iss', await signLogout(logoutClaims({ ...target, iss: 'https://evil.example.com' }))],
      ['wrong aud', await signLogout(logoutClaims({ ...target, aud: 'another-client' }))],
      ['events missing', await signLogout(logoutClaims({ ...target, events: undefined }))],
      ['wrong event member', await signLogout(logoutClaims({ ...target, events: { 'http://schemas.openid.net/event/other': {} } }))],
      ['event not an object', await signLogout(logoutClaims({ ...target, events: { [BACKCHANNEL_EVENT]: 'yes' } }))],
      ['nonce present', await signLogout(logoutClaims({ ...target, nonce: 'n-0123456789' }))],
      ['neither sid nor sub', await signLogout(logoutClaims({}))],
      ['jti missing', await signLogout(logoutClaims({ ...target, jti: undefined }))],
      ['iat missing', await signLogout(logoutClaims({ ...target, iat: undefined }))],
      ['expired', await signLogout(logoutClaims({ ...target, iat: Math.floor(Date.now() / 1000) - 3600, exp: Math.floor(Date.now() / 1000) - 1800 }))],
      ['garbage', 'not-a-jwt'],
      ['no logout_token', undefined],
      ['unknown plugin id', await signLogout(logoutClaims(target)), 'no.such.plugin'],
    ];
    for (const [name, token, pluginId] of refused) {
      const r = await postBackchannel(token, pluginId);
      expect({ name, status: r.status, cacheControl: r.cacheControl }).toEqual({ name, status: 400, cacheControl: 'no-store' });
    }
    const still = await session(live.refreshToken);
    expect(still.revoked_at).toBeNull();

    // Positive control: valid, for a provider session we do not have.
    const ok = await postBackchannel(await signLogout(logoutClaims({ sid: `unknown-${randomUUID()}` })));
    expect(ok).toMatchObject({ status: 200, cacheControl: 'no-store' });
    expect((await session(live.refreshToken)).revoked_at).toBeNull();
    const alive = await refresh({ refreshToken: live.refreshToken });
    expect(alive.errors).toEqual([]);

    // sub alone: every session of that subject.
    await signIn('heidi');
    await signIn('heidi');
    const heidi = await sessionsOfSubject('heidi');
    expect(heidi).toHaveLength(2);
    const bySub = await postBackchannel(await signLogout(logoutClaims({ sub: 'heidi' })));
    expect(bySub).toMatchObject({ status: 200, cacheControl: 'no-store' });
    for (const row of await sessionsOfSubject('heidi')) {
      expect(row.revoked_at).not.toBeNull();
      expect(row.revoked_reason).toBe('backchannel-logout');
    }
    expect((await session(alive.refreshToken!)).revoked_at).toBeNull();

    // sid alone: that session only.
    const bySid = await postBackchannel(await signLogout(logoutClaims({ sid: liveRow.provider_sid })));
    expect(bySid).toMatchObject({ status: 200, cacheControl: 'no-store' });
    const ended = await session(alive.refreshToken!);
    expect(ended.revoked_reason).toBe('backchannel-logout');
    expect((await refresh({ refreshToken: alive.refreshToken! })).errors).toEqual(INVALID_REFRESH);
  });
});

// ---- audit and logs ---------------------------------------------------------------------------

describe('audit and logs', () => {
  it('13. records login, refresh and logout; never a token, code or the client secret', async () => {
    const rows = (await s.running.app.db.pool.query('SELECT type, outcome, plugin_id FROM audit_events')).rows as Array<{
      type: string;
      outcome: string;
      plugin_id: string | null;
    }>;
    for (const [type, outcome] of [
      ['login', 'success'],
      ['refresh', 'success'],
      ['refresh', 'failure'],
      ['logout', 'success'],
      ['logout.backchannel', 'success'],
    ]) {
      expect(rows).toContainEqual({ type, outcome, plugin_id: DEFAULT_PLUGIN });
    }
    const texts = (await s.running.app.db.pool.query('SELECT row_to_json(a)::text AS t FROM audit_events a')).rows.map(
      (r: { t: string }) => r.t,
    );
    const sessionsText = (await s.running.app.db.pool.query('SELECT row_to_json(x)::text AS t FROM sessions x')).rows.map(
      (r: { t: string }) => r.t,
    );
    expect(secrets.size).toBeGreaterThan(20);
    const all = [...secrets, CLIENT_SECRET];
    const leaks: string[] = [];
    for (const [where, lines] of [
      ['log', s.logs],
      ['audit', texts],
    ] as const) {
      for (const line of lines) {
        for (const secret of all) if (line.includes(secret)) leaks.push(`${where}: ${secret.slice(0, 12)}… in ${line.slice(0, 200)}`);
      }
    }
    // The sessions table keeps the provider's tokens sealed; none of ours either.
    for (const line of sessionsText) for (const secret of all) if (line.includes(secret)) leaks.push(`sessions: ${secret.slice(0, 12)}…`);
    expect(leaks).toEqual([]);
  });
});
