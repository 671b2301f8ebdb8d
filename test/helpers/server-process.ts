/**
 * Starts the real server as a separate OS process (`node --import tsx src/main.ts serve`, what
 * `npm start` runs), so that a crash shows up as that process exiting rather than as the test
 * worker dying. On 127.0.0.1 with a random port (read from the "server listening" log line), a
 * temporary DATA_DIR and a fresh database (PGlite, or PostgreSQL in the `postgresql` project),
 * as test/helpers/server.ts does in-process.
 *
 * Reusable beyond one file: pass `env` for more configuration, `dataDir` / `database` to share
 * them between processes (several instances, or a restart after `kill('SIGKILL')`); what the
 * caller passes is the caller's to clean up, what the helper created is removed by `close()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestDatabase, type TestDatabase } from './database.ts';
import { TEST_SECRET_KEY } from './server.ts';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Configuration variables of this process's environment that must not leak into the server's. */
const CONFIG_VARIABLES = /^(PORT|HOST|DATABASE_URL|DATA_DIR|SECRET_KEY|PUBLIC_URL|NODE_ENV|LOG_LEVEL|PLUGINS_CONFIG_FILE|REDIS_URL|ALLOWED_GRAPHQL_ORIGINS|TRUST_PROXY|RATE_LIMIT_.*|HTTP_.*|GRAPHQL_.*|MAX_REQUEST_BODY_BYTES|OUTBOUND_.*|OIDC_.*|TOKEN_.*|ACCESS_TOKEN_TTL_SECONDS|REFRESH_TOKEN_TTL_SECONDS|JWT_ALGORITHM|KEY_ROTATION_.*|METRICS_.*|SHUTDOWN_.*|HOUSEKEEPING_.*|DATABASE_CONNECT_.*|SESSION_.*|AUDIT_.*|REFRESH_TOKEN_.*)$/;

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServerProcessOptions {
  /** Extra environment (wins over the defaults below). */
  env?: Record<string, string>;
  /** Use this DATA_DIR (kept by close()); default: a new temporary one (removed by close()). */
  dataDir?: string;
  /** Use this database (not dropped by close()); default: createTestDatabase() (dropped by close()). */
  database?: TestDatabase;
  /** How long to wait for "server listening" (ms). */
  startTimeoutMs?: number;
  /** Node arguments that start the server; default: the sources through tsx (`--import tsx src/main.ts serve`). */
  command?: string[];
}

export interface ServerProcess {
  /** e.g. http://127.0.0.1:41234 */
  url: string;
  host: string;
  port: number;
  pid: number;
  dataDir: string;
  database: TestDatabase;
  /** The environment the server runs with (beyond this process's own). */
  env: Record<string, string>;
  child: ChildProcess;
  /** Every complete stdout line so far (one JSON log record each). */
  stdout: string[];
  /** Everything written to stderr so far. */
  stderr(): string;
  /** stdout lines parsed as JSON (lines that are not JSON are skipped). */
  logRecords(): Array<Record<string, unknown>>;
  /** True while the process has not exited. */
  alive(): boolean;
  /** The exit, once it happened. */
  exit(): ProcessExit | undefined;
  /** Resolves when the process exits. */
  exited: Promise<ProcessExit>;
  /** Sends a signal (e.g. 'SIGKILL' for crash tests). */
  kill(signal: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL when it has not exited after `graceMs`. Resolves with the exit. */
  stop(graceMs?: number): Promise<ProcessExit>;
  /** stop(), then removes what the helper created (temporary DATA_DIR, test database). */
  close(): Promise<void>;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;
function killLeftoversOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test worker that ends without afterAll (crash, timeout) must not leave servers behind.
  process.on('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

export async function startServerProcess(options: ServerProcessOptions = {}): Promise<ServerProcess> {
  const ownDataDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'sat-proc-'));
  const ownDatabase = options.database === undefined;
  const database = options.database ?? (await createTestDatabase());
  const env: Record<string, string> = {
    PORT: '0',
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    SECRET_KEY: TEST_SECRET_KEY,
    LOG_LEVEL: 'info',
    ...(database.url ? { DATABASE_URL: database.url } : {}),
    ...options.env,
  };
  const childEnv: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!CONFIG_VARIABLES.test(k)) childEnv[k] = v;
  Object.assign(childEnv, env);

  const cleanup = async () => {
    if (ownDatabase) await database.drop().catch(() => {});
    if (ownDataDir) rmSync(dataDir, { recursive: true, force: true });
  };

  const child = spawn(process.execPath, options.command ?? ['--import', 'tsx', 'src/main.ts', 'serve'], {
    cwd: REPO_ROOT,
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  killLeftoversOnExit();

  const stdout: string[] = [];
  let stderr = '';
  let partial = '';
  let exitInfo: ProcessExit | undefined;
  const exited = new Promise<ProcessExit>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      running.delete(child);
      resolve(exitInfo);
    });
  });
  const lineListeners = new Set<(line: string) => void>();
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    partial += chunk;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      stdout.push(line);
      for (const l of lineListeners) l(line);
    }
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    stderr += chunk;
  });

  const startTimeoutMs = options.startTimeoutMs ?? 90_000;
  let url: string;
  try {
    url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start within ${startTimeoutMs} ms`)), startTimeoutMs);
      const onLine = (line: string) => {
        let record: unknown;
        try {
          record = JSON.parse(line);
        } catch {
          return;
        }
        const r = record as { message?: unknown; url?: unknown };
        if (r.message === 'server listening' && typeof r.url === 'string') {
          clearTimeout(timer);
          lineListeners.delete(onLine);
          resolve(r.url);
        }
      };
      for (const line of stdout) onLine(line);
      lineListeners.add(onLine);
      void exited.then((e) => {
        clearTimeout(timer);
        reject(new Error(`server exited before listening (code ${e.code}, signal ${e.signal})`));
      });
    });
  } catch (e) {
    child.kill('SIGKILL');
    await exited;
    await cleanup();
    const detail = `\n--- stderr ---\n${stderr.slice(-4000)}\n--- stdout ---\n${stdout.slice(-20).join('\n')}`;
    throw new Error(`${(e as Error).message}${detail}`);
  }
  const parsed = new URL(url);

  const stop = async (graceMs = 10_000): Promise<ProcessExit> => {
    if (exitInfo) return exitInfo;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    url,
    host: parsed.hostname,
    port: Number(parsed.port),
    pid: child.pid!,
    dataDir,
    database,
    env,
    child,
    stdout,
    stderr: () => stderr,
    logRecords: () =>
      stdout.flatMap((line) => {
        try {
          const v: unknown = JSON.parse(line);
          return v !== null && typeof v === 'object' && !Array.isArray(v) ? [v as Record<string, unknown>] : [];
        } catch {
          return [];
        }
      }),
    alive: () => exitInfo === undefined && child.exitCode === null && child.signalCode === null,
    exit: () => exitInfo,
    exited,
    kill: (signal) => {
      child.kill(signal);
    },
    stop,
    close: async () => {
      await stop();
      await cleanup();
    },
  };
}
