/**
 * Plugin administration over HTTP: `plugins`, `plugin(id)` and `pluginUpdate` (permission
 * checks, read-back masking, updates, validation on activation, encryption at rest, audit
 * trail) and `shop.availableExternalAuthentications`. One real server; the tests run in
 * order and build on each other's state (the plugin starts unconfigured and inactive).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upsertStaffUser } from '../../src/accounts/users.ts';
import { CORE_TOKEN_OWNER } from '../../src/tokens/jwt.ts';
import { OIDC_FIELDS } from '../../src/plugins/openid-connect/settings.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { startFakeProvider, type FakeProvider } from '../helpers/fake-provider.ts';

const PID = 'mirumee.authentication.openidconnect';
const SECRET = 'supersecretvalue123';
const SECRET2 = 'another-secret-value-9876';

/** The field names of src/plugins/openid-connect/settings.ts, in order. */
const FIELD_NAMES = OIDC_FIELDS.map((f) => f.name);

/** Saleor's fields (contract section 6), in Saleor's order, and ours from section 7. */
const SALEOR_FIELD_NAMES = [
  'client_id',
  'client_secret',
  'enable_refresh_token',
  'oauth_authorization_url',
  'oauth_token_url',
  'json_web_key_set_url',
  'oauth_logout_url',
  'user_info_url',
  'audience',
  'use_oauth_scope_permissions',
  'staff_user_domains',
  'default_group_name_for_new_staff_users',
];
const OUR_FIELD_NAMES = ['issuer_url', 'allowed_redirect_uris', 'allowed_post_logout_redirect_uris'];

const DENIED = 'You need one of the following permissions: MANAGE_PLUGINS';

const PLUGIN_FIELDS = `id name description
  globalConfiguration { active configuration { name value type label helpText } }
  channelConfigurations { active }`;

const UPDATE = `mutation Update($id: ID!, $input: PluginUpdateInput!) {
  pluginUpdate(id: $id, input: $input) {
    plugin { ${PLUGIN_FIELDS} }
    errors { field code message }
    pluginsErrors { field code message }
  }
}`;

interface ConfigItem {
  name: string;
  value: string | null;
  type: string;
  label: string;
  helpText: string;
}
interface PluginOut {
  id: string;
  name: string;
  description: string;
  globalConfiguration: { active: boolean; configuration: ConfigItem[] };
  channelConfigurations: unknown[];
}
interface ErrorOut {
  field: string | null;
  code: string;
  message: string;
}
interface UpdateOut {
  plugin: PluginOut | null;
  errors: ErrorOut[];
  pluginsErrors: ErrorOut[];
}

type Item = { name: string; value: string | null };

let s: TestServer;
/** The issuer the plugin is activated with (activation fetches its discovery document). */
let idp: FakeProvider;
let adminId: number;
let adminToken: string;
let usersToken: string;

beforeAll(async () => {
  idp = await startFakeProvider();
  s = await startTestServer({ OUTBOUND_ALLOW_PRIVATE_ADDRESSES: 'true' });
  const app = s.running.app;
  const admin = await upsertStaffUser(app.db.prisma, { email: 'admin@example.com', permissions: ['MANAGE_PLUGINS'] });
  adminId = admin.id;
  adminToken = await app.tokens.mintAccessToken(admin, ['MANAGE_PLUGINS'], CORE_TOKEN_OWNER);
  const other = await upsertStaffUser(app.db.prisma, { email: 'users-admin@example.com', permissions: ['MANAGE_USERS'] });
  usersToken = await app.tokens.mintAccessToken(other, ['MANAGE_USERS'], CORE_TOKEN_OWNER);
});
afterAll(async () => {
  await s?.close();
  await idp?.close();
});

