/**
 * The provider is protected from us (issue 8): junk bearer tokens cannot make us flood an
 * identity provider, cannot evict validated tokens, and cannot keep a login from seeing the
 * provider's rotated signing key.
 *
 * Server `s` (validation cap 5/s, token cache of 5 entries, JWKS refetch cooldown 60 s) has
 * three connections: the built-in one on a programmable provider `fake` (opaque tokens
 * validated by its userinfo, whose calls we count), `oidc.real` on a real provider `idp`, and
 * `oidc.broken` on a provider `broken` whose JWKS and (under one issuer path) discovery answer
 * 500. Server `short` (cooldown 2 s, cap 5/s, opaque tokens trusted 1 s) talks to a second
 * real provider `idp2` (opaque tokens validated by introspection).
 * Each count below is exact: every junk token is either validated (one provider call) or
 * refused a validation (one log line), never both, never neither.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fingerprint } from '../../src/log.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { startIdp, type TestIdp } from '../helpers/idp.ts';
import { startFakeProvider, type FakeProvider } from '../helpers/fake-provider.ts';
import { DEFAULT_PLUGIN, REDIRECT_URI, adminToken, configure, connectionValues, login } from '../helpers/oidc-flow.ts';
import { junkJwt, junkOpaque } from '../helpers/junk.ts';
import { sendAll } from '../helpers/burst.ts';

const CAP = 5;
const AUDIENCE = 'https://api.example.com';
const CLIENT_ID = 'storefront';
const CLIENT_SECRET = 'storefront-secret';
const REAL_PLUGIN = 'oidc.real';
const BROKEN_PLUGIN = 'oidc.broken';
const DOWN_PLUGIN = 'oidc.down';
const ME = '{ me { email } }';
const SERVER_ENV = { OUTBOUND_ALLOW_PRIVATE_ADDRESSES: 'true', OUTBOUND_TIMEOUT_MS: '1000', RATE_LIMIT_PER_IP_PER_MINUTE: '0' };
const ACCOUNT = { sub: 'alice', email: 'alice@example.com', email_verified: true, given_name: 'Alice' };

let s: TestServer;
let short: TestServer;
let fake: FakeProvider;
let broken: FakeProvider;
let idp: TestIdp;
let idp2: TestIdp;
/** Opaque tokens the fake provider's userinfo accepts, with the claims it answers. */
const validAtFake = new Map<string, Record<string, unknown>>();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function createConnection(server: TestServer, token: string, id: string) {
  const r = await server.gql(
    `mutation($input: OpenIdConnectConnectionCreateInput!) { openIdConnectConnectionCreate(input: $input) { plugin { id } errors { field code message } } }`,
    { input: { id, name: id } },
    { token },
  );
  expect(r.body.data?.openIdConnectConnectionCreate?.errors, JSON.stringify(r.body)).toEqual([]);
}

const fakeValues = (issuer: string) => ({ issuer_url: issuer, client_id: 'fake-client', client_secret: 'fake-client-secret', allowed_redirect_uris: REDIRECT_URI });

beforeAll(async () => {
  [fake, broken, idp, idp2] = await Promise.all([
    startFakeProvider(),
    startFakeProvider(),
    startIdp({ clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI] }], accounts: [ACCOUNT] }),
    startIdp({ clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI] }], accounts: [ACCOUNT] }),
  ]);
  fake.userinfo = (req) => {
    const claims = validAtFake.get(/^Bearer (.+)$/i.exec(req.headers['authorization'] ?? '')?.[1] ?? '');
    return claims ? { body: claims } : { status: 401, body: { error: 'invalid_token' } };
  };
  broken.jwks = () => {
    throw new Error('JWKS store down'); // the fake provider answers 500
  };
  [s, short] = await Promise.all([
    startTestServer({ ...SERVER_ENV, OIDC_TOKEN_VALIDATION_RATE_PER_SECOND: String(CAP), TOKEN_CACHE_MAX_ENTRIES: '5', OIDC_JWKS_REFETCH_COOLDOWN_SECONDS: '60' }),
    startTestServer({ ...SERVER_ENV, OIDC_JWKS_REFETCH_COOLDOWN_SECONDS: '2', OIDC_TOKEN_VALIDATION_RATE_PER_SECOND: String(CAP), OIDC_OPAQUE_TOKEN_CACHE_SECONDS: '1' }),
  ]);
  const admin = await adminToken(s);
  await configure(s, admin, DEFAULT_PLUGIN, fakeValues(fake.issuer));
  for (const id of [REAL_PLUGIN, BROKEN_PLUGIN, DOWN_PLUGIN]) await createConnection(s, admin, id);
  await configure(s, admin, REAL_PLUGIN, connectionValues(idp, CLIENT_ID, CLIENT_SECRET, { audience: AUDIENCE }));
  await configure(s, admin, BROKEN_PLUGIN, fakeValues(broken.issuer));
  await configure(s, admin, DOWN_PLUGIN, fakeValues(`${broken.issuer}/down`));
  // Discovery under /down answers 500 from now on (reading this field throws inside the fake
  // provider); it worked while the connection was activated (pluginUpdate checks the issuer).
  broken.discoveryOverrides.set('/down', Object.defineProperty({}, 'issuer', { enumerable: true, get: () => { throw new Error('discovery down'); } }));
  await configure(short, await adminToken(short), DEFAULT_PLUGIN, connectionValues(idp2, CLIENT_ID, CLIENT_SECRET, { audience: AUDIENCE }));
});

