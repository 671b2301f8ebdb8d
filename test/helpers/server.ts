/**
 * Starts the real server (the same startServer as `npm start`) on 127.0.0.1 with a random
 * port, a temporary DATA_DIR and a fresh database, and talks to it over HTTP. One per test
 * file: call it in beforeAll, close it in afterAll.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, type Config } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';
import { startServer, type RunningServer } from '../../src/app.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';

export const TEST_SECRET_KEY = 'test-secret-key-0123456789abcdef';

export interface GqlResponse<T = any> {
  status: number;
  headers: Headers;
  body: { data?: T; errors?: Array<{ message: string; extensions?: Record<string, any>; path?: unknown[] }> };
}

export interface TestServer {
  url: string;
  config: Config;
  running: RunningServer;
  dataDir: string;
  database: TestDatabase;
  /** Every log line the server wrote (to check that secrets never appear). */
  logs: string[];
  gql<T = any>(
    query: string,
    variables?: Record<string, unknown>,
    opts?: { token?: string; headers?: Record<string, string> },
  ): Promise<GqlResponse<T>>;
  close(): Promise<void>;
}

/** A GraphQL client for the server at `url` (POST /graphql/, bearer token, extra headers). */
export function gqlAt(url: string): TestServer['gql'] {
  return async (query, variables, opts = {}) => {
    const res = await fetch(`${url}/graphql/`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
        ...opts.headers,
      },
      body: JSON.stringify({ query, variables }),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: JSON.parse(text) };
  };
}

export async function startTestServer(env: Record<string, string> = {}): Promise<TestServer> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'sat-'));
  const database = await createTestDatabase();
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    SECRET_KEY: TEST_SECRET_KEY,
    LOG_LEVEL: 'debug',
    ...(database.url ? { DATABASE_URL: database.url } : {}),
    ...env,
  });
  const logs: string[] = [];
  const log = createLogger(config.logLevel, {}, (line) => logs.push(line));
  let running: RunningServer;
  try {
    running = await startServer(config, log);
  } catch (e) {
    await database.drop().catch(() => {});
    rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
  const url = running.url;
  return {
    url,
    config,
    running,
    dataDir,
    database,
    logs,
    gql: gqlAt(url),
    async close() {
      await running.close();
      await database.drop().catch(() => {});
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
