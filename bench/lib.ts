/**
 * What the benchmarks share: the child-process helpers, and the setup that configures the OIDC
 * connection against the local provider (through the CLI's bootstrap token and pluginUpdate,
 * as an operator would) and logs a user in for real, returning our access token.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
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
  const configuration = Object.entries({
    issuer_url: idp.issuer,
    client_id: 'storefront',
    client_secret: 'storefront-secret',
    allowed_redirect_uris: REDIRECT,
    audience: AUDIENCE,
    use_oauth_scope_permissions: 'true',
  }).map(([name, value]) => ({ name, value }));
  const upd = await gql('mutation($i: PluginUpdateInput!) { pluginUpdate(id: "mirumee.authentication.openidconnect", input: $i) { errors { field message } } }', { i: { active: true, configuration } }, admin);
  if (upd.data?.pluginUpdate?.errors?.length !== 0) throw new Error(JSON.stringify(upd));
  const auth = await gql('mutation($p: String!, $i: JSONString!) { externalAuthenticationUrl(pluginId: $p, input: $i) { authenticationData } }', { p: PLUGIN, i: JSON.stringify({ redirectUri: REDIRECT }) });
  const authorized = await idp.authorize(JSON.parse(auth.data.externalAuthenticationUrl.authenticationData).authorizationUrl, { login: 'alice' });
  const login = await gql('mutation($p: String!, $i: JSONString!) { externalObtainAccessTokens(pluginId: $p, input: $i) { token errors { message } } }', {
    p: PLUGIN,
    i: JSON.stringify({ code: authorized.code, state: authorized.state }),
  });
  const token: string = login.data.externalObtainAccessTokens.token;
  if (!token) throw new Error(JSON.stringify(login));
  return token;
}
