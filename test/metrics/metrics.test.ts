/**
 * Metrics (issue 11): each series renders with its labels and values after the calls that
 * feed it; labels stay bounded (fixed vocabularies, capped open-ended values); every server has
 * its own registry; the access rule of GET /metrics (token compared in constant time, 401 /
 * 404, development default, dedicated port); the dedicated metrics server; provider-call
 * outcomes and endpoints measured through a real guarded fetch against local servers.
 */
import http from 'node:http';
import crypto from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { register as globalRegistry } from 'prom-client';
import { CAPPED, Metrics, failureOutcome, revocationReason, type ProviderEndpoint } from '../../src/metrics/metrics.ts';
import { metricsAccess, routeLabel, servedOnMainPort, startMetricsServer, tokensEqual, type MetricsAccessSettings } from '../../src/metrics/http.ts';
import { createGuardedFetch, observedFetch, OutboundError, type OutboundOutcome } from '../../src/net/guarded-fetch.ts';
import { providerEndpointOf } from '../../src/plugins/openid-connect/provider.ts';
import { AppError } from '../../src/core/errors.ts';
import { FieldError } from '../../src/errors.ts';
import { createLogger } from '../../src/log.ts';
import { parseMetrics, sampleSum, sampleValue, samplesOf } from '../helpers/prometheus.ts';

vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  const timingSafeEqual = vi.fn(actual.timingSafeEqual);
  return { ...actual, timingSafeEqual, default: { ...actual, timingSafeEqual } };
});

const P = 'saleor_auth_';
const silent = createLogger('error', {}, () => {});

async function scrape(m: Metrics) {
  const { contentType, body } = await m.render();
  expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseMetrics(body);
}

