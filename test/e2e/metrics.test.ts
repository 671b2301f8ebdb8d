/**
 * GET /metrics (issue 11) against the real server and a real provider: after a login, a
 * refresh, bearer requests, a logout, a refused refresh, an invalid document and a rate-limited
 * burst, every series is present with plausible values (counters equal to what was done,
 * histograms with buckets, provider calls by endpoint). Access: METRICS_TOKEN as a bearer token
 * on the main port (401 without it or with another), not served in production without
 * METRICS_TOKEN or METRICS_PORT, served without a token in development, and the dedicated
 * METRICS_PORT server needs no token (and the main port then does not serve it).
 */
import { randomInt } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { startIdp, type TestIdp } from '../helpers/idp.ts';
import { DEFAULT_PLUGIN, adminToken, configure, connectionValues, externalCall, login } from '../helpers/oidc-flow.ts';
import { parseMetrics, sampleSum, sampleValue, samplesOf, type PromSample } from '../helpers/prometheus.ts';

const P = 'saleor_auth_';
const TOKEN = 'metrics-e2e-token-0123456789abcdef';
const CLIENT_ID = 'storefront';
const CLIENT_SECRET = 'storefront-secret-0123456789-abcdefghij';
const LIMIT = 25;
const MAX_FIELDS = 10;

let s: TestServer;
let idp: TestIdp;
let dev: TestServer;
let prod: TestServer;
let dedicated: TestServer;
/** POST /graphql/ requests this file sent to `s` (each answered, whatever the status). */
let graphqlPosts = 0;

