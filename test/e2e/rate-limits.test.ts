/**
 * Rate limits (issue 8): login starts, code exchanges, refreshes, verifies and the back-channel
 * logout endpoint spend RATE_LIMIT_PER_IP_PER_MINUTE points per client address; over the limit
 * the answer is HTTP 429 with Retry-After and nothing of the operation runs. Counted in memory,
 * or in Redis (shared by every instance) when REDIS_URL is set, with an in-memory stand-in when
 * Redis is unreachable. The client address honours TRUST_PROXY; without it X-Forwarded-For is
 * ignored. Client addresses are random per run, so runs sharing one Redis never collide.
 */
import { randomInt } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { DEFAULT_PLUGIN } from '../helpers/oidc-flow.ts';

const LIMIT = 5;
const REDIS_URL = process.env['TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const START = `externalAuthenticationUrl(pluginId: "${DEFAULT_PLUGIN}", input: "{}") { errors { code } }`;

let memory: TestServer;
let direct: TestServer;
let redisA: TestServer;
let redisB: TestServer;
let redisDown: TestServer;

const randomIp = () => `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;
const from = (ip: string) => ({ headers: { 'x-forwarded-for': `${randomIp()}, ${ip}` } });

async function start(server: TestServer, ip: string) {
  return server.gql(`mutation { ${START} }`, undefined, from(ip));
}

beforeAll(async () => {
  const env = { RATE_LIMIT_PER_IP_PER_MINUTE: String(LIMIT), TRUST_PROXY: '1' };
  [memory, direct, redisA, redisB, redisDown] = await Promise.all([
    startTestServer(env),
    startTestServer({ RATE_LIMIT_PER_IP_PER_MINUTE: String(LIMIT) }),
    startTestServer({ ...env, REDIS_URL }),
    startTestServer({ ...env, REDIS_URL }),
    startTestServer({ ...env, REDIS_URL: 'redis://127.0.0.1:1' }),
  ]);
});
afterAll(async () => {
  await Promise.all([memory, direct, redisA, redisB, redisDown].map((s) => s?.close()));
});

function expectTooMany(r: Awaited<ReturnType<TestServer['gql']>>) {
  expect(r.status).toBe(429);
  const retryAfter = Number(r.headers.get('retry-after'));
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
  expect(r.body.data).toBeUndefined();
  expect(r.body.errors?.[0]?.extensions?.['code']).toBe('TOO_MANY_REQUESTS');
}

describe.each([
  ['in memory', () => memory],
  ['in Redis', () => redisA],
  ['with Redis unreachable (in-memory stand-in)', () => redisDown],
])('counted %s', (_name, server) => {
  it(`answers 429 with Retry-After after ${LIMIT} login starts from one client, and not for another`, async () => {
    const ip = randomIp();
    for (let i = 0; i < LIMIT; i++) {
      const r = await start(server(), ip);
      expect(r.status).toBe(200);
      expect(r.body.data.externalAuthenticationUrl.errors).toEqual([]);
    }
    expectTooMany(await start(server(), ip));
    const other = await start(server(), randomIp());
    expect(other.status).toBe(200);
  });

  it('counts every rate-limited field of a mutation, fragments included; queries are not limited', async () => {
    const ip = randomIp();
    const verify = 'tokenVerify(token: "junk") { isValid }';
    const three = await server().gql(`mutation { a: ${verify} ...F } fragment F on Mutation { b: ${verify} c: externalVerify(pluginId: "x", input: "{}") { isValid } }`, undefined, from(ip));
    expect(three.status).toBe(200);
    expect(three.body.data.a.isValid).toBe(false);
    const two = await server().gql(`mutation { a: ${verify} b: tokenRefresh(refreshToken: "junk") { token } }`, undefined, from(ip));
    expect(two.status).toBe(200);
    for (let i = 0; i < 20; i++) expect((await server().gql('{ me { id } }', undefined, from(ip))).status).toBe(200);
    expectTooMany(await server().gql(`mutation { ${verify} }`, undefined, from(ip)));
  });
});

it('shares the counters of one client between instances through Redis', async () => {
  const ip = randomIp();
  for (let i = 0; i < 3; i++) expect((await start(redisA, ip)).status).toBe(200);
  for (let i = 0; i < 2; i++) expect((await start(redisB, ip)).status).toBe(200);
  expectTooMany(await start(redisB, ip));
  expectTooMany(await start(redisA, ip));
});

it('limits the back-channel logout endpoint per client', async () => {
  const ip = randomIp();
  const post = () =>
    fetch(`${memory.url}/oidc/backchannel-logout/${DEFAULT_PLUGIN}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': ip },
      body: 'logout_token=junk',
    });
  for (let i = 0; i < LIMIT; i++) expect((await post()).status).toBe(400);
  const over = await post();
  expect(over.status).toBe(429);
  expect(Number(over.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  expect(over.headers.get('cache-control')).toBe('no-store');
});

it('ignores X-Forwarded-For unless TRUST_PROXY says a proxy is in front', async () => {
  // Every request comes from 127.0.0.1; spoofed X-Forwarded-For values do not make new clients.
  for (let i = 0; i < LIMIT; i++) expect((await start(direct, randomIp())).status).toBe(200);
  expectTooMany(await start(direct, randomIp()));
});
