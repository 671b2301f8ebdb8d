/**
 * The resource server's refusals (issue 4, "Security"; saleor-contract.md section 5): provider
 * JWTs that are expired, without exp, from another issuer, for another audience, `alg: none`,
 * HMAC-signed, signed by an unknown key (one JWKS refetch), with a bad signature; a revoked
 * opaque token after the cache TTL; a userinfo answer naming another subject; our own token
 * signed by a retired-and-expired key. Refusals are cached (no amplification against the
 * provider), concurrent requests with a new token on a cold JWKS make one JWKS fetch, and a
 * provider that hangs leaves the request anonymous within the outbound timeout.
 *
 * The provider (test/helpers/idp.ts) is started with our own signing key, so this file can sign
 * whatever access token it needs. Server `s` (JWKS refetch cooldown 0, opaque cache 2 s) runs
 * the refusals; server `cold` (cooldown 60 s) starts with a JWKS never fetched and also talks to
 * a programmable provider (test/helpers/fake-provider.ts) for the userinfo cases.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, base64url, exportJWK, generateKeyPair, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { fingerprint } from '../../src/log.ts';
import { rotateSigningKey } from '../../src/tokens/keyring.ts';
import { keyringOptions } from '../../src/app.ts';
import { CORE_TOKEN_OWNER } from '../../src/tokens/jwt.ts';
import { burst } from '../helpers/burst.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { startIdp, type TestIdp } from '../helpers/idp.ts';
import { startFakeProvider, type FakeProvider, type FakeReply } from '../helpers/fake-provider.ts';
import { DEFAULT_PLUGIN, REDIRECT_URI, adminToken, configure, connectionValues } from '../helpers/oidc-flow.ts';

const AUDIENCE = 'https://api.example.com';
const CLIENT_ID = 'storefront';
const CLIENT_SECRET = 'storefront-secret';
const KID = 'idp-signing-key-1';
const FAKE_PLUGIN = 'oidc.fake';
const ME = '{ me { email isStaff userPermissions { code } } }';
const SERVER_ENV = { OUTBOUND_ALLOW_PRIVATE_ADDRESSES: 'true', OUTBOUND_TIMEOUT_MS: '1000' };

let idp: TestIdp;
let fake: FakeProvider;
/** Refusals: refetch cooldown 0, opaque tokens trusted 2 s. */
let s: TestServer;
/** Cold JWKS: refetch cooldown 60 s. */
let cold: TestServer;
let idpKey: CryptoKey;
let idpPublicJwk: JWK;
let rogueKey: CryptoKey;
const used: string[] = [];
const track = <T extends string | null | undefined>(token: T): T => {
  if (token) used.push(token);
  return token;
};

beforeAll(async () => {
  const pair = await generateKeyPair('RS256', { extractable: true });
  idpKey = pair.privateKey;
  idpPublicJwk = { ...(await exportJWK(pair.publicKey)), kid: KID, alg: 'RS256', use: 'sig' };
  rogueKey = (await generateKeyPair('RS256')).privateKey;
  idp = await startIdp({
    keys: [{ ...(await exportJWK(pair.privateKey)), kid: KID, alg: 'RS256', use: 'sig' }],
    clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI] }],
    accounts: [{ sub: 'alice', email: 'alice@example.com', email_verified: true, given_name: 'Alice' }],
  });
  fake = await startFakeProvider();
  const values = connectionValues(idp, CLIENT_ID, CLIENT_SECRET, { audience: AUDIENCE, use_oauth_scope_permissions: 'true' });
  [s, cold] = await Promise.all([
    startTestServer({ ...SERVER_ENV, OIDC_JWKS_REFETCH_COOLDOWN_SECONDS: '0', OIDC_OPAQUE_TOKEN_CACHE_SECONDS: '2' }),
    startTestServer({ ...SERVER_ENV, OIDC_JWKS_REFETCH_COOLDOWN_SECONDS: '60' }),
  ]);
  await configure(s, track(await adminToken(s)), DEFAULT_PLUGIN, values);
  await configure(cold, track(await adminToken(cold)), DEFAULT_PLUGIN, values);
});

