/**
 * PLUGINS_CONFIG_FILE: plugin configuration applied at start through the same validation as
 * pluginUpdate. A valid file configures and activates plugins (object and list forms, and a
 * second OIDC connection created from "kind"); a bad file stops the start with a message
 * naming the variable, the plugin and the fields, and leaves nothing running.
 * Four server starts in all (three of them rejected).
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upsertStaffUser } from '../../src/accounts/users.ts';
import { CORE_TOKEN_OWNER } from '../../src/tokens/jwt.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const PID = 'mirumee.authentication.openidconnect';
const STAFF_ID = 'staff-idp';
const FILE_SECRET = 'file-secret-value-4567';
const STAFF_SECRET = 'staff-secret-value-8901';
const BROKEN_SECRET = 'unquotedsecretvalue2468';

const PLUGIN_FIELDS = 'id name globalConfiguration { active configuration { name value type } }';

let dir: string;

function writeConfig(name: string, content: unknown): string {
  const file = path.join(dir, name);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return file;
}

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'plugins-config-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Counts of the live handles that a server leaves behind if it is not closed. */
const WATCHED = ['TCPServerWrap', 'PipeServerWrap', 'TCPSocketWrap', 'PipeWrap'];
function handleCounts(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) if (WATCHED.includes(r)) counts[r] = (counts[r] ?? 0) + 1;
  return counts;
}

/**
 * Starts a server that must fail. Runs it with a private TMPDIR (os.tmpdir() honours it) so
 * that the test can see that the temporary DATA_DIR was removed, and checks that no server,
 * socket or database connection is left open.
 */
