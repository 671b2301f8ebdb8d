/**
 * What the server does when the identity provider misbehaves: a hostile or broken provider
 * (test/helpers/fake-provider.ts, a real HTTP peer whose answers each test programs) and a
 * real provider (test/helpers/idp.ts) that goes down or rotates its keys mid-run.
 *
 * Every refusal is one typed error (saleor-contract.md section 2), no user is created, and
 * the server stays healthy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, base64url, decodeJwt, type JWTPayload } from 'jose';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { startIdp, type TestIdp } from '../helpers/idp.ts';
import {
  startFakeProvider,
  newRsaKey,
  s256,
  type FakeAuthorization,
  type FakeProvider,
  type FakeReply,
  type RecordedRequest,
  type SigningKey,
} from '../helpers/fake-provider.ts';
import {
  DEFAULT_PLUGIN,
  REDIRECT_URI,
  adminToken,
  authenticationUrl,
  configure,
  connectionValues,
  externalCall,
  login,
  obtainTokens,
  type TokensResult,
} from '../helpers/oidc-flow.ts';

const CLIENT_ID = 'fake-client';
const CLIENT_SECRET = 'fake-client-secret-0123456789abcdef';
const FAKE_PLUGIN = DEFAULT_PLUGIN;
const REAL_PLUGIN = 'oidc.real';
const MISMATCH_PLUGIN = 'oidc.mismatch';

const SERVER_ENV = { OUTBOUND_ALLOW_PRIVATE_ADDRESSES: 'true', OUTBOUND_TIMEOUT_MS: '1000' };

let fake: FakeProvider;
let otherKey: SigningKey;
let s: TestServer;
let admin: string;

function fakeConnection(issuerUrl: string) {
  return {
    issuer_url: issuerUrl,
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    allowed_redirect_uris: REDIRECT_URI,
  };
}

async function createConnection(server: TestServer, token: string, id: string) {
  const r = await server.gql(
    `mutation($input: OpenIdConnectConnectionCreateInput!) { openIdConnectConnectionCreate(input: $input) { plugin { id } errors { field code message } } }`,
    { input: { id, name: id } },
    { token },
  );
  expect(r.body.data?.openIdConnectConnectionCreate?.errors, JSON.stringify(r.body)).toEqual([]);
}

beforeAll(async () => {
  fake = await startFakeProvider();
  otherKey = await newRsaKey(fake.key.kid); // same kid, another key
  s = await startTestServer({ ...SERVER_ENV, OIDC_JWKS_REFETCH_COOLDOWN_SECONDS: '0' });
  admin = await adminToken(s);
  await configure(s, admin, FAKE_PLUGIN, fakeConnection(fake.issuer));
});

afterAll(async () => {
  await s?.close();
  await fake?.close();
});

// ---- helpers ---------------------------------------------------------------------------

const now = () => Math.floor(Date.now() / 1000);

/** The claims of a correct id_token for authorization request `a`. */
function goodClaims(a: FakeAuthorization | undefined, overrides: Record<string, unknown> = {}): JWTPayload {
  const claims: Record<string, unknown> = {
    iss: fake.issuer,
    aud: CLIENT_ID,
    sub: 'fake-user-1',
    email: 'fake-user-1@example.com',
    email_verified: true,
    iat: now(),
    exp: now() + 300,
    ...(a ? { nonce: a.nonce } : {}),
    ...overrides,
  };
  for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
  return claims;
}

function unsignedToken(claims: JWTPayload): string {
  const enc = (o: unknown) => base64url.encode(JSON.stringify(o));
  return `${enc({ alg: 'none', typ: 'JWT', kid: fake.key.kid })}.${enc(claims)}.`;
}

async function userCount(server: TestServer = s): Promise<number> {
  const r = await server.running.app.db.pool.query('SELECT count(*)::int AS n FROM users');
  return r.rows[0].n as number;
}

async function expectHealthy(server: TestServer = s) {
  expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
}

/** The token request carried PKCE, the grant, the redirect URI and client authentication. */
function expectTokenRequest(req: RecordedRequest, a: FakeAuthorization, code = 'c') {
  expect(req.method).toBe('POST');
  expect(req.form.get('grant_type')).toBe('authorization_code');
  expect(req.form.get('code')).toBe(code);
  expect(req.form.get('redirect_uri')).toBe(REDIRECT_URI);
  const verifier = req.form.get('code_verifier');
  expect(verifier).toMatch(/^[A-Za-z0-9._~-]{43,128}$/);
  expect(s256(verifier!)).toBe(a.codeChallenge);
  expectClientAuth(req);
}

