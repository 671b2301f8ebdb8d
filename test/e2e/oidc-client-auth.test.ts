/**
 * Client authentication at a real provider (oidc-provider), OpenID Connect Core §9: for each of
 * client_secret_basic, client_secret_post, client_secret_jwt and private_key_jwt a full login
 * (code exchange) and a refresh; a wrong secret and a key the provider does not know are
 * refused with the typed provider_client_rejected error; the connection's JWKS
 * (GET /oidc/jwks/<pluginId>) serves public keys only; a staged rotation publishes the new key
 * first and signs assertions with it only after the publish window; the first key is created
 * once under concurrency; keys go with their connection.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt, decodeProtectedHeader, type JWK } from 'jose';
import { startTestServer, TEST_SECRET_KEY, type TestServer } from '../helpers/server.ts';
import { startIdp, type TestIdp } from '../helpers/idp.ts';
import { DEFAULT_PLUGIN, REDIRECT_URI, adminToken, configure, connectionValues, externalCall, login } from '../helpers/oidc-flow.ts';
import { ConnectionKeyStore } from '../../src/plugins/openid-connect/client-keys.ts';
import { CLIENT_REJECTED_MESSAGE } from '../../src/plugins/openid-connect/failures.ts';
import { createLogger } from '../../src/log.ts';

/** RFC 6749 §2.3.1: these must be form-urlencoded inside HTTP Basic. */
const BASIC_SECRET = 'a-b+c:d%e f~g';
const JWT_SECRET = 'client-secret-jwt-0123456789abcdef-+:%';
const PUBLISH_SECONDS = 2;

/** plugin id → [IdP client id, method, client secret] */
const CONNECTIONS = {
  [DEFAULT_PLUGIN]: ['basic', 'client_secret_basic', BASIC_SECRET],
  'conn-post': ['post', 'client_secret_post', 'post-secret'],
  'conn-jwt': ['jwt', 'client_secret_jwt', JWT_SECRET],
  'conn-pkjwt': ['pkjwt', 'private_key_jwt', ''],
  'conn-wrong-secret': ['jwt', 'client_secret_jwt', `${JWT_SECRET}-wrong`],
  'conn-wrong-key': ['pkjwt-other', 'private_key_jwt', ''],
} as const;

let s: TestServer;
let idp: TestIdp;
let admin: string;

/** What the provider's token endpoint received: client, grant type, assertion header. */
interface TokenRequest {
  clientId: string | undefined;
  grantType: string;
  assertion: string | undefined;
  ok: boolean;
}
const received: TokenRequest[] = [];

const jwksUrl = (pluginId: string) => `${s.url}/oidc/jwks/${encodeURIComponent(pluginId)}`;

async function createConnection(id: string) {
  const r = await s.gql(
    `mutation($input: OpenIdConnectConnectionCreateInput!) { openIdConnectConnectionCreate(input: $input) { plugin { id } errors { field code message } } }`,
    { input: { id, name: id } },
    { token: admin },
  );
  expect(r.body.data?.openIdConnectConnectionCreate?.errors, JSON.stringify(r.body)).toEqual([]);
}

async function refresh(pluginId: string, refreshToken: string) {
  return externalCall(s, 'externalRefresh', pluginId, { refreshToken });
}

/** The token requests of `clientId` made while `fn` ran. */
async function requestsDuring<T>(clientId: string, fn: () => Promise<T>): Promise<{ result: T; requests: TokenRequest[] }> {
  const before = received.length;
  const result = await fn();
  return { result, requests: received.slice(before).filter((r) => r.clientId === clientId) };
}

const kidOf = (r: TokenRequest) => (r.assertion ? decodeProtectedHeader(r.assertion).kid : undefined);