afterAll(async () => {
  await s?.close();
  await short?.close();
  await Promise.all([fake?.close(), broken?.close(), idp?.close(), idp2?.close()]);
});

const misses = (server: TestServer) => server.running.app.authenticator.misses;
const meOf = (r: { status: number; json: any }) => (r.status === 200 ? r.json.data?.me : `HTTP ${r.status}`);

async function me(server: TestServer, token: string) {
  const r = await server.gql(ME, {}, { token });
  expect(r.status).toBe(200);
  expect(r.body.errors).toBeUndefined();
  return r.body.data.me;
}

/** Userinfo calls the fake provider received for `token`. */
const userinfoCallsFor = (token: string) => fake.requestsTo('/userinfo').filter((r) => r.headers['authorization'] === `Bearer ${token}`).length;

/** A fresh opaque token the fake provider vouches for. */
function validOpaque(name: string): string {
  const token = junkOpaque();
  validAtFake.set(token, { sub: name, email: `${name}@example.com`, email_verified: true });
  return token;
}

/** Parsed log lines of `server` written since index `from`. */
const logsSince = (server: TestServer, from: number) => server.logs.slice(from).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('validation cap for unknown opaque tokens', () => {
  it(`300 concurrent junk tokens: at most ${CAP} userinfo calls per second; a validated token keeps working, with no call`, async () => {
    const known = validOpaque('known');
    expect(await me(s, known)).toEqual({ email: 'known@example.com' });
    expect(userinfoCallsFor(known)).toBe(1);
    await sleep(1100); // the cap's window of that validation is over: the flood starts a fresh one

    const junk = Array.from({ length: 300 }, junkOpaque);
    const logsBefore = s.logs.length;
    const missesBefore = misses(s);
    const userinfoBefore = fake.requestsTo('/userinfo').length;
    const started = performance.now();
    const [flood, during] = await Promise.all([
      sendAll(s.url, junk, ME),
      // The validated token, asked 30 times while the flood runs.
      (async () => {
        const answers = [];
        for (let i = 0; i < 30; i++) answers.push(await me(s, known));
        return answers;
      })(),
    ]);
    const seconds = (performance.now() - started) / 1000;

    expect(flood.map(meOf)).toEqual(junk.map(() => null));
    expect(during).toEqual(Array.from({ length: 30 }, () => ({ email: 'known@example.com' })));
    expect(userinfoCallsFor(known)).toBe(1);
    expect(misses(s) - missesBefore).toBe(300);

    const called = junk.filter((t) => userinfoCallsFor(t) === 1);
    expect(fake.requestsTo('/userinfo').length - userinfoBefore).toBe(called.length);
    // Every admission happened inside the measured interval, which spans at most this many
    // one-second windows of the cap.
    const windows = Math.ceil(seconds) + 1;
    expect(called.length).toBeGreaterThanOrEqual(CAP);
    expect(called.length).toBeLessThanOrEqual(CAP * windows);

    // The others: one log line each, saying why, with the fingerprint (never the token).
    const limited = logsSince(s, logsBefore).filter((l) => l['message'] === 'bearer token not validated: rate-limited');
    expect(limited.length).toBe(300 - called.length);
    for (const l of limited) expect(l).toMatchObject({ level: 'info', pluginId: DEFAULT_PLUGIN, reason: 'rate-limited' });
    const calledPrints = new Set(called.map(fingerprint));
    const limitedPrints = limited.map((l) => l['token']);
    expect(new Set(limitedPrints).size).toBe(limited.length);
    expect(limitedPrints.filter((p) => calledPrints.has(p as string))).toEqual([]);
    const logText = s.logs.slice(logsBefore).join('\n');
    for (const t of junk) expect(logText.includes(t)).toBe(false);

    // Not remembered as a refusal: a rate-limited token that turns out valid works once the
    // window has passed (one call), and so does a new valid token.
    const retried = junk.find((t) => limitedPrints.includes(fingerprint(t)))!;
    validAtFake.set(retried, { sub: 'retried', email: 'retried@example.com', email_verified: true });
    await sleep(1100);
    expect(await me(s, retried)).toEqual({ email: 'retried@example.com' });
    expect(userinfoCallsFor(retried)).toBe(1);
    const fresh = validOpaque('fresh');
    expect(await me(s, fresh)).toEqual({ email: 'fresh@example.com' });
    expect(userinfoCallsFor(fresh)).toBe(1);
  });

  it('a validated token whose cached validation ran out (1 s) is re-validated during a flood: a budget of its own', async () => {
    expect((await login(short, idp2, DEFAULT_PLUGIN, 'alice')).errors).toEqual([]);
    const token = await idp2.issueAccessToken({ sub: 'alice', clientId: CLIENT_ID, scope: 'openid email', resource: AUDIENCE, format: 'opaque' });
    expect(await me(short, token)).toEqual({ email: 'alice@example.com' });
    await sleep(1100); // its cached validation and the cap's window are over
    idp2.resetCounts();
    const logsBefore = short.logs.length;
    const junk = Array.from({ length: 300 }, junkOpaque);
    const started = performance.now();
    const flood = sendAll(short.url, junk, ME);
    // Once junk has used up this second's budget, the validated token asks for 2 s.
    const limited = () => short.logs.slice(logsBefore).some((l) => l.includes('bearer token not validated: rate-limited'));
    while (!limited() && performance.now() - started < 5000) await sleep(5);
    expect(limited()).toBe(true);
    const answers: unknown[] = [];
    while (performance.now() - started < 2000) answers.push(await me(short, token));
    expect((await flood).map(meOf)).toEqual(junk.map(() => null));
    const seconds = (performance.now() - started) / 1000;
    expect(answers.length).toBeGreaterThan(1);
    expect(answers).toEqual(answers.map(() => ({ email: 'alice@example.com' })));
    // Junk and re-validations each within their own cap.
    expect(idp2.counts()['/token/introspection']).toBeLessThanOrEqual(2 * CAP * (Math.ceil(seconds) + 1));
  });
});