/**
 * client_secret_basic (the default): HTTP Basic with the form-urlencoded client id and secret
 * (RFC 6749 §2.3.1), never the secret in the body.
 */
function expectClientAuth(req: RecordedRequest) {
  const m = /^Basic ([A-Za-z0-9+/=]+)$/.exec(req.headers['authorization'] ?? '');
  expect(m, req.headers['authorization']).not.toBeNull();
  const decoded = Buffer.from(m![1]!, 'base64').toString('utf8');
  const [id, secret] = decoded.split(':').map((p) => decodeURIComponent(p.replace(/\+/g, ' ')));
  expect({ id, secret }).toEqual({ id: CLIENT_ID, secret: CLIENT_SECRET });
  expect(req.form.get('client_secret')).toBeNull();
}

/** externalAuthenticationUrl on `server`, the authorization request read back from its URL. */
async function startAuthorization(server: TestServer = s, pluginId = FAKE_PLUGIN): Promise<FakeAuthorization> {
  const auth = await authenticationUrl(server, pluginId, { redirectUri: REDIRECT_URI });
  expect(auth.errors).toEqual([]);
  const a = fake.readAuthorizationUrl(JSON.parse(auth.authenticationData!).authorizationUrl);
  expect(a.url.origin + a.url.pathname).toBe(`${fake.issuer}/authorize`);
  expect(a.clientId).toBe(CLIENT_ID);
  expect(a.codeChallengeMethod).toBe('S256');
  expect(a.codeChallenge).toMatch(/^[\w-]{43}$/);
  return a;
}

/**
 * One code exchange against the fake provider: a real state record, then
 * externalObtainAccessTokens({code:'c', state}) while /token answers `reply`.
 */
async function exchange(reply: (a: FakeAuthorization, req: RecordedRequest) => FakeReply | Promise<FakeReply>) {
  const a = await startAuthorization();
  fake.token = (req) => reply(a, req);
  const tokenRequestsBefore = fake.requestsTo('/token').length;
  const started = Date.now();
  const r = await obtainTokens(s, FAKE_PLUGIN, { code: 'c', state: a.state });
  const elapsedMs = Date.now() - started;
  const tokenRequests = fake.requestsTo('/token').slice(tokenRequestsBefore);
  expect(tokenRequests).toHaveLength(1);
  expectTokenRequest(tokenRequests[0]!, a);
  return { r, a, elapsedMs };
}

function expectRefused(r: TokensResult, message?: string | RegExp) {
  expect(r.errors, JSON.stringify(r.errors)).toHaveLength(1);
  expect(r.errors[0]).toMatchObject({ field: 'code', code: 'INVALID' });
  expect(r.errors[0]!.message).toEqual(expect.any(String));
  expect(r.errors[0]!.message.length).toBeGreaterThan(0);
  if (typeof message === 'string') expect(r.errors[0]!.message).toBe(message);
  else if (message) expect(r.errors[0]!.message).toMatch(message);
  expect(r.token).toBeNull();
  expect(r.refreshToken).toBeNull();
  expect(r.csrfToken).toBeNull();
  expect(r.user).toBeNull();
}

// ---- Part A: a hostile or broken provider ------------------------------------------------