beforeAll(async () => {
  s = await startTestServer({
    OUTBOUND_ALLOW_PRIVATE_ADDRESSES: 'true',
    OIDC_JWKS_REFETCH_COOLDOWN_SECONDS: '0',
    KEY_ROTATION_PUBLISH_SECONDS: String(PUBLISH_SECONDS),
    // Every refresh asks the provider (no "refreshed a moment ago" shortcut).
    REFRESH_TOKEN_REUSE_INTERVAL_SECONDS: '0',
  });
  admin = await adminToken(s);
  const redirect_uris = [REDIRECT_URI];
  idp = await startIdp({
    clients: [
      { client_id: 'basic', client_secret: BASIC_SECRET, redirect_uris },
      { client_id: 'post', client_secret: 'post-secret', redirect_uris, token_endpoint_auth_method: 'client_secret_post' },
      { client_id: 'jwt', client_secret: JWT_SECRET, redirect_uris, token_endpoint_auth_method: 'client_secret_jwt', token_endpoint_auth_signing_alg: 'HS256' },
      { client_id: 'pkjwt', client_secret: 'unused', redirect_uris, token_endpoint_auth_method: 'private_key_jwt', jwks_uri: jwksUrl('conn-pkjwt') },
      // Registered with another connection's keys: conn-wrong-key signs with a key it does not know.
      { client_id: 'pkjwt-other', client_secret: 'unused', redirect_uris, token_endpoint_auth_method: 'private_key_jwt', jwks_uri: jwksUrl('conn-pkjwt') },
    ],
    accounts: [{ sub: 'alice', email: 'alice@example.com', email_verified: true }],
  });
  const record = (ok: boolean) => (ctx: { oidc?: { params?: Record<string, unknown>; client?: { clientId: string } } }) => {
    const params = ctx.oidc?.params ?? {};
    received.push({
      clientId: ctx.oidc?.client?.clientId ?? (typeof params['client_id'] === 'string' ? params['client_id'] : undefined),
      grantType: String(params['grant_type']),
      assertion: typeof params['client_assertion'] === 'string' ? params['client_assertion'] : undefined,
      ok,
    });
  };
  idp.provider.on('grant.success', record(true));
  idp.provider.on('grant.error', record(false));

  for (const [pluginId, [clientId, method, secret]] of Object.entries(CONNECTIONS)) {
    if (pluginId !== DEFAULT_PLUGIN) await createConnection(pluginId);
    await configure(s, admin, pluginId, { ...connectionValues(idp, clientId, secret), client_secret: secret || null, token_endpoint_auth_method: method });
  }
});

afterAll(async () => {
  await s?.close();
  await idp?.close();
});

describe('each method: a login and a refresh at the real provider', () => {
  it.each([
    [DEFAULT_PLUGIN, 'basic'],
    ['conn-post', 'post'],
    ['conn-jwt', 'jwt'],
    ['conn-pkjwt', 'pkjwt'],
  ] as const)('%s (client %s)', async (pluginId, clientId) => {
    const { result: l, requests: exchange } = await requestsDuring(clientId, () => login(s, idp, pluginId, 'alice'));
    expect(l.errors).toEqual([]);
    expect(l.user.email).toBe('alice@example.com');
    expect(exchange.map((r) => [r.grantType, r.ok])).toEqual([['authorization_code', true]]);

    const { result: r, requests: refreshes } = await requestsDuring(clientId, () => refresh(pluginId, l.refreshToken!));
    expect(r.errors).toEqual([]);
    expect(r.token).toEqual(expect.any(String));
    expect(refreshes.map((x) => [x.grantType, x.ok])).toEqual([['refresh_token', true]]);

    const assertions = [...exchange, ...refreshes].map((x) => x.assertion);
    if (clientId === 'jwt') {
      expect(assertions.map((a) => decodeProtectedHeader(a!).alg)).toEqual(['HS256', 'HS256']);
    } else if (clientId === 'pkjwt') {
      const published = ((await (await fetch(jwksUrl(pluginId))).json()) as { keys: JWK[] }).keys.map((k) => k.kid);
      expect(assertions.map((a) => decodeProtectedHeader(a!))).toEqual([
        { alg: 'RS256', kid: published[0] },
        { alg: 'RS256', kid: published[0] },
      ]);
      expect(decodeJwt(assertions[0]!)).toMatchObject({ iss: 'pkjwt', sub: 'pkjwt', aud: idp.issuer });
    } else {
      expect(assertions).toEqual([undefined, undefined]);
    }
  });
});

