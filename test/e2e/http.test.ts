/**
 * The HTTP surface: health, readiness, JWKS, GraphQL status codes, body limit, CORS,
 * request ids, and bad input answered with typed errors (never a crash).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.ts';

let s: TestServer;

beforeAll(async () => {
  s = await startTestServer({ ALLOWED_GRAPHQL_ORIGINS: 'https://shop.example.com,https://*.preview.example.com', MAX_REQUEST_BODY_BYTES: '4096' });
});
afterAll(async () => {
  await s?.close();
});

/** A user (stored) and an access token of ours for it. */
async function userWithToken(email: string) {
  const { upsertStaffUser } = await import('../../src/accounts/users.ts');
  const { CORE_TOKEN_OWNER } = await import('../../src/tokens/jwt.ts');
  const app = s.running.app;
  const user = await upsertStaffUser(app.db.prisma, { email, permissions: [] });
  return { user, token: await app.tokens.mintAccessToken(user, [], CORE_TOKEN_OWNER) };
}

describe('health and keys', () => {
  it('answers /healthz and /readyz', async () => {
    const h = await fetch(`${s.url}/healthz`);
    expect(h.status).toBe(200);
    expect(await h.json()).toEqual({ status: 'ok' });
    const r = await fetch(`${s.url}/readyz`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ status: 'ready' });
  });

  it('publishes an RS256 public key whose kid is its thumbprint', async () => {
    const res = await fetch(`${s.url}/.well-known/jwks.json`);
    expect(res.status).toBe(200);
    const jwks = (await res.json()) as { keys: Array<Record<string, string>> };
    expect(jwks.keys).toHaveLength(1);
    const key = jwks.keys[0]!;
    expect(key['kty']).toBe('RSA');
    expect(key['alg']).toBe('RS256');
    expect(key['d']).toBeUndefined();
    expect(key['p']).toBeUndefined();
    const { calculateJwkThumbprint } = await import('jose');
    expect(key['kid']).toBe(await calculateJwkThumbprint({ kty: 'RSA', n: key['n']!, e: key['e']! }));
  });

  it('answers 404 on unknown paths', async () => {
    expect((await fetch(`${s.url}/nope`)).status).toBe(404);
  });
});