describe('code exchange with a hostile or broken provider', () => {
  const cases: Array<{
    name: string;
    reply: (a: FakeAuthorization) => Promise<FakeReply> | FakeReply;
    message?: string | RegExp;
    userinfo?: () => FakeReply;
  }> = [
    {
      name: 'id_token signed by another key with the same kid',
      reply: async (a) => fake.tokenResponse({ idToken: await fake.sign(goodClaims(a), { key: otherKey }) }),
    },
    {
      name: 'id_token with alg none',
      reply: (a) => fake.tokenResponse({ idToken: unsignedToken(goodClaims(a)) }),
    },
    {
      name: 'id_token HS256-signed with the client secret',
      reply: async (a) =>
        fake.tokenResponse({
          idToken: await new SignJWT(goodClaims(a))
            .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: fake.key.kid })
            .sign(new TextEncoder().encode(CLIENT_SECRET)),
        }),
    },
    {
      name: 'wrong iss',
      reply: async (a) => fake.tokenResponse({ idToken: await fake.sign(goodClaims(a, { iss: 'https://evil.example.com' })) }),
    },
    {
      name: 'wrong aud',
      reply: async (a) => fake.tokenResponse({ idToken: await fake.sign(goodClaims(a, { aud: 'another-client' })) }),
    },
    {
      name: 'aud [client, other] without azp',
      reply: async (a) => fake.tokenResponse({ idToken: await fake.sign(goodClaims(a, { aud: [CLIENT_ID, 'another-client'] })) }),
    },
    {
      name: 'azp = another client',
      reply: async (a) =>
        fake.tokenResponse({ idToken: await fake.sign(goodClaims(a, { aud: [CLIENT_ID, 'another-client'], azp: 'another-client' })) }),
    },
    {
      name: 'expired id_token',
      reply: async (a) => fake.tokenResponse({ idToken: await fake.sign(goodClaims(a, { iat: now() - 7200, exp: now() - 3600 })) }),
    },
    {
      name: 'wrong nonce',
      reply: async (a) => fake.tokenResponse({ idToken: await fake.sign(goodClaims(a, { nonce: 'not-the-nonce-we-sent' })) }),
    },
    {
      name: 'missing nonce',
      reply: async (a) => fake.tokenResponse({ idToken: await fake.sign(goodClaims(a, { nonce: undefined })) }),
    },
    {
      name: 'id_token issued an hour in the future (iat beyond OIDC_CLOCK_SKEW_SECONDS)',
      reply: async (a) => fake.tokenResponse({ idToken: await fake.sign(goodClaims(a, { iat: now() + 3600, exp: now() + 7200 })) }),
    },
    {
      name: 'no id_token at all',
      reply: () => fake.tokenResponse({}),
    },
    {
      name: 'no email in the id_token nor in userinfo',
      reply: async (a) =>
        fake.tokenResponse({ idToken: await fake.sign(goodClaims(a, { email: undefined, email_verified: undefined })), userinfo: { sub: 'fake-user-1', name: 'No Mail' } }),
      message: "Missing user's email.",
    },
    {
      name: 'userinfo with another sub',
      reply: async (a) =>
        fake.tokenResponse({ idToken: await fake.sign(goodClaims(a)), userinfo: { sub: 'someone-else', email: 'someone-else@example.com' } }),
      message: /subject/i,
    },
    {
      name: 'HTTP 400 invalid_grant',
      reply: () => ({ status: 400, body: { error: 'invalid_grant', error_description: 'Code expired' } }),
      // The provider's own words go to the log, not to the storefront.
      message: 'The authorization code is invalid or expired.',
    },
    {
      name: 'HTTP 401 invalid_client (a wrong client secret is not an "invalid token")',
      reply: () => ({ status: 401, body: { error: 'invalid_client', error_description: 'client authentication failed' } }),
      message: "The identity provider rejected this server's client credentials.",
    },
    {
      name: 'HTTP 429 with an OAuth error body',
      reply: () => ({ status: 429, body: { error: 'slow_down' } }),
      message: 'The identity provider is unavailable. Please try again later.',
    },
    {
      name: 'HTTP 500',
      reply: () => ({ status: 500, headers: { 'content-type': 'text/plain' }, body: 'Internal Server Error' }),
    },
    {
      name: 'non-JSON body (200, application/json)',
      reply: () => ({ status: 200, headers: { 'content-type': 'application/json' }, body: '<html>oops</html>' }),
    },
    {
      name: 'non-JSON body (200, text/html)',
      reply: () => ({ status: 200, headers: { 'content-type': 'text/html' }, body: '<html><body>Maintenance</body></html>' }),
    },
  ];

  it.each(cases)('refuses: $name', async ({ reply, message }) => {
    const users = await userCount();
    const { r } = await exchange((a) => reply(a));
    expectRefused(r, message);
    expect(await userCount()).toBe(users);
    await expectHealthy();
  });

  it('refuses a token response slower than OUTBOUND_TIMEOUT_MS, within ~2 s', async () => {
    const users = await userCount();
    const { r, elapsedMs } = await exchange(async (a) => ({ ...fake.tokenResponse({ idToken: await fake.sign(goodClaims(a)) }), delayMs: 3000 }));
    expectRefused(r, /unavailable/i);
    expect(elapsedMs).toBeLessThan(2000);
    expect(await userCount()).toBe(users);
    await expectHealthy();
  });

  it('refuses a redirect from the token endpoint and does not follow it', async () => {
    const users = await userCount();
    const { r } = await exchange(() => ({ status: 302, headers: { location: `${fake.issuer}/stolen?code=c` } }));
    expectRefused(r);
    expect(fake.requestsTo('/stolen')).toHaveLength(0);
    expect(await userCount()).toBe(users);
    await expectHealthy();
  });

  it('positive control: a correct id_token logs the user in', async () => {
    const users = await userCount();
    const { r } = await exchange(async (a) =>
      fake.tokenResponse({ idToken: await fake.sign(goodClaims(a, { given_name: 'Fay' })), refreshToken: 'provider-rt-1' }),
    );
    expect(r.errors).toEqual([]);
    expect(r.token).toBeTruthy();
    expect(r.refreshToken).toBeTruthy();
    expect(r.user).toMatchObject({ email: 'fake-user-1@example.com', firstName: 'Fay', isActive: true });
    expect(await userCount()).toBe(users + 1);
    // userinfo was called with the access token the provider issued
    const info = fake.requestsTo('/userinfo').at(-1)!;
    expect(info.headers['authorization']).toMatch(/^Bearer at-/);
    const me = await s.gql('{ me { email } }', {}, { token: r.token! });
    expect(me.body.data.me).toEqual({ email: 'fake-user-1@example.com' });
  });
});

