/**
 * The operator CLI, spawned for real (`node --import tsx src/cli.ts …`) against the same
 * DATA_DIR / SECRET_KEY / DATABASE_URL as a running server: on the embedded database it
 * attaches through the server's Unix socket, and the server sees its writes (users, signing
 * keys) without a restart. Plus the CLI on its own, with no server running.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, TEST_SECRET_KEY, type TestServer } from '../helpers/server.ts';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const CLI_TIMEOUT = 60_000;

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI; `env` replaces the database-related variables of this process's environment. */
function cli(args: string[], env: { DATA_DIR: string; DATABASE_URL?: string | undefined; KEY_ROTATION_PUBLISH_SECONDS?: string }): Promise<CliResult> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: env.DATA_DIR, SECRET_KEY: TEST_SECRET_KEY, LOG_LEVEL: 'info' };
  if (env.KEY_ROTATION_PUBLISH_SECONDS !== undefined) childEnv['KEY_ROTATION_PUBLISH_SECONDS'] = env.KEY_ROTATION_PUBLISH_SECONDS;
  delete childEnv['DATABASE_URL'];
  if (env.DATABASE_URL) childEnv['DATABASE_URL'] = env.DATABASE_URL;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'src/cli.ts', ...args],
      { cwd: REPO_ROOT, env: childEnv, timeout: CLI_TIMEOUT, maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

const lastLine = (text: string) => text.trimEnd().split('\n').at(-1) ?? '';

let s: TestServer;

beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.close();
});

const serverEnv = () => ({ DATA_DIR: s.dataDir, DATABASE_URL: s.config.databaseUrl });

async function me(token: string) {
  const r = await s.gql('{ me { email isStaff userPermissions { code } } }', undefined, { token });
  expect(r.status).toBe(200);
  expect(r.body.errors).toBeUndefined();
  return r.body.data.me as null | { email: string; isStaff: boolean; userPermissions: Array<{ code: string }> };
}

async function usersWithEmail(email: string) {
  const { rows } = await s.running.app.db.pool.query<{ id: number; permissions: string[]; is_staff: boolean; is_active: boolean }>(
    'SELECT id, permissions, is_staff, is_active FROM users WHERE email = $1',
    [email],
  );
  return rows;
}

