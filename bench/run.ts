/**
 * `npm run bench`: what our server costs around the GraphQL framework, and what authentication
 * costs on top of an anonymous request, as ratios measured in one run on this machine.
 *
 * Starts two local OpenID providers (the oidc-provider test harness) in this process, the server
 * as a child process (as `npm start` runs it: the compiled JavaScript, npm start's node flags,
 * production mode, default log level, embedded database or PostgreSQL) and the framework ceiling
 * as another (bench/ceiling-server.ts, compiled, the same node flags: Apollo Server 5 on plain
 * node:http answering the same document with a null resolver). The server has two OIDC
 * connections: the default one configured through discovery (pluginUpdate, then a real login),
 * and `bench.explicit` to the second provider with every endpoint set explicitly
 * (PLUGINS_CONFIG_FILE). Every case sends the same document, `{ me { email } }`, with
 * CONCURRENCY requests in flight for DURATION_MS:
 *   - the ceiling; anonymous (the baseline); anonymous again (the control: it shows the noise);
 *     anonymous with a header the size of a token;
 *   - `me` with our token, a provider JWT (RS256, aud = the audience, a saleor scope) of each
 *     connection, and a provider opaque token (introspection).
 * Every case is warmed up first (JIT, caches filled), then the cases run ROUNDS times, each
 * round starting with the next case, so drift on a shared machine hits them all alike.
 *
 * Printed per case: requests/s and p50/p99 latency (means of the rounds); the ratio to the
 * ceiling and to the baseline (of the means; in brackets the lowest and highest ratio to the
 * baseline in a single round); the server's CPU time per request (from /proc: far less noisy
 * than requests/s when others use the machine) and this process's (the client: a bottleneck
 * too on 2 cores); the token's length; log lines per request (the request log is on);
 * provider calls (during the measured rounds and a check pass), bearer tokens validated (token
 * cache misses on the server's /metrics, in the check pass; in all the measured rounds, a few: our
 * own tokens' principals are looked up again every 30 s) and tables written (in a check pass
 * that runs each case alone: a digest of every row before and after, taken when the next
 * transaction id moved; the measured rounds are checked as a whole), all of which must be 0; and
 * errors (a wrong answer or status).
 *
 * Environment: BENCH_DURATION_MS (default 3000), BENCH_CONCURRENCY (16), BENCH_ROUNDS (6),
 * BENCH_WARMUP_MS (10000: anonymous requests to every server before the per-case warm-ups);
 * BENCH_DATABASE_URL (e.g. postgresql://postgres@127.0.0.1:5432/bench_hot: that database is
 * dropped and created afresh; DATABASE_URL is used as it is); BENCH_CASES (indexes to run, e.g.
 * "1,2"); BENCH_RUNTIME=tsx (both servers run from source through tsx, as in development);
 * BENCH_SERVER_NODE_FLAGS and BENCH_CEILING_NODE_FLAGS (e.g. "--cpu-prof
 * --cpu-prof-dir=/tmp/prof"; bench/profile-top.ts summarises a profile).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
import path from 'node:path';
import { Pool as HttpPool } from 'undici';
import pg from 'pg';
import { startIdp } from '../test/helpers/idp.ts';
import { AUDIENCE, REDIRECT, configureAndLogIn, cpuMs, logIn, explicitConnectionEntry, root, serverEnv, startBenchIdp, waitForHealth } from './lib.ts';

const DURATION_MS = Number(process.env['BENCH_DURATION_MS'] ?? 3000);
const CONCURRENCY = Number(process.env['BENCH_CONCURRENCY'] ?? 16);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 6);
const WARMUP_MS = Number(process.env['BENCH_WARMUP_MS'] ?? 10_000);
const DOCUMENT = JSON.stringify({ query: '{ me { email } }' });
const EXPLICIT_PLUGIN = 'bench.explicit';
const TSX = process.env['BENCH_RUNTIME'] === 'tsx';
const METRICS_TOKEN = 'bench-metrics-token-0123456789';

/** Bearer-token validations (token cache misses) the server has counted so far (its /metrics). */
async function validations(url: string): Promise<number> {
  const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  let n = 0;
  for (const line of (await res.text()).split('\n')) {
    if (line.startsWith('saleor_auth_token_cache_lookups_total{') && line.includes('result="miss"')) n += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return n;
}

interface Round {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

async function measure(pool: HttpPool, token: string | undefined, durationMs: number, check: (json: any) => boolean): Promise<Round> {
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
      const res = await pool.request({ path: '/graphql/', method: 'POST', headers, body: DOCUMENT });
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
  return { requests: latencies.length, rps: latencies.length / elapsed, p50: pct(0.5), p99: pct(0.99), errors };
}

/**
 * The node flags `npm start` runs the server with (package.json: `node <flags> scripts/start.mjs
 * serve`). The ceiling gets them too: the same runtime settings for both.
 */
function npmStartFlags(): string[] {
  const start: string = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).scripts.start;
  const m = /^node((?: --\S+)*) scripts\/start\.mjs serve$/.exec(start);
  if (!m) throw new Error(`package.json "start" is not "node [flags] scripts/start.mjs serve": ${start}`);
  return m[1]!.split(' ').filter(Boolean);
}
const START_FLAGS = npmStartFlags();

/** A child node process running `args` (after npm start's node flags and those in $flagsVar); counts the lines it prints on stdout. */
function startNode(args: string[], flagsVar: string, env: Record<string, string>, cwd = root) {
  const flags = [...START_FLAGS, ...(process.env[flagsVar] ?? '').split(' ').filter(Boolean)];
  const script = args.find((a) => !a.startsWith('-') && a !== 'tsx') ?? '';
  const child = spawn(process.execPath, [...flags, ...args], {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const state = { child, lines: 0, stderr: '', firstLine: new Promise<string>((resolve) => child.stdout!.once('data', (d) => resolve(String(d)))) };
  if (process.env['BENCH_TEE']) child.stdout!.pipe(require('node:fs').createWriteStream(process.env['BENCH_TEE'] + path.basename(script)));
  child.stdout!.on('data', (chunk: Buffer) => {
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) state.lines++;
  });
  child.stderr!.on('data', (d) => (state.stderr = (state.stderr + String(d)).slice(-4000)));
  child.once('exit', (code, signal) => {
    if (!stopping) console.error(`${script} exited early (${code ?? signal}): ${state.stderr}`);
  });
  return state;
}

let stopping = false;
async function stop(child: ChildProcess | undefined): Promise<void> {
  stopping = true;
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  // --cpu-prof writes its profile on exit: give it time.
  await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
}

/** BENCH_DATABASE_URL: the database is dropped and created afresh (never `test` or `postgres`). */
async function freshDatabase(url: string): Promise<void> {
  const u = new URL(url);
  const name = decodeURIComponent(u.pathname.slice(1));
  if (!/^[a-z_][a-z0-9_]*$/.test(name) || name === 'test' || name === 'postgres') throw new Error(`BENCH_DATABASE_URL: refusing to recreate database "${name}"`);
  u.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: u.toString() });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
}

