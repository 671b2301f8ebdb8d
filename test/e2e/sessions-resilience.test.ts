/**
 * Sessions end only when they should (issue 9), against the real oidc-provider (it rotates
 * its refresh tokens) and, for provider faults, against a programmable provider:
 * - concurrent refreshes with one refresh token (two tabs) through externalRefresh and
 *   tokenRefresh: both succeed, the provider is asked once, the session lives on;
 * - a refresh retried after its response was lost: works within
 *   REFRESH_TOKEN_REUSE_INTERVAL_SECONDS, revokes the session after it;
 * - invalid_client / unauthorized_client / a 401 challenge / 429 / 5xx / a timeout during a
 *   refresh: a typed error, the session is kept and audited, the first refresh after recovery
 *   works; invalid_grant ends the session;
 * - back-channel logout tokens are single-use, too old ones are refused, and they never end a
 *   session created after them;
 * - access tokens die with their session, and a demoted, deactivated or regrouped staff member's
 *   old token loses what was taken away within the token cache window.
 *
 * Three servers: `s` (default reuse interval, 30 s), `short` (2 s) and `f` (0 s, on the
 * programmable provider, so every refresh reaches the provider). Logins and the pairs run one
 * after another (the two refreshes of a pair together), as the issue's 20 tries did.
 * DEBUG_LOGS=1 prints the servers' warnings and errors at the end.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, decodeJwt, exportJWK, generateKeyPair, type CryptoKey, type JWTPayload } from 'jose';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { startIdp, type TestIdp } from '../helpers/idp.ts';
import { startFakeProvider, type FakeProvider, type FakeReply, type RecordedRequest } from '../helpers/fake-provider.ts';
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
  refreshCookieOf,
} from '../helpers/oidc-flow.ts';
import { upsertStaffUser } from '../../src/accounts/users.ts';
import { CORE_TOKEN_OWNER } from '../../src/tokens/jwt.ts';

const CLIENT_ID = 'resilience-client';
const CLIENT_SECRET = 'resilience-client-secret-0123456789';
const FAKE_CLIENT_ID = 'fake-resilience-client';
const FAKE_CLIENT_SECRET = 'fake-resilience-secret-0123456789';
const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
const STAFF_DOMAIN = 'staff.example.com';
const STAFF_GROUP = 'Resilience editors';

const INVALID_REFRESH = [{ field: 'refreshToken', code: 'INVALID', message: 'Unable to refresh the token.' }];
const UNAVAILABLE = [{ field: 'refreshToken', code: 'INVALID', message: 'The identity provider is unavailable. Please try again later.' }];
const CLIENT_REJECTED = [{ field: 'refreshToken', code: 'INVALID', message: "The identity provider rejected this server's client credentials." }];

const PAIRS = 20;
/** Our token cache keeps a principal up to 30 s; one more second of slack. */
const CACHE_WINDOW_MS = 31_000;

const SERVER_ENV = { OUTBOUND_ALLOW_PRIVATE_ADDRESSES: 'true', RATE_LIMIT_PER_IP_PER_MINUTE: '0' };

const accountNames = [
  ...Array.from({ length: PAIRS }, (_, i) => `pair-${i}`),
  ...Array.from({ length: PAIRS }, (_, i) => `tr-${i}`),
  'retry-a',
  'retry-b',
  'retry-c',
  'short-a',
  'bc-user',
  'out-user',
];

let s: TestServer;
let short: TestServer;
let f: TestServer;
let idp: TestIdp;
let fake: FakeProvider;
let providerKey: CryptoKey;
let providerKid: string;

beforeAll(async () => {
  [s, short, f] = await Promise.all([
    startTestServer({ ...SERVER_ENV }),
    startTestServer({ ...SERVER_ENV, REFRESH_TOKEN_REUSE_INTERVAL_SECONDS: '2' }),
    startTestServer({ ...SERVER_ENV, REFRESH_TOKEN_REUSE_INTERVAL_SECONDS: '0', OUTBOUND_TIMEOUT_MS: '1000' }),
  ]);
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  providerKey = privateKey;
  providerKid = `provider-${randomUUID()}`;
  idp = await startIdp({
    clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI] }],
    accounts: [
      ...accountNames.map((sub) => ({ sub, email: `${sub}@example.com`, email_verified: true })),
      { sub: 'sam', email: `sam@${STAFF_DOMAIN}`, email_verified: true },
    ],
    keys: [{ ...(await exportJWK(privateKey)), kid: providerKid, alg: 'RS256', use: 'sig' }],
  });
  fake = await startFakeProvider();
  // The staff member's group exists before the login that puts them in it.
  await s.running.app.db.prisma.permissionGroup.create({ data: { name: STAFF_GROUP, permissions: ['MANAGE_ORDERS', 'MANAGE_PRODUCTS'] } });
  await Promise.all([
    configure(
      s,
      await adminToken(s),
      DEFAULT_PLUGIN,
      connectionValues(idp, CLIENT_ID, CLIENT_SECRET, { staff_user_domains: STAFF_DOMAIN, default_group_name_for_new_staff_users: STAFF_GROUP }),
    ),
    configure(short, await adminToken(short), DEFAULT_PLUGIN, connectionValues(idp, CLIENT_ID, CLIENT_SECRET)),
    configure(f, await adminToken(f), DEFAULT_PLUGIN, {
      issuer_url: fake.issuer,
      client_id: FAKE_CLIENT_ID,
      client_secret: FAKE_CLIENT_SECRET,
      allowed_redirect_uris: REDIRECT_URI,
    }),
  ]);
});