describe('refresh with a hostile provider', () => {
  /** A fresh login whose token response carried a provider refresh token. */
  async function loginWithRefresh(providerRefreshToken: string) {
    const { r } = await exchange(async (a) => fake.tokenResponse({ idToken: await fake.sign(goodClaims(a)), refreshToken: providerRefreshToken }));
    expect(r.errors).toEqual([]);
    expect(r.refreshToken).toBeTruthy();
    return r.refreshToken!;
  }

  async function sessionOf(refreshToken: string) {
    const sid = decodeJwt(refreshToken)['sid'] as string;
    const rows = await s.running.app.db.pool.query('SELECT revoked_at, revoked_reason FROM sessions WHERE id = $1', [sid]);
    expect(rows.rows).toHaveLength(1);
    return rows.rows[0] as { revoked_at: Date | null; revoked_reason: string | null };
  }

  function refreshReply(expectedProviderRt: string, claims: Record<string, unknown>) {
    return async (req: RecordedRequest): Promise<FakeReply> => {
      expect(req.form.get('grant_type')).toBe('refresh_token');
      expect(req.form.get('refresh_token')).toBe(expectedProviderRt);
      expectClientAuth(req);
      return fake.tokenResponse({ idToken: await fake.sign(goodClaims(undefined, claims)), refreshToken: `${expectedProviderRt}-next` });
    };
  }

  it('positive control: a refreshed id_token for the same identity works', async () => {
    const ours = await loginWithRefresh('provider-rt-ok');
    fake.token = refreshReply('provider-rt-ok', {});
    const r = await externalCall(s, 'externalRefresh', FAKE_PLUGIN, { refreshToken: ours });
    expect(r.errors).toEqual([]);
    expect(r.token).toBeTruthy();
    expect((await sessionOf(ours)).revoked_at).toBeNull();
  });

  it('a refreshed id_token with another sub: refreshToken/INVALID and the session is revoked', async () => {
    const ours = await loginWithRefresh('provider-rt-sub');
    fake.token = refreshReply('provider-rt-sub', { sub: 'fake-user-2', email: 'fake-user-2@example.com' });
    const users = await userCount();
    const r = await externalCall(s, 'externalRefresh', FAKE_PLUGIN, { refreshToken: ours });
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatchObject({ field: 'refreshToken', code: 'INVALID' });
    expect(r.token).toBeNull();
    expect(await userCount()).toBe(users);
    expect((await sessionOf(ours)).revoked_at).not.toBeNull();
    // and the refresh token is dead without asking the provider again
    const tokenCalls = fake.requestsTo('/token').length;
    const again = await externalCall(s, 'externalRefresh', FAKE_PLUGIN, { refreshToken: ours });
    expect(again.errors[0]).toMatchObject({ field: 'refreshToken', code: 'INVALID' });
    expect(fake.requestsTo('/token').length).toBe(tokenCalls);
    await expectHealthy();
  });

  it('a refreshed id_token with another iss: refreshToken/INVALID and the session is revoked', async () => {
    const ours = await loginWithRefresh('provider-rt-iss');
    fake.token = refreshReply('provider-rt-iss', { iss: 'https://evil.example.com' });
    const r = await externalCall(s, 'externalRefresh', FAKE_PLUGIN, { refreshToken: ours });
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatchObject({ field: 'refreshToken', code: 'INVALID' });
    expect(r.token).toBeNull();
    await expectHealthy();
    expect((await sessionOf(ours)).revoked_at).not.toBeNull();
  });
});