async function expectRejectedStart(file: string): Promise<Error> {
  const tmp = mkdtempSync(path.join(dir, 'tmp-'));
  const before = handleCounts();
  const savedTmp = process.env['TMPDIR'];
  process.env['TMPDIR'] = tmp;
  let error: unknown;
  let started: TestServer | undefined;
  try {
    started = await startTestServer({ PLUGINS_CONFIG_FILE: file });
  } catch (e) {
    error = e;
  } finally {
    if (savedTmp === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = savedTmp;
  }
  if (started) {
    await started.close();
    throw new Error('the server started although PLUGINS_CONFIG_FILE is invalid');
  }
  expect(error).toBeInstanceOf(Error);
  // Nothing left behind: the temporary DATA_DIR is gone, and within a moment no listening
  // server, socket or database connection remains beyond those open before the attempt.
  expect(readdirSync(tmp).filter((n) => n.startsWith('sat-'))).toEqual([]);
  const deadline = Date.now() + 5_000;
  let after = handleCounts();
  const leftover = () => WATCHED.filter((k) => (after[k] ?? 0) > (before[k] ?? 0));
  while (leftover().length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    after = handleCounts();
  }
  expect(leftover(), JSON.stringify({ before, after })).toEqual([]);
  return error as Error;
}

describe('an invalid file stops the start', () => {
  it('refuses an active plugin without a client secret, naming the variable, the plugin and the field', async () => {
    const file = writeConfig('missing-secret.json', {
      plugins: [
        {
          id: PID,
          active: true,
          configuration: {
            client_id: 'storefront',
            issuer_url: 'https://idp.example.com',
            allowed_redirect_uris: 'https://shop.example.com/cb',
          },
        },
      ],
    });
    const error = await expectRejectedStart(file);
    expect(error.message).toContain('PLUGINS_CONFIG_FILE');
    expect(error.message).toContain(file);
    expect(error.message).toContain(PID);
    expect(error.message).toContain('clientSecret');
    // Only what is wrong is reported.
    expect(error.message).not.toContain('clientId');
    expect(error.message).not.toContain('allowedRedirectUris');
    // The first start of this file also creates the embedded database: slow on a loaded machine.
  }, 90_000);

  let notJson: Error;
  it('refuses a file that is not JSON, naming the variable and the file', async () => {
    // A typical templating mistake: the secret was substituted without quotes.
    const file = writeConfig(
      'not-json.json',
      `{"plugins": [{"id": "${PID}", "active": true, "configuration": {"client_id": "storefront", "client_secret": ${BROKEN_SECRET}}}]}`,
    );
    notJson = await expectRejectedStart(file);
    expect(notJson.message).toContain('PLUGINS_CONFIG_FILE');
    expect(notJson.message).toContain(file);
    expect(notJson.message).toMatch(/not valid JSON/);
  });

  it('does not echo the file content (here, part of a secret) in that error', () => {
    // The message is what the server logs ("cannot start") and prints on stderr; secrets
    // must never be logged, not even in part. Check every 6-character piece of the secret.
    expect(notJson).toBeDefined();
    for (let i = 0; i + 6 <= BROKEN_SECRET.length; i++) {
      const piece = BROKEN_SECRET.slice(i, i + 6);
      expect(notJson.message, `contains "${piece}"`).not.toContain(piece);
    }
  });

  it('refuses an entry for an unknown plugin id without a "kind"', async () => {
    const file = writeConfig('unknown-id.json', { plugins: [{ id: 'no.such.plugin', active: false, configuration: {} }] });
    const error = await expectRejectedStart(file);
    expect(error.message).toContain('PLUGINS_CONFIG_FILE');
    expect(error.message).toContain('no.such.plugin');
    expect(error.message).toMatch(/does not exist/);
  });
});

describe('a valid file configures the plugins at start', () => {
  let s: TestServer;
  let token: string;

  beforeAll(async () => {
    const file = writeConfig('valid.json', {
      plugins: [
        {
          id: PID,
          active: true,
          configuration: {
            client_id: 'storefront',
            client_secret: FILE_SECRET,
            issuer_url: 'https://idp.example.com',
            allowed_redirect_uris: 'https://shop.example.com/cb\nhttps://shop.example.com/cb2',
            enable_refresh_token: false,
          },
        },
        {
          id: STAFF_ID,
          kind: 'openid-connect',
          name: 'Staff IdP',
          active: true,
          configuration: [
            { name: 'client_id', value: 'staff' },
            { name: 'client_secret', value: STAFF_SECRET },
            { name: 'issuer_url', value: 'https://staff.example.com' },
            { name: 'oauth_authorization_url', value: 'https://staff.example.com/authorize' },
            { name: 'oauth_token_url', value: 'https://staff.example.com/token' },
            { name: 'json_web_key_set_url', value: 'https://staff.example.com/jwks' },
            { name: 'allowed_redirect_uris', value: 'https://admin.example.com/cb' },
            { name: 'use_oauth_scope_permissions', value: true },
            { name: 'audience', value: null },
          ],
        },
      ],
    });
    s = await startTestServer({ PLUGINS_CONFIG_FILE: file });
    const app = s.running.app;
    const admin = await upsertStaffUser(app.db.prisma, { email: 'admin@example.com', permissions: ['MANAGE_PLUGINS'] });
    token = await app.tokens.mintAccessToken(admin, ['MANAGE_PLUGINS'], CORE_TOKEN_OWNER);
  });
  afterAll(async () => {
    await s?.close();
  });

  async function readPlugin(id: string) {
    const r = await s.gql(`query($id: ID!) { plugin(id: $id) { ${PLUGIN_FIELDS} } }`, { id }, { token });
    expect(r.status).toBe(200);
    expect(r.body.errors).toBeUndefined();
    expect(JSON.stringify(r.body)).not.toContain(FILE_SECRET);
    expect(JSON.stringify(r.body)).not.toContain(STAFF_SECRET);
    const p = r.body.data.plugin;
    expect(p).not.toBeNull();
    return {
      name: p.name as string,
      active: p.globalConfiguration.active as boolean,
      values: Object.fromEntries(p.globalConfiguration.configuration.map((c: any) => [c.name, c.value])) as Record<string, string | null>,
    };
  }

  async function shopList() {
    const r = await s.gql('{ shop { availableExternalAuthentications { id name } } }');
    expect(r.status).toBe(200);
    return r.body.data.shop.availableExternalAuthentications as Array<{ id: string; name: string }>;
  }

  it('activates and configures the built-in plugin (object form), secret masked', async () => {
    const p = await readPlugin(PID);
    expect(p.name).toBe('OpenID Connect');
    expect(p.active).toBe(true);
    expect(p.values).toMatchObject({
      client_id: 'storefront',
      client_secret: '4567',
      issuer_url: 'https://idp.example.com',
      allowed_redirect_uris: 'https://shop.example.com/cb\nhttps://shop.example.com/cb2',
      enable_refresh_token: 'false',
      use_oauth_scope_permissions: 'false',
      oauth_token_url: null,
    });
    expect((await s.running.app.plugins.values(PID))!['client_secret']).toBe(FILE_SECRET);
  });

  it('creates a second connection from "kind" and "name" (list form)', async () => {
    const p = await readPlugin(STAFF_ID);
    expect(p.name).toBe('Staff IdP');
    expect(p.active).toBe(true);
    expect(p.values).toMatchObject({
      client_id: 'staff',
      client_secret: '8901',
      oauth_authorization_url: 'https://staff.example.com/authorize',
      oauth_token_url: 'https://staff.example.com/token',
      json_web_key_set_url: 'https://staff.example.com/jwks',
      allowed_redirect_uris: 'https://admin.example.com/cb',
      use_oauth_scope_permissions: 'true',
      enable_refresh_token: 'true',
      audience: null,
      issuer_url: 'https://staff.example.com',
      user_info_url: null,
    });
    expect((await s.running.app.plugins.values(STAFF_ID))!['client_secret']).toBe(STAFF_SECRET);
  });

  it('lists both connections', async () => {
    expect(await shopList()).toEqual([
      { id: PID, name: 'OpenID Connect' },
      { id: STAFF_ID, name: 'Staff IdP' },
    ]);
    const r = await s.gql('{ plugins(first: 10) { totalCount edges { node { id name } } } }', {}, { token });
    expect(r.body.data.plugins).toEqual({
      totalCount: 2,
      edges: [{ node: { id: PID, name: 'OpenID Connect' } }, { node: { id: STAFF_ID, name: 'Staff IdP' } }],
    });
  });

  it('stored both rows with their secrets encrypted', async () => {
    const r = await s.running.app.db.pool.query(
      `SELECT id, kind, name, active, configuration->>'client_secret' AS secret, configuration::text AS whole
         FROM plugin_configurations ORDER BY id`,
    );
    expect(r.rows.map((row) => [row.id, row.kind, row.name, row.active])).toEqual([
      [PID, 'openid-connect', 'OpenID Connect', true],
      [STAFF_ID, 'openid-connect', 'Staff IdP', true],
    ]);
    for (const row of r.rows) {
      expect(row.secret.startsWith('v1.')).toBe(true);
      expect(row.whole).not.toContain(FILE_SECRET);
      expect(row.whole).not.toContain(STAFF_SECRET);
    }
  });

  it('lets the created connection be managed through pluginUpdate', async () => {
    const r = await s.gql(
      `mutation { pluginUpdate(id: "${STAFF_ID}", input: { active: false }) { plugin { id globalConfiguration { active } } errors { field code } } }`,
      {},
      { token },
    );
    expect(r.body.data.pluginUpdate).toEqual({ plugin: { id: STAFF_ID, globalConfiguration: { active: false } }, errors: [] });
    expect(await shopList()).toEqual([{ id: PID, name: 'OpenID Connect' }]);
  });

  it('logged which plugins the file configured, and no secret', () => {
    const lines = s.logs.map((l) => JSON.parse(l));
    const applied = lines.find((l) => l.message === 'plugin configuration file applied');
    expect(applied).toBeDefined();
    expect(applied.plugins).toEqual([PID, STAFF_ID]);
    const text = s.logs.join('\n');
    for (const secret of [FILE_SECRET, STAFF_SECRET, token]) expect(text).not.toContain(secret);
  });
});