afterAll(async () => {
  await s?.close();
  await cold?.close();
  await idp?.close();
  await fake?.close();
});

// ---- helpers ---------------------------------------------------------------------------------

const now = () => Math.floor(Date.now() / 1000);

/** Access-token claims as the provider would sign them (aud = our API), plus `extra`. */
function claims(sub: string, extra: JWTPayload = {}): JWTPayload {
  return { iss: idp.issuer, sub, aud: AUDIENCE, iat: now(), exp: now() + 600, client_id: CLIENT_ID, scope: 'saleor:manage_orders', ...extra };
}

async function sign(payload: JWTPayload, opts: { key?: CryptoKey; kid?: string } = {}): Promise<string> {
  return track(await new SignJWT(payload).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: opts.kid ?? KID }).sign(opts.key ?? idpKey));
}

async function me(server: TestServer, token: string) {
  const r = await server.gql(ME, {}, { token });
  expect(r.status).toBe(200);
  expect(r.body.errors).toBeUndefined();
  return r.body.data.me;
}

const misses = (server: TestServer) => server.running.app.authenticator.misses;

async function count(server: TestServer, sql: string, params: unknown[] = []): Promise<number> {
  return (await server.running.app.db.pool.query(`SELECT count(*)::int AS n FROM ${sql}`, params)).rows[0].n;
}

const ALICE = { email: 'alice@example.com', isStaff: true, userPermissions: [{ code: 'MANAGE_ORDERS' }] };

// ---- refusals -------------------------------------------------------------------------------

describe('provider JWT refusals', () => {
  it('a well-formed token signed by the provider key is accepted (control)', async () => {
    const good = await sign(claims('alice', { email: 'alice@example.com', email_verified: true }));
    idp.resetCounts();
    expect(await me(s, good)).toEqual(ALICE);
    expect(idp.counts()['/jwks']).toBe(1);
  });

  it('refuses expired, no exp, wrong iss, wrong aud, alg none, HS256 and bad signatures, without fetching keys', async () => {
    const email = { email: 'alice@example.com', email_verified: true };
    const valid = await sign(claims('alice', email));
    const refused: Record<string, string> = {
      expired: await sign(claims('alice', { ...email, iat: now() - 700, exp: now() - 60 })),
      'no exp': await sign((({ exp: _exp, ...rest }) => rest)(claims('alice', email))),
      'other iss': await sign(claims('alice', { ...email, iss: 'https://other-idp.example.com' })),
      'near-miss iss': await sign(claims('alice', { ...email, iss: `${idp.issuer}/` })),
      'other aud': await sign(claims('alice', { ...email, aud: 'https://other.example.com' })),
      'no aud': await sign((({ aud: _aud, ...rest }) => rest)(claims('alice', email))),
      'alg none': track(
        `${base64url.encode(JSON.stringify({ alg: 'none', typ: 'at+jwt', kid: KID }))}.${base64url.encode(JSON.stringify(claims('alice', email)))}.`,
      ),
      // Key confusion: the provider's public key used as an HMAC secret.
      HS256: track(
        await new SignJWT(claims('alice', email))
          .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: KID })
          .sign(new TextEncoder().encode(JSON.stringify(idpPublicJwk))),
      ),
      'bad signature': await sign(claims('alice', email), { key: rogueKey }),
      // A valid token's signature on another payload.
      'tampered payload': track(`${valid.split('.')[0]}.${base64url.encode(JSON.stringify(claims('alice', { ...email, scope: 'saleor:manage_plugins' })))}.${valid.split('.')[2]}`),
    };
    const usersBefore = await count(s, 'users');
    idp.resetCounts();
    const logsBefore = s.logs.length;
    for (const [why, token] of Object.entries(refused)) {
      expect(await me(s, token), why).toBeNull();
    }
    // Each refusal is logged with the token's fingerprint (never the token).
    const logged = s.logs.slice(logsBefore).filter((l) => /bearer token (refused|not recognised)/.test(l));
    for (const [why, token] of Object.entries(refused)) expect(logged.some((l) => l.includes(fingerprint(token))), why).toBe(true);
    expect(idp.counts()).toEqual({});
    expect(await count(s, 'users')).toBe(usersBefore);
  });

  it('an unknown kid: one JWKS refetch per try, refused; the refusal is not cached past the next allowed refetch (cooldown 0 here)', async () => {
    const rogue = await sign(claims('alice', { email: 'alice@example.com', email_verified: true }), { key: rogueKey, kid: 'rogue-kid' });
    idp.resetCounts();
    const before = misses(s);
    for (let i = 0; i < 20; i++) expect(await me(s, rogue)).toBeNull();
    // With a refetch cooldown of 0 the next refetch is always allowed, so each try asks again
    // (test/e2e/provider-protection.test.ts covers the cooldown bounding this).
    expect(idp.counts()).toEqual({ '/jwks': 20 });
    expect(misses(s)).toBe(before + 20);
  });

  it('20 requests with one junk JWT of the provider (bad signature): no JWKS fetch, one validation', async () => {
    const junk = await sign(claims('alice'), { key: rogueKey });
    idp.resetCounts();
    const before = misses(s);
    for (let i = 0; i < 20; i++) expect(await me(s, junk)).toBeNull();
    expect(idp.counts()['/jwks'] ?? 0).toBeLessThanOrEqual(1);
    expect(idp.counts()).toEqual({});
    expect(misses(s)).toBe(before + 1);
  });

  it('20 requests with one junk opaque string: exactly one introspection', async () => {
    const junk = track(`junk-${base64url.encode(crypto.getRandomValues(new Uint8Array(32)))}`);
    idp.resetCounts();
    const before = misses(s);
    for (let i = 0; i < 20; i++) expect(await me(s, junk)).toBeNull();
    expect(idp.counts()).toEqual({ '/token/introspection': 1 });
    expect(misses(s)).toBe(before + 1);
  });
});