describe('refusals', () => {
  it.each([
    ['conn-wrong-secret', 'jwt', 'a wrong client secret (client_secret_jwt)'],
    ['conn-wrong-key', 'pkjwt-other', 'a key the provider does not know (private_key_jwt)'],
  ])('%s: %s → provider_client_rejected', async (pluginId, clientId) => {
    const { result: l, requests } = await requestsDuring(clientId, () => login(s, idp, pluginId, 'alice'));
    expect(l.token).toBeNull();
    expect(l.errors).toEqual([expect.objectContaining({ message: CLIENT_REJECTED_MESSAGE })]);
    expect(requests.map((r) => [r.grantType, r.ok])).toEqual([['authorization_code', false]]);
    // The operator's side: the log names the typed error, the audit the provider's refusal.
    const logged = s.logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((e) => e['pluginId'] === pluginId && e['code'] !== undefined);
    expect(logged.map((e) => e['code'])).toEqual(['provider_client_rejected']);
    const audits = await s.running.app.db.pool.query(`SELECT detail FROM audit_events WHERE plugin_id = $1 AND type = 'login' AND outcome = 'failure'`, [pluginId]);
    expect(audits.rows.map((a) => a.detail.reason)).toEqual([expect.stringMatching(/invalid_client/)]);
  });

  it('a basic secret with - + : % and a space is form-urlencoded (RFC 6749 §2.3.1) and accepted', async () => {
    // The provider decodes form-encoded Basic credentials: a wrong encoding would be refused.
    const l = await login(s, idp, DEFAULT_PLUGIN, 'alice');
    expect(l.errors).toEqual([]);
  });
});