async function update(
  input: { active?: boolean | null; configuration?: Item[] },
  opts: { id?: string; token?: string | undefined; requestId?: string } = {},
): Promise<UpdateOut> {
  const token = 'token' in opts ? opts.token : adminToken;
  const r = await s.gql<{ pluginUpdate: UpdateOut }>(
    UPDATE,
    { id: opts.id ?? PID, input },
    { ...(token ? { token } : {}), ...(opts.requestId ? { headers: { 'x-request-id': opts.requestId } } : {}) },
  );
  expect(r.status).toBe(200);
  expect(r.body.errors).toBeUndefined();
  const out = r.body.data!.pluginUpdate;
  // The deprecated duplicate always carries the same list.
  expect(out.pluginsErrors).toEqual(out.errors);
  // A response never carries a secret in clear.
  expect(JSON.stringify(r.body)).not.toContain(SECRET);
  expect(JSON.stringify(r.body)).not.toContain(SECRET2);
  return out;
}

async function readPlugin(id = PID): Promise<PluginOut | null> {
  const r = await s.gql<{ plugin: PluginOut | null }>(`query($id: ID!) { plugin(id: $id) { ${PLUGIN_FIELDS} } }`, { id }, { token: adminToken });
  expect(r.status).toBe(200);
  expect(r.body.errors).toBeUndefined();
  return r.body.data!.plugin;
}

/** name → read-back value */
function valuesOf(plugin: PluginOut | null): Record<string, string | null> {
  expect(plugin).not.toBeNull();
  return Object.fromEntries(plugin!.globalConfiguration.configuration.map((c) => [c.name, c.value]));
}

async function readValues(id = PID): Promise<Record<string, string | null>> {
  return valuesOf(await readPlugin(id));
}

async function dbRows(): Promise<Array<Record<string, any>>> {
  const r = await s.running.app.db.pool.query(
    'SELECT id, kind, name, active, configuration, created_at, updated_at FROM plugin_configurations ORDER BY id',
  );
  return r.rows;
}

async function dbRow(id = PID): Promise<Record<string, any> | undefined> {
  return (await dbRows()).find((r) => r['id'] === id);
}

async function shopList(): Promise<Array<{ id: string; name: string | null }>> {
  const r = await s.gql('{ shop { availableExternalAuthentications { id name } } }');
  expect(r.status).toBe(200);
  expect(r.body.errors).toBeUndefined();
  return r.body.data.shop.availableExternalAuthentications;
}

async function realValues(id = PID) {
  return (await s.running.app.plugins.values(id))!;
}

const fieldsAndCodes = (errors: ErrorOut[]) => errors.map((e) => ({ field: e.field, code: e.code }));

/**
 * Validation errors of an activation without an issuer URL: exactly `fields` (in any order),
 * each PLUGIN_MISCONFIGURED with a message. Besides the fields Saleor's rules name, the server
 * may also require the issuer itself (`issuerUrl`): that one extra entry is tolerated.
 */
function expectMisconfigured(errors: ErrorOut[], fields: string[]) {
  for (const e of errors) {
    expect(e.code, e.field ?? '').toBe('PLUGIN_MISCONFIGURED');
    expect(e.message, e.field ?? '').toMatch(/\S/);
  }
  const got = errors.map((e) => e.field ?? '').filter((f) => f !== 'issuerUrl');
  expect([...got].sort()).toEqual([...fields].sort());
}

describe('permissions', () => {
  const queries: Array<[string, string, string, Record<string, unknown>]> = [
    ['plugins', 'plugins', '{ plugins(first: 10) { totalCount edges { node { id } } } }', {}],
    ['plugin', 'plugin', 'query($id: ID!) { plugin(id: $id) { id globalConfiguration { active } } }', { id: PID }],
    [
      'pluginUpdate',
      'pluginUpdate',
      `mutation($id: ID!) { pluginUpdate(id: $id, input: { active: true, configuration: [{ name: "client_id", value: "evil" }, { name: "client_secret", value: "evil-secret" }] }) { plugin { id } errors { field code } } }`,
      { id: PID },
    ],
  ];

  for (const [who, token] of [
    ['anonymously', undefined],
    ['with a token lacking MANAGE_PLUGINS', 'users'],
  ] as const) {
    it.each(queries)(`denies %s ${who}`, async (_label, field, query, variables) => {
      const before = await dbRows();
      const auditBefore = (await s.running.app.db.pool.query('SELECT count(*)::int AS n FROM audit_events')).rows[0].n;
      const r = await s.gql(query, variables, token ? { token: usersToken } : {});
      expect(r.status).toBe(200);
      expect(r.body.data).toEqual({ [field]: null });
      expect(r.body.errors).toHaveLength(1);
      expect(r.body.errors![0]!.message).toBe(DENIED);
      expect(r.body.errors![0]!.extensions?.['exception']?.code).toBe('PermissionDenied');
      expect(r.body.errors![0]!.path).toEqual([field]);
      // Nothing written: no configuration row appears or changes, no audit event.
      expect(await dbRows()).toEqual(before);
      expect((await s.running.app.db.pool.query('SELECT count(*)::int AS n FROM audit_events')).rows[0].n).toBe(auditBefore);
    });
  }

  it('left the plugin unconfigured and inactive after the denied updates', async () => {
    expect(await dbRows()).toEqual([]);
    expect(await shopList()).toEqual([]);
    const v = await realValues();
    expect(v['client_id']).toBeNull();
    expect(v['client_secret']).toBeNull();
  });
});