describe('junk JWTs with unknown kids', () => {
  it('200 concurrent, then 100 more: one JWKS fetch in the 60 s cooldown; refusals remembered', async () => {
    const first = Array.from({ length: 200 }, () => junkJwt(fake.issuer));
    const jwksBefore = fake.requestsTo('/jwks').length;
    expect((await sendAll(s.url, first, ME)).map(meOf)).toEqual(first.map(() => null));
    expect(fake.requestsTo('/jwks').length - jwksBefore).toBe(1);

    const second = Array.from({ length: 100 }, () => junkJwt(fake.issuer));
    expect((await sendAll(s.url, second, ME)).map(meOf)).toEqual(second.map(() => null));
    expect(fake.requestsTo('/jwks').length - jwksBefore).toBe(1);

    const missesBefore = misses(s);
    expect((await sendAll(s.url, first.slice(0, 50), ME)).map(meOf)).toEqual(first.slice(0, 50).map(() => null));
    expect(misses(s)).toBe(missesBefore);
    expect(fake.requestsTo('/userinfo').filter((r) => first.includes(r.headers['authorization']?.slice(7) ?? ''))).toEqual([]);
  });

  it('a JWKS endpoint answering 500 is asked once per cooldown under a burst; nothing is remembered as refused', async () => {
    const burst = Array.from({ length: 100 }, () => junkJwt(broken.issuer));
    const logsBefore = s.logs.length;
    expect((await sendAll(s.url, burst, ME)).map(meOf)).toEqual(burst.map(() => null));
    expect(broken.requestsTo('/jwks')).toHaveLength(1);
    const unavailable = logsSince(s, logsBefore).filter((l) => l['message'] === 'bearer token not validated: provider unavailable');
    expect(unavailable).toHaveLength(100);
    expect(unavailable.every((l) => l['pluginId'] === BROKEN_PLUGIN)).toBe(true);

    // A token of the provider's real key, and the same junk again: no further fetch.
    const good = await broken.sign({ iss: broken.issuer, sub: 'bob', iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 600, client_id: 'fake-client' });
    const missesBefore = misses(s);
    expect((await sendAll(s.url, [good, ...burst.slice(0, 20)], ME)).map(meOf)).toEqual(Array.from({ length: 21 }, () => null));
    expect(broken.requestsTo('/jwks')).toHaveLength(1);
    expect(misses(s) - missesBefore).toBe(21); // not remembered: the provider could not be asked
  });

  it('a discovery endpoint answering 500 is asked once under a burst', async () => {
    // (One request was the issuer check when the connection was activated.)
    const before = broken.requestsTo('/down/.well-known/openid-configuration').length;
    const burst = Array.from({ length: 100 }, () => junkJwt(`${broken.issuer}/down`));
    expect((await sendAll(s.url, burst, ME)).map(meOf)).toEqual(burst.map(() => null));
    expect((await sendAll(s.url, burst.slice(0, 20), ME)).map(meOf)).toEqual(burst.slice(0, 20).map(() => null));
    expect(broken.requestsTo('/down/.well-known/openid-configuration')).toHaveLength(before + 1);
  });
});