describe('discovery', () => {
  it('an issuer in the discovery document other than the configured one: redirectUri/INVALID, no crash', async () => {
    await createConnection(s, admin, MISMATCH_PLUGIN);
    const configured = `${fake.issuer}/tenant`;
    // Activation checks the issuer (pluginUpdate refuses a mismatch): the provider starts
    // naming another issuer only once the connection is active.
    await configure(s, admin, MISMATCH_PLUGIN, fakeConnection(configured));
    fake.discoveryOverrides.set('/tenant', { issuer: fake.issuer });
    const before = fake.requestsTo('/tenant/.well-known/openid-configuration').length;
    const r = await authenticationUrl(s, MISMATCH_PLUGIN, { redirectUri: REDIRECT_URI });
    expect(fake.requestsTo('/tenant/.well-known/openid-configuration').length).toBeGreaterThan(before);
    expect(r.authenticationData).toBeNull();
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatchObject({ field: 'redirectUri', code: 'INVALID' });
    expect(r.errors[0]!.message.length).toBeGreaterThan(0);
    await expectHealthy();
  });
});

// ---- Part B: a real provider that goes down or rotates its keys ---------------------------

describe('a real provider mid-run', () => {
  let idp: TestIdp;

  beforeAll(async () => {
    idp = await startIdp({
      clients: [{ client_id: 'real-client', client_secret: 'real-client-secret', redirect_uris: [REDIRECT_URI] }],
      accounts: [{ sub: 'alice', email: 'alice@example.com', email_verified: true, given_name: 'Alice' }],
    });
    await createConnection(s, admin, REAL_PLUGIN);
    await configure(s, admin, REAL_PLUGIN, connectionValues(idp, 'real-client', 'real-client-secret'));
  });

  afterAll(async () => {
    await idp?.close();
  });

  it('key rotation: the next login succeeds after exactly one JWKS fetch for the new kid', async () => {
    const first = await login(s, idp, REAL_PLUGIN, 'alice');
    expect(first.errors).toEqual([]);
    const before = idp.counts()['/jwks'] ?? 0;
    expect(before).toBeGreaterThanOrEqual(1);
    await idp.rotateKeys(); // new kid, old key dropped
    const second = await login(s, idp, REAL_PLUGIN, 'alice');
    expect(second.errors).toEqual([]);
    expect(second.user.email).toBe('alice@example.com');
    expect((idp.counts()['/jwks'] ?? 0) - before).toBe(1);
  });

  it('provider stopped: typed INVALID error, server healthy, our tokens still work; back when it returns', async () => {
    const first = await login(s, idp, REAL_PLUGIN, 'alice');
    expect(first.errors).toEqual([]);
    await idp.stop();
    try {
      const started = Date.now();
      const auth = await authenticationUrl(s, REAL_PLUGIN, { redirectUri: REDIRECT_URI });
      let error: { field: string; code: string; message: string } | undefined;
      if (auth.errors.length) {
        // discovery had to be redone and failed
        expect(auth.errors).toHaveLength(1);
        expect(auth.authenticationData).toBeNull();
        error = auth.errors[0];
        expect(error).toMatchObject({ field: 'redirectUri', code: 'INVALID' });
      } else {
        // metadata still cached: the code exchange is where the provider is missed
        const state = new URL(JSON.parse(auth.authenticationData!).authorizationUrl).searchParams.get('state');
        const r = await obtainTokens(s, REAL_PLUGIN, { code: 'any-code', state });
        expectRefused(r);
        error = r.errors[0];
      }
      expect(error!.message).toMatch(/unavailable/i);
      expect(Date.now() - started).toBeLessThan(5000);

      expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
      expect((await fetch(`${s.url}/readyz`)).status).toBe(200);
      const me = await s.gql('{ me { email } }', {}, { token: first.token! });
      expect(me.body.data.me).toEqual({ email: 'alice@example.com' });
    } finally {
      await idp.start();
    }
    // A discovery failure is cached for ~5 s: retry for up to 6 s.
    const deadline = Date.now() + 6500;
    let again: Awaited<ReturnType<typeof login>> | undefined;
    let lastError: unknown;
    while (Date.now() < deadline) {
      try {
        again = await login(s, idp, REAL_PLUGIN, 'alice');
        if (again.errors.length === 0) break;
        lastError = again.errors;
      } catch (e) {
        lastError = e;
      }
      again = undefined;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(again?.errors, String(lastError)).toEqual([]);
    expect(again!.user.email).toBe('alice@example.com');
  });
});

// ---- unknown kid burst on a server with a 60 s JWKS refetch cooldown ------------------------

describe('unknown kid rate limit', () => {
  let s2: TestServer;

  beforeAll(async () => {
    s2 = await startTestServer({ ...SERVER_ENV, OIDC_JWKS_REFETCH_COOLDOWN_SECONDS: '60' });
    const admin2 = await adminToken(s2);
    await configure(s2, admin2, FAKE_PLUGIN, fakeConnection(fake.issuer));
  });

  afterAll(async () => {
    await s2?.close();
  });

  it('20 concurrent code exchanges with an unknown kid: each may refetch the JWKS (coalesced), whatever the cooldown, and all are refused', async () => {
    const stranger = await newRsaKey('unknown-kid');
    const authorizations: FakeAuthorization[] = [];
    for (let i = 0; i < 20; i++) authorizations.push(await startAuthorization(s2));
    fake.token = async (req) => {
      const a = fake.authorizationFor(req);
      if (!a) return { status: 400, body: { error: 'invalid_grant', error_description: 'unknown code_verifier' } };
      return fake.tokenResponse({ idToken: await fake.sign(goodClaims(a, { sub: 'burst' }), { key: stranger }) });
    };
    const users = await userCount(s2);
    const jwksBefore = fake.requestsTo('/jwks').length;
    const tokenBefore = fake.requestsTo('/token').length;
    const results = await Promise.all(authorizations.map((a, i) => obtainTokens(s2, FAKE_PLUGIN, { code: `burst-${i}`, state: a.state })));
    expect(fake.requestsTo('/token').length - tokenBefore).toBe(20);
    for (const r of results) expectRefused(r);
    // An id_token from the token endpoint may always trigger a refetch (key rotation at the
    // provider is picked up by the next login); concurrent ones share in-flight fetches.
    const firstBurst = fake.requestsTo('/jwks').length - jwksBefore;
    expect(firstBurst).toBeGreaterThanOrEqual(1);
    expect(firstBurst).toBeLessThanOrEqual(20);

    // A second burst inside the bearer-token cooldown is not blocked by it either, and stays bounded.
    const jwksAfterFirst = fake.requestsTo('/jwks').length;
    const more: FakeAuthorization[] = [];
    for (let i = 0; i < 20; i++) more.push(await startAuthorization(s2));
    const results2 = await Promise.all(more.map((a, i) => obtainTokens(s2, FAKE_PLUGIN, { code: `burst2-${i}`, state: a.state })));
    for (const r of results2) expectRefused(r);
    const secondBurst = fake.requestsTo('/jwks').length - jwksAfterFirst;
    expect(secondBurst).toBeGreaterThanOrEqual(1);
    expect(secondBurst).toBeLessThanOrEqual(20);
    // Refused for the reason under test: no key for that kid (not, say, a claim check).
    expect(s2.logs.filter((l) => l.includes('ERR_JWKS_NO_MATCHING_KEY'))).toHaveLength(40);
    expect(await userCount(s2)).toBe(users);
    await expectHealthy(s2);

    // The provider's real key still works.
    const a = await startAuthorization(s2);
    fake.token = async () => fake.tokenResponse({ idToken: await fake.sign(goodClaims(a)) });
    const ok = await obtainTokens(s2, FAKE_PLUGIN, { code: 'c', state: a.state });
    expect(ok.errors).toEqual([]);
    expect(ok.token).toBeTruthy();
  });
});