describe('tokens not issued for us', () => {
  it('refuses ID tokens and logout tokens signed by the provider, even for our audience', async () => {
    const email = { email: 'alice@example.com', email_verified: true };
    const idTokenLike = await new SignJWT(claims('alice', { ...email, nonce: 'n-1' })).setProtectedHeader({ alg: 'RS256', kid: KID }).sign(idpKey);
    const withAtHash = await sign(claims('alice', { ...email, at_hash: 'x' }));
    const logoutToken = await sign(claims('alice', { events: { 'http://schemas.openid.net/event/backchannel-logout': {} } }));
    const wrongTyp = await new SignJWT(claims('alice', email)).setProtectedHeader({ alg: 'RS256', typ: 'logout+jwt', kid: KID }).sign(idpKey);
    for (const token of [idTokenLike, withAtHash, logoutToken, wrongTyp]) {
      track(token);
      expect(await me(s, token)).toBeNull();
    }
  });

  it('without a configured audience, accepts only tokens issued to our own client', async () => {
    const admin = track(await adminToken(s));
    await configure(s, admin, DEFAULT_PLUGIN, { audience: '' });
    try {
      const email = { email: 'alice@example.com', email_verified: true };
      // Another application's token at the same provider, for the same user.
      const otherClient = await sign(claims('alice', { ...email, client_id: 'other-app', aud: 'other-app' }));
      expect(await me(s, otherClient)).toBeNull();
      const noClient = await sign((({ client_id: _c, ...rest }) => rest)(claims('alice', email)));
      expect(await me(s, noClient)).toBeNull();
      const ours = await sign(claims('alice', { ...email, aud: CLIENT_ID }));
      // Issued to our client: the user, but scope permissions need the audience.
      expect(await me(s, ours)).toMatchObject({ email: 'alice@example.com' });
    } finally {
      await configure(s, admin, DEFAULT_PLUGIN, { audience: AUDIENCE });
    }
  });

  it('with a configured audience, refuses an opaque token whose introspection names no audience', async () => {
    const opaque = track(await idp.issueAccessToken({ sub: 'alice', clientId: CLIENT_ID, scope: 'openid email', format: 'opaque' }));
    idp.resetCounts();
    expect(await me(s, opaque)).toBeNull();
    expect(idp.counts()['/token/introspection']).toBe(1);
  });
});

