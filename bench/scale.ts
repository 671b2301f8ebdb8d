/**
 * `npm run bench:scale`: does a login, a refresh and tokensDeactivateAll stay as fast with
 * 1,000,000 users, 1,000,000 sessions and 5,000,000 audit events in PostgreSQL as on an almost
 * empty database, and how many logins and refreshes per second does one instance sustain, with
 * how much of their time spent waiting for the provider?
 *
 * Databases on one PostgreSQL (BENCH_SCALE_PG, default postgresql://postgres@127.0.0.1:5432):
 * `bench_scale_empty` (1,000 users, 1,000 sessions, 5,000 audit events: the same generator at a
 * thousandth), `bench_scale` (the full size) and, as a control, `bench_scale_control` (a second
 * almost empty one: its ratio to the first shows what the machine's noise alone does to a
 * ratio). They are dropped and created at the start and dropped at the end; each gets its own
 * server (child process, `src/main.ts serve`, production mode, migrations applied at start), all
 * against one local provider (the oidc-provider harness, in this process). The connection is
 * configured first (pointing it at a provider later would end the seeded sessions), then the
 * seed is generated inside PostgreSQL (INSERT … SELECT generate_series, indexes rebuilt after
 * the load), then VACUUM ANALYZE.
 *
 * 1. Latency: SAMPLES cycles per database, one request at a time, in lockstep: each step runs on
 *    every server in turn (rotating which goes first) before the next step, so drift on a shared
 *    machine hits them alike. A cycle is a login (the full code
 *    flow: externalAuthenticationUrl → the provider's authorization, login and consent pages →
 *    externalObtainAccessTokens), a refresh (externalRefresh: the provider's token endpoint is
 *    called) and tokensDeactivateAll with the refreshed access token. Logins alternate between
 *    a returning user (a seeded user linked at the provider, picked at random, each once) and a
 *    new one (the first login creates the user). Prints p50/p99 of both and their ratio.
 * 2. Throughput (the seeded database; the other servers are stopped first): 1 and then
 *    CONCURRENCY clients log in returning users for DURATION_MS each, then refresh their own
 *    sessions for DURATION_MS each.
 *    Where the time goes comes from the server's /metrics (request durations, provider-call
 *    durations), the provider's own handling time of each request (diagnostics_channel) and
 *    CPU time (the server process, this process: provider and clients, the machine).
 *
 * The connection logs customers in (use_oauth_scope_permissions off: see customerConnection).
 * The servers run with REFRESH_TOKEN_REUSE_INTERVAL_SECONDS=0 so that every refresh asks the
 * provider (the default 30 s would serve a session's second refresh within 30 s without it),
 * RATE_LIMIT_PER_IP_PER_MINUTE=0 and LOG_LEVEL=warn.
 *
 * Environment: BENCH_SCALE_SAMPLES (300), BENCH_SCALE_CONCURRENCY (16), BENCH_SCALE_DURATION_MS
 * (10000), BENCH_SCALE_USERS / _SESSIONS / _AUDIT (1e6 / 1e6 / 5e6), BENCH_SCALE_PG,
 * BENCH_SCALE_CONTROL=0 (no control database), BENCH_SCALE_KEEP=1 (keep the databases, for
 * EXPLAIN), BENCH_SCALE_SERVER_NODE_FLAGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { adminQuery as adminQueryOn, configureAndLogIn, PLUGIN, root, run, serverEnv, startBenchIdp, waitForHealth } from './lib.ts';
import type { TestIdp } from '../test/helpers/idp.ts';
import {
  isReturningCandidate,
  machineCpu,
  newAccount,
  ownCpu,
  freePort,
  percentile,
  postgresCpu,
  postgresCpuBetween,
  ProviderClock,
  seed,
  seededAccount,
  serverTimes,
  Target,
  type LoginTiming,
  type SeedSize,
  type Tokens,
} from './scale-lib.ts';

const num = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const SAMPLES = num('BENCH_SCALE_SAMPLES', 300);
const CONTROL = process.env['BENCH_SCALE_CONTROL'] !== '0';
const WARMUP = Math.max(10, Math.round(SAMPLES / 10));
const CONCURRENCY = num('BENCH_SCALE_CONCURRENCY', 16);
const DURATION_MS = num('BENCH_SCALE_DURATION_MS', 10_000);
const FULL: SeedSize = { users: num('BENCH_SCALE_USERS', 1_000_000), sessions: num('BENCH_SCALE_SESSIONS', 1_000_000), auditEvents: num('BENCH_SCALE_AUDIT', 5_000_000) };
const SMALL: SeedSize = { users: 1_000, sessions: 1_000, auditEvents: 5_000 };
const PG_URL = (process.env['BENCH_SCALE_PG'] ?? 'postgresql://postgres@127.0.0.1:5432').replace(/\/+$/, '');
const KEEP = process.env['BENCH_SCALE_KEEP'] === '1';
const METRICS_TOKEN = 'bench-scale-metrics-token-0123456789';

const log = (s: string) => process.stderr.write(`${s}\n`);
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-');
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '-');

interface Side {
  label: string;
  database: string;
  size: SeedSize;
  url: string;
  env: Record<string, string>;
  dataDir: string;
  server?: ChildProcess;
  target?: Target;
  /** Returning users not logged in yet (shuffled). */
  returning: number[];
}