describe('Metrics series', () => {
  it('counts HTTP requests by route, method and status, with a latency histogram', async () => {
    const m = new Metrics({ defaultMetrics: false });
    m.httpRequest('/graphql/', 'POST', 200, 0.003);
    m.httpRequest('/graphql/', 'POST', 200, 0.2);
    m.httpRequest('/graphql/', 'POST', 429, 0.001);
    m.httpRequest('/healthz', 'GET', 200, 0.0001);
    m.httpRequest('other', 'BREW', 999, 0.01);
    const s = await scrape(m);
    expect(sampleValue(s, `${P}http_requests_total`, { route: '/graphql/', method: 'POST', status: '200' })).toBe(2);
    expect(sampleValue(s, `${P}http_requests_total`, { route: '/graphql/', method: 'POST', status: '429' })).toBe(1);
    expect(sampleValue(s, `${P}http_requests_total`, { route: '/healthz', method: 'GET', status: '200' })).toBe(1);
    // An unknown method and an impossible status are not labels of their own.
    expect(sampleValue(s, `${P}http_requests_total`, { route: 'other', method: 'other', status: 'other' })).toBe(1);
    const h = `${P}http_request_duration_seconds`;
    expect(sampleValue(s, `${h}_count`, { route: '/graphql/', method: 'POST' })).toBe(3);
    expect(sampleValue(s, `${h}_sum`, { route: '/graphql/', method: 'POST' })).toBeCloseTo(0.204, 6);
    expect(sampleValue(s, `${h}_bucket`, { route: '/graphql/', method: 'POST', le: '0.005' })).toBe(2);
    expect(sampleValue(s, `${h}_bucket`, { route: '/graphql/', method: 'POST', le: '0.25' })).toBe(3);
    expect(sampleValue(s, `${h}_bucket`, { route: '/graphql/', method: 'POST', le: '+Inf' })).toBe(3);
  });

  it('maps request paths onto a fixed set of routes', () => {
    expect(routeLabel('/graphql')).toBe('/graphql/');
    expect(routeLabel('/graphql/')).toBe('/graphql/');
    expect(routeLabel('/healthz')).toBe('/healthz');
    expect(routeLabel('/readyz')).toBe('/readyz');
    expect(routeLabel('/.well-known/jwks.json')).toBe('/.well-known/jwks.json');
    expect(routeLabel('/metrics')).toBe('/metrics');
    expect(routeLabel('/oidc/backchannel-logout/mirumee.authentication.openidconnect')).toBe('/oidc/backchannel-logout');
    expect(routeLabel('/wp-admin/x?y')).toBe('other');
    expect(routeLabel(undefined)).toBe('other');
  });

  it('counts GraphQL operations by name and outcome, with bounded names', async () => {
    const m = new Metrics({ defaultMetrics: false, maxOperationNames: 3 });
    m.graphqlOperation('Me', 'success');
    m.graphqlOperation('Me', 'success');
    m.graphqlOperation('Login', 'rate_limited');
    m.graphqlOperation(null, 'error');
    m.graphqlOperation(undefined, 'invalid');
    m.graphqlOperation('x'.repeat(500), 'success');
    m.graphqlOperation('Fourth', 'success');
    m.graphqlOperation('Fifth', 'success');
    m.graphqlOperation('Me', 'bogus' as never);
    const s = await scrape(m);
    const name = `${P}graphql_operations_total`;
    expect(sampleValue(s, name, { operation: 'Me', outcome: 'success' })).toBe(2);
    expect(sampleValue(s, name, { operation: 'Login', outcome: 'rate_limited' })).toBe(1);
    expect(sampleValue(s, name, { operation: '(anonymous)', outcome: 'error' })).toBe(1);
    expect(sampleValue(s, name, { operation: '(invalid)', outcome: 'invalid' })).toBe(1);
    // Truncated to 100 characters; the cap of 3 distinct names is then reached.
    expect(sampleValue(s, name, { operation: 'x'.repeat(100), outcome: 'success' })).toBe(1);
    expect(sampleValue(s, name, { operation: CAPPED, outcome: 'success' })).toBe(2);
    expect(sampleValue(s, name, { operation: 'Me', outcome: 'other' })).toBe(1);
    expect(new Set(samplesOf(s, name).map((x) => x.labels['operation'])).size).toBe(6);
  });

  it('counts logins, refreshes and logouts by outcome, and revocations by reason', async () => {
    const m = new Metrics({ defaultMetrics: false });
    const s0 = await scrape(m);
    // Known series exist before the first event.
    expect(sampleValue(s0, `${P}logins_total`, { outcome: 'success' })).toBe(0);
    expect(sampleValue(s0, `${P}refreshes_total`, { outcome: 'success' })).toBe(0);
    m.login('success');
    m.login('provider_unavailable');
    m.login('invalid_state');
    m.refresh('success');
    m.refresh('success');
    m.refresh('session_ended');
    m.logout('success');
    m.logout('no_session');
    m.logout('replayed', 'backchannel');
    m.sessionsRevoked('logout');
    m.sessionsRevoked('refresh token reuse');
    m.sessionsRevoked('connection-deleted', 3);
    m.sessionsRevoked('provider refused: invalid_grant: secret words', 1);
    m.sessionsRevoked('grant_ended');
    m.sessionsRevoked('tokens-deactivated', 0);
    const s = await scrape(m);
    expect(sampleValue(s, `${P}logins_total`, { outcome: 'success' })).toBe(1);
    expect(sampleValue(s, `${P}logins_total`, { outcome: 'provider_unavailable' })).toBe(1);
    expect(sampleValue(s, `${P}logins_total`, { outcome: 'invalid_state' })).toBe(1);
    expect(sampleValue(s, `${P}refreshes_total`, { outcome: 'success' })).toBe(2);
    expect(sampleValue(s, `${P}refreshes_total`, { outcome: 'session_ended' })).toBe(1);
    expect(sampleValue(s, `${P}logouts_total`, { channel: 'user', outcome: 'success' })).toBe(1);
    expect(sampleValue(s, `${P}logouts_total`, { channel: 'user', outcome: 'no_session' })).toBe(1);
    expect(sampleValue(s, `${P}logouts_total`, { channel: 'backchannel', outcome: 'replayed' })).toBe(1);
    const r = `${P}sessions_revoked_total`;
    expect(sampleValue(s, r, { reason: 'logout' })).toBe(1);
    expect(sampleValue(s, r, { reason: 'refresh_token_reuse' })).toBe(1);
    expect(sampleValue(s, r, { reason: 'connection_deleted' })).toBe(3);
    // Free text never becomes a label.
    expect(sampleValue(s, r, { reason: 'other' })).toBe(1);
    expect(sampleValue(s, r, { reason: 'grant_ended' })).toBe(1);
    expect(sampleValue(s, r, { reason: 'tokens_deactivated' })).toBeUndefined();
  });

  it('counts provider calls by connection, endpoint and outcome, with latency', async () => {
    const m = new Metrics({ defaultMetrics: false, maxConnections: 2 });
    m.providerCall('mirumee.authentication.openidconnect', 'token', 'ok', 0.12);
    m.providerCall('mirumee.authentication.openidconnect', 'token', 'http_5xx', 0.3);
    m.providerCall('mirumee.authentication.openidconnect', 'jwks', 'timeout', 5);
    m.providerCall('staff idp', 'discovery', 'ok', 0.02);
    m.providerCall('third', 'userinfo', 'ok', 0.02);
    const s = await scrape(m);
    const c = `${P}provider_calls_total`;
    const conn = 'mirumee.authentication.openidconnect';
    expect(sampleValue(s, c, { connection: conn, endpoint: 'token', outcome: 'ok' })).toBe(1);
    expect(sampleValue(s, c, { connection: conn, endpoint: 'token', outcome: 'http_5xx' })).toBe(1);
    expect(sampleValue(s, c, { connection: conn, endpoint: 'jwks', outcome: 'timeout' })).toBe(1);
    expect(sampleValue(s, c, { connection: 'staff_idp', endpoint: 'discovery', outcome: 'ok' })).toBe(1);
    expect(sampleValue(s, c, { connection: CAPPED, endpoint: 'userinfo', outcome: 'ok' })).toBe(1);
    const h = `${P}provider_call_duration_seconds`;
    expect(sampleValue(s, `${h}_count`, { connection: conn, endpoint: 'token' })).toBe(2);
    expect(sampleValue(s, `${h}_bucket`, { connection: conn, endpoint: 'token', le: '0.25' })).toBe(1);
    expect(sampleValue(s, `${h}_bucket`, { connection: conn, endpoint: 'jwks', le: '2.5' })).toBe(0);
    expect(sampleValue(s, `${h}_bucket`, { connection: conn, endpoint: 'jwks', le: '10' })).toBe(1);
  });

  it('counts token-cache lookups, rate-limit rejections and invalidation messages', async () => {
    const m = new Metrics({ defaultMetrics: false });
    expect(sampleValue(await scrape(m), `${P}rate_limit_rejections_total`, { scope: 'graphql' })).toBe(0);
    m.tokenCache('ours', true);
    m.tokenCache('ours', true);
    m.tokenCache('ours', false);
    m.tokenCache('provider', false);
    m.tokenCache('unrecognised', true);
    m.rateLimitRejected('graphql');
    m.rateLimitRejected('graphql');
    m.rateLimitRejected('backchannel_logout');
    m.invalidation('sent', 'plugins');
    m.invalidation('received', 'plugins');
    m.invalidation('received', 'keyring');
    const s = await scrape(m);
    const t = `${P}token_cache_lookups_total`;
    expect(sampleValue(s, t, { kind: 'ours', result: 'hit' })).toBe(2);
    expect(sampleValue(s, t, { kind: 'ours', result: 'miss' })).toBe(1);
    expect(sampleValue(s, t, { kind: 'provider', result: 'miss' })).toBe(1);
    expect(sampleValue(s, t, { kind: 'unrecognised', result: 'hit' })).toBe(1);
    expect(sampleValue(s, `${P}rate_limit_rejections_total`, { scope: 'graphql' })).toBe(2);
    expect(sampleValue(s, `${P}rate_limit_rejections_total`, { scope: 'backchannel_logout' })).toBe(1);
    const i = `${P}invalidation_messages_total`;
    expect(sampleValue(s, i, { direction: 'sent', kind: 'plugins' })).toBe(1);
    expect(sampleValue(s, i, { direction: 'received', kind: 'plugins' })).toBe(1);
    expect(sampleValue(s, i, { direction: 'received', kind: 'keyring' })).toBe(1);
  });

  it('reads the database pool at each scrape; a failing reader does not fail the scrape', async () => {
    const m = new Metrics({ defaultMetrics: false });
    expect(sampleValue(await scrape(m), `${P}db_pool_connections_in_use`)).toBe(0);
    let inUse = 3;
    m.observeDatabasePool(() => inUse, () => 1);
    let s = await scrape(m);
    expect(sampleValue(s, `${P}db_pool_connections_in_use`)).toBe(3);
    expect(sampleValue(s, `${P}db_pool_waiting_requests`)).toBe(1);
    inUse = 7;
    expect(sampleValue(await scrape(m), `${P}db_pool_connections_in_use`)).toBe(7);
    m.observeDatabasePool(() => {
      throw new Error('pool gone');
    });
    s = await scrape(m);
    expect(sampleValue(s, `${P}db_pool_connections_in_use`)).toBe(7);
    expect(sampleSum(s, `${P}logins_total`)).toBe(0);
  });

  it('keeps a registry per instance, never the global one, and adds process metrics on request', async () => {
    const a = new Metrics();
    const b = new Metrics({ defaultMetrics: false });
    a.login('success');
    const sa = await scrape(a);
    const sb = await scrape(b);
    expect(sampleValue(sa, `${P}logins_total`, { outcome: 'success' })).toBe(1);
    expect(sampleValue(sb, `${P}logins_total`, { outcome: 'success' })).toBe(0);
    expect(samplesOf(sa, 'process_cpu_user_seconds_total')).toHaveLength(1);
    expect(samplesOf(sa, 'nodejs_eventloop_lag_seconds')).toHaveLength(1);
    expect(samplesOf(sb, 'process_cpu_user_seconds_total')).toHaveLength(0);
    expect(await globalRegistry.metrics()).not.toContain(P);
  });

  it('names failures by class and code', () => {
    expect(failureOutcome(new FieldError('code', 'INVALID', 'x'))).toBe('invalid_request');
    expect(failureOutcome(new AppError('provider_unavailable', 'x'))).toBe('provider_unavailable');
    expect(failureOutcome(new AppError('provider_refused', 'x'))).toBe('provider_refused');
    expect(failureOutcome(new AppError('provider_client_rejected', 'x'))).toBe('provider_client_rejected');
    expect(failureOutcome(new AppError('provider_token_invalid', 'x'))).toBe('provider_token_invalid');
    expect(failureOutcome(new AppError('grant_ended', 'x'))).toBe('session_ended');
    expect(failureOutcome(new AppError('session_ended', 'x'))).toBe('session_ended');
    expect(failureOutcome(new AppError('identity_inactive', 'x'))).toBe('identity_refused');
    expect(failureOutcome(new AppError('logout_token_invalid', 'x'))).toBe('invalid_token');
    expect(failureOutcome(new AppError('something_new', 'x'))).toBe('error');
    expect(failureOutcome(new Error('provider_unavailable'))).toBe('error');
  });

  it('maps stored revocation reasons onto labels', () => {
    expect(revocationReason('logout')).toBe('logout');
    expect(revocationReason('backchannel-logout')).toBe('backchannel_logout');
    expect(revocationReason('user-deactivated')).toBe('user_deactivated');
    expect(revocationReason('no provider refresh token')).toBe('no_provider_refresh_token');
    expect(revocationReason('anything a provider said')).toBe('other');
  });
});

