/**
 * Connection configuration (issue 10): discovery always runs when `issuer_url` is set and the
 * explicit endpoint fields override what it finds; a failing discovery is survived when the
 * explicit authorization, token and JWKS URLs are all set (logged once), and is a
 * provider-unavailable error otherwise; `introspection_url` / `revocation_url`; and the issuer
 * check made by pluginUpdate before a connection is activated (or its issuer changes), which
 * refuses an unreachable issuer, a discovery document that is not JSON or not valid, and a
 * mismatching issuer, on field `issuerUrl`, saving nothing.
 *
 * One real server, one real provider (oidc-provider, test/helpers/idp.ts) whose discovery
 * answer a Koa middleware can break, one hand-written provider (test/helpers/fake-provider.ts)
 * for documents naming another issuer, and a small counting proxy in front of the real
 * provider (to see which endpoint URL the server really used). Each test uses its own
 * connection (openIdConnectConnectionCreate), so they do not share provider caches.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { startIdp, type TestIdp } from '../helpers/idp.ts';
import { startFakeProvider, type FakeProvider } from '../helpers/fake-provider.ts';
import { REDIRECT_URI, adminToken, authenticationUrl, login } from '../helpers/oidc-flow.ts';
import { UNAVAILABLE_MESSAGE } from '../../src/plugins/openid-connect/failures.ts';
import type { OidcConnection } from '../../src/plugins/openid-connect/connection.ts';

const CLIENT_ID = 'shop';
const CLIENT_SECRET = 'shop-client-secret-42';
const AUDIENCE = 'https://api.example.com';
const WELL_KNOWN = '/.well-known/openid-configuration';
const ME = '{ me { email isStaff userPermissions { code } } }';

let s: TestServer;
let idp: TestIdp;
let fake: FakeProvider;
let admin: string;
/** How the real provider answers discovery (a middleware in front of oidc-provider's route). */
let discoveryMode: 'ok' | 'http-500' | 'garbage' = 'ok';
let proxy: { url: string; counts: Map<string, number>; close(): Promise<void> };
let closedPort: number;

/**
 * A forwarding proxy to the real provider that counts requests by path; under `/html`,
 * `/notjson` and `/slow` it serves broken (or late) discovery documents of its own.
 */
async function startProxy(target: string) {
  const counts = new Map<string, number>();
  const server = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://x');
      counts.set(url.pathname, (counts.get(url.pathname) ?? 0) + 1);
      if (url.pathname === `/html${WELL_KNOWN}`) {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body>Welcome to our portal</body></html>');
        return;
      }
      if (url.pathname === `/slow${WELL_KNOWN}`) {
        const t = setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'), 5000);
        res.on('close', () => clearTimeout(t));
        return;
      }
      if (url.pathname === `/notjson${WELL_KNOWN}`) {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"issuer": "oops');
        return;
      }
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const headers: Record<string, string> = {};
      for (const name of ['authorization', 'content-type', 'accept']) {
        const v = req.headers[name];
        if (typeof v === 'string') headers[name] = v;
      }
      const answer = await fetch(`${target}${url.pathname}${url.search}`, {
        method: req.method ?? 'GET',
        headers,
        ...(chunks.length ? { body: Buffer.concat(chunks) } : {}),
        redirect: 'manual',
      });
      const out: Record<string, string> = {};
      answer.headers.forEach((v, k) => {
        if (!['content-length', 'content-encoding', 'transfer-encoding', 'connection', 'keep-alive'].includes(k)) out[k] = v;
      });
      res.writeHead(answer.status, out).end(Buffer.from(await answer.arrayBuffer()));
    })().catch((e: unknown) => {
      if (!res.headersSent) res.writeHead(502).end(String(e));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    counts,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

beforeAll(async () => {
  idp = await startIdp({
    clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI] }],
    accounts: [
      { sub: 'alice', email: 'alice@example.com', email_verified: true, given_name: 'Alice' },
      { sub: 'bob', email: 'bob@example.com', email_verified: true, given_name: 'Bob' },
    ],
  });
  // The provider's discovery answer is made controllable by wrapping its HTTP handler: the
  // helper builds the handler (Koa `callback()`) again when the keys rotate, so the wrapper is
  // put on the prototype for that one moment (and removed at once).
  const proto = Object.getPrototypeOf(idp.provider) as { callback: () => http.RequestListener };
  const own = Object.prototype.hasOwnProperty.call(proto, 'callback');
  const original = proto.callback;
  proto.callback = function (this: unknown) {
    const inner = original.call(this);
    return (req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (path !== WELL_KNOWN || discoveryMode === 'ok') return inner(req, res);
      if (discoveryMode === 'http-500') res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error');
      else res.writeHead(200, { 'content-type': 'text/html' }).end('<html>maintenance</html>');
    };
  };
  try {
    await idp.rotateKeys({ keepOld: true });
  } finally {
    if (own) proto.callback = original;
    else delete (proto as { callback?: unknown }).callback;
  }
  fake = await startFakeProvider();
  proxy = await startProxy(idp.issuer);
  closedPort = await freePort();
  s = await startTestServer({ OUTBOUND_ALLOW_PRIVATE_ADDRESSES: 'true', OUTBOUND_TIMEOUT_MS: '1500' });
  admin = await adminToken(s);
});