describe('reading plugins', () => {
  it('shows the built-in OpenID Connect plugin, inactive, with every field described', async () => {
    const p = await readPlugin();
    expect(p).not.toBeNull();
    expect(p!.id).toBe(PID);
    expect(p!.name).toBe('OpenID Connect');
    expect(p!.description).not.toBe('');
    expect(p!.channelConfigurations).toEqual([]);
    expect(p!.globalConfiguration.active).toBe(false);
    const items = p!.globalConfiguration.configuration;
    expect(items.map((i) => i.name)).toEqual(FIELD_NAMES);
    // Every field of the contract is there, Saleor's in Saleor's order.
    const names = items.map((i) => i.name);
    for (const name of [...SALEOR_FIELD_NAMES, ...OUR_FIELD_NAMES]) expect(names).toContain(name);
    expect(names.filter((n) => SALEOR_FIELD_NAMES.includes(n))).toEqual(SALEOR_FIELD_NAMES);
    for (const [i, item] of items.entries()) {
      const field = OIDC_FIELDS[i]!;
      expect(item.type, item.name).toBe(field.type);
      expect(item.label, item.name).toBe(field.label);
      expect(item.helpText, item.name).toBe(field.helpText);
      expect(item.label, item.name).toMatch(/\S/);
      expect(item.helpText, item.name).toMatch(/\S/);
    }
    const byName = Object.fromEntries(items.map((i) => [i.name, i]));
    expect(byName['client_secret']).toMatchObject({ type: 'SECRET', value: null });
    expect(byName['client_id']).toMatchObject({ type: 'STRING', value: null });
    expect(byName['enable_refresh_token']).toMatchObject({ type: 'BOOLEAN', value: 'true' });
    expect(byName['use_oauth_scope_permissions']).toMatchObject({ type: 'BOOLEAN', value: 'false' });
    expect(byName['link_by_verified_email']).toMatchObject({ type: 'BOOLEAN', value: 'true' });
    expect(byName['allowed_redirect_uris']).toMatchObject({ type: 'MULTILINE', value: null });
    expect(byName['issuer_url']).toMatchObject({ type: 'STRING', value: null });
  });

  it('lists plugins as a Relay connection', async () => {
    const r = await s.gql(
      `{ plugins(first: 10) {
          totalCount
          pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
          edges { cursor node { id name globalConfiguration { active } } }
        } }`,
      {},
      { token: adminToken },
    );
    expect(r.status).toBe(200);
    expect(r.body.errors).toBeUndefined();
    const c = r.body.data.plugins;
    expect(c.totalCount).toBeGreaterThanOrEqual(1);
    expect(c.edges).toHaveLength(c.totalCount);
    expect(c.edges.map((e: any) => e.node.id)).toContain(PID);
    expect(c.edges.find((e: any) => e.node.id === PID).node).toEqual({ id: PID, name: 'OpenID Connect', globalConfiguration: { active: false } });
    expect(c.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: false });
    expect(typeof c.pageInfo.startCursor).toBe('string');
    expect(c.pageInfo.endCursor).toBe(c.edges.at(-1).cursor);
  });

  it('answers null for an unknown plugin id', async () => {
    const r = await s.gql('{ plugin(id: "no.such.plugin") { id } }', {}, { token: adminToken });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ data: { plugin: null } });
  });
});