// ---- access rule ------------------------------------------------------------------------

const TOKEN = 'metrics-token-0123456789abcdef';
const settings = (s: Partial<MetricsAccessSettings>): MetricsAccessSettings => ({ metricsToken: undefined, metricsPort: undefined, production: false, ...s });
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

describe('GET /metrics access', () => {
  beforeEach(() => {
    vi.mocked(crypto.timingSafeEqual).mockClear();
  });

  it.each([
    ['development, nothing set: served without a token', settings({}), {}, false, { allowed: true }],
    ['production, nothing set: not served', settings({ production: true }), {}, false, { allowed: false, status: 404 }],
    ['production, nothing set, even with a token header: not served', settings({ production: true }), bearer(TOKEN), false, { allowed: false, status: 404 }],
    ['token set, right token', settings({ metricsToken: TOKEN, production: true }), bearer(TOKEN), false, { allowed: true }],
    ['token set, lower-case scheme', settings({ metricsToken: TOKEN }), { authorization: `bearer  ${TOKEN} ` }, false, { allowed: true }],
    ['token set, wrong token', settings({ metricsToken: TOKEN, production: true }), bearer(`${TOKEN}x`), false, { allowed: false, status: 401 }],
    ['token set, prefix of the token', settings({ metricsToken: TOKEN }), bearer(TOKEN.slice(0, -1)), false, { allowed: false, status: 401 }],
    ['token set, no header', settings({ metricsToken: TOKEN }), {}, false, { allowed: false, status: 401 }],
    ['token set, other scheme', settings({ metricsToken: TOKEN }), { authorization: `Basic ${TOKEN}` }, false, { allowed: false, status: 401 }],
    ['token set, token in another header', settings({ metricsToken: TOKEN }), { 'authorization-bearer': TOKEN }, false, { allowed: false, status: 401 }],
    ['port set, main port, no token: not served there', settings({ metricsPort: 9464 }), {}, false, { allowed: false, status: 404 }],
    ['port set, main port, development: not served there either', settings({ metricsPort: 0, production: false }), bearer(TOKEN), false, { allowed: false, status: 404 }],
    ['port and token set, main port: token required', settings({ metricsPort: 9464, metricsToken: TOKEN }), {}, false, { allowed: false, status: 401 }],
    ['port and token set, main port, right token', settings({ metricsPort: 9464, metricsToken: TOKEN, production: true }), bearer(TOKEN), false, { allowed: true }],
    ['dedicated port: no token needed', settings({ metricsPort: 9464, production: true }), {}, true, { allowed: true }],
    ['dedicated port with a token configured: still none needed', settings({ metricsPort: 9464, metricsToken: TOKEN }), {}, true, { allowed: true }],
  ])('%s', (_name, s, headers, dedicated, expected) => {
    expect(metricsAccess(headers, s, dedicated)).toEqual(expected);
  });

  it('compares the token in constant time (fixed-length digests through timingSafeEqual)', () => {
    const spy = vi.mocked(crypto.timingSafeEqual);
    expect(metricsAccess(bearer('short'), settings({ metricsToken: TOKEN }), false)).toEqual({ allowed: false, status: 401 });
    expect(metricsAccess(bearer(`${TOKEN}-and-much-longer-than-the-token`), settings({ metricsToken: TOKEN }), false)).toEqual({ allowed: false, status: 401 });
    expect(metricsAccess(bearer(TOKEN), settings({ metricsToken: TOKEN }), false)).toEqual({ allowed: true });
    expect(spy).toHaveBeenCalledTimes(3);
    for (const [a, b] of spy.mock.calls) {
      expect((a as Buffer).length).toBe(32);
      expect((b as Buffer).length).toBe(32);
    }
    expect(tokensEqual(TOKEN, TOKEN)).toBe(true);
    expect(tokensEqual('', TOKEN)).toBe(false);
  });

  it('tells whether the main port serves it at all', () => {
    expect(servedOnMainPort(settings({}))).toBe(true);
    expect(servedOnMainPort(settings({ production: true }))).toBe(false);
    expect(servedOnMainPort(settings({ production: true, metricsToken: TOKEN }))).toBe(true);
    expect(servedOnMainPort(settings({ metricsPort: 0 }))).toBe(false);
  });
});