describe('groups claim on bearer tokens', () => {
  it('maps a nested roles claim to our permission groups by name', async () => {
    const admin = track(await adminToken(s));
    await s.running.app.db.pool.query(`INSERT INTO permission_groups (name, permissions) VALUES ('Editors', ARRAY['MANAGE_PAGES']) ON CONFLICT (name) DO NOTHING`);
    await configure(s, admin, DEFAULT_PLUGIN, { groups_claim: 'realm_access.roles' });
    try {
      const token = await sign(claims('alice', { email: 'alice@example.com', email_verified: true, scope: '', realm_access: { roles: ['Editors', 'offline_access'] } }));
      expect(await me(s, token)).toEqual({ email: 'alice@example.com', isStaff: true, userPermissions: [{ code: 'MANAGE_PAGES' }] });
      const member = await s.running.app.db.pool.query(
        `SELECT g.name FROM group_members m JOIN permission_groups g ON g.id = m.group_id JOIN users u ON u.id = m.user_id WHERE u.email = 'alice@example.com'`,
      );
      expect(member.rows).toEqual([{ name: 'Editors' }]);
    } finally {
      await configure(s, admin, DEFAULT_PLUGIN, { groups_claim: '' });
      await s.running.app.db.pool.query(`DELETE FROM permission_groups WHERE name = 'Editors'`);
    }
  });
});

describe('revoked opaque token', () => {
  it('works, is revoked at the provider, and is refused once the opaque cache TTL (2 s) has passed', async () => {
    const opaque = track(await idp.issueAccessToken({ sub: 'alice', clientId: CLIENT_ID, scope: 'saleor:manage_orders', resource: AUDIENCE, format: 'opaque' }));
    // Known user, token for our audience with saleor:manage_orders.
    expect(await me(s, opaque)).toEqual(ALICE);
    const validatedBy = Date.now();

    const revoke = await fetch(`${idp.issuer}/token/revocation`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ token: opaque, token_type_hint: 'access_token' }),
    });
    expect(revoke.status).toBe(200);
    await revoke.body?.cancel();
    const introspected = await fetch(`${idp.issuer}/token/introspection`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ token: opaque }),
    });
    expect(await introspected.json()).toEqual({ active: false });

    // Still trusted from the cache within the TTL (no provider call) ...
    if (Date.now() - validatedBy < 1500) expect(await me(s, opaque)).toEqual(ALICE);
    // ... and refused once it has passed.
    await new Promise((r) => setTimeout(r, Math.max(0, validatedBy + 2200 - Date.now())));
    idp.resetCounts();
    expect(await me(s, opaque)).toBeNull();
    expect(idp.counts()).toEqual({ '/token/introspection': 1 });
  });
});

describe('our own tokens', () => {
  it('signed by a retired key whose verification window has closed: refused, cached or not', async () => {
    const app = s.running.app;
    const user = (await app.db.prisma.user.findUnique({ where: { email: 'alice@example.com' } }))!;
    const used1 = track(await app.tokens.mintAccessToken(user, ['MANAGE_ORDERS'], CORE_TOKEN_OWNER));
    const unused = track(await app.tokens.mintAccessToken(user, ['MANAGE_ORDERS'], CORE_TOKEN_OWNER));
    expect(await me(s, used1)).toEqual(ALICE);

    const rotated = await rotateSigningKey(app.db.prisma, app.box, { ...keyringOptions(s.config), publishSeconds: 0 });
    await app.keyring.reload();
    expect(rotated.retired).toHaveLength(1);
    // Retired but still verifying.
    expect(await me(s, used1)).toEqual(ALICE);

    await app.db.pool.query("UPDATE signing_keys SET verify_until = now() - interval '1 second' WHERE retired_at IS NOT NULL");
    await app.keyring.reload();
    expect(await me(s, used1)).toBeNull(); // was cached
    expect(await me(s, used1)).toBeNull();
    expect(await me(s, unused)).toBeNull(); // never seen
    // A token of the new key works.
    const fresh = track(await app.tokens.mintAccessToken(user, ['MANAGE_ORDERS'], CORE_TOKEN_OWNER));
    expect(await me(s, fresh)).toEqual(ALICE);
  });
});