describe('updating an inactive plugin', () => {
  it('saves client id and secret without validation, and masks the secret on read-back', async () => {
    const out = await update({
      configuration: [
        { name: 'client_id', value: 'storefront' },
        { name: 'client_secret', value: SECRET },
      ],
    });
    expect(out.errors).toEqual([]);
    expect(out.plugin!.id).toBe(PID);
    expect(out.plugin!.globalConfiguration.active).toBe(false);
    const v = valuesOf(out.plugin);
    expect(v['client_id']).toBe('storefront');
    expect(v['client_secret']).toBe('e123');
    expect(await readValues()).toEqual(v);
    expect((await realValues())['client_secret']).toBe(SECRET);
    const row = await dbRow();
    expect(row).toMatchObject({ id: PID, kind: 'openid-connect', name: 'OpenID Connect', active: false });
    expect(row!['configuration']['client_id']).toBe('storefront');
  });

  it('stores the secret encrypted at rest', async () => {
    const r = await s.running.app.db.pool.query(
      `SELECT configuration->>'client_secret' AS secret, configuration::text AS whole FROM plugin_configurations WHERE id = $1`,
      [PID],
    );
    expect(r.rows).toHaveLength(1);
    const { secret, whole } = r.rows[0];
    expect(secret.startsWith('v1.')).toBe(true);
    expect(secret).not.toContain(SECRET);
    expect(whole).not.toContain(SECRET);
  });

  it('masks a secret of 4 characters or fewer to its last one, and an empty one to null', async () => {
    let out = await update({ configuration: [{ name: 'client_secret', value: 'abcd' }] });
    expect(out.errors).toEqual([]);
    expect(valuesOf(out.plugin)['client_secret']).toBe('d');
    expect((await realValues())['client_secret']).toBe('abcd');

    out = await update({ configuration: [{ name: 'client_secret', value: '' }] });
    expect(out.errors).toEqual([]);
    expect(valuesOf(out.plugin)['client_secret']).toBeNull();
    expect((await realValues())['client_secret']).toBeNull();

    out = await update({ configuration: [{ name: 'client_secret', value: SECRET }] });
    expect(valuesOf(out.plugin)['client_secret']).toBe('e123');
    expect((await realValues())['client_secret']).toBe(SECRET);
  });

  it('keeps the real secret when the masked value is sent back', async () => {
    const out = await update({
      configuration: [
        { name: 'client_id', value: 'storefront-2' },
        { name: 'client_secret', value: 'e123' },
      ],
    });
    expect(out.errors).toEqual([]);
    const v = valuesOf(out.plugin);
    expect(v['client_id']).toBe('storefront-2');
    expect(v['client_secret']).toBe('e123');
    expect((await realValues())['client_secret']).toBe(SECRET);
  });

  it('leaves a field unchanged when its value is null', async () => {
    const out = await update({
      configuration: [
        { name: 'client_id', value: null },
        { name: 'client_secret', value: null },
        { name: 'audience', value: 'https://api.example.com' },
      ],
    });
    expect(out.errors).toEqual([]);
    const v = valuesOf(out.plugin);
    expect(v['client_id']).toBe('storefront-2');
    expect(v['audience']).toBe('https://api.example.com');
    const real = await realValues();
    expect(real['client_id']).toBe('storefront-2');
    expect(real['client_secret']).toBe(SECRET);
  });

  it('accepts "true"/"false" for booleans, case-insensitively', async () => {
    let out = await update({
      configuration: [
        { name: 'enable_refresh_token', value: 'FALSE' },
        { name: 'use_oauth_scope_permissions', value: 'True' },
      ],
    });
    expect(out.errors).toEqual([]);
    let v = valuesOf(out.plugin);
    expect(v['enable_refresh_token']).toBe('false');
    expect(v['use_oauth_scope_permissions']).toBe('true');
    const row = await dbRow();
    expect(row!['configuration']['enable_refresh_token']).toBe(false);
    expect(row!['configuration']['use_oauth_scope_permissions']).toBe(true);

    out = await update({
      configuration: [
        { name: 'enable_refresh_token', value: 'true' },
        { name: 'use_oauth_scope_permissions', value: 'false' },
      ],
    });
    expect(out.errors).toEqual([]);
    v = valuesOf(out.plugin);
    expect(v['enable_refresh_token']).toBe('true');
    expect(v['use_oauth_scope_permissions']).toBe('false');
  });

  it('refuses a boolean that is not true/false and saves nothing', async () => {
    const before = await dbRow();
    const out = await update({
      configuration: [
        { name: 'client_id', value: 'changed-but-not-saved' },
        { name: 'enable_refresh_token', value: 'maybe' },
      ],
    });
    expect(out.plugin).toBeNull();
    expect(fieldsAndCodes(out.errors)).toEqual([{ field: 'enableRefreshToken', code: 'INVALID' }]);
    expect(out.errors[0]!.message).toMatch(/\S/);
    expect(await dbRow()).toEqual(before);
    expect((await readValues())['client_id']).toBe('storefront-2');
  });

  it('refuses an unknown configuration field and saves nothing', async () => {
    const before = await dbRow();
    const out = await update({
      configuration: [
        { name: 'client_id', value: 'changed-but-not-saved' },
        { name: 'no_such_field', value: 'x' },
      ],
    });
    expect(out.plugin).toBeNull();
    expect(fieldsAndCodes(out.errors)).toEqual([{ field: 'configuration', code: 'INVALID' }]);
    expect(await dbRow()).toEqual(before);
  });

  it('answers id/NOT_FOUND for an unknown plugin and creates nothing', async () => {
    const before = await dbRows();
    const out = await update({ active: false, configuration: [{ name: 'client_id', value: 'x' }] }, { id: 'no.such.plugin' });
    expect(out.plugin).toBeNull();
    expect(fieldsAndCodes(out.errors)).toEqual([{ field: 'id', code: 'NOT_FOUND' }]);
    expect(await dbRows()).toEqual(before);
    expect(await readPlugin('no.such.plugin')).toBeNull();
  });
});