describe('GraphQL over HTTP', () => {
  it('serves /graphql/ and /graphql', async () => {
    for (const p of ['/graphql/', '/graphql']) {
      const res = await fetch(`${s.url}${p}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ me { id } }' }),
      });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ data: { me: null } });
    }
  });

  it('answers a syntax error with 400 and GraphQL errors', async () => {
    const r = await s.gql('{ me { id ');
    expect(r.status).toBe(400);
    expect(r.body.errors?.[0]?.message).toMatch(/Syntax Error/);
  });

  it('answers a validation error with 400', async () => {
    const r = await s.gql('{ me { noSuchField } }');
    expect(r.status).toBe(400);
    expect(r.body.errors?.[0]?.message).toMatch(/noSuchField/);
  });

  it('refuses a mutation with more than 10 root fields (no anonymous write fan-out)', async () => {
    const fields = Array.from({ length: 11 }, (_, i) => `a${i}: externalAuthenticationUrl(pluginId: "x", input: "{}") { errors { code } }`).join(' ');
    const r = await s.gql(`mutation { ${fields} }`);
    expect(r.status).toBe(400);
    expect(r.body.errors?.[0]?.message).toBe('A mutation may select at most 10 root fields, fragments included.');
    const ok = await s.gql(`mutation { ${fields.split(' a10:')[0]} }`);
    expect(ok.status).toBe(200);
  });

  it('answers a body that is not JSON with 400', async () => {
    const res = await fetch(`${s.url}/graphql/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{nope' });
    expect(res.status).toBe(400);
  });

  it('answers a body over the limit with 413', async () => {
    const res = await fetch(`${s.url}/graphql/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: `{ me { id } } # ${'x'.repeat(5000)}` }),
    });
    expect(res.status).toBe(413);
  });

  it('answers application/graphql-response+json when asked', async () => {
    const res = await fetch(`${s.url}/graphql/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
      body: JSON.stringify({ query: '{ me { id } }' }),
    });
    expect(res.headers.get('content-type')).toMatch(/application\/graphql-response\+json/);
  });

  it('echoes X-Request-Id and logs it with the operation name', async () => {
    const res = await fetch(`${s.url}/graphql/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'req-abc-123' },
      body: JSON.stringify({ query: 'query WhoAmI { me { id } }' }),
    });
    expect(res.headers.get('x-request-id')).toBe('req-abc-123');
    const line = s.logs.map((l) => JSON.parse(l)).find((l) => l.requestId === 'req-abc-123' && l.message === 'request');
    expect(line).toMatchObject({ operationName: 'WhoAmI', status: 200, outcome: 'ok', level: 'info' });
    expect(typeof line.durationMs).toBe('number');
  });

  it('logs the principal (user id, never the token) and the client address', async () => {
    const { user, token } = await userWithToken('logged@example.com');
    const res = await fetch(`${s.url}/graphql/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'req-principal-1', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: 'query Me { me { email } }' }),
    });
    expect(((await res.json()) as { data: { me: { email: string } } }).data.me.email).toBe('logged@example.com');
    const line = s.logs.map((l) => JSON.parse(l)).find((l) => l.requestId === 'req-principal-1' && l.message === 'request');
    expect(line).toMatchObject({ principal: `user:${user.id}`, operationName: 'Me', status: 200 });
    expect(line.clientAddress).toMatch(/^(::ffff:)?127\.0\.0\.1$/);
    expect(s.logs.some((l) => l.includes(token))).toBe(false);
    // Anonymous: no principal field.
    await fetch(`${s.url}/graphql/`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'req-anon-1' }, body: '{"query":"{ me { id } }"}' });
    const anon = s.logs.map((l) => JSON.parse(l)).find((l) => l.requestId === 'req-anon-1' && l.message === 'request');
    expect(anon.principal).toBeUndefined();
  });

  it('on one keep-alive connection, answers each request for the token it carries (another user, a refused token, none)', async () => {
    const { Pool } = await import('undici');
    const alice = await userWithToken('conn-alice@example.com');
    const bob = await userWithToken('conn-bob@example.com');
    const pool = new Pool(s.url, { connections: 1, pipelining: 1 });
    let connections = 0;
    pool.on('connect', () => connections++);
    try {
      const me = async (headers: Record<string, string>) => {
        const res = await pool.request({ path: '/graphql/', method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ query: '{ me { email } }' }) });
        return ((await res.body.json()) as { data: { me: { email: string } | null } }).data.me?.email ?? null;
      };
      const sequence: Array<[Record<string, string>, string | null]> = [
        [{ authorization: `Bearer ${alice.token}` }, 'conn-alice@example.com'],
        [{ authorization: `Bearer ${alice.token}` }, 'conn-alice@example.com'],
        [{ authorization: `Bearer ${bob.token}` }, 'conn-bob@example.com'],
        [{}, null],
        [{ authorization: `Bearer ${bob.token}` }, 'conn-bob@example.com'],
        [{ authorization: `Bearer ${bob.token}x` }, null],
        [{ authorization: `Bearer ${bob.token}`, 'authorization-bearer': alice.token }, 'conn-alice@example.com'],
        [{ authorization: `Bearer ${bob.token}` }, 'conn-bob@example.com'],
        [{ authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }, null],
      ];
      const answers: Array<string | null> = [];
      for (let round = 0; round < 3; round++) for (const [headers] of sequence) answers.push(await me(headers));
      expect(answers).toEqual([...sequence, ...sequence, ...sequence].map(([, expected]) => expected));
      expect(connections).toBe(1);
    } finally {
      await pool.close();
    }
  });

  it('a burst of 240 requests for one document over 8 keep-alive connections, mixing two users and no token: each answered for its own token', async () => {
    const { Pool } = await import('undici');
    const alice = await userWithToken('burst-alice@example.com');
    const bob = await userWithToken('burst-bob@example.com');
    const who = [
      { headers: {}, email: null },
      { headers: { authorization: `Bearer ${alice.token}` }, email: 'burst-alice@example.com' },
      { headers: { authorization: `Bearer ${bob.token}` }, email: 'burst-bob@example.com' },
    ];
    const pool = new Pool(s.url, { connections: 8 });
    try {
      const plan = Array.from({ length: 240 }, (_, i) => who[(i * 7 + Math.floor(i / 3)) % 3]!);
      const answers = await Promise.all(
        plan.map(async ({ headers }) => {
          const res = await pool.request({ path: '/graphql/', method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{"query":"query Burst { me { email } }"}' });
          return { status: res.statusCode, email: ((await res.body.json()) as { data: { me: { email: string } | null } }).data.me?.email ?? null };
        }),
      );
      expect(answers).toEqual(plan.map(({ email }) => ({ status: 200, email })));
      expect(new Set(plan.map((p) => p.email)).size).toBe(3);
    } finally {
      await pool.close();
    }
  });

  it('answers a query it has seen before (without Apollo) exactly as the first time: status, content type, body, CORS, request id, log line', async () => {
    const { user, token } = await userWithToken('repeat@example.com');
    const query = 'query Repeat($x: Boolean!) { me @include(if: $x) { email isActive } }';
    for (const accept of [undefined, '*/*', 'application/graphql-response+json']) {
      for (const authorization of [undefined, `Bearer ${token}`]) {
        const seen: Array<{ status: number; type: string | null; cors: string | null; body: string }> = [];
        for (let i = 0; i < 4; i++) {
          const id = `req-repeat-${seen.length}-${Math.random()}`;
          const res = await fetch(`${s.url}/graphql/`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', origin: 'https://shop.example.com', 'x-request-id': id, ...(accept ? { accept } : {}), ...(authorization ? { authorization } : {}) },
            body: JSON.stringify({ query, variables: { x: true } }),
          });
          expect(res.headers.get('x-request-id')).toBe(id);
          seen.push({ status: res.status, type: res.headers.get('content-type'), cors: res.headers.get('access-control-allow-origin'), body: await res.text() });
          const line = s.logs.map((l) => JSON.parse(l)).find((l) => l.requestId === id && l.message === 'request');
          expect(line).toMatchObject({ operationName: 'Repeat', status: 200, ...(authorization ? { principal: `user:${user.id}` } : {}) });
        }
        expect(seen[0]).toEqual({
          status: 200,
          type: accept === 'application/graphql-response+json' ? 'application/graphql-response+json; charset=utf-8' : 'application/json; charset=utf-8',
          cors: 'https://shop.example.com',
          body: `${JSON.stringify({ data: { me: authorization ? { email: 'repeat@example.com', isActive: true } : null } })}\n`,
        });
        for (const later of seen.slice(1)) expect(later).toEqual(seen[0]);
      }
    }
    // A variable of the wrong type, seen before or not, is Apollo's 400 every time.
    for (let i = 0; i < 3; i++) {
      const bad = await s.gql(query, { x: 'yes' });
      expect(bad.status).toBe(400);
      expect(bad.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    }
  });
});

describe('JSONString input', () => {
  const mutation = (input: string) =>
    `mutation { externalAuthenticationUrl(pluginId: "mirumee.authentication.openidconnect", input: ${JSON.stringify(input)}) { authenticationData errors { field code message } } }`;

  it('refuses invalid JSON at validation (400)', async () => {
    const r = await s.gql(mutation('{not json'));
    expect(r.status).toBe(400);
    expect(r.body.errors?.[0]?.message).toMatch(/JSONString/);
  });

  it.each(['[]', '1', '"text"', 'null', 'true'])('answers non-object JSON %s with a typed INVALID error', async (input) => {
    const r = await s.gql(mutation(input));
    expect(r.status).toBe(200);
    expect(r.body.data.externalAuthenticationUrl).toEqual({
      authenticationData: null,
      errors: [{ field: 'input', code: 'INVALID', message: 'Input must be a JSON object.' }],
    });
  });

  it('gives the empty result for an unknown or inactive plugin', async () => {
    for (const pluginId of ['no.such.plugin', 'mirumee.authentication.openidconnect']) {
      const r = await s.gql(
        `mutation($p: String!) {
          a: externalAuthenticationUrl(pluginId: $p, input: "{}") { authenticationData errors { code } }
          b: externalObtainAccessTokens(pluginId: $p, input: "{}") { token refreshToken csrfToken user { id } errors { code } }
          c: externalLogout(pluginId: $p, input: "{}") { logoutData errors { code } }
          d: externalVerify(pluginId: $p, input: "{}") { user { id } isValid verifyData errors { code } }
          e: externalRefresh(pluginId: $p, input: "{}") { token errors { code } }
        }`,
        { p: pluginId },
      );
      expect(r.body.data).toEqual({
        a: { authenticationData: '{}', errors: [] },
        b: { token: null, refreshToken: null, csrfToken: null, user: null, errors: [] },
        c: { logoutData: '{}', errors: [] },
        d: { user: null, isValid: false, verifyData: '{}', errors: [] },
        e: { token: null, errors: [] },
      });
    }
  });
});

describe('CORS', () => {
  it('echoes an allowed origin with credentials', async () => {
    const res = await fetch(`${s.url}/graphql/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: 'https://shop.example.com' },
      body: JSON.stringify({ query: '{ me { id } }' }),
    });
    expect(res.headers.get('access-control-allow-origin')).toBe('https://shop.example.com');
    expect(res.headers.get('access-control-allow-credentials')).toBe('true');
    expect(res.headers.get('vary')).toMatch(/Origin/);
  });

  it('answers a preflight for a wildcard-matched origin', async () => {
    const res = await fetch(`${s.url}/graphql/`, {
      method: 'OPTIONS',
      headers: { origin: 'https://pr-7.preview.example.com', 'access-control-request-method': 'POST' },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('https://pr-7.preview.example.com');
    expect(res.headers.get('access-control-allow-methods')).toBe('POST, GET, OPTIONS');
    const allowed = res.headers.get('access-control-allow-headers')?.toLowerCase() ?? '';
    for (const h of ['authorization', 'authorization-bearer', 'content-type']) expect(allowed).toContain(h);
  });

  it('sends no CORS headers to other origins', async () => {
    const res = await fetch(`${s.url}/graphql/`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example.org', 'access-control-request-method': 'POST' },
    });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
  });
});
