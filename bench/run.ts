/**
 * `npm run bench`: throughput and latency of authenticated requests against an anonymous
 * baseline, measured in one run on this machine.
 *
 * Starts a local OpenID provider (the oidc-provider test harness) in this process and the
 * server as a child process (`src/main.ts serve`, embedded database, or DATABASE_URL when
 * set), then for each case runs a warm-up and a measured round of `{ me { email } }` (the
 * baseline: the same query with no token) with CONCURRENCY requests in flight for DURATION_MS.
 * It prints requests/s, p50/p99 latency, the ratio to the baseline, provider calls, and the
 * tables whose content changed (a digest of every row before and after) during the measured
 * rounds: 0 means no database write.
 *
 * Environment: BENCH_DURATION_MS (default 3000), BENCH_CONCURRENCY (default 16), BENCH_ROUNDS
 * (default 6); for profiling, BENCH_CASES (indexes to run) and BENCH_SERVER_NODE_FLAGS (e.g.
 * "--cpu-prof --cpu-prof-dir=/tmp/prof").
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Pool as HttpPool } from 'undici';
import pg from 'pg';
import { AUDIENCE, configureAndLogIn, root, serverEnv, startBenchIdp, waitForHealth } from './lib.ts';

const DURATION_MS = Number(process.env['BENCH_DURATION_MS'] ?? 3000);
const CONCURRENCY = Number(process.env['BENCH_CONCURRENCY'] ?? 16);

interface Round {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

async function measure(pool: HttpPool, body: string, token: string | undefined, durationMs: number, check: (json: any) => boolean): Promise<Round> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  // A token starting with "pad:" is not sent as a token: the same number of bytes go in a
  // header the server ignores (what the request size alone costs the client and the server).
  if (token?.startsWith('pad:')) headers['x-padding'] = token;
  else if (token) headers['authorization'] = `Bearer ${token}`;
  const latencies: number[] = [];
  let errors = 0;
  const end = performance.now() + durationMs;
  const worker = async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      const res = await pool.request({ path: '/graphql/', method: 'POST', headers, body });
      const json = await res.body.json();
      latencies.push(performance.now() - t0);
      if (res.statusCode !== 200 || !check(json)) errors++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
  return { rps: latencies.length / elapsed, p50: pct(0.5), p99: pct(0.99), errors };
}

async function main() {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'bench-'));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const idp = await startBenchIdp();
  const env: Record<string, string> = {
    ...serverEnv(port, dataDir),
    // Long enough that an opaque token validated in the warm-up is not re-validated during the
    // measured rounds (the default, 60 s, bounds how long a revoked token keeps working).
    OIDC_OPAQUE_TOKEN_CACHE_SECONDS: '600',
    LOG_LEVEL: 'warn',
  };
  let server: ChildProcess | undefined;
  const url = `http://127.0.0.1:${port}`;
  try {
    server = spawn(process.execPath, [...(process.env['BENCH_SERVER_NODE_FLAGS'] ?? '').split(' ').filter(Boolean), '--import', 'tsx', 'src/main.ts', 'serve'], { cwd: root, env: { ...process.env, ...env }, stdio: 'ignore' });
    await waitForHealth(url);
    // Our token: a real login through the provider.
    const ourToken = await configureAndLogIn(idp, url, env);
    const providerJwt = await idp.issueAccessToken({ sub: 'alice', clientId: 'storefront', scope: 'openid email saleor:manage_orders', resource: AUDIENCE, format: 'jwt' });
    const opaque = await idp.issueAccessToken({ sub: 'alice', clientId: 'storefront', scope: 'saleor:manage_orders', resource: AUDIENCE, format: 'opaque' });

    const db = new pg.Client(env['DATABASE_URL'] ? { connectionString: env['DATABASE_URL'] } : { host: dataDir, port: 5432, user: 'postgres', database: 'postgres' });
    await db.connect();
    const tables = (await db.query(`SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)).rows.map((r) => r.tablename as string);
    /** One digest per table, of every row: any insert, update or delete changes it. */
    const snapshot = async () => {
      const out = new Map<string, string>();
      for (const t of tables) {
        const r = await db.query(`SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) AS d FROM "${t}" t`);
        out.set(t, r.rows[0].d);
      }
      return out;
    };

    const pool = new HttpPool(url, { connections: CONCURRENCY, pipelining: 1 });
    const body = JSON.stringify({ query: '{ me { email } }' });
    const allCases: Array<[string, string | undefined, (j: any) => boolean]> = [
      ['anonymous (baseline)', undefined, (j) => j.data?.me === null],
      ['anonymous + 1 KB header', `pad:${'x'.repeat(ourToken.length)}`, (j) => j.data?.me === null],
      ['me, our token', ourToken, (j) => j.data?.me?.email === 'alice@example.com'],
      ['me, provider JWT', providerJwt, (j) => j.data?.me?.email === 'alice@example.com'],
      ['me, provider opaque', opaque, (j) => j.data?.me?.email === 'alice@example.com'],
    ];
    // BENCH_CASES=0,1 runs only those cases (e.g. to profile one; ratios need case 0).
    const only = process.env['BENCH_CASES']?.split(',').map(Number);
    const cases = only ? allCases.filter((_, i) => only.includes(i)) : allCases;
    // Warm every case first (JIT, caches filled), then alternate the cases over ROUNDS rounds so
    // that drift on a shared machine hits them all alike; report the mean of the rounds.
    const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 6);
    for (const [, token, check] of cases) await measure(pool, body, token, Math.min(1500, DURATION_MS), check);
    const results = cases.map(() => ({ rps: 0, p50: 0, p99: 0, errors: 0, providerCalls: 0, tablesWritten: new Set<string>() }));
    for (let round = 0; round < ROUNDS; round++) {
      // Each round starts with another case, so no case always runs first or last.
      const order = cases.map((_, k) => (k + round) % cases.length);
      for (const i of order) {
        const [, token, check] = cases[i]!;
        idp.resetCounts();
        const before = await snapshot();
        const r = await measure(pool, body, token, DURATION_MS, check);
        const after = await snapshot();
        const acc = results[i]!;
        acc.rps += r.rps / ROUNDS;
        acc.p50 += r.p50 / ROUNDS;
        acc.p99 += r.p99 / ROUNDS;
        acc.errors += r.errors;
        acc.providerCalls += Object.values(idp.counts()).reduce((a, b) => a + b, 0);
        for (const t of tables) if (before.get(t) !== after.get(t)) acc.tablesWritten.add(t);
      }
    }
    const baseline = results[0]!.rps;
    const rows = results.map((r, i) =>
      [cases[i]![0].padEnd(22), r.rps.toFixed(0).padStart(8), r.p50.toFixed(2).padStart(8), r.p99.toFixed(2).padStart(8),
        `${((r.rps / baseline) * 100).toFixed(0)}%`.padStart(7), String(r.providerCalls).padStart(9), String(r.tablesWritten.size).padStart(14), String(r.errors).padStart(7)].join(' '),
    );
    await pool.close();
    await db.end();
    console.log(`\nconcurrency ${CONCURRENCY}, ${ROUNDS} rounds x ${DURATION_MS} ms per case, database ${env['DATABASE_URL'] ? 'PostgreSQL' : 'embedded PGlite'}, node ${process.version}, ${os.cpus().length} cores`);
    console.log(['case'.padEnd(22), 'req/s'.padStart(8), 'p50 ms'.padStart(8), 'p99 ms'.padStart(8), 'ratio'.padStart(7), 'idp calls'.padStart(9), 'tables written'.padStart(14), 'errors'.padStart(7)].join(' '));
    for (const r of rows) console.log(r);
  } finally {
    server?.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    await idp.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