// ---- cold JWKS: coalescing, the refetch window --------------------------------------------------

describe('cold JWKS', () => {
  it('1,000 concurrent requests with one new JWT on a server that never fetched the JWKS: one JWKS fetch, one user', async () => {
    const jwt = await sign(claims('zed', { email: 'zed@example.com', email_verified: true, scope: 'saleor:manage_orders' }));
    idp.resetCounts();
    const before = misses(cold);
    const results = await burst(cold.url, jwt, ME);
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    const answers = new Set(results.map((r) => JSON.stringify(r.json)));
    expect([...answers]).toEqual([JSON.stringify({ data: { me: { email: 'zed@example.com', isStaff: true, userPermissions: [{ code: 'MANAGE_ORDERS' }] } } })]);
    const counts = idp.counts();
    expect(counts['/jwks']).toBe(1);
    expect(counts['/.well-known/openid-configuration'] ?? 0).toBeLessThanOrEqual(1);
    expect(Object.keys(counts).filter((p) => p !== '/jwks' && p !== '/.well-known/openid-configuration')).toEqual([]);
    expect(misses(cold)).toBe(before + 1);
    expect(await count(cold, `users WHERE email = 'zed@example.com'`)).toBe(1);
    expect(await count(cold, `external_identities WHERE subject = 'zed'`)).toBe(1);
  });

  it('unknown kids within the refetch cooldown (60 s): at most one JWKS refetch in the window', async () => {
    idp.resetCounts();
    for (let i = 0; i < 10; i++) {
      const rogue = await sign(claims('zed', { email: 'zed@example.com' }), { key: rogueKey, kid: `rogue-${i}` });
      expect(await me(cold, rogue)).toBeNull();
    }
    // The window started with the load above, so this one has no refetch left.
    expect(idp.counts()['/jwks'] ?? 0).toBeLessThanOrEqual(1);
    expect(idp.counts()).toEqual({});
  });
});

// ---- userinfo answers, through a programmable provider -----------------------------------------

describe('userinfo (programmable provider)', () => {
  const replies = new Map<string, () => FakeReply>();

  beforeAll(async () => {
    const admin = track(await adminToken(cold));
    const created = await cold.gql(
      `mutation($input: OpenIdConnectConnectionCreateInput!) { openIdConnectConnectionCreate(input: $input) { plugin { id } errors { field code message } } }`,
      { input: { id: FAKE_PLUGIN, name: FAKE_PLUGIN } },
      { token: admin },
    );
    expect(created.body.data?.openIdConnectConnectionCreate?.errors, JSON.stringify(created.body)).toEqual([]);
    await configure(cold, admin, FAKE_PLUGIN, {
      issuer_url: fake.issuer,
      client_id: 'fake-client',
      client_secret: 'fake-client-secret',
      allowed_redirect_uris: REDIRECT_URI,
      audience: AUDIENCE,
      use_oauth_scope_permissions: 'true',
    });
    fake.userinfo = (req) => {
      const token = /^Bearer (.+)$/i.exec(req.headers['authorization'] ?? '')?.[1];
      const reply = token ? replies.get(token) : undefined;
      return reply ? reply() : { status: 401, body: { error: 'invalid_token' } };
    };
  });

  const fakeJwt = (sub: string) =>
    fake
      .sign({ iss: fake.issuer, sub, aud: AUDIENCE, iat: now(), exp: now() + 600, client_id: 'fake-client', scope: 'saleor:manage_orders' })
      .then(track);

  it('a userinfo answer with the same sub completes the identity (control)', async () => {
    const token = await fakeJwt('fake-alice');
    replies.set(token, () => ({ body: { sub: 'fake-alice', email: 'fake-alice@example.com', email_verified: true } }));
    expect(await me(cold, token)).toEqual({ email: 'fake-alice@example.com', isStaff: true, userPermissions: [{ code: 'MANAGE_ORDERS' }] });
    expect(fake.requestsTo('/userinfo')).toHaveLength(1);
  });

  it('a userinfo answer whose sub differs: refused, no user, no link', async () => {
    const token = await fakeJwt('fake-bob');
    replies.set(token, () => ({ body: { sub: 'mallory', email: 'mallory@example.com', email_verified: true } }));
    const asked = fake.requestsTo('/userinfo').length;
    expect(await me(cold, token)).toBeNull();
    expect(fake.requestsTo('/userinfo')).toHaveLength(asked + 1);
    expect(await count(cold, `users WHERE email = 'mallory@example.com'`)).toBe(0);
    expect(await count(cold, `external_identities WHERE subject IN ('fake-bob', 'mallory')`)).toBe(0);
  });

  it('a hanging provider: anonymous within the outbound timeout, logged, not remembered', async () => {
    const token = await fakeJwt('fake-carol');
    replies.set(token, () => ({ delayMs: 10_000, body: { sub: 'fake-carol', email: 'fake-carol@example.com', email_verified: true } }));
    const logsBefore = cold.logs.length;
    const started = performance.now();
    expect(await me(cold, token)).toBeNull();
    expect(performance.now() - started).toBeLessThan(3000);
    const logged = cold.logs.slice(logsBefore).filter((l) => l.includes('provider unavailable'));
    expect(logged.some((l) => l.includes(fingerprint(token)))).toBe(true);
    const health = await fetch(`${cold.url}/healthz`);
    expect(health.status).toBe(200);
    await health.body?.cancel();

    replies.set(token, () => ({ body: { sub: 'fake-carol', email: 'fake-carol@example.com', email_verified: true } }));
    expect(await me(cold, token)).toEqual({ email: 'fake-carol@example.com', isStaff: true, userPermissions: [{ code: 'MANAGE_ORDERS' }] });
  });
});