describe('activating', () => {
  it('reports every missing field as PLUGIN_MISCONFIGURED and saves nothing', async () => {
    const before = await dbRow();
    expect(before!['active']).toBe(false);
    const out = await update({
      active: true,
      configuration: [
        { name: 'client_id', value: '' },
        { name: 'client_secret', value: '' },
      ],
    });
    expect(out.plugin).toBeNull();
    expectMisconfigured(out.errors, [
      'clientId',
      'clientSecret',
      'jsonWebKeySetUrl',
      'oauthAuthorizationUrl',
      'oauthTokenUrl',
      'userInfoUrl',
      'allowedRedirectUris',
    ]);
    const after = await dbRow();
    expect(after).toEqual(before);
    expect(after!['active']).toBe(false);
    expect((await realValues())['client_secret']).toBe(SECRET);
    expect(await shopList()).toEqual([]);
  });

  it('does not report client id and secret once they are set', async () => {
    const before = await dbRow();
    const out = await update({ active: true });
    expect(out.plugin).toBeNull();
    expectMisconfigured(out.errors, ['jsonWebKeySetUrl', 'oauthAuthorizationUrl', 'oauthTokenUrl', 'userInfoUrl', 'allowedRedirectUris']);
    expect(await dbRow()).toEqual(before);
  });

  it('reports an invalid token URL when an authorization URL is set', async () => {
    const before = await dbRow();
    const endpoints: Item[] = [
      { name: 'oauth_authorization_url', value: 'https://idp.example.com/authorize' },
      { name: 'oauth_token_url', value: 'not a url' },
      { name: 'json_web_key_set_url', value: 'https://idp.example.com/jwks' },
      { name: 'allowed_redirect_uris', value: 'https://shop.example.com/cb' },
    ];
    // Saleor's rules (no issuer): JWKS + authorization + token must be valid URLs.
    let out = await update({ active: true, configuration: endpoints });
    expect(out.plugin).toBeNull();
    expectMisconfigured(out.errors, ['oauthTokenUrl']);
    expect(out.errors.find((e) => e.field === 'oauthTokenUrl')!.message).toMatch(/not a valid URL/);
    // With an issuer, an endpoint that is set must still be a valid URL.
    out = await update({ active: true, configuration: [{ name: 'issuer_url', value: 'https://idp.example.com' }, ...endpoints] });
    expect(out.plugin).toBeNull();
    expect(fieldsAndCodes(out.errors)).toEqual([{ field: 'oauthTokenUrl', code: 'PLUGIN_MISCONFIGURED' }]);
    expect(await dbRow()).toEqual(before);
    expect(await shopList()).toEqual([]);
  });

  it('activates with an issuer URL, client id/secret and a redirect URI', async () => {
    const out = await update({
      active: true,
      configuration: [
        { name: 'issuer_url', value: idp.issuer },
        { name: 'allowed_redirect_uris', value: 'https://shop.example.com/cb' },
      ],
    });
    expect(out.errors).toEqual([]);
    expect(out.plugin!.globalConfiguration.active).toBe(true);
    const v = valuesOf(out.plugin);
    expect(v).toMatchObject({
      client_id: 'storefront-2',
      client_secret: 'e123',
      issuer_url: idp.issuer,
      allowed_redirect_uris: 'https://shop.example.com/cb',
      oauth_token_url: null,
    });
    const row = await dbRow();
    expect(row!['active']).toBe(true);
    expect(row!['configuration']['issuer_url']).toBe(idp.issuer);
    expect((await readPlugin())!.globalConfiguration.active).toBe(true);
    expect(await shopList()).toEqual([{ id: PID, name: 'OpenID Connect' }]);
  });

  it('keeps validating while active: clearing the secret is refused and nothing is saved', async () => {
    const before = await dbRow();
    const out = await update({ configuration: [{ name: 'client_secret', value: '' }] });
    expect(out.plugin).toBeNull();
    expect(fieldsAndCodes(out.errors)).toEqual([{ field: 'clientSecret', code: 'PLUGIN_MISCONFIGURED' }]);
    expect(await dbRow()).toEqual(before);
    expect((await realValues())['client_secret']).toBe(SECRET);
    expect(await shopList()).toEqual([{ id: PID, name: 'OpenID Connect' }]);
  });

  it('refuses a pluginUpdate without MANAGE_PLUGINS on the configured plugin, changing nothing', async () => {
    const before = await dbRow();
    for (const token of [undefined, usersToken]) {
      const r = await s.gql(
        `mutation { pluginUpdate(id: "${PID}", input: { active: false, configuration: [{ name: "client_secret", value: "evil-secret" }] }) { plugin { id } errors { field code } } }`,
        {},
        token ? { token } : {},
      );
      expect(r.body.data).toEqual({ pluginUpdate: null });
      expect(r.body.errors?.[0]?.message).toBe(DENIED);
      expect(r.body.errors?.[0]?.extensions?.['exception']?.code).toBe('PermissionDenied');
    }
    expect(await dbRow()).toEqual(before);
    expect((await realValues())['client_secret']).toBe(SECRET);
    expect(await shopList()).toEqual([{ id: PID, name: 'OpenID Connect' }]);
  });

  it('deactivates again', async () => {
    const out = await update({ active: false });
    expect(out.errors).toEqual([]);
    expect(out.plugin!.globalConfiguration.active).toBe(false);
    expect((await dbRow())!['active']).toBe(false);
    expect(await shopList()).toEqual([]);
  });
});