afterAll(async () => {
  await s?.close();
  await proxy?.close();
  await fake?.close();
  await idp?.close();
});

afterEach(() => {
  discoveryMode = 'ok';
});

// ---- helpers ---------------------------------------------------------------------------------

interface ErrorOut {
  field: string | null;
  code: string;
  message: string;
}

let created = 0;

/** A new, inactive connection (openIdConnectConnectionCreate). */
async function newConnection(): Promise<string> {
  const id = `oidc.config-${++created}`;
  const r = await s.gql(
    `mutation($input: OpenIdConnectConnectionCreateInput!) { openIdConnectConnectionCreate(input: $input) { plugin { id } errors { field code message } } }`,
    { input: { id, name: `Connection ${created}` } },
    { token: admin },
  );
  expect(r.body.data.openIdConnectConnectionCreate.errors).toEqual([]);
  return id;
}

async function update(id: string, values: Record<string, string | null>, active: boolean | null = true) {
  const r = await s.gql(
    `mutation($id: ID!, $input: PluginUpdateInput!) { pluginUpdate(id: $id, input: $input) { plugin { id globalConfiguration { active } } errors { field code message } } }`,
    { id, input: { active, configuration: Object.entries(values).map(([name, value]) => ({ name, value })) } },
    { token: admin },
  );
  expect(r.status).toBe(200);
  expect(r.body.errors).toBeUndefined();
  expect(JSON.stringify(r.body)).not.toContain(CLIENT_SECRET);
  return r.body.data.pluginUpdate as { plugin: { id: string; globalConfiguration: { active: boolean } } | null; errors: ErrorOut[] };
}

async function configureOk(id: string, values: Record<string, string | null>) {
  const out = await update(id, values);
  expect(out.errors).toEqual([]);
  expect(out.plugin!.globalConfiguration.active).toBe(true);
}

async function readBack(id: string) {
  const r = await s.gql(
    `query($id: ID!) { plugin(id: $id) { globalConfiguration { active configuration { name value } } } }`,
    { id },
    { token: admin },
  );
  const g = r.body.data.plugin.globalConfiguration;
  return {
    active: g.active as boolean,
    values: Object.fromEntries(g.configuration.map((c: { name: string; value: string | null }) => [c.name, c.value])) as Record<string, string | null>,
  };
}

async function dbRow(id: string) {
  const r = await s.running.app.db.pool.query('SELECT id, active, configuration, updated_at FROM plugin_configurations WHERE id = $1', [id]);
  expect(r.rows).toHaveLength(1);
  return r.rows[0];
}

/** The basics of a connection to the real provider. */
function base(extra: Record<string, string | null> = {}): Record<string, string | null> {
  return {
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    allowed_redirect_uris: REDIRECT_URI,
    ...extra,
  };
}