type Role = 'ceiling' | 'baseline' | 'control' | 'padding' | 'auth' | 'extra';
interface Target {
  pool: HttpPool;
  pid: number;
  /** Lines the process has printed so far (its request log), or undefined (none kept). */
  lines: () => number | undefined;
}
interface Case {
  name: string;
  role: Role;
  target: Target;
  token?: string;
  check: (json: any) => boolean;
}

async function main() {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'bench-'));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const ceilingPort = port + 1;
  const ceilingJs = path.join(root, 'bench', `.ceiling-server.${process.pid}.mjs`);
  const benchDbUrl = process.env['BENCH_DATABASE_URL'];
  const databaseUrl = benchDbUrl ?? process.env['DATABASE_URL'];
  if (benchDbUrl) await freshDatabase(benchDbUrl);
  const idp = await startBenchIdp();
  const idp2 = await startIdp({
    clients: [{ client_id: 'storefront', client_secret: 'storefront-secret', redirect_uris: [REDIRECT] }],
    accounts: [{ sub: 'bob', email: 'bob@example.com', email_verified: true, given_name: 'Bob' }],
  });
  const pluginsFile = path.join(dataDir, 'plugins.json');
  writeFileSync(pluginsFile, JSON.stringify({ plugins: [await explicitConnectionEntry(EXPLICIT_PLUGIN, idp2)] }));
  const env: Record<string, string> = {
    ...serverEnv(port, dataDir),
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    PLUGINS_CONFIG_FILE: pluginsFile,
    // Long enough that an opaque token validated in the warm-up is not re-validated during the
    // measured rounds (the default, 60 s, bounds how long a revoked token keeps working).
    OIDC_OPAQUE_TOKEN_CACHE_SECONDS: '600',
    // The default level: the request log line (one per request) is part of what is measured.
    LOG_LEVEL: 'info',
    METRICS_TOKEN: METRICS_TOKEN,
  };
  let server: ReturnType<typeof startNode> | undefined;
  let ceiling: ReturnType<typeof startNode> | undefined;
  const extras: Array<{ label: string; url: string; node: ReturnType<typeof startNode>; dataDir: string; env: Record<string, string> }> = [];
  const url = `http://127.0.0.1:${port}`;
  const idpCalls = () => [idp, idp2].reduce((n, p) => n + Object.values(p.counts()).reduce((a, b) => a + b, 0), 0);
  try {
    // As deployed: `npm start` runs the compiled JavaScript (scripts/start.mjs builds dist/ when
    // it is stale). The ceiling is compiled too (esbuild, no helpers added), next to this file so
    // that it finds node_modules. BENCH_RUNTIME=tsx runs both through tsx instead.
    if (TSX) {
      server = startNode(['--import', 'tsx', 'src/main.ts', 'serve'], 'BENCH_SERVER_NODE_FLAGS', env);
      ceiling = startNode(['--import', 'tsx', 'bench/ceiling-server.ts'], 'BENCH_CEILING_NODE_FLAGS', { PORT: String(ceilingPort), NODE_ENV: 'production', BENCH_PARENT_PID: String(process.pid) });
    } else {
      const { transform } = await import('esbuild');
      const source = readFileSync(path.join(root, 'bench/ceiling-server.ts'), 'utf8');
      writeFileSync(ceilingJs, (await transform(source, { loader: 'ts', format: 'esm', target: 'node20' })).code);
      server = startNode(['scripts/start.mjs', 'serve'], 'BENCH_SERVER_NODE_FLAGS', env);
      ceiling = startNode([ceilingJs], 'BENCH_CEILING_NODE_FLAGS', { PORT: String(ceilingPort), NODE_ENV: 'production', BENCH_PARENT_PID: String(process.pid) });
    }
    // BENCH_EXTRA: more servers for an A/B comparison in the same run, anonymous only
    // ("label@root@NAME=value NAME=value;…": root another checkout, with dist/ and node_modules;
    // empty root: this one; a label ending in "+login" also gets the connection and a login).
    for (const [k, spec] of (process.env['BENCH_EXTRA'] ?? '').split(';').filter(Boolean).entries()) {
      const [label, extraRoot, settings] = spec.split('@');
      const extraPort = port + 2 + k;
      const extraDir = mkdtempSync(path.join(os.tmpdir(), 'bench-extra-'));
      const extraEnv = { ...serverEnv(extraPort, extraDir), LOG_LEVEL: 'info', ...Object.fromEntries((settings ?? '').split(' ').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])) };
      const node = startNode([path.join(extraRoot || root, 'scripts/start.mjs'), 'serve'], 'BENCH_EXTRA_NODE_FLAGS', extraEnv, extraRoot || root);
      extras.push({ label: label!, url: `http://127.0.0.1:${extraPort}`, node, dataDir: extraDir, env: extraEnv });
    }
    try {
      await waitForHealth(url);
      for (const x of extras) await waitForHealth(x.url);
    } catch (e) {
      throw new Error(`${(e as Error).message}: ${server.stderr} ${extras.map((x) => x.node.stderr).join(' ')}`);
    }
    if (!(await ceiling.firstLine).startsWith('listening')) throw new Error(`ceiling server did not start: ${ceiling.stderr}`);
    // Our token: a real login through the provider (connection configured through discovery).
    const ourToken = await configureAndLogIn(idp, url, env);
    // An extra whose label ends in "+login" is configured and logged into the same way.
    for (const x of extras) if (x.label.endsWith('+login')) await configureAndLogIn(idp, x.url, x.env);
    const providerJwt = await idp.issueAccessToken({ sub: 'alice', clientId: 'storefront', scope: 'openid email saleor:manage_orders', resource: AUDIENCE, format: 'jwt' });
    // Bob's identity is known from a login (JWT access tokens carry no email).
    await logIn(idp2, url, EXPLICIT_PLUGIN, 'bob');
    const explicitJwt = await idp2.issueAccessToken({ sub: 'bob', clientId: 'storefront', scope: 'openid email saleor:manage_orders', resource: AUDIENCE, format: 'jwt' });
    const opaque = await idp.issueAccessToken({ sub: 'alice', clientId: 'storefront', scope: 'saleor:manage_orders', resource: AUDIENCE, format: 'opaque' });

    const db = new pg.Client(databaseUrl ? { connectionString: databaseUrl } : { host: dataDir, port: 5432, user: 'postgres', database: 'postgres' });
    await db.connect();
    db.on('error', () => {});
    const tables = (await db.query(`SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)).rows.map((r) => r.tablename as string);
    /** One digest per table, of every row: any insert, update or delete changes it. */
    const digest = async () => {
      const out = new Map<string, string>();
      for (const t of tables) {
        const r = await db.query(`SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) AS d FROM "${t}" t`);
        out.set(t, r.rows[0].d);
      }
      return out;
    };
    /**
     * The next transaction id to be assigned. Every transaction that inserts, updates or deletes
     * a row is given one (read-only ones are not), so an unchanged value means no write at all;
     * the digests are taken again only when it moved.
     *
     * With the embedded database these queries run inside the server under test, and even two
     * small ones between every two cases slowed what it measured next (about 10%, against the
     * same server spared them: the database code in the same process disturbs the JIT's view of
     * the HTTP path). So the measured rounds are checked as a whole, before the first and after
     * the last; then a check pass runs every case once more, alone between two checks, to say
     * which case wrote what.
     */
    const nextXid = async () => String((await db.query('SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS x')).rows[0].x);
    let known = { xid: await nextXid(), digest: await digest() };
    /** The digests now (taken again only when some transaction wrote since the last ones). */
    const state = async () => {
      const xid = await nextXid();
      if (xid !== known.xid) known = { xid, digest: await digest() };
      return known;
    };
    const written = (before: typeof known, after: typeof known) => tables.filter((t) => before.digest.get(t) !== after.digest.get(t));

    const pool = (u: string) => new HttpPool(u, { connections: CONCURRENCY, pipelining: 1 });
    const ours: Target = { pool: pool(url), pid: server.child.pid!, lines: () => server!.lines };
    const framework: Target = { pool: pool(`http://127.0.0.1:${ceilingPort}`), pid: ceiling.child.pid!, lines: () => undefined };
    const anonymous = (j: any) => j.data?.me === null && !j.errors;
    const alice = (j: any) => j.data?.me?.email === 'alice@example.com';
    const allCases: Case[] = [
      { name: 'Apollo ceiling (null resolver)', role: 'ceiling', target: framework, check: anonymous },
      { name: 'anonymous (baseline)', role: 'baseline', target: ours, check: anonymous },
      { name: 'anonymous (control)', role: 'control', target: ours, check: anonymous },
      { name: 'anonymous + 1 KB header', role: 'padding', target: ours, token: `pad:${'x'.repeat(ourToken.length)}`, check: anonymous },
      { name: 'me, our token', role: 'auth', target: ours, token: ourToken, check: alice },
      { name: 'me, provider JWT (discovery)', role: 'auth', target: ours, token: providerJwt, check: alice },
      { name: 'me, provider JWT (explicit)', role: 'auth', target: ours, token: explicitJwt, check: (j) => j.data?.me?.email === 'bob@example.com' },
      { name: 'me, provider opaque (introsp.)', role: 'auth', target: ours, token: opaque, check: alice },
      ...extras.map((x): Case => {
        const node = x.node;
        return { name: `anonymous, ${x.label}`, role: 'extra', target: { pool: pool(x.url), pid: node.child.pid!, lines: () => node.lines }, check: anonymous };
      }),
    ];
    // BENCH_CASES=1,2 runs only those cases (e.g. to profile one; ratios need cases 0 and 1).
    const only = process.env['BENCH_CASES']?.split(',').map(Number);
    const cases = only ? allCases.filter((_, i) => only.includes(i)) : allCases;

    const sent = new Map<Target, number>();
    const windowStart = performance.now();
    // Steady state: the JIT compiler takes seconds to settle, the longer the more code a server
    // runs (measured: optimising compiles still at ~10% of our CPU after 5 s). Every server
    // first answers WARMUP_MS of anonymous requests, then every case is warmed up.
    for (const t of new Set(cases.map((c) => c.target))) {
      const warm = await measure(t.pool, undefined, WARMUP_MS, anonymous);
      sent.set(t, (sent.get(t) ?? 0) + warm.requests);
    }
    for (const c of cases) {
      const warm = await measure(c.target.pool, c.token, Math.min(1500, DURATION_MS), c.check);
      sent.set(c.target, (sent.get(c.target) ?? 0) + warm.requests);
      if (warm.errors) throw new Error(`warm-up of "${c.name}": ${warm.errors} wrong answers`);
    }
    const results = cases.map(() => ({ rps: 0, p50: 0, p99: 0, errors: 0, requests: 0, cpuMs: 0, clientCpuMs: 0, validations: 0, lines: 0, providerCalls: 0, tablesWritten: new Set<string>(), perRound: [] as number[] }));
    const roundsBefore = await state();
    const validatedBefore = await validations(url);
    for (let round = 0; round < ROUNDS; round++) {
      // Each round starts with another case, so no case always runs first or last.
      const order = cases.map((_, k) => (k + round) % cases.length);
      for (const i of order) {
        const c = cases[i]!;
        const t = c.target;
        idp.resetCounts();
        idp2.resetCounts();
        const lines0 = t.lines() ?? 0;
        const cpu0 = cpuMs(t.pid);
        const client0 = process.cpuUsage();
        const r = await measure(t.pool, c.token, DURATION_MS, c.check);
        const client = process.cpuUsage(client0);
        sent.set(t, (sent.get(t) ?? 0) + r.requests);
        const cpu1 = cpuMs(t.pid);
        const acc = results[i]!;
        acc.clientCpuMs += (client.user + client.system) / 1000;
        acc.rps += r.rps / ROUNDS;
        acc.p50 += r.p50 / ROUNDS;
        acc.p99 += r.p99 / ROUNDS;
        acc.errors += r.errors;
        acc.requests += r.requests;
        acc.cpuMs += cpu1 - cpu0;
        acc.lines += (t.lines() ?? 0) - lines0;
        acc.perRound.push(r.rps);
        acc.providerCalls += idpCalls();
      }
    }
    const writtenInRounds = written(roundsBefore, await state());
    const validatedInRounds = (await validations(url)) - validatedBefore;
    // The check pass: which case wrote, called the provider or validated a token, each alone.
    for (const [i, c] of cases.entries()) {
      idp.resetCounts();
      idp2.resetCounts();
      const before = await state();
      const validated = c.target === ours ? await validations(url) : 0;
      await measure(c.target.pool, c.token, Math.min(1000, DURATION_MS), c.check);
      for (const tb of written(before, await state())) results[i]!.tablesWritten.add(tb);
      results[i]!.providerCalls += idpCalls();
      results[i]!.validations = c.target === ours ? (await validations(url)) - validated : 0;
    }
    const windowMs = performance.now() - windowStart;
    for (const c of new Set(cases.map((x) => x.target))) await c.pool.close();
    await db.end();

    const at = (role: Role) => cases.findIndex((c) => c.role === role);
    const base = results[at('baseline')];
    const ceil = results[at('ceiling')];
    const ratio = (a: number, b: number | undefined) => (b ? (a / b).toFixed(2) : '-');
    /** Ratios of `r` to `to` round by round (the two ran minutes apart at most). */
    const paired = (r: (typeof results)[number], to: (typeof results)[number]) => r.perRound.map((v, k) => v / to.perRound[k]!).sort((a, b) => a - b);
    const median = (xs: number[]) => (xs.length % 2 ? xs[(xs.length - 1) / 2]! : (xs[xs.length / 2 - 1]! + xs[xs.length / 2]!) / 2);
    const range = (r: (typeof results)[number]) => {
      if (!base) return '';
      const per = paired(r, base);
      return `${median(per).toFixed(2)} ${per[0]!.toFixed(2)}-${per.at(-1)!.toFixed(2)}`;
    };
    const cols: Array<[string, number]> = [['case', 31], ['req/s', 7], ['p50 ms', 7], ['p99 ms', 7], ['x ceil', 6], ['x anon', 6], ['rounds: median min-max', 22], ['CPU us/req', 10], ['client us', 9], ['token B', 7], ['log/req', 7], ['idp calls', 9], ['validations', 11], ['tables written', 14], ['errors', 6]];
    const line = (values: string[]) => values.map((v, k) => (k === 0 ? v.padEnd(cols[k]![1]) : v.padStart(cols[k]![1]))).join(' ');
    console.log(`\nconcurrency ${CONCURRENCY}, ${ROUNDS} rounds x ${DURATION_MS} ms per case, database ${databaseUrl ? 'PostgreSQL' : 'embedded PGlite'}, node ${process.version} ${START_FLAGS.join(' ')} (server and ceiling), ${os.cpus().length} cores, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    console.log(line(cols.map(([n]) => n)));
    results.forEach((r, i) => {
      const c = cases[i]!;
      console.log(
        line([
          c.name, r.rps.toFixed(0), r.p50.toFixed(2), r.p99.toFixed(2), ratio(r.rps, ceil?.rps), ratio(r.rps, base?.rps), range(r),
          ((r.cpuMs * 1000) / r.requests).toFixed(0), ((r.clientCpuMs * 1000) / r.requests).toFixed(0), String(c.token?.length ?? 0), c.role === 'ceiling' ? '-' : (r.lines / r.requests).toFixed(2),
          String(r.providerCalls), String(r.validations), String(r.tablesWritten.size), String(r.errors),
        ]),
      );
    });
    if (process.env['BENCH_SERVER_NODE_FLAGS'] || process.env['BENCH_CEILING_NODE_FLAGS']) {
      console.log(`profiling: requests sent from the first warm-up on: ours ${sent.get(ours) ?? 0}, ceiling ${sent.get(framework) ?? 0}, over the last ${Math.ceil(windowMs)} ms before shutdown (bench/profile-top.ts --last ${Math.ceil(windowMs)} --requests N)`);
    }
    console.log(`tables written during the measured rounds: ${writtenInRounds.length ? writtenInRounds.join(', ') : 'none'}; bearer tokens validated (cache misses): ${validatedInRounds}`);
    if (base && ceil) {
      const per = paired(base, ceil);
      console.log(`\nanonymous / ceiling: ${ratio(base.rps, ceil.rps)} of the mean req/s, round by round median ${median(per).toFixed(2)} (${per[0]!.toFixed(2)}-${per.at(-1)!.toFixed(2)}) (target >= 0.85); CPU per request ${ratio(base.cpuMs / base.requests, ceil.cpuMs / ceil.requests)}x the ceiling's`);
    }
    if (base) {
      const auth = results.filter((_, i) => cases[i]!.role === 'auth');
      if (auth.length) console.log(`authenticated / anonymous: lowest ${Math.min(...auth.map((r) => r.rps / base.rps)).toFixed(2)} (target >= 0.90)`);
    }
  } finally {
    await stop(server?.child);
    await stop(ceiling?.child);
    for (const x of extras) {
      await stop(x.node.child);
      rmSync(x.dataDir, { recursive: true, force: true });
    }
    await idp.close();
    await idp2.close();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(ceilingJs, { force: true });
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