describe('GET /oidc/jwks/<pluginId>', () => {
  it('serves the public key only, as a JWK Set with the cache headers of /.well-known/jwks.json', async () => {
    const res = await fetch(jwksUrl('conn-pkjwt'));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/jwk-set+json');
    const ours = await fetch(`${s.url}/.well-known/jwks.json`);
    expect(res.headers.get('cache-control')).toBe(ours.headers.get('cache-control'));
    const body = (await res.json()) as { keys: JWK[] };
    expect(body.keys).toHaveLength(1);
    expect(Object.keys(body.keys[0]!).sort()).toEqual(['alg', 'e', 'kid', 'kty', 'n', 'use']);
    expect(body.keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig' });
    const text = JSON.stringify(body);
    for (const member of ['"d"', '"p"', '"q"', '"dp"', '"dq"', '"qi"', '"oth"', '"k"']) expect(text).not.toContain(member);
    // The private part is sealed at rest.
    const rows = await s.running.app.db.pool.query(`SELECT public_jwk, private_jwk_encrypted FROM connection_keys WHERE plugin_id = 'conn-pkjwt'`);
    expect(rows.rows).toHaveLength(1);
    expect(rows.rows[0].private_jwk_encrypted).toMatch(/^v1\./);
    expect(rows.rows[0].public_jwk).toEqual(body.keys[0]);
  });

  it('a private_key_jwt connection has its key before its first login (the URL is registered first)', async () => {
    await createConnection('conn-fresh');
    await configure(s, admin, 'conn-fresh', { ...connectionValues(idp, 'fresh', ''), client_secret: null, token_endpoint_auth_method: 'private_key_jwt' });
    const [a, b] = await Promise.all([fetch(jwksUrl('conn-fresh')), fetch(jwksUrl('conn-fresh'))]);
    expect([a.status, b.status]).toEqual([200, 200]);
    const [ka, kb] = [(await a.json()) as { keys: JWK[] }, (await b.json()) as { keys: JWK[] }];
    expect(ka.keys.map((k) => k.kid)).toEqual(kb.keys.map((k) => k.kid));
    expect(ka.keys).toHaveLength(1);
  });

  it('404 for an unknown connection, a connection without keys, or a bad id', async () => {
    for (const url of [jwksUrl('no-such-connection'), jwksUrl('conn-post'), jwksUrl(DEFAULT_PLUGIN), `${s.url}/oidc/jwks/%E0%A4%A`, `${s.url}/oidc/jwks/`]) {
      const res = await fetch(url);
      expect(res.status, url).toBe(404);
      await res.body?.cancel();
    }
    const rows = await s.running.app.db.pool.query(`SELECT count(*)::int AS n FROM connection_keys WHERE plugin_id IN ('conn-post', $1)`, [DEFAULT_PLUGIN]);
    expect(rows.rows[0].n).toBe(0);
  });
});

describe('staged rotation', () => {
  it('publishes the new key first; assertions are signed with it only after the publish window', async () => {
    const keys = s.running.app.connectionKeys;
    const l = await login(s, idp, 'conn-pkjwt', 'alice');
    expect(l.errors).toEqual([]);
    const [oldKid] = ((await (await fetch(jwksUrl('conn-pkjwt'))).json()) as { keys: JWK[] }).keys.map((k) => k.kid);

    // What `npm run cli -- connection-keys rotate conn-pkjwt` does (the CLI test runs it for real).
    const rotation = await keys.rotate('conn-pkjwt');
    expect(rotation.retired).toEqual([oldKid]);
    expect(rotation.signsFrom.getTime() - Date.now()).toBeGreaterThan((PUBLISH_SECONDS - 1) * 1000);
    const during = ((await (await fetch(jwksUrl('conn-pkjwt'))).json()) as { keys: JWK[] }).keys.map((k) => k.kid);
    expect(during).toEqual([rotation.kid, oldKid]);

    // Within the window the old key keeps signing (a provider's cached copy of our JWKS,
    // fetched before the rotation, does not hold the new key yet).
    let refreshToken = l.refreshToken!;
    const inWindow = await requestsDuring('pkjwt', () => refresh('conn-pkjwt', refreshToken));
    expect(inWindow.result.errors).toEqual([]);
    expect(Date.now()).toBeLessThan(rotation.signsFrom.getTime());
    expect(inWindow.requests.map((r) => [kidOf(r), r.ok])).toEqual([[oldKid, true]]);
    refreshToken = inWindow.result.refreshToken;

    await new Promise((r) => setTimeout(r, Math.max(0, rotation.signsFrom.getTime() - Date.now()) + 50));
    // With the default window (KEY_ROTATION_PUBLISH_SECONDS = the JWKS max-age) the provider's
    // copy has expired by now; the test's window is 2 s, so the test expires it.
    const client = await idp.provider.Client.find('pkjwt');
    client.asymmetricKeyStore.freshUntil = 0;
    const jwksFetches = () => s.logs.filter((line) => line.includes('"path":"/oidc/jwks/conn-pkjwt"')).length;
    const fetchesBefore = jwksFetches();
    const after = await requestsDuring('pkjwt', () => refresh('conn-pkjwt', refreshToken));
    expect(after.result.errors).toEqual([]);
    expect(after.requests.map((r) => [kidOf(r), r.ok])).toEqual([[rotation.kid, true]]);
    // It met an unknown kid and fetched our JWKS, which already published the new key.
    expect(jwksFetches()).toBe(fetchesBefore + 1);

    // The old key stays published after the switch (until a day has passed, or the next rotation).
    const published = ((await (await fetch(jwksUrl('conn-pkjwt'))).json()) as { keys: JWK[] }).keys.map((k) => k.kid);
    expect(published).toEqual([rotation.kid, oldKid]);
    const next = await login(s, idp, 'conn-pkjwt', 'alice');
    expect(next.errors).toEqual([]);
  });

  it('a rotation made elsewhere is seen once the cache is invalidated (the CLI publishes { topic: "plugins" })', async () => {
    const log = createLogger('error', {}, () => {});
    let now = Date.now();
    const other = new ConnectionKeyStore(s.running.app.db.prisma, s.running.app.box, { publishSeconds: 300, now: () => now }, log);
    const before = (await other.signingKey('conn-pkjwt')).kid;
    const { kid } = await s.running.app.connectionKeys.rotate('conn-pkjwt');
    other.invalidate();
    expect((await other.signingKey('conn-pkjwt')).kid).toBe(before);
    expect((await other.jwks('conn-pkjwt')).keys.map((k) => k.kid)).toContain(kid);
    now += PUBLISH_SECONDS * 1000 + 1000;
    expect((await other.signingKey('conn-pkjwt')).kid).toBe(kid);
  });
});

/** `npm run cli -- …` for real, against the running server's database. */
function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: s.dataDir, SECRET_KEY: TEST_SECRET_KEY, LOG_LEVEL: 'info', KEY_ROTATION_PUBLISH_SECONDS: '300' };
  delete env['DATABASE_URL'];
  if (s.config.databaseUrl) env['DATABASE_URL'] = s.config.databaseUrl;
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { cwd: fileURLToPath(new URL('../../', import.meta.url)), env, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

describe('npm run cli -- connection-keys rotate <pluginId>', () => {
  it('prints the new kid, which the running server publishes (and signs with after the window)', { timeout: 90_000 }, async () => {
    const r = await cli(['connection-keys', 'rotate', 'conn-fresh']);
    expect(r.code, r.stderr).toBe(0);
    const kid = r.stdout.trim();
    expect(kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // PostgreSQL: the { topic: 'plugins' } invalidation reaches the server at once; the
    // embedded database has no channel between processes: the JWKS is re-read within 5 s.
    const deadline = Date.now() + 8_000;
    let kids: string[] = [];
    while (Date.now() < deadline) {
      kids = ((await (await fetch(jwksUrl('conn-fresh'))).json()) as { keys: JWK[] }).keys.map((k) => k.kid!);
      if (kids.includes(kid)) break;
      await new Promise((res) => setTimeout(res, 250));
    }
    expect(kids[0]).toBe(kid);
    expect(kids).toHaveLength(2);
    const row = await s.running.app.db.pool.query(`SELECT EXTRACT(EPOCH FROM signs_from - created_at)::int AS window FROM connection_keys WHERE kid = $1`, [kid]);
    expect(row.rows[0].window).toBe(300);

    const unknown = await cli(['connection-keys', 'rotate', 'no-such-connection']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('No connection with id no-such-connection.');
  });
});

describe('key store', () => {
  it('creates the first key exactly once when instances race', async () => {
    await createConnection('conn-race');
    const log = createLogger('error', {}, () => {});
    const stores = [0, 1, 2].map(() => new ConnectionKeyStore(s.running.app.db.prisma, s.running.app.box, { publishSeconds: 300 }, log));
    const kids = await Promise.all(stores.flatMap((store) => [store.signingKey('conn-race'), store.signingKey('conn-race')]).map((p) => p.then((k) => k.kid)));
    expect(new Set(kids).size).toBe(1);
    const rows = await s.running.app.db.pool.query(`SELECT kid FROM connection_keys WHERE plugin_id = 'conn-race'`);
    expect(rows.rows.map((r) => r.kid)).toEqual([kids[0]]);
  });

  it('ES256 keys; unknown connections are refused; keys are deleted with their connection', async () => {
    const log = createLogger('error', {}, () => {});
    const store = new ConnectionKeyStore(s.running.app.db.prisma, s.running.app.box, { publishSeconds: 300, algorithm: 'ES256' }, log);
    await createConnection('conn-es');
    const key = await store.signingKey('conn-es');
    expect(key.alg).toBe('ES256');
    expect(Object.keys((await store.jwks('conn-es')).keys[0]!).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    await expect(store.signingKey('never-created')).rejects.toMatchObject({ code: 'UNKNOWN_CONNECTION' });
    await expect(store.rotate('never-created')).rejects.toMatchObject({ code: 'UNKNOWN_CONNECTION' });

    const r = await s.gql(`mutation($id: ID!) { openIdConnectConnectionDelete(id: $id) { errors { field code message } } }`, { id: 'conn-es' }, { token: admin });
    expect(r.body.data?.openIdConnectConnectionDelete?.errors, JSON.stringify(r.body)).toEqual([]);
    const rows = await s.running.app.db.pool.query(`SELECT count(*)::int AS n FROM connection_keys WHERE plugin_id = 'conn-es'`);
    expect(rows.rows[0].n).toBe(0);
    const res = await fetch(jwksUrl('conn-es'));
    expect(res.status).toBe(404);
    await res.body?.cancel();
  });

  it('never logs a secret, a private key or an assertion', () => {
    const logs = s.logs.join('\n');
    for (const secret of [BASIC_SECRET, JWT_SECRET, 'post-secret']) expect(logs).not.toContain(secret);
    for (const r of received) if (r.assertion) expect(logs).not.toContain(r.assertion.split('.')[2]);
    expect(logs).not.toMatch(/"d":"/);
  });
});