/** Every Saleor endpoint field, pointing at the real provider (no discovery needed). */
function explicitEndpoints(extra: Record<string, string | null> = {}): Record<string, string | null> {
  return {
    oauth_authorization_url: `${idp.issuer}/auth`,
    oauth_token_url: `${idp.issuer}/token`,
    json_web_key_set_url: `${idp.issuer}/jwks`,
    user_info_url: `${idp.issuer}/me`,
    oauth_logout_url: `${idp.issuer}/session/end`,
    ...extra,
  };
}

const discoveries = () => idp.counts()[WELL_KNOWN] ?? 0;
const introspections = () => idp.counts()['/token/introspection'] ?? 0;

async function me(token: string) {
  const r = await s.gql(ME, undefined, { token });
  expect(r.status).toBe(200);
  expect(r.body.errors).toBeUndefined();
  return r.body.data.me;
}

async function connectionInstance(id: string): Promise<OidcConnection> {
  return (await s.running.app.plugins.active(id)) as OidcConnection;
}

function logLines(): Array<Record<string, any>> {
  return s.logs.map((l) => JSON.parse(l) as Record<string, any>);
}

// ---- discovery with explicit endpoints --------------------------------------------------------

describe('Saleor-style configuration (every endpoint field) with an issuer', () => {
  it('validates opaque tokens with an audience by introspection found through discovery', async () => {
    const id = await newConnection();
    await configureOk(
      id,
      base({
        issuer_url: idp.issuer,
        ...explicitEndpoints(),
        audience: AUDIENCE,
        use_oauth_scope_permissions: 'true',
        accept_opaque_bearer_tokens: 'true',
      }),
    );
    try {
      // Bob logs in once (links his identity), through the explicit endpoints.
      const session = await login(s, idp, id, 'bob');
      expect(session.errors).toEqual([]);
      const opaque = await idp.issueAccessToken({ sub: 'bob', clientId: CLIENT_ID, scope: 'saleor:manage_staff', resource: AUDIENCE, format: 'opaque' });
      expect(opaque.split('.')).toHaveLength(1);
      const before = introspections();
      expect(await me(opaque)).toEqual({ email: 'bob@example.com', isStaff: true, userPermissions: [{ code: 'MANAGE_STAFF' }] });
      expect(introspections()).toBe(before + 1);
      const metadata = (await (await connectionInstance(id)).oidcProvider.get()).metadata;
      expect(metadata.introspection_endpoint).toBe(`${idp.issuer}/token/introspection`);
      expect(metadata.token_endpoint).toBe(`${idp.issuer}/token`);
    } finally {
      await update(id, {}, false);
    }
  });

  it('refuses such an opaque token for another audience (introspection still decides)', async () => {
    const id = await newConnection();
    await configureOk(id, base({ issuer_url: idp.issuer, ...explicitEndpoints(), audience: AUDIENCE, accept_opaque_bearer_tokens: 'true' }));
    try {
      const opaque = await idp.issueAccessToken({ sub: 'bob', clientId: CLIENT_ID, scope: 'saleor:manage_staff', resource: 'https://elsewhere.example.com', format: 'opaque' });
      expect(await me(opaque)).toBeNull();
    } finally {
      await update(id, {}, false);
    }
  });

  it('uses an explicit field over the discovered endpoint (token URL through a counting proxy)', async () => {
    const id = await newConnection();
    await configureOk(id, base({ issuer_url: idp.issuer, oauth_token_url: `${proxy.url}/token` }));
    const before = proxy.counts.get('/token') ?? 0;
    const session = await login(s, idp, id, 'alice');
    expect(session.errors).toEqual([]);
    expect(session.user.email).toBe('alice@example.com');
    expect(proxy.counts.get('/token') ?? 0).toBe(before + 1);
    const metadata = (await (await connectionInstance(id)).oidcProvider.get()).metadata;
    // The rest came from discovery.
    expect(metadata.token_endpoint).toBe(`${proxy.url}/token`);
    expect(metadata.authorization_endpoint).toBe(`${idp.issuer}/auth`);
    expect(metadata.introspection_endpoint).toBe(`${idp.issuer}/token/introspection`);
    await update(id, {}, false);
  });
});