describe('concurrent updates', () => {
  // Two admins (or one Dashboard double-submit) changing different fields at the same time:
  // every update answers success, so every change must be kept.
  it('keeps every change when updates of different fields run at the same time', async () => {
    const changes: Item[] = [
      { name: 'audience', value: 'https://api-concurrent.example.com' },
      { name: 'staff_user_domains', value: 'concurrent.example.com' },
      { name: 'default_group_name_for_new_staff_users', value: 'Concurrent staff' },
      { name: 'oauth_logout_url', value: 'https://idp.example.com/concurrent-logout' },
      { name: 'allowed_post_logout_redirect_uris', value: 'https://shop.example.com/concurrent-bye' },
    ];
    const outs = await Promise.all(changes.map((c) => update({ configuration: [c] })));
    for (const out of outs) expect(out.errors).toEqual([]);
    const expected = Object.fromEntries(changes.map((c) => [c.name, c.value]));
    expect(await readValues()).toMatchObject(expected);
    expect((await dbRow())!['configuration']).toMatchObject(expected);
  });
});

describe('audit trail', () => {
  async function eventsOf(requestId: string) {
    const r = await s.running.app.db.pool.query(
      'SELECT type, outcome, actor_user_id, plugin_id, request_id, detail FROM audit_events WHERE request_id = $1 ORDER BY id',
      [requestId],
    );
    return r.rows;
  }

  it('records a successful update with the changed field names only', async () => {
    const out = await update(
      {
        configuration: [
          { name: 'client_id', value: 'storefront-3' },
          { name: 'client_secret', value: SECRET2 },
        ],
      },
      { requestId: 'audit-success-1' },
    );
    expect(out.errors).toEqual([]);
    expect(await eventsOf('audit-success-1')).toEqual([
      {
        type: 'plugin.updated',
        outcome: 'success',
        actor_user_id: adminId,
        plugin_id: PID,
        request_id: 'audit-success-1',
        detail: { changed: ['client_id', 'client_secret'] },
      },
    ]);
    // Restore the first secret for the checks below.
    await update({ configuration: [{ name: 'client_secret', value: SECRET }] });
    expect((await realValues())['client_secret']).toBe(SECRET);
  });

  it('records a failed update as a failure', async () => {
    const out = await update({ configuration: [{ name: 'no_such_field', value: SECRET2 }] }, { requestId: 'audit-failure-1' });
    expect(fieldsAndCodes(out.errors)).toEqual([{ field: 'configuration', code: 'INVALID' }]);
    expect(await eventsOf('audit-failure-1')).toEqual([
      {
        type: 'plugin.updated',
        outcome: 'failure',
        actor_user_id: adminId,
        plugin_id: PID,
        request_id: 'audit-failure-1',
        detail: { errors: ['configuration'] },
      },
    ]);
  });

  it('records a failed activation as a failure', async () => {
    const out = await update({ active: true, configuration: [{ name: 'issuer_url', value: '' }] }, { requestId: 'audit-failure-2' });
    expect(out.plugin).toBeNull();
    const events = await eventsOf('audit-failure-2');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'plugin.updated', outcome: 'failure', actor_user_id: adminId, plugin_id: PID });
    expect(events[0].detail.errors).toEqual(out.errors.map((e) => e.field));
  });

  it('has successful plugin.updated events by the admin, and never a secret value', async () => {
    const ok = await s.running.app.db.pool.query(
      `SELECT actor_user_id, detail FROM audit_events WHERE type = 'plugin.updated' AND outcome = 'success' ORDER BY id`,
    );
    expect(ok.rows.length).toBeGreaterThanOrEqual(5);
    for (const row of ok.rows) {
      expect(row.actor_user_id).toBe(adminId);
      expect(Array.isArray(row.detail.changed)).toBe(true);
      for (const name of row.detail.changed) expect([...FIELD_NAMES, 'active']).toContain(name);
    }
    const all = await s.running.app.db.pool.query('SELECT row_to_json(a)::text AS t FROM audit_events a');
    const text = all.rows.map((r) => r.t).join('\n');
    expect(text).toContain('plugin.updated');
    for (const secret of [SECRET, SECRET2, 'supersecret', 'evil-secret']) expect(text).not.toContain(secret);
  });
});

describe('logs', () => {
  it('never contain a secret or a token', () => {
    const text = s.logs.join('\n');
    expect(text).toContain('"message":"request"');
    for (const secret of [SECRET, SECRET2, 'evil-secret', adminToken, usersToken]) expect(text).not.toContain(secret);
  });
});