// ---- the dedicated metrics server -----------------------------------------------------------

describe('dedicated metrics port', () => {
  it('answers GET and HEAD /metrics without a token, 404 to anything else, and closes', async () => {
    const m = new Metrics({ defaultMetrics: false });
    m.login('success');
    const server = await startMetricsServer(0, '127.0.0.1', m, silent);
    try {
      expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
      const res = await fetch(`${server.url}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(sampleValue(parseMetrics(await res.text()), `${P}logins_total`, { outcome: 'success' })).toBe(1);
      const head = await fetch(`${server.url}/metrics`, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(await head.text()).toBe('');
      expect((await fetch(`${server.url}/metrics?x=1`)).status).toBe(200);
      expect((await fetch(`${server.url}/`)).status).toBe(404);
      expect((await fetch(`${server.url}/graphql/`)).status).toBe(404);
      expect((await fetch(`${server.url}/metrics`, { method: 'POST', body: 'x' })).status).toBe(404);
    } finally {
      await server.close();
    }
    await expect(fetch(`${server.url}/metrics`)).rejects.toThrow();
  });
});

// ---- provider calls: outcome and endpoint of real requests ---------------------------------

describe('provider calls through an observed guarded fetch', () => {
  const servers: http.Server[] = [];
  afterAll(async () => {
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  });

  async function serve(handler: http.RequestListener): Promise<string> {
    const server = http.createServer(handler);
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('reports ok, http_4xx, http_5xx, timeout, network_error and invalid_response, passing results through', async () => {
    const origin = await serve((req, res) => {
      if (req.url === '/slow') return void setTimeout(() => res.end('late'), 4000);
      if (req.url === '/redirect') return void res.writeHead(302, { location: '/ok' }).end();
      res.writeHead(req.url === '/missing' ? 404 : req.url === '/broken' ? 503 : 200).end('body');
    });
    const seen: Array<[string | undefined, OutboundOutcome, number]> = [];
    // A time limit generous enough that the quick answers never hit it on a loaded machine.
    const f = observedFetch(createGuardedFetch({ allowPrivateAddresses: true, timeoutMs: 1000 }), (url, outcome, seconds) => seen.push([url?.pathname, outcome, seconds]));
    expect(await (await f(`${origin}/ok`)).text()).toBe('body');
    expect((await f(new URL(`${origin}/missing`))).status).toBe(404);
    expect((await f(new Request(`${origin}/broken`))).status).toBe(503);
    await expect(f(`${origin}/slow`)).rejects.toSatisfy((e) => e instanceof OutboundError && e.kind === 'timeout');
    await expect(f(`${origin}/redirect`)).rejects.toBeInstanceOf(OutboundError);
    await expect(f('http://127.0.0.1:1/refused')).rejects.toSatisfy((e) => e instanceof OutboundError && e.kind === 'network');
    expect(seen.map(([path, outcome]) => [path, outcome])).toEqual([
      ['/ok', 'ok'],
      ['/missing', 'http_4xx'],
      ['/broken', 'http_5xx'],
      ['/slow', 'timeout'],
      ['/redirect', 'invalid_response'],
      ['/refused', 'network_error'],
    ]);
    const slow = seen.find(([p]) => p === '/slow')!;
    expect(slow[2]).toBeGreaterThanOrEqual(0.95);
    expect(slow[2]).toBeLessThan(4);
  });

  it('reports a blocked destination, and an observer that throws changes nothing', async () => {
    const outcomes: OutboundOutcome[] = [];
    const guarded = observedFetch(createGuardedFetch({ allowPrivateAddresses: false }), (_u, o) => outcomes.push(o));
    await expect(guarded('https://127.0.0.1/x')).rejects.toBeInstanceOf(OutboundError);
    await expect(guarded('http://example.com/x')).rejects.toBeInstanceOf(OutboundError);
    expect(outcomes).toEqual(['blocked', 'blocked']);
    const origin = await serve((_req, res) => res.end('fine'));
    const throwing = observedFetch(createGuardedFetch({ allowPrivateAddresses: true }), () => {
      throw new Error('observer bug');
    });
    expect(await (await throwing(`${origin}/`)).text()).toBe('fine');
  });

  it('classifies provider URLs against the metadata', () => {
    const metadata = {
      issuer: 'https://idp.example.com/realms/shop',
      token_endpoint: 'https://idp.example.com/realms/shop/protocol/token',
      jwks_uri: 'https://keys.example.com/certs',
      userinfo_endpoint: 'https://idp.example.com/realms/shop/userinfo',
      introspection_endpoint: 'https://idp.example.com/realms/shop/introspect',
      revocation_endpoint: 'https://idp.example.com/realms/shop/revoke',
    };
    const cases: Array<[string, ProviderEndpoint]> = [
      ['https://idp.example.com/realms/shop/.well-known/openid-configuration', 'discovery'],
      ['https://idp.example.com/.well-known/oauth-authorization-server/realms/shop', 'discovery'],
      ['https://idp.example.com/realms/shop/protocol/token', 'token'],
      ['https://idp.example.com/realms/shop/protocol/token?x=1', 'token'],
      ['https://keys.example.com/certs', 'jwks'],
      ['https://idp.example.com/realms/shop/userinfo', 'userinfo'],
      ['https://idp.example.com/realms/shop/introspect', 'introspection'],
      ['https://idp.example.com/realms/shop/revoke', 'revocation'],
      ['https://idp.example.com/realms/shop/other', 'other'],
      ['https://evil.example.com/realms/shop/protocol/token', 'other'],
    ];
    for (const [url, endpoint] of cases) expect([url, providerEndpointOf(new URL(url), metadata)]).toEqual([url, endpoint]);
    expect(providerEndpointOf(undefined, metadata)).toBe('other');
    expect(providerEndpointOf(new URL('https://idp.example.com/realms/shop/protocol/token'), {})).toBe('other');
  });
});
