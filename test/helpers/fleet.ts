/**
 * Several instances of the real server (child processes, test/helpers/server-process.ts) on
 * ONE database, as a scaled-out deployment runs them: the same DATABASE_URL and SECRET_KEY (one
 * of the fleet's own unless `env` gives one), optionally the same REDIS_URL; each with its own
 * port and DATA_DIR. They are spawned at the same moment (instances starting together is one of
 * the things under test).
 *
 * Also: `serverClient` (the `url` + `gql` part of TestServer that test/helpers/oidc-flow.ts
 * needs, aimed at one process) and `runCli` (the operator CLI as a process, with the fleet's
 * environment).
 *
 * ```ts
 * const fleet = await startFleet({ size: 2, env: { OUTBOUND_ALLOW_PRIVATE_ADDRESSES: 'true' } });
 * const [a, b] = fleet.servers.map(serverClient);
 * await fleet.close(); // stops every process, drops the database
 * ```
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from './database.ts';
import { REPO_ROOT, startServerProcess, type ServerProcess } from './server-process.ts';
import { TEST_SECRET_KEY, gqlAt, type TestServer } from './server.ts';

export interface FleetOptions {
  /** Number of server processes (default 2). */
  size?: number;
  /**
   * Environment of every process (REDIS_URL included when wanted). SECRET_KEY defaults to one
   * of this fleet's own, so that fleets of other test files on the same Redis, whose channel
   * names derive from the secret, do not hear each other.
   */
  env?: Record<string, string>;
  startTimeoutMs?: number;
}

export interface Fleet {
  database: TestDatabase;
  servers: ServerProcess[];
  /** The environment every process got on top of server-process.ts's defaults. */
  env: Record<string, string>;
  /** Stops every process (SIGTERM, then SIGKILL), removes their DATA_DIRs, drops the database. */
  close(): Promise<void>;
}

/** Starts `size` servers on one fresh database, all at once (Promise.all). */
export async function startFleet(options: FleetOptions = {}): Promise<Fleet> {
  const size = options.size ?? 2;
  const env = { SECRET_KEY: `fleet-secret-${randomBytes(16).toString('hex')}`, ...options.env };
  const database = await createTestDatabase();
  if (!database.url) throw new Error('startFleet: several instances need PostgreSQL (TEST_DATABASE_URL)');
  const started = await Promise.allSettled(
    Array.from({ length: size }, () =>
      startServerProcess({ database, env, ...(options.startTimeoutMs ? { startTimeoutMs: options.startTimeoutMs } : {}) }),
    ),
  );
  const servers = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const close = async () => {
    await Promise.all(servers.map((s) => s.close()));
    await database.drop().catch(() => {});
  };
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await close();
    throw failed.reason;
  }
  return { database, servers, env, close };
}

/** The bits of TestServer that test/helpers/oidc-flow.ts uses (url, gql), for one process. */
export function serverClient(proc: ServerProcess): TestServer {
  const client = { url: proc.url, gql: gqlAt(proc.url) };
  return client as unknown as TestServer;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Variables of this process's environment that must not reach the CLI (the fleet's own win). */
const INHERITED_CONFIG = /^(PORT|HOST|DATABASE_URL|DATA_DIR|SECRET_KEY|PUBLIC_URL|NODE_ENV|LOG_LEVEL|PLUGINS_CONFIG_FILE|REDIS_URL|KEY_ROTATION_.*|RATE_LIMIT_.*|OIDC_.*|TOKEN_.*|ACCESS_TOKEN_TTL_SECONDS|REFRESH_TOKEN_.*|JWT_ALGORITHM|METRICS_.*|HOUSEKEEPING_.*|SESSION_.*|AUDIT_.*|DATABASE_CONNECT_.*)$/;

/**
 * `npm run cli -- <args>` (node --import tsx src/cli.ts) with the fleet's database, secret and
 * environment, in a DATA_DIR of its own. The result of `staff create` is the last stdout line.
 */
export function runCli(fleet: Fleet, args: string[], timeoutMs = 60_000): Promise<CliResult> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'sat-fleet-cli-'));
  const childEnv: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!INHERITED_CONFIG.test(k)) childEnv[k] = v;
  Object.assign(childEnv, fleet.env, {
    DATA_DIR: dataDir,
    SECRET_KEY: fleet.env['SECRET_KEY'] ?? TEST_SECRET_KEY,
    DATABASE_URL: fleet.database.url!,
    LOG_LEVEL: 'info',
  });
  delete childEnv['PLUGINS_CONFIG_FILE'];
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'src/cli.ts', ...args],
      { cwd: REPO_ROOT, env: childEnv, timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) => {
        rmSync(dataDir, { recursive: true, force: true });
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

/** The last non-empty line of a CLI's stdout (the token of `staff create`, the kid of `keys rotate`). */
export function lastLine(text: string): string {
  return text.trimEnd().split('\n').at(-1) ?? '';
}