describe('junk cannot evict a validated token', () => {
  it('token cache of 5 entries: after 200 junk tokens the validated token is answered with no validation', async () => {
    const valid = validOpaque('kept');
    expect(await me(s, valid)).toEqual({ email: 'kept@example.com' });
    const junk = [
      ...Array.from({ length: 100 }, () => junkJwt(fake.issuer)),
      ...Array.from({ length: 100 }, () => junkJwt('https://unknown-issuer.example.com')),
    ];
    const missesBefore = misses(s);
    expect((await sendAll(s.url, junk, ME)).map(meOf)).toEqual(junk.map(() => null));
    expect(misses(s) - missesBefore).toBe(200);
    expect(await me(s, valid)).toEqual({ email: 'kept@example.com' });
    expect(misses(s) - missesBefore).toBe(200);
    expect(userinfoCallsFor(valid)).toBe(1);
  });
});

describe('provider key rotation', () => {
  it('a junk unknown-kid token used the 60 s cooldown; the provider rotates; the next login works', async () => {
    // The connection's first JWKS fetch is the junk token's: it starts the cooldown.
    expect(await me(s, junkJwt(idp.issuer, { aud: AUDIENCE, client_id: CLIENT_ID }))).toBeNull();
    expect(idp.counts()['/jwks']).toBe(1);
    await idp.rotateKeys(); // new kid, old key dropped
    const loggedIn = await login(s, idp, REAL_PLUGIN, 'alice');
    expect(loggedIn.errors).toEqual([]);
    expect(loggedIn.user.email).toBe('alice@example.com');
    expect(idp.counts()['/jwks']).toBe(2);
    // Bearer tokens of the new key are accepted at once (the login fetched the new set).
    const bearer = await idp.issueAccessToken({ sub: 'alice', clientId: CLIENT_ID, scope: 'openid email', resource: AUDIENCE, format: 'jwt' });
    expect(await me(s, bearer)).toEqual({ email: 'alice@example.com' });
    expect(idp.counts()['/jwks']).toBe(2);
  });

  it('cooldown 2 s: a new-key bearer token refused inside the cooldown is accepted when it ends, not 15 s later', async () => {
    expect((await login(short, idp2, DEFAULT_PLUGIN, 'alice')).errors).toEqual([]);
    await sleep(2100); // the login's fetch is out of the cooldown
    const jwksBefore = idp2.counts()['/jwks'] ?? 0;
    expect(await me(short, junkJwt(idp2.issuer, { aud: AUDIENCE, client_id: CLIENT_ID }))).toBeNull();
    expect(idp2.counts()['/jwks']).toBe(jwksBefore + 1); // the junk token's refetch: a new cooldown
    await idp2.rotateKeys();
    const rotatedAt = performance.now();
    const bearer = await idp2.issueAccessToken({ sub: 'alice', clientId: CLIENT_ID, scope: 'openid email', resource: AUDIENCE, format: 'jwt' });
    const missesBefore = misses(short);
    expect(await me(short, bearer)).toBeNull(); // inside the cooldown: unknown kid
    expect(idp2.counts()['/jwks']).toBe(jwksBefore + 1);
    let answer: unknown = null;
    while (answer === null && performance.now() - rotatedAt < 10_000) {
      await sleep(100);
      answer = await me(short, bearer);
    }
    const acceptedAfter = performance.now() - rotatedAt;
    expect(answer).toEqual({ email: 'alice@example.com' });
    expect(acceptedAfter).toBeLessThan(2000 + 1500);
    expect(idp2.counts()['/jwks']).toBe(jwksBefore + 2);
    // Refused once, remembered until the refetch was allowed, then validated once.
    expect(misses(short) - missesBefore).toBe(2);
  });
});
