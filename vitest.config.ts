/**
 * Two projects: `pglite` runs everything on the embedded database; `postgresql` runs the
 * database-backed tests (test/e2e, test/db) again on PostgreSQL when it is reachable
 * (POSTGRES_TEST_URL, default postgresql://postgres@127.0.0.1:5432/test; set it to "off" to skip).
 */
import net from 'node:net';
import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

// graphql 16 ships CJS (main) and ESM (module) builds. Node, and so Apollo Server and tsx,
// load the CJS one; Vite would pick the ESM one for our files: two copies of graphql whose
// classes fail each other's instanceof checks. Point ours at the same file Node uses.
const graphqlEntry = createRequire(import.meta.url).resolve('graphql');

const POSTGRES_URL = process.env['POSTGRES_TEST_URL'] ?? 'postgresql://postgres@127.0.0.1:5432/test';

function reachable(url: string): Promise<boolean> {
  if (url === 'off') return Promise.resolve(false);
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect({ host: u.hostname, port: Number(u.port || 5432) });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(1500, () => done(false));
  });
}

export default defineConfig(async () => {
  const withPostgres = await reachable(POSTGRES_URL);
  const resolve = { alias: [{ find: /^graphql$/, replacement: graphqlEntry }] };
  const shared = {
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: 'forks' as const,
  };
  return {
    resolve,
    test: {
      ...shared,
      // Two cores: two test files at a time; each e2e file starts one server (and provider).
      maxWorkers: 2,
      projects: [
        { resolve, test: { ...shared, name: 'pglite', include: ['test/**/*.test.ts'], env: { TEST_DATABASE_URL: '' } } },
        ...(withPostgres
          ? [
              {
                resolve,
                test: {
                  ...shared,
                  name: 'postgresql',
                  include: ['test/e2e/**/*.test.ts', 'test/db/migrator.test.ts'],
                  // These run the server the way a user does (compiled; the demo), on the embedded
                  // database whatever the project: once is enough.
                  exclude: ['test/e2e/start-compiled.test.ts', 'test/e2e/browser-demo.test.ts'],
                  env: { TEST_DATABASE_URL: POSTGRES_URL },
                },
              },
            ]
          : []),
      ],
    },
  };
});