describe('discovery failing at run time', () => {
  it('with complete explicit fields: login still works, and a warning says why, once', async () => {
    const id = await newConnection();
    await configureOk(id, base({ issuer_url: idp.issuer, ...explicitEndpoints() }));
    discoveryMode = 'http-500';
    const before = discoveries();
    const first = await login(s, idp, id, 'alice');
    expect(first.errors).toEqual([]);
    expect(first.user.email).toBe('alice@example.com');
    expect(discoveries()).toBeGreaterThan(before);
    const second = await login(s, idp, id, 'alice');
    expect(second.errors).toEqual([]);
    const warnings = logLines().filter((l) => l['message'] === 'OpenID discovery failed; using the configured endpoints' && l['pluginId'] === id);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 'warn', issuer: idp.issuer });
    expect(warnings[0]!['reason']).toMatch(/HTTP 500/);
    await update(id, {}, false);
  });

  it('with complete explicit fields and a non-JSON answer: login works, the warning names it', async () => {
    const id = await newConnection();
    await configureOk(id, base({ issuer_url: idp.issuer, ...explicitEndpoints() }));
    discoveryMode = 'garbage';
    const session = await login(s, idp, id, 'bob');
    expect(session.errors).toEqual([]);
    const warnings = logLines().filter((l) => l['message'] === 'OpenID discovery failed; using the configured endpoints' && l['pluginId'] === id);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!['reason']).toMatch(/not JSON/);
    await update(id, {}, false);
  });

  it('with incomplete explicit fields: a typed provider-unavailable error', async () => {
    const id = await newConnection();
    // The token URL alone: not enough to work without discovery.
    await configureOk(id, base({ issuer_url: idp.issuer, oauth_token_url: `${idp.issuer}/token` }));
    discoveryMode = 'http-500';
    const auth = await authenticationUrl(s, id, { redirectUri: REDIRECT_URI });
    expect(auth.authenticationData).toBeNull();
    expect(auth.errors).toEqual([{ field: 'redirectUri', code: 'INVALID', message: UNAVAILABLE_MESSAGE }]);
    expect(logLines().some((l) => l['message'] === 'OpenID discovery failed; using the configured endpoints' && l['pluginId'] === id)).toBe(false);
    await update(id, {}, false);
  });
});

// ---- introspection_url / revocation_url -------------------------------------------------------