function shuffled(n: number): number[] {
  const out: number[] = [];
  for (let g = 1; g <= n; g++) if (isReturningCandidate(g)) out.push(g);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const adminQuery = (sql: string) => adminQueryOn(PG_URL, sql);

async function recreate(database: string): Promise<void> {
  if (!/^bench_scale\w*$/.test(database)) throw new Error(`refusing to touch database ${database}`);
  await adminQuery(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  await adminQuery(`CREATE DATABASE ${database}`);
}

function startServer(side: Side): void {
  const flags = (process.env['BENCH_SCALE_SERVER_NODE_FLAGS'] ?? '').split(' ').filter(Boolean);
  const server = spawn(process.execPath, [...flags, '--import', 'tsx', 'src/main.ts', 'serve'], { cwd: root, env: { ...process.env, ...side.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const forward = (d: Buffer) => {
    for (const line of d.toString().split('\n')) if (line.trim()) log(`[${side.label} server] ${line}`);
  };
  server.stdout!.on('data', forward);
  server.stderr!.on('data', forward);
  side.server = server;
}

async function stopServer(side: Side): Promise<void> {
  const server = side.server;
  if (!server || server.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.kill('SIGKILL');
      resolve();
    }, 15_000);
    server.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    server.kill('SIGTERM');
  });
}

/** A returning user of `side` (each once), registered at the provider. */
function returningUser(idp: TestIdp, side: Side): string {
  const g = side.returning.pop();
  if (g === undefined) throw new Error(`${side.label}: no returning users left`);
  const account = seededAccount(g);
  idp.accounts.set(account.sub, account);
  return account.sub;
}

function freshUser(idp: TestIdp): string {
  const account = newAccount();
  idp.accounts.set(account.sub, account);
  return account.sub;
}

interface CycleTimes {
  login: LoginTiming & { kind: 'returning' | 'new' };
  refresh: number;
  deactivate: number;
}

/**
 * One cycle on every side, step by step: a login on each server (`first` goes first), then a
 * refresh on each, then tokensDeactivateAll on each.
 */
async function lockstep(idp: TestIdp, sides: Side[], first: number, kind: 'returning' | 'new'): Promise<Map<Side, CycleTimes>> {
  const order = sides.map((_, k) => sides[(first + k) % sides.length]!);
  const logins = new Map<Side, { tokens: Tokens; timing: LoginTiming }>();
  for (const side of order) logins.set(side, await side.target!.login(idp, kind === 'returning' ? returningUser(idp, side) : freshUser(idp)));
  const refreshes = new Map<Side, { tokens: Tokens; ms: number }>();
  for (const side of order) refreshes.set(side, await side.target!.refresh(logins.get(side)!.tokens.refreshToken));
  const out = new Map<Side, CycleTimes>();
  for (const side of order) {
    const deactivate = await side.target!.deactivateAll(refreshes.get(side)!.tokens.token);
    out.set(side, { login: { ...logins.get(side)!.timing, kind }, refresh: refreshes.get(side)!.ms, deactivate });
  }
  return out;
}

/**
 * bench/lib.ts configures the connection with use_oauth_scope_permissions, and the harness
 * grants every scope asked for: every login would then make its user staff. A storefront with a
 * million users logs customers in: turn scope permissions off (not a provider-identity field, so
 * no session ends).
 */
async function customerConnection(side: Side): Promise<void> {
  const cli = ['--import', 'tsx', 'src/cli.ts', 'staff', 'create', '--email', 'bench-admin@example.com', '--permissions', 'MANAGE_PLUGINS'];
  const admin = (await run(process.execPath, cli, side.env)).trim().split('\n').at(-1)!;
  const r = await side.target!.gql(
    'mutation($i: PluginUpdateInput!) { pluginUpdate(id: "' + PLUGIN + '", input: $i) { errors { field message } } }',
    { i: { configuration: [{ name: 'use_oauth_scope_permissions', value: 'false' }] } },
    admin,
  );
  if (r.pluginUpdate.errors.length) throw new Error(`pluginUpdate: ${JSON.stringify(r.pluginUpdate.errors)}`);
}

async function main(): Promise<void> {
  const started = performance.now();
  const idp = await startBenchIdp();
  const clock = new ProviderClock();
  const specs = [
    { label: 'empty', database: 'bench_scale_empty', size: SMALL },
    { label: 'seeded', database: 'bench_scale', size: FULL },
    ...(CONTROL ? [{ label: 'control', database: 'bench_scale_control', size: SMALL }] : []),
  ];
  const ports: number[] = [];
  for (const _ of specs) ports.push(await freePort());
  const sides: Side[] = specs.map((s, k) => {
    const port = ports[k]!;
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'bench-scale-'));
    const env = {
      ...serverEnv(port, dataDir),
      DATABASE_URL: `${PG_URL}/${s.database}`,
      LOG_LEVEL: 'warn',
      RATE_LIMIT_PER_IP_PER_MINUTE: '0',
      REFRESH_TOKEN_REUSE_INTERVAL_SECONDS: '0',
      METRICS_TOKEN,
    };
    return { ...s, url: `http://127.0.0.1:${port}`, env, dataDir, returning: shuffled(s.size.users) };
  });
  const [empty, seeded] = sides as [Side, Side];
  const control = sides[2];
  try {
    // 1. Databases, servers (they apply the migrations), seed.
    for (const side of sides) await recreate(side.database);
    for (const side of sides) startServer(side);
    for (const side of sides) {
      const exited = new Promise<never>((_, reject) => side.server!.once('exit', (code) => reject(new Error(`${side.label} server exited (${code})`))));
      await Promise.race([waitForHealth(side.url), exited]);
    }
    // The connection (through the CLI's admin token and pluginUpdate) and one real login each,
    // before the seed: pointing the connection at a provider ends the sessions it has.
    for (const side of sides) {
      await configureAndLogIn(idp, side.url, side.env);
      side.target = new Target(side.label, side.url, CONCURRENCY);
      await customerConnection(side);
    }
    for (const side of sides) {
      log(`seeding ${side.database}: ${side.size.users.toLocaleString('en')} users, ${side.size.sessions.toLocaleString('en')} sessions, ${side.size.auditEvents.toLocaleString('en')} audit events`);
      const t0 = performance.now();
      const db = new pg.Client({ connectionString: side.env['DATABASE_URL'] });
      await db.connect();
      try {
        await seed(db, side.size, idp.issuer, log);
      } finally {
        await db.end();
      }
      log(`  seeded in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    }
    {
      const db = new pg.Client({ connectionString: empty.env['DATABASE_URL'] });
      await db.connect();
      const r = await db.query(`SELECT length(id_token_enc) AS id, length(provider_refresh_token_enc) AS rt FROM sessions WHERE subject = 'alice'`);
      log(`a real session stores: sealed id_token ${r.rows[0]?.id} chars, sealed refresh token ${r.rows[0]?.rt} chars`);
      await db.end();
    }

    // 2. Latency, interleaved.
    log(`warm-up: ${WARMUP} cycles per database`);
    for (let i = 0; i < WARMUP; i++) await lockstep(idp, sides, i, i % 2 ? 'returning' : 'new');
    const results = new Map<Side, CycleTimes[]>(sides.map((s) => [s, []]));
    log(`measuring: ${SAMPLES} cycles per database`);
    const t0 = performance.now();
    for (let i = 0; i < SAMPLES; i++) {
      const kind = Math.floor(i / sides.length) % 2 === 0 ? 'returning' : 'new';
      for (const [side, times] of await lockstep(idp, sides, i, kind)) results.get(side)!.push(times);
      if ((i + 1) % 50 === 0) log(`  ${i + 1} / ${SAMPLES} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    }

    const counts = async (side: Side) => {
      const db = new pg.Client({ connectionString: side.env['DATABASE_URL'] });
      await db.connect();
      const r = await db.query(`SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM external_identities) AS identities, (SELECT count(*) FROM sessions) AS sessions, (SELECT count(*) FROM audit_events) AS audit, pg_size_pretty(pg_database_size(current_database())) AS size`);
      await db.end();
      return r.rows[0] as { users: string; identities: string; sessions: string; audit: string; size: string };
    };
    const emptyCounts = await counts(empty);
    const seededCounts = await counts(seeded);

    // 3. Throughput, on the seeded database alone.
    for (const side of sides) if (side !== seeded) await stopServer(side);
    const target = seeded.target!;
    const measureThroughput = async (name: string, clients: number, setup: () => Promise<unknown>, op: (state: any) => Promise<{ ms: number; providerMs?: number; state?: unknown }>) => {
      const states = await Promise.all(Array.from({ length: clients }, () => setup()));
      const run = async (ms: number) => {
        const latencies: number[] = [];
        let browserMs = 0;
        let errors = 0;
        const end = performance.now() + ms;
        await Promise.all(
          states.map(async (_, w) => {
            while (performance.now() < end) {
              try {
                const r = await op(states[w]);
                latencies.push(r.ms);
                browserMs += r.providerMs ?? 0;
                if (r.state !== undefined) states[w] = r.state;
              } catch (e) {
                errors++;
                if (errors <= 3) log(`${name}: ${(e as Error).message}`);
                states[w] = await setup();
              }
            }
          }),
        );
        return { latencies, browserMs, errors };
      };
      // A short warm-up at this concurrency, then the measured window.
      await run(Math.min(2000, DURATION_MS / 4));
      const before = await target.metrics(METRICS_TOKEN);
      clock.reset();
      const cpu0 = machineCpu();
      const own0 = ownCpu();
      const pg0 = postgresCpu(seeded.database);
      const t = performance.now();
      const r = await run(DURATION_MS);
      const seconds = (performance.now() - t) / 1000;
      const cpu1 = machineCpu();
      const own = ownCpu() - own0;
      const pgSeconds = postgresCpuBetween(pg0, postgresCpu(seeded.database));
      const after = await target.metrics(METRICS_TOKEN);
      const server = serverTimes(before, after);
      const idpTimes = clock.totals();
      const n = r.latencies.length;
      log(`${name} x${clients}: ${n} in ${seconds.toFixed(1)} s`);
      return {
        name,
        clients,
        n,
        perSecond: n / seconds,
        p50: percentile(r.latencies, 0.5),
        p99: percentile(r.latencies, 0.99),
        errors: r.errors,
        serverMsPerOp: (server.graphqlSeconds * 1000) / n,
        providerMsPerOp: (server.providerSeconds * 1000) / n,
        providerCallsPerOp: server.providerCalls / n,
        share: server.providerSeconds / server.graphqlSeconds,
        idpBackMsPerOp: idpTimes.backChannel.ms / n,
        browserMsPerOp: r.browserMs / n,
        serverCpuMsPerOp: (server.cpuSeconds * 1000) / n,
        pgCpuMsPerOp: (pgSeconds * 1000) / n,
        cpu: {
          machine: (cpu1.busy - cpu0.busy) / seconds,
          server: server.cpuSeconds / seconds,
          bench: own / seconds,
          postgres: pgSeconds / seconds,
        },
      };
    };
    const loginOnce = async () => {
      const { timing } = await target.login(idp, returningUser(idp, seeded));
      return { ms: timing.total, providerMs: timing.provider };
    };
    const newSession = async () => (await target.login(idp, returningUser(idp, seeded))).tokens;
    const refreshOnce = async (state: Tokens) => {
      const r = await target.refresh(state.refreshToken);
      return { ms: r.ms, state: r.tokens };
    };
    const levels = [...new Set([1, CONCURRENCY])];
    log(`throughput: ${levels.join(' and ')} clients, ${DURATION_MS} ms each`);
    const throughput = [];
    for (const c of levels) throughput.push(await measureThroughput('login', c, async () => null, loginOnce));
    for (const c of levels) throughput.push(await measureThroughput('refresh', c, newSession, refreshOnce));

    // 4. Tables.
    const by = (side: Side, pick: (c: CycleTimes) => number, filter: (c: CycleTimes) => boolean = () => true) => results.get(side)!.filter(filter).map(pick);
    const rows: Array<[string, (c: CycleTimes) => number, ((c: CycleTimes) => boolean)?]> = [
      ['login (full code flow)', (c) => c.login.total],
      ['  externalAuthenticationUrl', (c) => c.login.authUrl],
      ['  browser at the provider', (c) => c.login.provider],
      ['  externalObtainAccessTokens', (c) => c.login.obtain],
      ['login, returning user', (c) => c.login.total, (c) => c.login.kind === 'returning'],
      ['login, new user', (c) => c.login.total, (c) => c.login.kind === 'new'],
      ['  obtain, returning user', (c) => c.login.obtain, (c) => c.login.kind === 'returning'],
      ['  obtain, new user', (c) => c.login.obtain, (c) => c.login.kind === 'new'],
      ['refresh (externalRefresh)', (c) => c.refresh],
      ['tokensDeactivateAll', (c) => c.deactivate],
    ];
    const out: string[] = [];
    out.push('');
    out.push(`Scale: ${SAMPLES} cycles per database (login, refresh, tokensDeactivateAll), one request at a time, the servers in lockstep (each step on every server in turn); ms`);
    out.push(`  empty:  ${emptyCounts.users} users, ${emptyCounts.identities} identities, ${emptyCounts.sessions} sessions, ${emptyCounts.audit} audit events (${emptyCounts.size}) at the end`);
    out.push(`  seeded: ${seededCounts.users} users, ${seededCounts.identities} identities, ${seededCounts.sessions} sessions, ${seededCounts.audit} audit events (${seededCounts.size}) at the end`);
    const header = ['operation'.padEnd(30), 'n'.padStart(4), 'empty p50'.padStart(10), 'empty p99'.padStart(10), 'seeded p50'.padStart(11), 'seeded p99'.padStart(11), 'p50 ratio'.padStart(10), 'p99 ratio'.padStart(10)];
    if (control) header.push('control p50'.padStart(12), 'control p99'.padStart(12));
    out.push(header.join(' '));
    for (const [name, pick, filter] of rows) {
      const a = by(empty, pick, filter);
      const b = by(seeded, pick, filter);
      const [a50, a99, b50, b99] = [percentile(a, 0.5), percentile(a, 0.99), percentile(b, 0.5), percentile(b, 0.99)];
      const cells = [name.padEnd(30), String(b.length).padStart(4), f2(a50).padStart(10), f2(a99).padStart(10), f2(b50).padStart(11), f2(b99).padStart(11), `${f2(b50 / a50)}×`.padStart(10), `${f2(b99 / a99)}×`.padStart(10)];
      if (control) {
        const c = by(control, pick, filter);
        cells.push(`${f2(percentile(c, 0.5) / a50)}×`.padStart(12), `${f2(percentile(c, 0.99) / a99)}×`.padStart(12));
      }
      out.push(cells.join(' '));
    }
    if (control) out.push('  ratio: seeded / empty; control: a second almost empty database / the first (what noise alone does to a ratio)');
    out.push('');
    out.push(`Throughput: one instance, seeded database, returning users, ${(DURATION_MS / 1000).toFixed(0)} s per row; per-operation figures are means (ms)`);
    out.push(
      ['operation'.padEnd(9), 'clients'.padStart(7), 'per s'.padStart(7), 'p50'.padStart(7), 'p99'.padStart(7), 'server'.padStart(7), 'provider'.padStart(9), 'our code'.padStart(9), 'provider share'.padStart(15), 'idp calls'.padStart(10), 'idp handler'.padStart(12), 'browser@idp'.padStart(12), 'server CPU'.padStart(11), 'PG CPU'.padStart(7), 'ceiling/s'.padStart(10), 'errors'.padStart(7)].join(' '),
    );
    for (const t of throughput) {
      out.push(
        [
          t.name.padEnd(9),
          String(t.clients).padStart(7),
          f1(t.perSecond).padStart(7),
          f1(t.p50).padStart(7),
          f1(t.p99).padStart(7),
          f1(t.serverMsPerOp).padStart(7),
          f1(t.providerMsPerOp).padStart(9),
          f1(t.serverMsPerOp - t.providerMsPerOp).padStart(9),
          `${(t.share * 100).toFixed(0)}%`.padStart(15),
          f2(t.providerCallsPerOp).padStart(10),
          f1(t.idpBackMsPerOp).padStart(12),
          (t.name === 'login' ? f1(t.browserMsPerOp) : '-').padStart(12),
          f1(t.serverCpuMsPerOp).padStart(11),
          f1(t.pgCpuMsPerOp).padStart(7),
          f1(1000 / t.serverCpuMsPerOp).padStart(10),
          String(t.errors).padStart(7),
        ].join(' '),
      );
    }
    out.push(
      "  server: our server's time answering the operation's GraphQL requests (its request-duration histogram, /metrics); provider: of that, waiting for the provider" +
        '\n  (its provider-call histogram: token endpoint, userinfo, JWKS; under load this includes our own event-loop delay in reading the answer); our code = server - provider;' +
        "\n  idp handler: the provider's own time for those calls (request to response end, in the provider); browser@idp: the login's authorization, login and consent pages" +
        "\n  at the provider, outside our server; server CPU / PG CPU: CPU time of the server process / of its PostgreSQL backends; ceiling/s = 1000 / server CPU: what one" +
        '\n  instance would sustain with a core to itself and nothing else limiting.',
    );
    for (const t of throughput) {
      out.push(
        `  CPU, ${t.name} x${t.clients} (${os.cpus().length} cores = ${os.cpus().length * 100}%): machine ${(t.cpu.machine * 100).toFixed(0)}%, server ${(t.cpu.server * 100).toFixed(0)}%, ` +
          `PostgreSQL backends ${(t.cpu.postgres * 100).toFixed(0)}%, bench process (provider + clients) ${(t.cpu.bench * 100).toFixed(0)}%, ` +
          `rest (other processes on the machine) ${((t.cpu.machine - t.cpu.server - t.cpu.bench - t.cpu.postgres) * 100).toFixed(0)}%`,
      );
    }
    out.push(`node ${process.version}, ${os.cpus().length} cores, total ${((performance.now() - started) / 1000).toFixed(0)} s`);
    console.log(out.join('\n'));
  } finally {
    for (const side of sides) await side.target?.close().catch(() => {});
    for (const side of sides) await stopServer(side);
    clock.close();
    await idp.close();
    for (const side of sides) rmSync(side.dataDir, { recursive: true, force: true });
    if (!KEEP) for (const side of sides) await adminQuery(`DROP DATABASE IF EXISTS ${side.database} WITH (FORCE)`).catch((e: Error) => log(`drop ${side.database}: ${e.message}`));
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