describe('CLI against a running server', () => {
  let adminToken: string;

  it(
    'staff create: creates a staff user and prints a token the running server accepts',
    async () => {
      const r = await cli(['staff', 'create', '--email', 'CLI-Admin@Example.com', '--permissions', 'MANAGE_PLUGINS,MANAGE_STAFF'], serverEnv());
      expect(r.stderr).not.toMatch(/Failed/);
      expect(r.code).toBe(0);
      adminToken = lastLine(r.stdout);
      expect(adminToken).toMatch(JWT_SHAPE);
      // stdout carries only the token (logs go to stderr).
      expect(r.stdout.trim()).toBe(adminToken);
      expect(decodeJwt(adminToken)).toMatchObject({ type: 'access', owner: 'saleor', email: 'cli-admin@example.com', is_staff: true });

      expect(await me(adminToken)).toEqual({
        email: 'cli-admin@example.com',
        isStaff: true,
        userPermissions: [{ code: 'MANAGE_STAFF' }, { code: 'MANAGE_PLUGINS' }],
      });
      const p = await s.gql('{ plugin(id: "mirumee.authentication.openidconnect") { id name } }', undefined, { token: adminToken });
      expect(p.body.errors).toBeUndefined();
      expect(p.body.data.plugin).toEqual({ id: 'mirumee.authentication.openidconnect', name: 'OpenID Connect' });

      const rows = await usersWithEmail('cli-admin@example.com');
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ permissions: ['MANAGE_STAFF', 'MANAGE_PLUGINS'], is_staff: true, is_active: true });
    },
    CLI_TIMEOUT,
  );

  it(
    'staff create again for the same email updates the user instead of duplicating it',
    async () => {
      const r = await cli(['staff', 'create', '--email', 'cli-admin@example.com', '--permissions', 'MANAGE_STAFF'], serverEnv());
      expect(r.code).toBe(0);
      const token = lastLine(r.stdout);
      expect(token).toMatch(JWT_SHAPE);
      const rows = await usersWithEmail('cli-admin@example.com');
      expect(rows).toHaveLength(1);
      expect(rows[0]!.permissions).toEqual(['MANAGE_STAFF']);
      expect(await me(token)).toEqual({ email: 'cli-admin@example.com', isStaff: true, userPermissions: [{ code: 'MANAGE_STAFF' }] });
      // Without MANAGE_PLUGINS the new token cannot read plugins.
      const p = await s.gql('{ plugin(id: "mirumee.authentication.openidconnect") { id } }', undefined, { token });
      expect(p.body.data.plugin).toBeNull();
      expect(p.body.errors?.[0]?.extensions?.['exception']?.code).toBe('PermissionDenied');
    },
    CLI_TIMEOUT,
  );

  it(
    'refuses an unknown permission with exit code 2, naming it, and creates nothing',
    async () => {
      const r = await cli(['staff', 'create', '--email', 'nobody@example.com', '--permissions', 'MANAGE_STAFF,MANAGE_EVERYTHING'], serverEnv());
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('MANAGE_EVERYTHING');
      expect(r.stdout).toBe('');
      expect(await usersWithEmail('nobody@example.com')).toHaveLength(0);
    },
    CLI_TIMEOUT,
  );

  it(
    'refuses staff create without --email with exit code 2',
    async () => {
      const r = await cli(['staff', 'create', '--permissions', 'MANAGE_STAFF'], serverEnv());
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('--email');
      expect(r.stdout).toBe('');
    },
    CLI_TIMEOUT,
  );

  it(
    'keys rotate (publish window 0): the running server accepts tokens signed with the new key, old tokens keep working',
    async () => {
      const before = (await (await fetch(`${s.url}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string }> };
      expect(before.keys).toHaveLength(1);
      const oldKid = before.keys[0]!.kid;

      // Staging itself is tested in tokens.test.ts and scale-out.test.ts; here the key signs at once.
      const r = await cli(['keys', 'rotate'], { ...serverEnv(), KEY_ROTATION_PUBLISH_SECONDS: '0' });
      expect(r.code).toBe(0);
      const kid = lastLine(r.stdout);
      expect(kid).toMatch(/^[A-Za-z0-9_-]{43}$/); // base64url SHA-256 thumbprint
      expect(kid).not.toBe(oldKid);
      expect(r.stdout.trim()).toBe(kid);

      const created = await cli(['staff', 'create', '--email', 'after-rotation@example.com', '--permissions', 'MANAGE_STAFF'], serverEnv());
      expect(created.code).toBe(0);
      const token = lastLine(created.stdout);
      expect(decodeProtectedHeader(token).kid).toBe(kid);
      // The server has never seen this kid: accepting the token proves it picked the key up.
      expect(await me(token)).toMatchObject({ email: 'after-rotation@example.com', isStaff: true });
      expect(await me(adminToken)).toMatchObject({ email: 'cli-admin@example.com' });
      expect(decodeProtectedHeader(adminToken).kid).toBe(oldKid);

      const after = (await (await fetch(`${s.url}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string }> };
      expect(new Set(after.keys.map((k) => k.kid))).toEqual(new Set([oldKid, kid]));
    },
    2 * CLI_TIMEOUT,
  );

  it('never logged the tokens the CLI printed', () => {
    const logs = s.logs.join('\n');
    expect(adminToken).toBeTruthy();
    expect(logs).not.toContain(adminToken);
  });
});

describe.skipIf(Boolean(process.env['TEST_DATABASE_URL']))('CLI without a running server (embedded database)', () => {
  let dataDir: string;

  beforeAll(() => {
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'sat-cli-'));
  });
  afterAll(() => {
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it(
    'staff create opens (and creates) the database itself; migrate finds it up to date',
    async () => {
      const r = await cli(['staff', 'create', '--email', 'solo@example.com', '--permissions', 'MANAGE_PLUGINS'], { DATA_DIR: dataDir });
      expect(r.stderr).not.toMatch(/Failed/);
      expect(r.code).toBe(0);
      const token = lastLine(r.stdout);
      expect(token).toMatch(JWT_SHAPE);
      expect(decodeJwt(token)).toMatchObject({ email: 'solo@example.com', is_staff: true, permissions: ['MANAGE_PLUGINS'] });
      expect(existsSync(path.join(dataDir, 'pg', 'PG_VERSION'))).toBe(true);
      // The CLI released the directory when it exited.
      expect(existsSync(path.join(dataDir, 'embedded.lock'))).toBe(false);

      const m = await cli(['migrate'], { DATA_DIR: dataDir });
      expect(m.code).toBe(0);
      expect(m.stdout).toBe('database is up to date\n');
    },
    2 * CLI_TIMEOUT,
  );
});