describe('introspection_url and revocation_url', () => {
  it('are read back like the other fields, and cleared with an empty value', async () => {
    const id = await newConnection();
    const out = await update(id, { introspection_url: `${proxy.url}/token/introspection`, revocation_url: `${proxy.url}/token/revocation` }, null);
    expect(out.errors).toEqual([]);
    let back = await readBack(id);
    expect(back.values['introspection_url']).toBe(`${proxy.url}/token/introspection`);
    expect(back.values['revocation_url']).toBe(`${proxy.url}/token/revocation`);
    const names = Object.keys(back.values);
    expect(names.indexOf('introspection_url')).toBe(names.indexOf('user_info_url') + 1);
    expect(names.indexOf('revocation_url')).toBe(names.indexOf('user_info_url') + 2);
    expect((await dbRow(id)).configuration['introspection_url']).toBe(`${proxy.url}/token/introspection`);
    await update(id, { introspection_url: '', revocation_url: '' }, null);
    back = await readBack(id);
    expect(back.values['introspection_url']).toBeNull();
    expect(back.values['revocation_url']).toBeNull();
  });

  it('refuses an introspection or revocation URL that is not a URL, saving nothing', async () => {
    const id = await newConnection();
    const before = await dbRow(id);
    for (const [name, field, value] of [
      ['introspection_url', 'introspectionUrl', 'not a url'],
      ['revocation_url', 'revocationUrl', 'ftp://idp.example.com/revoke'],
    ] as const) {
      const out = await update(id, base({ issuer_url: idp.issuer, [name]: value }));
      expect(out.plugin).toBeNull();
      expect(out.errors).toEqual([{ field, code: 'PLUGIN_MISCONFIGURED', message: expect.stringMatching(/not a valid URL/) }]);
    }
    expect(await dbRow(id)).toEqual(before);
  });

  it('an explicit introspection URL validates opaque tokens when discovery is down (it overrides the discovered one)', async () => {
    const id = await newConnection();
    await configureOk(
      id,
      base({
        issuer_url: idp.issuer,
        ...explicitEndpoints(),
        introspection_url: `${proxy.url}/token/introspection`,
        revocation_url: `${proxy.url}/token/revocation`,
        audience: AUDIENCE,
        accept_opaque_bearer_tokens: 'true',
      }),
    );
    try {
      const session = await login(s, idp, id, 'alice');
      expect(session.errors).toEqual([]);
      discoveryMode = 'http-500';
      // A new instance (a configuration change) forgets the metadata it had: discovery again.
      await configureOk(id, { use_oauth_scope_permissions: 'true' });
      const opaque = await idp.issueAccessToken({ sub: 'alice', clientId: CLIENT_ID, scope: 'saleor:manage_users', resource: AUDIENCE, format: 'opaque' });
      const before = proxy.counts.get('/token/introspection') ?? 0;
      expect(await me(opaque)).toEqual({ email: 'alice@example.com', isStaff: true, userPermissions: [{ code: 'MANAGE_USERS' }] });
      expect(proxy.counts.get('/token/introspection') ?? 0).toBe(before + 1);
      const resolved = await (await connectionInstance(id)).oidcProvider.get();
      expect(resolved.fallback).toBe(true);
      expect(resolved.metadata.introspection_endpoint).toBe(`${proxy.url}/token/introspection`);
      // Nothing revokes at the provider yet; the merged metadata carries the configured URL.
      expect(resolved.metadata.revocation_endpoint).toBe(`${proxy.url}/token/revocation`);
    } finally {
      discoveryMode = 'ok';
      await update(id, {}, false);
    }
  });

  it('without an explicit introspection URL and without discovery, an opaque token with an audience is refused', async () => {
    const id = await newConnection();
    await configureOk(id, base({ issuer_url: idp.issuer, ...explicitEndpoints(), audience: AUDIENCE, accept_opaque_bearer_tokens: 'true' }));
    try {
      discoveryMode = 'http-500';
      const opaque = await idp.issueAccessToken({ sub: 'alice', clientId: CLIENT_ID, scope: 'saleor:manage_users', resource: AUDIENCE, format: 'opaque' });
      expect(await me(opaque)).toBeNull();
    } finally {
      discoveryMode = 'ok';
      await update(id, {}, false);
    }
  });
});

// ---- the issuer check of pluginUpdate ---------------------------------------------------------