afterAll(async () => {
  if (process.env['DEBUG_LOGS']) for (const srv of [s, short, f]) for (const l of srv?.logs ?? []) if (/"level":"(error|warn)"/.test(l)) console.log(l.slice(0, 1500));
  await Promise.all([s?.close(), short?.close(), f?.close()]);
  await idp?.close();
  await fake?.close();
});

// ---- helpers ----------------------------------------------------------------------------------

type Errors = Array<{ field: string; code: string; message: string }>;

interface Tokens {
  token: string | null;
  refreshToken: string | null;
  csrfToken: string | null;
  user: { email: string } | null;
  errors: Errors;
  setCookie: string[];
}

interface SessionRow {
  id: string;
  user_id: number;
  refresh_token_id: string;
  revoked_at: Date | null;
  revoked_reason: string | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sidOf = (refreshToken: string) => decodeJwt(refreshToken)['sid'] as string;
const rtiOf = (refreshToken: string | null) => (refreshToken ? (decodeJwt(refreshToken)['rti'] as string) : null);
const tokenCalls = () => idp.counts()['/token'] ?? 0;

async function signIn(server: TestServer, account: string) {
  const r = await login(server, idp, DEFAULT_PLUGIN, account);
  expect(r.errors, account).toEqual([]);
  expect(r.refreshToken, account).toEqual(expect.any(String));
  return r as typeof r & { token: string; refreshToken: string; csrfToken: string };
}

async function refresh(server: TestServer, input: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Tokens> {
  return (await externalCall(server, 'externalRefresh', DEFAULT_PLUGIN, input, headers)) as Tokens;
}

async function tokenRefresh(server: TestServer, refreshToken: string) {
  const r = await server.gql(`mutation($t: String) { tokenRefresh(refreshToken: $t) { token user { email } errors { field code message } } }`, {
    t: refreshToken,
  });
  return r.body.data.tokenRefresh as { token: string | null; user: { email: string } | null; errors: Errors };
}

async function me(server: TestServer, token: string) {
  const r = await server.gql('{ me { email isStaff userPermissions { code } } }', {}, { token });
  const user = r.body.data.me as { email: string; isStaff: boolean; userPermissions: Array<{ code: string }> | null } | null;
  return user && { email: user.email, isStaff: user.isStaff, permissions: (user.userPermissions ?? []).map((p) => p.code).sort() };
}

async function emailOf(server: TestServer, token: string | null) {
  return token ? ((await me(server, token))?.email ?? null) : null;
}

async function sessionRow(server: TestServer, refreshToken: string): Promise<SessionRow> {
  const r = await server.running.app.db.pool.query('SELECT id, user_id, refresh_token_id, revoked_at, revoked_reason FROM sessions WHERE id = $1', [
    sidOf(refreshToken),
  ]);
  expect(r.rows).toHaveLength(1);
  return r.rows[0] as SessionRow;
}

async function refreshAudits(server: TestServer, requestId: string) {
  const r = await server.running.app.db.pool.query(
    `SELECT outcome, user_id, plugin_id, detail FROM audit_events WHERE type = 'refresh' AND request_id = $1 ORDER BY id`,
    [requestId],
  );
  return r.rows as Array<{ outcome: string; user_id: number | null; plugin_id: string | null; detail: { reason?: unknown; code?: unknown } }>;
}

/** f(0), f(1), … f(n - 1), one after the other. */
async function inSequence<T>(n: number, f: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(await f(i));
  return out;
}

/** Probes until `done` holds or `limitMs` passed; how long it took, and the last value. */
async function probeUntil<T>(probe: () => Promise<T>, done: (v: T) => boolean, limitMs: number): Promise<{ value: T; ms: number }> {
  const started = Date.now();
  for (;;) {
    const value = await probe();
    const ms = Date.now() - started;
    if (done(value) || ms > limitMs) return { value, ms };
    await sleep(250);
  }
}

// ---- concurrent refreshes (two tabs) ------------------------------------------------------------

describe('concurrent refreshes with one refresh token', () => {
  it(`${PAIRS} pairs through externalRefresh: both succeed, the provider is asked once per pair, every session lives on`, async () => {
    const logins = await inSequence(PAIRS, (i) => signIn(s, `pair-${i}`));
    const before = tokenCalls();
    let arrival = 0;
    const timed = async (rt: string) => {
      const r = await refresh(s, { refreshToken: rt });
      return { r, order: arrival++ };
    };
    // One pair after the other; the two refreshes of a pair fired together.
    const pairs = await inSequence(PAIRS, async (i) => {
      const l = logins[i]!;
      return { l, results: await Promise.all([timed(l.refreshToken), timed(l.refreshToken)]) };
    });
    const providerCallsForPairs = tokenCalls() - before;

    const summaries = await inSequence(PAIRS, async (i) => {
      const { l, results } = pairs[i]!;
      const row = await sessionRow(s, l.refreshToken);
      const [a, b] = results.map((x) => x.r) as [Tokens, Tokens];
      const last = results.reduce((x, y) => (y.order > x.order ? y : x)).r;
      const further = last.refreshToken ? await refresh(s, { refreshToken: last.refreshToken }) : null;
      return {
        account: `pair-${i}`,
        errors: [a.errors, b.errors],
        emails: [await emailOf(s, a.token), await emailOf(s, b.token)],
        // Both answers hand out the session's current refresh token, a new one.
        rotatedAway: rtiOf(l.refreshToken) !== row.refresh_token_id,
        bothCurrent: [rtiOf(a.refreshToken), rtiOf(b.refreshToken)].every((x) => x === row.refresh_token_id),
        newCsrf: [a.csrfToken, b.csrfToken].every((c) => typeof c === 'string' && /^[a-zA-Z0-9]{64}$/.test(c) && c !== l.csrfToken),
        furtherErrors: further?.errors ?? 'no refresh token returned',
        furtherEmail: await emailOf(s, further?.token ?? null),
        revokedAt: (await sessionRow(s, l.refreshToken)).revoked_at,
      };
    });
    expect(summaries).toEqual(
      Array.from({ length: PAIRS }, (_, i) => ({
        account: `pair-${i}`,
        errors: [[], []],
        emails: [`pair-${i}@example.com`, `pair-${i}@example.com`],
        rotatedAway: true,
        bothCurrent: true,
        newCsrf: true,
        furtherErrors: [],
        furtherEmail: `pair-${i}@example.com`,
        revokedAt: null,
      })),
    );
    // One provider refresh per pair: the second of a pair, and the further refresh within the
    // reuse interval, never spend the provider's (rotating) refresh token again.
    expect(providerCallsForPairs).toBe(PAIRS);
    expect(tokenCalls() - before).toBe(PAIRS);
    expect(idp.serverErrors).toEqual([]);
  });

  it(`${PAIRS} pairs through tokenRefresh (no rotation): both succeed, the provider is asked once per pair, every session lives on`, async () => {
    const logins = await inSequence(PAIRS, (i) => signIn(s, `tr-${i}`));
    const before = tokenCalls();
    const pairs = await inSequence(PAIRS, async (i) => {
      const l = logins[i]!;
      return { l, results: await Promise.all([tokenRefresh(s, l.refreshToken), tokenRefresh(s, l.refreshToken)]) };
    });
    const providerCallsForPairs = tokenCalls() - before;

    const summaries = await inSequence(PAIRS, async (i) => {
      const { l, results: [a, b] } = pairs[i]!;
      const further = await tokenRefresh(s, l.refreshToken);
      const row = await sessionRow(s, l.refreshToken);
      return {
        account: `tr-${i}`,
        errors: [a.errors, b.errors],
        users: [a.user, b.user],
        emails: [await emailOf(s, a.token), await emailOf(s, b.token)],
        furtherErrors: further.errors,
        furtherEmail: await emailOf(s, further.token),
        notRotated: row.refresh_token_id === rtiOf(l.refreshToken),
        revokedAt: row.revoked_at,
      };
    });
    expect(summaries).toEqual(
      Array.from({ length: PAIRS }, (_, i) => ({
        account: `tr-${i}`,
        errors: [[], []],
        users: [{ email: `tr-${i}@example.com` }, { email: `tr-${i}@example.com` }],
        emails: [`tr-${i}@example.com`, `tr-${i}@example.com`],
        furtherErrors: [],
        furtherEmail: `tr-${i}@example.com`,
        notRotated: true,
        revokedAt: null,
      })),
    );
    expect(providerCallsForPairs).toBe(PAIRS);
    expect(tokenCalls() - before).toBe(PAIRS);
    expect(idp.serverErrors).toEqual([]);
  });
});

// ---- a refresh retried after its response was lost ------------------------------------------

describe('a refresh retried after its response was lost', () => {
  it('within the reuse interval: the old token gets a working access token and the current refresh token', async () => {
    const l = await signIn(s, 'retry-a');
    const lost = await refresh(s, { refreshToken: l.refreshToken });
    expect(lost.errors).toEqual([]);
    const current = (await sessionRow(s, l.refreshToken)).refresh_token_id;
    expect(rtiOf(lost.refreshToken)).toBe(current);
    expect(current).not.toBe(rtiOf(l.refreshToken));

    const retry = await refresh(s, { refreshToken: l.refreshToken });
    expect(retry.errors).toEqual([]);
    expect(retry.user).toMatchObject({ email: 'retry-a@example.com' });
    expect(rtiOf(retry.refreshToken)).toBe(current);
    expect(sidOf(retry.refreshToken!)).toBe(sidOf(l.refreshToken));
    expect(retry.csrfToken).toMatch(/^[a-zA-Z0-9]{64}$/);
    expect(retry.csrfToken).not.toBe(lost.csrfToken);
    expect(refreshCookieOf(retry.setCookie)).toBe(retry.refreshToken);
    expect(await emailOf(s, retry.token)).toBe('retry-a@example.com');

    // A browser retries with its old cookie and old CSRF token (the Set-Cookie was lost too).
    const fromCookie = await refresh(s, { csrfToken: l.csrfToken }, { cookie: `refreshToken=${l.refreshToken}` });
    expect(fromCookie.errors).toEqual([]);
    expect(rtiOf(refreshCookieOf(fromCookie.setCookie) ?? null)).toBe(current);
    expect(await emailOf(s, fromCookie.token)).toBe('retry-a@example.com');

    const row = await sessionRow(s, l.refreshToken);
    expect(row.revoked_at).toBeNull();
    expect(row.refresh_token_id).toBe(current);
    // The session goes on from the retried answer.
    const next = await refresh(s, { refreshToken: retry.refreshToken! });
    expect(next.errors).toEqual([]);
    expect(await emailOf(s, next.token)).toBe('retry-a@example.com');
    expect((await sessionRow(s, l.refreshToken)).revoked_at).toBeNull();
  });

  it('only the token rotated away last is graced: an older one revokes the session, within the interval too', async () => {
    const l = await signIn(s, 'retry-b');
    const r1 = await refresh(s, { refreshToken: l.refreshToken });
    expect(r1.errors).toEqual([]);
    const r2 = await refresh(s, { refreshToken: r1.refreshToken! });
    expect(r2.errors).toEqual([]);
    expect(await emailOf(s, r2.token)).toBe('retry-b@example.com');
    const replay = await refresh(s, { refreshToken: l.refreshToken });
    expect(replay.errors).toEqual(INVALID_REFRESH);
    expect(replay.token).toBeNull();
    expect(replay.refreshToken).toBeNull();
    const row = await sessionRow(s, l.refreshToken);
    expect(row.revoked_at).not.toBeNull();
    expect(row.revoked_reason).toBe('refresh token reuse');
    expect((await refresh(s, { refreshToken: r2.refreshToken! })).errors).toEqual(INVALID_REFRESH);
    // Its access tokens died with it (same instance: at once).
    expect(await me(s, r2.token!)).toBeNull();
  });

  it('after the reuse interval (2 s): the old token is refused and the session is revoked', async () => {
    const l = await signIn(short, 'short-a');
    const lost = await refresh(short, { refreshToken: l.refreshToken });
    expect(lost.errors).toEqual([]);
    expect(await emailOf(short, lost.token)).toBe('short-a@example.com');
    // Positive control on the same server: within the 2 s the retry works.
    const inTime = await refresh(short, { refreshToken: l.refreshToken });
    expect(inTime.errors).toEqual([]);
    expect(rtiOf(inTime.refreshToken)).toBe(rtiOf(lost.refreshToken));

    await sleep(2_500);
    const late = await refresh(short, { refreshToken: l.refreshToken });
    expect(late.errors).toEqual(INVALID_REFRESH);
    expect(late.token).toBeNull();
    expect(late.refreshToken).toBeNull();
    const row = await sessionRow(short, l.refreshToken);
    expect(row.revoked_at).not.toBeNull();
    expect(row.revoked_reason).toBe('refresh token reuse');
    // The newest token stops working too, and so do the session's access tokens.
    expect((await refresh(short, { refreshToken: lost.refreshToken! })).errors).toEqual(INVALID_REFRESH);
    expect(await me(short, lost.token!)).toBeNull();
    expect(await me(short, inTime.token!)).toBeNull();
  });
});

// ---- provider faults during a refresh ---------------------------------------------------------

describe('provider faults during a refresh (every refresh reaches the provider)', () => {
  const now = () => Math.floor(Date.now() / 1000);
  /** Provider refresh tokens the fake provider still honours (it rotates them, as a real one). */
  const live = new Set<string>();
  let issued = 0;

  function idTokenClaims(sub: string, extra: Record<string, unknown> = {}): JWTPayload {
    return { iss: fake.issuer, aud: FAKE_CLIENT_ID, sub, email: `${sub}@example.com`, email_verified: true, iat: now(), exp: now() + 300, ...extra };
  }

  /** The well-behaved provider: a rotating refresh_token grant. */
  async function healthy(req: RecordedRequest): Promise<FakeReply> {
    const presented = req.form.get('refresh_token') ?? '';
    if (req.form.get('grant_type') !== 'refresh_token' || !live.delete(presented)) {
      return { status: 400, body: { error: 'invalid_grant', error_description: 'unknown or spent refresh token' } };
    }
    const sub = presented.split('~')[0]!;
    const next = `${sub}~prt-${++issued}`;
    live.add(next);
    return fake.tokenResponse({ idToken: await fake.sign(idTokenClaims(sub)), refreshToken: next });
  }

  async function fakeLogin(sub: string) {
    const auth = await authenticationUrl(f, DEFAULT_PLUGIN, { redirectUri: REDIRECT_URI });
    expect(auth.errors).toEqual([]);
    const a = fake.readAuthorizationUrl(JSON.parse(auth.authenticationData!).authorizationUrl);
    const providerRt = `${sub}~prt-${++issued}`;
    live.add(providerRt);
    fake.token = async () => fake.tokenResponse({ idToken: await fake.sign(idTokenClaims(sub, { nonce: a.nonce })), refreshToken: providerRt });
    const r = await obtainTokens(f, DEFAULT_PLUGIN, { code: 'c', state: a.state });
    expect(r.errors).toEqual([]);
    expect(r.refreshToken).toEqual(expect.any(String));
    fake.token = healthy;
    return { ...r, refreshToken: r.refreshToken!, token: r.token!, providerRt };
  }

  const tokenRequests = () => fake.requestsTo('/token');

  /** One refresh on `f`, tagged with a request id; the token requests it made. */
  async function refreshOnF(refreshToken: string) {
    const requestId = randomUUID();
    const before = tokenRequests().length;
    const started = Date.now();
    const r = await refresh(f, { refreshToken }, { 'x-request-id': requestId });
    return { r, ms: Date.now() - started, requestId, sent: tokenRequests().slice(before) };
  }

  const faults: Array<{ name: string; reply: FakeReply; errors: Errors; code: string; reason: RegExp }> = [
    {
      name: 'invalid_client (401, JSON, no challenge)',
      reply: { status: 401, body: { error: 'invalid_client', error_description: 'client authentication failed' } },
      errors: CLIENT_REJECTED,
      code: 'provider_client_rejected',
      reason: /invalid_client/,
    },
    {
      name: 'invalid_client (400, JSON)',
      reply: { status: 400, body: { error: 'invalid_client', error_description: 'the client secret was rotated' } },
      errors: CLIENT_REJECTED,
      code: 'provider_client_rejected',
      reason: /invalid_client/,
    },
    {
      name: 'unauthorized_client (400, JSON)',
      reply: { status: 400, body: { error: 'unauthorized_client' } },
      errors: CLIENT_REJECTED,
      code: 'provider_client_rejected',
      reason: /unauthorized_client/,
    },
    {
      name: '401 with a WWW-Authenticate challenge',
      reply: { status: 401, headers: { 'www-authenticate': 'Basic realm="token endpoint"' }, body: { error: 'invalid_client' } },
      errors: CLIENT_REJECTED,
      code: 'provider_client_rejected',
      reason: /401/,
    },
    {
      name: '429 with Retry-After',
      reply: { status: 429, headers: { 'retry-after': '30' }, body: { error: 'slow_down' } },
      errors: UNAVAILABLE,
      code: 'provider_unavailable',
      reason: /429/,
    },
    {
      name: '429 without a body',
      reply: { status: 429, headers: { 'content-type': 'text/plain' }, body: 'Too Many Requests' },
      errors: UNAVAILABLE,
      code: 'provider_unavailable',
      reason: /429/,
    },
    {
      name: '500 (text)',
      reply: { status: 500, headers: { 'content-type': 'text/plain' }, body: 'Internal Server Error' },
      errors: UNAVAILABLE,
      code: 'provider_unavailable',
      reason: /500/,
    },
    {
      name: '503 temporarily_unavailable (JSON)',
      reply: { status: 503, body: { error: 'temporarily_unavailable' } },
      errors: UNAVAILABLE,
      code: 'provider_unavailable',
      reason: /503/,
    },
    {
      name: 'no answer within OUTBOUND_TIMEOUT_MS',
      reply: { delayMs: 3_000, status: 400, body: { error: 'invalid_grant' } },
      errors: UNAVAILABLE,
      code: 'provider_unavailable',
      reason: /unreachable|time/i,
    },
  ];

  it('each fault: a typed error, one provider call, the session kept and audited; the first refresh after recovery works', async () => {
    const l = await fakeLogin('fault-user');
    const userId = (await sessionRow(f, l.refreshToken)).user_id;
    // Positive control: a refresh reaches the provider with the login's provider refresh token.
    const first = await refreshOnF(l.refreshToken);
    expect(first.r.errors).toEqual([]);
    expect(first.sent.map((x) => [x.form.get('grant_type'), x.form.get('refresh_token')])).toEqual([['refresh_token', l.providerRt]]);
    const ours = first.r.refreshToken!;
    const rti = rtiOf(ours);
    const providerRt = [...live].find((x) => x.startsWith('fault-user~'))!;

    const outcomes = [];
    for (const fault of faults) {
      fake.token = () => fault.reply;
      const { r, ms, requestId, sent } = await refreshOnF(ours);
      const row = await sessionRow(f, ours);
      const audits = await refreshAudits(f, requestId);
      outcomes.push({
        name: fault.name,
        errors: r.errors,
        tokens: [r.token, r.refreshToken, r.csrfToken, r.user],
        providerCalls: sent.map((x) => [x.form.get('grant_type'), x.form.get('refresh_token')]),
        fast: ms < 2_500,
        session: { revokedAt: row.revoked_at, revokedReason: row.revoked_reason, rti: row.refresh_token_id },
        audits: audits.map((a) => ({ outcome: a.outcome, userId: a.user_id, pluginId: a.plugin_id, code: a.detail.code, reason: a.detail.reason })),
      });
    }
    expect(outcomes).toEqual(
      faults.map((fault) => ({
        name: fault.name,
        errors: fault.errors,
        tokens: [null, null, null, null],
        providerCalls: [['refresh_token', providerRt]],
        fast: true,
        session: { revokedAt: null, revokedReason: null, rti },
        audits: [{ outcome: 'failure', userId, pluginId: DEFAULT_PLUGIN, code: fault.code, reason: expect.stringMatching(fault.reason) }],
      })),
    );

    // The session's access token kept working through the faults.
    expect(await emailOf(f, first.r.token)).toBe('fault-user@example.com');

    // Recovery: the very next refresh works, with the provider refresh token the faults left untouched.
    fake.token = healthy;
    const recovered = await refreshOnF(ours);
    expect(recovered.r.errors).toEqual([]);
    expect(recovered.sent.map((x) => x.form.get('refresh_token'))).toEqual([providerRt]);
    expect(await emailOf(f, recovered.r.token)).toBe('fault-user@example.com');
    expect((await refreshAudits(f, recovered.requestId)).map((a) => a.outcome)).toEqual(['success']);
    // and the session goes on: the next refresh sends the provider its rotated token.
    const rotatedProviderRt = [...live].find((x) => x.startsWith('fault-user~'))!;
    expect(rotatedProviderRt).not.toBe(providerRt);
    const next = await refreshOnF(recovered.r.refreshToken!);
    expect(next.r.errors).toEqual([]);
    expect(next.sent.map((x) => x.form.get('refresh_token'))).toEqual([rotatedProviderRt]);
    expect((await sessionRow(f, ours)).revoked_at).toBeNull();
  });

  it('invalid_grant ends the session (reason recorded), its access tokens die, and the provider is not asked again', async () => {
    const l = await fakeLogin('grant-user');
    expect(await emailOf(f, l.token)).toBe('grant-user@example.com');
    fake.token = () => ({ status: 400, body: { error: 'invalid_grant', error_description: 'grant revoked by the user' } });
    const { r, requestId, sent } = await refreshOnF(l.refreshToken);
    expect(r.errors).toEqual(INVALID_REFRESH);
    expect(r.token).toBeNull();
    expect(sent).toHaveLength(1);
    const row = await sessionRow(f, l.refreshToken);
    expect(row.revoked_at).not.toBeNull();
    expect(row.revoked_reason).toMatch(/invalid_grant/);
    const audits = await refreshAudits(f, requestId);
    expect(audits).toEqual([{ outcome: 'failure', user_id: row.user_id, plugin_id: DEFAULT_PLUGIN, detail: expect.objectContaining({ reason: expect.stringMatching(/invalid_grant/) }) }]);
    expect(await me(f, l.token)).toBeNull();
    fake.token = healthy;
    const again = await refreshOnF(l.refreshToken);
    expect(again.r.errors).toEqual(INVALID_REFRESH);
    expect(again.sent).toHaveLength(0);
  });
});

// ---- back-channel logout ------------------------------------------------------------------------

describe('back-channel logout tokens', () => {
  function logoutClaims(extra: Record<string, unknown>): JWTPayload {
    const now = Math.floor(Date.now() / 1000);
    return { iss: idp.issuer, aud: CLIENT_ID, iat: now, exp: now + 120, jti: randomUUID(), events: { [BACKCHANNEL_EVENT]: {} }, ...extra };
  }

  const sign = (claims: JWTPayload) => new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: providerKid, typ: 'logout+jwt' }).sign(providerKey);

  async function deliver(logoutToken: string) {
    const res = await fetch(`${s.url}/oidc/backchannel-logout/${encodeURIComponent(DEFAULT_PLUGIN)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ logout_token: logoutToken }).toString(),
    });
    await res.text();
    return res.status;
  }

  it('a replay is refused (400) and ends nothing; a too old iat is refused; none ends a newer login', async () => {
    const a = await signIn(s, 'bc-user');
    expect(await emailOf(s, a.token)).toBe('bc-user@example.com');
    const claims = logoutClaims({ sub: 'bc-user' });
    const logoutToken = await sign(claims);
    expect(await deliver(logoutToken)).toBe(200);
    const rowA = await sessionRow(s, a.refreshToken);
    expect(rowA.revoked_at).not.toBeNull();
    expect(rowA.revoked_reason).toBe('backchannel-logout');
    expect(await me(s, a.token)).toBeNull();
    const used = await s.running.app.db.pool.query('SELECT issuer FROM used_logout_tokens WHERE jti = $1', [claims.jti]);
    expect(used.rows).toEqual([{ issuer: idp.issuer }]);

    // A new login of the same subject, then the same token delivered again.
    const b = await signIn(s, 'bc-user');
    expect(await deliver(logoutToken)).toBe(400);
    expect((await sessionRow(s, b.refreshToken)).revoked_at).toBeNull();

    // iat older than OIDC_LOGOUT_TOKEN_MAX_AGE_SECONDS (600) is refused, even unexpired.
    const now = Math.floor(Date.now() / 1000);
    expect(await deliver(await sign(logoutClaims({ sub: 'bc-user', iat: now - 700, exp: now + 120 })))).toBe(400);
    expect((await sessionRow(s, b.refreshToken)).revoked_at).toBeNull();

    // Within the window but issued well before session B was created: accepted, B untouched.
    expect(await deliver(await sign(logoutClaims({ sub: 'bc-user', iat: now - 300, exp: now + 120 })))).toBe(200);
    expect((await sessionRow(s, b.refreshToken)).revoked_at).toBeNull();
    const stillB = await refresh(s, { refreshToken: b.refreshToken });
    expect(stillB.errors).toEqual([]);
    expect(await emailOf(s, stillB.token)).toBe('bc-user@example.com');
    expect(await emailOf(s, b.token)).toBe('bc-user@example.com');

    // Positive control: a fresh logout token ends B.
    expect(await deliver(await sign(logoutClaims({ sub: 'bc-user' })))).toBe(200);
    const rowB = await sessionRow(s, b.refreshToken);
    expect(rowB.revoked_at).not.toBeNull();
    expect(rowB.revoked_reason).toBe('backchannel-logout');
    expect(await me(s, stillB.token!)).toBeNull();
    expect((await refresh(s, { refreshToken: stillB.refreshToken! })).errors).toEqual(INVALID_REFRESH);
  });
});

// ---- access tokens die with their session and with what was taken away -------------------------

describe('revocation reaches access tokens', () => {
  it('after externalLogout the access tokens of that session no longer authenticate (same instance: at once)', async () => {
    const l = await signIn(s, 'out-user');
    const r = await refresh(s, { refreshToken: l.refreshToken });
    expect(r.errors).toEqual([]);
    // Both access tokens of the session are cached as valid now.
    expect(await emailOf(s, l.token)).toBe('out-user@example.com');
    expect(await emailOf(s, r.token)).toBe('out-user@example.com');
    const other = await signIn(s, 'out-user');
    const out = await externalCall(s, 'externalLogout', DEFAULT_PLUGIN, { refreshToken: r.refreshToken });
    expect(out.errors).toEqual([]);
    expect(await me(s, l.token)).toBeNull();
    expect(await me(s, r.token!)).toBeNull();
    // Another session of the same user is not affected.
    expect(await emailOf(s, other.token)).toBe('out-user@example.com');
  });

  it('a demoted, regrouped or deactivated staff member loses it on the next request after the cache window', async () => {
    const prisma = s.running.app.db.prisma;
    const app = s.running.app;
    // A CLI-style token (no session) of a staff member with two direct permissions.
    const cliUser = await upsertStaffUser(prisma, { email: 'demoted-cli@example.com', permissions: ['MANAGE_ORDERS', 'MANAGE_USERS'] });
    const cliToken = await app.tokens.mintAccessToken(cliUser, ['MANAGE_ORDERS', 'MANAGE_USERS'], CORE_TOKEN_OWNER);
    // A staff member logged in through the provider (staff domain, default group).
    const sam = await signIn(s, 'sam');
    // A staff member who will be deactivated.
    const goneUser = await upsertStaffUser(prisma, { email: 'deactivated-cli@example.com', permissions: ['MANAGE_ORDERS'] });
    const goneToken = await app.tokens.mintAccessToken(goneUser, ['MANAGE_ORDERS'], CORE_TOKEN_OWNER);

    // Warm the token cache with the old state.
    expect(await me(s, cliToken)).toEqual({ email: 'demoted-cli@example.com', isStaff: true, permissions: ['MANAGE_ORDERS', 'MANAGE_USERS'] });
    expect(await me(s, sam.token)).toEqual({ email: `sam@${STAFF_DOMAIN}`, isStaff: true, permissions: ['MANAGE_ORDERS', 'MANAGE_PRODUCTS'] });
    expect(await me(s, goneToken)).toEqual({ email: 'deactivated-cli@example.com', isStaff: true, permissions: ['MANAGE_ORDERS'] });

    // Demote directly in the database (nothing tells the cache).
    const samId = (await prisma.user.findUniqueOrThrow({ where: { email: `sam@${STAFF_DOMAIN}` } })).id;
    await prisma.user.update({ where: { id: cliUser.id }, data: { permissions: ['MANAGE_ORDERS'] } });
    await prisma.groupMember.deleteMany({ where: { userId: samId } });
    await prisma.user.update({ where: { id: goneUser.id }, data: { isActive: false } });

    const [cli, oidc, gone] = await Promise.all([
      probeUntil(() => me(s, cliToken), (v) => !v?.permissions.includes('MANAGE_USERS'), CACHE_WINDOW_MS + 4_000),
      probeUntil(() => me(s, sam.token), (v) => !v?.permissions.includes('MANAGE_PRODUCTS'), CACHE_WINDOW_MS + 4_000),
      probeUntil(() => me(s, goneToken), (v) => v === null, CACHE_WINDOW_MS + 4_000),
    ]);
    expect(cli.value).toEqual({ email: 'demoted-cli@example.com', isStaff: true, permissions: ['MANAGE_ORDERS'] });
    expect(oidc.value).toEqual({ email: `sam@${STAFF_DOMAIN}`, isStaff: true, permissions: [] });
    expect(gone.value).toBeNull();
    expect(cli.ms).toBeLessThanOrEqual(CACHE_WINDOW_MS);
    expect(oidc.ms).toBeLessThanOrEqual(CACHE_WINDOW_MS);
    expect(gone.ms).toBeLessThanOrEqual(CACHE_WINDOW_MS);
    // and it stays that way.
    expect(await me(s, cliToken)).toEqual({ email: 'demoted-cli@example.com', isStaff: true, permissions: ['MANAGE_ORDERS'] });
    expect(await me(s, sam.token)).toEqual({ email: `sam@${STAFF_DOMAIN}`, isStaff: true, permissions: [] });
  }, 60_000);
});
