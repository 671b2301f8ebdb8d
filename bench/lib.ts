/**
 * What the benchmarks share: the child-process helpers, and the setup that configures the OIDC
 * connection against the local provider (through the CLI's bootstrap token and pluginUpdate,
 * as an operator would) and logs a user in for real, returning our access token.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { startIdp, type TestIdp } from '../test/helpers/idp.ts';

export const SECRET = 'bench-secret-0123456789abcdef0123';
export const AUDIENCE = 'https://api.example.com';
export const PLUGIN = 'mirumee.authentication.openidconnect';
export const REDIRECT = 'https://shop.example.com/cb';
export const root = path.resolve(import.meta.dirname, '..');

/** The local provider both benchmarks log `alice` in through. */
export function startBenchIdp(): Promise<TestIdp> {
  return startIdp({
    clients: [{ client_id: 'storefront', client_secret: 'storefront-secret', redirect_uris: [REDIRECT] }],
    accounts: [{ sub: 'alice', email: 'alice@example.com', email_verified: true, given_name: 'Alice' }],
  });
}

/** The server's environment as deployed (production mode, embedded database in `dataDir`). */
export function serverEnv(port: number, dataDir: string): Record<string, string> {
  return {
    PORT: String(port),
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    SECRET_KEY: SECRET,
    OUTBOUND_ALLOW_PRIVATE_ADDRESSES: 'true',
    // graphql-js skips its development-only checks.
    NODE_ENV: 'production',
    PUBLIC_URL: `http://127.0.0.1:${port}`,
  };
}

/** Runs a command in the project root; resolves with its stdout, rejects with its stderr. */
export function run(cmd: string, args: string[], env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')}: ${err}`))));
  });
}

export async function waitForHealth(url: string): Promise<void> {
  for (let i = 0; i < 120; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error('server did not start');
}

/**
 * Configures the connection (audience, scope permissions) and logs `alice` in through the
 * provider. Returns our access token.
 */
export async function configureAndLogIn(idp: TestIdp, url: string, env: Record<string, string>): Promise<string> {
  const admin = (await run(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'staff', 'create', '--email', 'bench-admin@example.com', '--permissions', 'MANAGE_PLUGINS'], env)).trim().split('\n').at(-1)!;
  const gql = async (query: string, variables: object, token?: string) => {
    const r = await fetch(`${url}/graphql/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ query, variables }),
    });
    return (await r.json()) as any;
  };
  const configuration = Object.entries(connectionSettings(idp)).map(([name, value]) => ({ name, value }));
  const upd = await gql('mutation($i: PluginUpdateInput!) { pluginUpdate(id: "mirumee.authentication.openidconnect", input: $i) { errors { field message } } }', { i: { active: true, configuration } }, admin);
  if (upd.data?.pluginUpdate?.errors?.length !== 0) throw new Error(JSON.stringify(upd));
  return logIn(idp, url, PLUGIN, 'alice');
}

/** The settings of every bench connection to `idp`: its client, the audience, scope permissions. */
function connectionSettings(idp: TestIdp): Record<string, string> {
  return {
    issuer_url: idp.issuer,
    client_id: 'storefront',
    client_secret: 'storefront-secret',
    allowed_redirect_uris: REDIRECT,
    audience: AUDIENCE,
    use_oauth_scope_permissions: 'true',
  };
}

async function gqlAt(url: string, query: string, variables: object): Promise<any> {
  const r = await fetch(`${url}/graphql/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) });
  return r.json();
}

/** Logs `login` (an account of `idp`) in through connection `pluginId`; returns our access token. */
export async function logIn(idp: TestIdp, url: string, pluginId: string, login: string): Promise<string> {
  const auth = await gqlAt(url, 'mutation($p: String!, $i: JSONString!) { externalAuthenticationUrl(pluginId: $p, input: $i) { authenticationData } }', { p: pluginId, i: JSON.stringify({ redirectUri: REDIRECT }) });
  const authorized = await idp.authorize(JSON.parse(auth.data.externalAuthenticationUrl.authenticationData).authorizationUrl, { login });
  const result = await gqlAt(url, 'mutation($p: String!, $i: JSONString!) { externalObtainAccessTokens(pluginId: $p, input: $i) { token errors { message } } }', {
    p: pluginId,
    i: JSON.stringify({ code: authorized.code, state: authorized.state }),
  });
  const token: string = result.data.externalObtainAccessTokens.token;
  if (!token) throw new Error(JSON.stringify(result));
  return token;
}

/** A provider's discovery document (the endpoints an operator would copy into the settings). */
export async function providerMetadata(issuer: string): Promise<Record<string, string>> {
  const res = await fetch(`${issuer}/.well-known/openid-configuration`);
  if (!res.ok) throw new Error(`discovery of ${issuer}: HTTP ${res.status}`);
  return (await res.json()) as Record<string, string>;
}

/**
 * A PLUGINS_CONFIG_FILE entry for a second OIDC connection `id` to `idp` with every endpoint set
 * explicitly (authorization, token, JWKS, userinfo, introspection), the same audience and scope
 * permissions as the connection configureAndLogIn sets up through discovery.
 */
export async function explicitConnectionEntry(id: string, idp: TestIdp): Promise<object> {
  const m = await providerMetadata(idp.issuer);
  return {
    id,
    kind: 'openid-connect',
    name: 'Bench (explicit endpoints)',
    active: true,
    configuration: {
      ...connectionSettings(idp),
      oauth_authorization_url: m['authorization_endpoint'],
      oauth_token_url: m['token_endpoint'],
      json_web_key_set_url: m['jwks_uri'],
      user_info_url: m['userinfo_endpoint'],
      introspection_url: m['introspection_endpoint'],
    },
  };
}

/** CPU time (user + system, all threads) a process has used so far, in ms (Linux /proc). */
export function cpuMs(pid: number): number {
  // Fields after the command name (which may hold spaces): utime is the 14th field, stime the 15th.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}
const CLOCK_TICKS = 100;

/** Runs one statement in the `postgres` database of the server at `serverUrl` (no database in the URL). */
export async function adminQuery(serverUrl: string, sql: string): Promise<void> {
  const db = new pg.Client({ connectionString: `${serverUrl}/postgres` });
  await db.connect();
  try {
    await db.query(sql);
  } finally {
    await db.end();
  }
}