describe('pluginUpdate checks the issuer before activating', () => {
  /** Activation with `issuerUrl` refused for `reason`, and nothing saved. */
  async function expectRefused(id: string, values: Record<string, string | null>, reason: RegExp) {
    const rowBefore = await dbRow(id);
    const readBefore = await readBack(id);
    const out = await update(id, values);
    expect(out.plugin).toBeNull();
    expect(out.errors).toEqual([{ field: 'issuerUrl', code: 'PLUGIN_MISCONFIGURED', message: expect.stringMatching(reason) }]);
    expect(out.errors[0]!.message).not.toContain(CLIENT_SECRET);
    expect(await readBack(id)).toEqual(readBefore);
    expect(await dbRow(id)).toEqual(rowBefore);
    const count = await s.running.app.db.pool.query('SELECT count(*)::int AS n FROM plugin_configurations WHERE id = $1', [id]);
    expect(count.rows[0].n).toBe(1);
    return out.errors[0]!.message;
  }

  it('refuses an unreachable issuer (closed port)', async () => {
    const id = await newConnection();
    const issuer = `http://127.0.0.1:${closedPort}`;
    const message = await expectRefused(id, base({ issuer_url: issuer }), /could not be reached/);
    expect(message).toContain(issuer);
    const back = await readBack(id);
    expect(back.active).toBe(false);
    expect(back.values['issuer_url']).toBeNull();
    expect(back.values['client_id']).toBeNull();
  });

  it('refuses a discovery document naming another issuer', async () => {
    const id = await newConnection();
    fake.discoveryOverrides.set('/tenant-a', { issuer: 'https://login.other.example.com' });
    await expectRefused(id, base({ issuer_url: `${fake.issuer}/tenant-a` }), /names the issuer "https:\/\/login\.other\.example\.com", not "http:\/\/127\.0\.0\.1:\d+\/tenant-a"/);
  });

  it('refuses an issuer whose discovery answers HTML, or broken JSON', async () => {
    const id = await newConnection();
    await expectRefused(id, base({ issuer_url: `${proxy.url}/html` }), /not JSON/);
    await expectRefused(id, base({ issuer_url: `${proxy.url}/notjson` }), /not JSON/);
  });

  it('refuses an issuer whose discovery answers HTTP 500', async () => {
    const id = await newConnection();
    discoveryMode = 'http-500';
    await expectRefused(id, base({ issuer_url: idp.issuer }), /HTTP 500/);
  });

  it('refuses a discovery document that is not valid (no issuer), or lacks an endpoint nobody configured', async () => {
    const id = await newConnection();
    fake.discoveryOverrides.set('/no-issuer', { issuer: 42 });
    await expectRefused(id, base({ issuer_url: `${fake.issuer}/no-issuer` }), /not valid/);
    fake.discoveryOverrides.set('/no-jwks', { jwks_uri: undefined });
    await expectRefused(id, base({ issuer_url: `${fake.issuer}/no-jwks` }), /has no jwks_uri/);
    // ... which the JWKS URL field can supply.
    await configureOk(id, base({ issuer_url: `${fake.issuer}/no-jwks`, json_web_key_set_url: `${fake.issuer}/jwks` }));
    await update(id, {}, false);
  });

  it('activates with a good issuer (one discovery), and does not fetch it again for other changes', async () => {
    const id = await newConnection();
    let before = discoveries();
    await configureOk(id, base({ issuer_url: idp.issuer }));
    expect(discoveries()).toBe(before + 1);
    const row = await dbRow(id);
    expect(row.active).toBe(true);
    expect(row.configuration['issuer_url']).toBe(idp.issuer);

    before = discoveries();
    await configureOk(id, { staff_user_domains: 'example.com' });
    expect(discoveries()).toBe(before);
    expect((await readBack(id)).values['staff_user_domains']).toBe('example.com');

    // Changing the issuer of an active connection is checked again: a bad one is refused...
    const message = await expectRefused(id, { issuer_url: `http://127.0.0.1:${closedPort}` }, /could not be reached/);
    expect(message).not.toContain(CLIENT_SECRET);
    const back = await readBack(id);
    expect(back.active).toBe(true);
    expect(back.values['issuer_url']).toBe(idp.issuer);

    // ...and deactivating fetches nothing (an inactive connection may point anywhere).
    before = discoveries();
    const off = await update(id, { issuer_url: `http://127.0.0.1:${closedPort}` }, false);
    expect(off.errors).toEqual([]);
    expect(off.plugin!.globalConfiguration.active).toBe(false);
    expect(discoveries()).toBe(before);
  });

  it("checks the issuer through the plugin's guarded fetch (its time limit)", async () => {
    const id = await newConnection();
    const started = Date.now();
    await expectRefused(id, base({ issuer_url: `${proxy.url}/slow` }), /could not be reached \(.*time/i);
    // OUTBOUND_TIMEOUT_MS is 1500; the proxy would answer after 5 s.
    expect(Date.now() - started).toBeLessThan(4500);
  });
});

describe('logs', () => {
  it('never contain the client secret', () => {
    expect(s.logs.join('\n')).not.toContain(CLIENT_SECRET);
  });
});