const randomIp = () => `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;

async function post(query: string, variables?: Record<string, unknown>, opts?: { token?: string; headers?: Record<string, string> }) {
  graphqlPosts++;
  return s.gql(query, variables, opts);
}

async function scrape(server: TestServer, headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }, base = server.url) {
  const res = await fetch(`${base}/metrics`, { headers });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

beforeAll(async () => {
  s = await startTestServer({
    OUTBOUND_ALLOW_PRIVATE_ADDRESSES: 'true',
    METRICS_TOKEN: TOKEN,
    RATE_LIMIT_PER_IP_PER_MINUTE: String(LIMIT),
    TRUST_PROXY: '1',
  });
  idp = await startIdp({
    clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: ['https://shop.example.com/auth/callback'] }],
    accounts: [{ sub: 'alice', email: 'alice@example.com', email_verified: true, given_name: 'Alice' }],
  });
  await configure(s, await adminToken(s), DEFAULT_PLUGIN, connectionValues(idp, CLIENT_ID, CLIENT_SECRET));
  graphqlPosts++; // configure()
  [dev, prod, dedicated] = await Promise.all([
    startTestServer({}),
    startTestServer({ NODE_ENV: 'production', PUBLIC_URL: 'https://auth.example.com' }),
    startTestServer({ METRICS_PORT: '0' }),
  ]);
});

afterAll(async () => {
  await Promise.all([s, dev, prod, dedicated].map((x) => x?.close()));
  await idp?.close();
});

describe('the series after real traffic', () => {
  let samples: PromSample[];
  let contentType: string | null;

  beforeAll(async () => {
    // A login (authorization URL + code exchange), a refresh, two bearer requests, a refused
    // refresh, a logout, an invalid document, and a burst over the rate limit.
    const signedIn = await login(s, idp, DEFAULT_PLUGIN, 'alice');
    graphqlPosts += 2;
    expect(signedIn.errors).toEqual([]);
    const refreshed = await externalCall(s, 'externalRefresh', DEFAULT_PLUGIN, { refreshToken: signedIn.refreshToken });
    graphqlPosts++;
    expect(refreshed.errors).toEqual([]);
    for (let i = 0; i < 2; i++) {
      const me = await post('query Me { me { email } }', undefined, { token: refreshed.token });
      expect(me.body.data.me).toEqual({ email: 'alice@example.com' });
    }
    const junk = await externalCall(s, 'externalRefresh', DEFAULT_PLUGIN, { refreshToken: 'not-a-token' });
    graphqlPosts++;
    expect(junk.errors).toHaveLength(1);
    const out = await externalCall(s, 'externalLogout', DEFAULT_PLUGIN, { refreshToken: refreshed.refreshToken });
    graphqlPosts++;
    expect(out.errors).toEqual([]);
    const invalid = await post('query Broken { me { ');
    expect(invalid.status).toBe(400);
    // MAX_FIELDS points per request from one forwarded address: the third goes over LIMIT.
    const burst = `mutation Burst { ${Array.from({ length: MAX_FIELDS }, (_, i) => `v${i}: tokenVerify(token: "junk") { isValid }`).join(' ')} }`;
    const from = { headers: { 'x-forwarded-for': randomIp() } };
    expect((await post(burst, undefined, from)).status).toBe(200);
    expect((await post(burst, undefined, from)).status).toBe(200);
    expect((await post(burst, undefined, from)).status).toBe(429);

    expect((await scrape(s, {})).status).toBe(401);
    const r = await scrape(s);
    expect(r.status).toBe(200);
    contentType = r.headers.get('content-type');
    samples = parseMetrics(r.text);
  });

  it('is Prometheus text, not cached', () => {
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it('HTTP requests by route and status, with a latency histogram', () => {
    const c = `${P}http_requests_total`;
    expect(sampleSum(samples, c, { route: '/graphql/', method: 'POST' })).toBeGreaterThanOrEqual(graphqlPosts);
    expect(sampleValue(samples, c, { route: '/graphql/', method: 'POST', status: '429' })).toBe(1);
    expect(sampleValue(samples, c, { route: '/graphql/', method: 'POST', status: '400' })).toBe(1);
    expect(sampleValue(samples, c, { route: '/graphql/', method: 'POST', status: '200' })).toBeGreaterThanOrEqual(graphqlPosts - 2);
    // The refused scrape was counted; a scrape is counted after it answered (not in itself).
    expect(sampleValue(samples, c, { route: '/metrics', method: 'GET', status: '401' })).toBe(1);
    const h = `${P}http_request_duration_seconds`;
    const count = sampleValue(samples, `${h}_count`, { route: '/graphql/', method: 'POST' });
    expect(count).toBe(sampleSum(samples, c, { route: '/graphql/', method: 'POST' }));
    expect(sampleValue(samples, `${h}_bucket`, { route: '/graphql/', method: 'POST', le: '+Inf' })).toBe(count);
    const buckets = samplesOf(samples, `${h}_bucket`).filter((x) => x.labels['route'] === '/graphql/' && x.labels['method'] === 'POST');
    expect(buckets.length).toBeGreaterThan(5);
    const sum = sampleValue(samples, `${h}_sum`, { route: '/graphql/', method: 'POST' })!;
    expect(sum).toBeGreaterThan(0);
    expect(sum).toBeLessThan(60);
    // No label carries a raw path, an address or a token.
    for (const x of samplesOf(samples, c)) expect(['/graphql/', '/healthz', '/readyz', '/.well-known/jwks.json', '/oidc/backchannel-logout', '/metrics', 'other']).toContain(x.labels['route']);
  });

  it('GraphQL operations by name and outcome', () => {
    const g = `${P}graphql_operations_total`;
    expect(sampleValue(samples, g, { operation: 'Me', outcome: 'success' })).toBe(2);
    expect(sampleValue(samples, g, { operation: 'Burst', outcome: 'success' })).toBe(2);
    expect(sampleValue(samples, g, { operation: 'Burst', outcome: 'rate_limited' })).toBe(1);
    expect(sampleValue(samples, g, { operation: '(invalid)', outcome: 'invalid' })).toBe(1);
    // The helpers' mutations are anonymous: configure, login (2), refresh (2), logout.
    expect(sampleValue(samples, g, { operation: '(anonymous)', outcome: 'success' })).toBeGreaterThanOrEqual(6);
  });

  it('logins, refreshes and logouts by outcome; revocations by reason', () => {
    expect(sampleValue(samples, `${P}logins_total`, { outcome: 'success' })).toBe(1);
    expect(sampleSum(samples, `${P}logins_total`)).toBe(1);
    expect(sampleValue(samples, `${P}refreshes_total`, { outcome: 'success' })).toBe(1);
    expect(sampleValue(samples, `${P}refreshes_total`, { outcome: 'invalid_token' })).toBe(1);
    expect(sampleValue(samples, `${P}logouts_total`, { channel: 'user', outcome: 'success' })).toBe(1);
    expect(sampleValue(samples, `${P}sessions_revoked_total`, { reason: 'logout' })).toBe(1);
    expect(sampleSum(samples, `${P}sessions_revoked_total`)).toBe(1);
  });

  it('provider calls by connection, endpoint and outcome, with latency', () => {
    const c = `${P}provider_calls_total`;
    const at = (endpoint: string) => sampleValue(samples, c, { connection: DEFAULT_PLUGIN, endpoint, outcome: 'ok' }) ?? 0;
    // Discovery once (cached), keys to verify the id_tokens, the code exchange and the refresh.
    expect(at('discovery')).toBe(1);
    expect(at('jwks')).toBeGreaterThanOrEqual(1);
    expect(at('token')).toBe(2);
    expect(at('userinfo')).toBeGreaterThanOrEqual(1);
    expect(sampleSum(samples, c, { outcome: 'http_5xx' }) + sampleSum(samples, c, { outcome: 'timeout' }) + sampleSum(samples, c, { outcome: 'network_error' })).toBe(0);
    const h = `${P}provider_call_duration_seconds`;
    expect(sampleValue(samples, `${h}_count`, { connection: DEFAULT_PLUGIN, endpoint: 'token' })).toBe(2);
    expect(sampleValue(samples, `${h}_bucket`, { connection: DEFAULT_PLUGIN, endpoint: 'token', le: '+Inf' })).toBe(2);
    expect(sampleValue(samples, `${h}_sum`, { connection: DEFAULT_PLUGIN, endpoint: 'token' })).toBeGreaterThan(0);
  });

  it('token-cache hits and misses, rate-limit rejections', () => {
    const t = `${P}token_cache_lookups_total`;
    // Two requests with one new access token of ours: a miss, then a hit.
    expect(sampleValue(samples, t, { kind: 'ours', result: 'miss' })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(samples, t, { kind: 'ours', result: 'hit' })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(samples, `${P}rate_limit_rejections_total`, { scope: 'graphql' })).toBe(1);
    expect(sampleValue(samples, `${P}rate_limit_rejections_total`, { scope: 'backchannel_logout' })).toBe(0);
  });

  it('invalidation messages and the database pool', () => {
    // pluginUpdate and the logout announce a change (plugins, sessions); it leaves the process
    // only through a transport (PostgreSQL LISTEN/NOTIFY here; none on the embedded database).
    const sent = sampleSum(samples, `${P}invalidation_messages_total`, { direction: 'sent' });
    expect(sent >= 2).toBe(s.running.app.db.kind === 'postgresql');
    expect(sampleSum(samples, `${P}invalidation_messages_total`, { direction: 'sent', kind: 'plugins' }) >= 1).toBe(s.running.app.db.kind === 'postgresql');
    const inUse = sampleValue(samples, `${P}db_pool_connections_in_use`);
    expect(inUse).toBeGreaterThanOrEqual(0);
    expect(inUse).toBeLessThanOrEqual(10);
  });

  it('process metrics', () => {
    expect(sampleValue(samples, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(samplesOf(samples, 'nodejs_eventloop_lag_seconds')).toHaveLength(1);
  });
});

describe('access', () => {
  it('main port with METRICS_TOKEN: 401 without the token or with another', async () => {
    const refused: Array<Record<string, string>> = [{}, { authorization: `Bearer ${TOKEN}x` }, { authorization: `Basic ${TOKEN}` }, { 'authorization-bearer': TOKEN }];
    for (const headers of refused) {
      const r = await scrape(s, headers);
      expect(r.status).toBe(401);
      expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(r.text).not.toContain(P);
    }
    expect((await scrape(s)).status).toBe(200);
    // The token never reaches the logs.
    expect(s.logs.join('')).not.toContain(TOKEN);
  });

  it('development without METRICS_TOKEN or METRICS_PORT: served on the main port without a token', async () => {
    const r = await scrape(dev, {});
    expect(r.status).toBe(200);
    expect(sampleValue(parseMetrics(r.text), `${P}logins_total`, { outcome: 'success' })).toBe(0);
  });

  it('production without METRICS_TOKEN or METRICS_PORT: not served', async () => {
    expect((await scrape(prod, {})).status).toBe(404);
    expect((await scrape(prod)).status).toBe(404);
  });

  it('METRICS_PORT: served there without a token, not on the main port', async () => {
    expect((await scrape(dedicated, {})).status).toBe(404);
    const metricsUrl = (dedicated.running as object as { metricsUrl?: string }).metricsUrl;
    expect(metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const r = await scrape(dedicated, {}, metricsUrl);
    expect(r.status).toBe(200);
    expect(sampleValue(parseMetrics(r.text), `${P}logins_total`, { outcome: 'success' })).toBe(0);
    expect((await fetch(`${metricsUrl}/graphql/`)).status).toBe(404);
  });
});

describe('revocations done in another module\'s transaction', () => {
  it('tokensDeactivateAll counts every session it ends, once', async () => {
    const revoked = async () => sampleValue(parseMetrics((await scrape(s)).text), `${P}sessions_revoked_total`, { reason: 'tokens_deactivated' }) ?? 0;
    const before = await revoked();
    const first = await login(s, idp, DEFAULT_PLUGIN, 'alice');
    const second = await login(s, idp, DEFAULT_PLUGIN, 'alice');
    graphqlPosts += 4;
    expect([first.errors, second.errors]).toEqual([[], []]);
    const r = await post('mutation { tokensDeactivateAll { errors { code } } }', undefined, { token: second.token! });
    expect(r.body).toEqual({ data: { tokensDeactivateAll: { errors: [] } } });
    expect((await revoked()) - before).toBe(2);
    // Both refresh tokens are dead.
    for (const signedIn of [first, second]) {
      const refreshed = await externalCall(s, 'externalRefresh', DEFAULT_PLUGIN, { refreshToken: signedIn.refreshToken });
      graphqlPosts++;
      expect(refreshed.token).toBeNull();
    }
  });
  it('a document seen before (answered without the Apollo hooks) is counted under the operation its operationName picks, with its outcome', async () => {
    const count = async (operation: string, outcome: string) =>
      sampleValue(parseMetrics((await scrape(s)).text), `${P}graphql_operations_total`, { operation, outcome }) ?? 0;
    const names = ['KnownAlpha', 'KnownBeta', 'KnownDenied'] as const;
    const before = {
      alpha: await count('KnownAlpha', 'success'),
      beta: await count('KnownBeta', 'success'),
      denied: await count('KnownDenied', 'error'),
      deniedOk: await count('KnownDenied', 'success'),
    };
    // One document, three operations; the same text each time, so from the second request on
    // each operation is a known one. Anonymous: KnownDenied is refused (a top-level error).
    const doc = 'query KnownAlpha { me { email } } query KnownBeta { me { id } } query KnownDenied { staffUsers(first: 1) { edges { node { id } } } }';
    const expected = {
      KnownAlpha: { data: { me: null } },
      KnownBeta: { data: { me: null } },
      KnownDenied: { data: { staffUsers: null }, errors: [{ extensions: { exception: { code: 'PermissionDenied' } } }] },
    };
    for (let i = 0; i < 3; i++) {
      for (const operationName of names) {
        graphqlPosts++;
        const res = await fetch(`${s.url}/graphql/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: doc, operationName }) });
        const body = await res.json();
        expect(res.status).toBe(200);
        expect(body).toMatchObject(expected[operationName]);
      }
    }
    expect((await count('KnownAlpha', 'success')) - before.alpha).toBe(3);
    expect((await count('KnownBeta', 'success')) - before.beta).toBe(3);
    expect((await count('KnownDenied', 'error')) - before.denied).toBe(3);
    expect((await count('KnownDenied', 'success')) - before.deniedOk).toBe(0);
  });
});