describe('userinfo answering a bare 401 (as Glewlwyd does for an unknown token)', () => {
  const OPAQUE_PLUGIN = 'oidc.fake-opaque';

  beforeAll(async () => {
    const admin = track(await adminToken(cold));
    const created = await cold.gql(
      `mutation($input: OpenIdConnectConnectionCreateInput!) { openIdConnectConnectionCreate(input: $input) { plugin { id } errors { field code message } } }`,
      { input: { id: OPAQUE_PLUGIN, name: OPAQUE_PLUGIN } },
      { token: admin },
    );
    expect(created.body.data?.openIdConnectConnectionCreate?.errors, JSON.stringify(created.body)).toEqual([]);
    // No audience: opaque tokens are validated by userinfo (the fake provider has no introspection).
    await configure(cold, admin, OPAQUE_PLUGIN, {
      issuer_url: fake.issuer,
      client_id: 'fake-client',
      client_secret: 'fake-client-secret',
      allowed_redirect_uris: REDIRECT_URI,
      accept_opaque_bearer_tokens: 'true',
    });
  });

  it('is a refusal, logged as such and remembered (one userinfo call for five requests), not an outage', async () => {
    const junk = track(`opaque-${base64url.encode(crypto.getRandomValues(new Uint8Array(24)))}`);
    const previous = fake.userinfo;
    fake.userinfo = () => ({ status: 401, headers: { 'content-type': 'text/plain' }, body: '' });
    try {
      const asked = fake.requestsTo('/userinfo').length;
      const logsBefore = cold.logs.length;
      for (let i = 0; i < 5; i++) expect(await me(cold, junk)).toBeNull();
      expect(fake.requestsTo('/userinfo')).toHaveLength(asked + 1);
      const logged = cold.logs.slice(logsBefore).filter((l) => l.includes(fingerprint(junk)));
      expect(logged.some((l) => l.includes('bearer token refused') && l.includes('HTTP 401'))).toBe(true);
      expect(logged.some((l) => l.includes('provider unavailable'))).toBe(false);
    } finally {
      fake.userinfo = previous;
    }
  });
});

describe('logs', () => {
  it('never contain a token used in this file', () => {
    expect(used.length).toBeGreaterThan(20);
    const logs = [...s.logs, ...cold.logs].join('\n');
    for (const token of used) {
      expect(logs.includes(token), `log contains ${fingerprint(token)}`).toBe(false);
      const signature = token.split('.')[2];
      if (signature && signature.length > 20) expect(logs.includes(signature)).toBe(false);
    }
  });
});
