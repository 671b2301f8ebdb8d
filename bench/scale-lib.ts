/**
 * What `bench/scale.ts` needs besides bench/lib.ts: the seed (users, identities, sessions,
 * audit events, groups generated in PostgreSQL with generate_series, shaped like the rows the
 * server writes), the login / refresh / tokensDeactivateAll drivers, percentiles, and the
 * probes behind the provider-share table (the server's /metrics, the provider's own request
 * handling times, CPU time).
 */
import diagnostics from 'node:diagnostics_channel';
import { readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import pg from 'pg';
import { Pool as HttpPool } from 'undici';
import type { TestIdp } from '../test/helpers/idp.ts';
import { parseMetrics, sampleSum } from '../test/helpers/prometheus.ts';
import { PLUGIN, REDIRECT } from './lib.ts';

// ---------------------------------------------------------------------------------------------
// Seed
// ---------------------------------------------------------------------------------------------

export interface SeedSize {
  users: number;
  sessions: number;
  auditEvents: number;
}

/** First and last names of seeded users (by seed index g, see {@link seededAccount}). */
const FIRST = ['Alice', 'Bruno', 'Chloé', 'Dmitri', 'Emma', 'Farid', 'Greta', 'Hiro', 'Ines', 'Jonas', 'Kasia', 'Luca', 'Maya', 'Nils', 'Olga', 'Pedro', 'Qiu', 'Rosa', 'Sven', 'Tara'];
const LAST = ['Nowak', 'Smith', 'García', 'Müller', 'Rossi', 'Dubois', 'Jensen', 'Tanaka', 'Silva', 'Kowalski', 'Novak', 'Brown', 'Ivanova', 'Lopez', 'Schmidt', 'Martin', 'Costa', 'Larsen', 'Horvat', 'Okafor'];
const DOMAINS = ['example.com', 'mail.example.org', 'shop.example.net', 'example.co.uk'];
/** Another provider some users are also linked to (a second connection). */
const OTHER_ISSUER = 'https://accounts.other-idp.example.com';

/**
 * Lengths of what a real login stores (measured on sessions written by the server against the
 * harness provider: the sealed id_token and provider refresh token).
 */
export const SEALED_ID_TOKEN_CHARS = 1034;
export const SEALED_REFRESH_TOKEN_CHARS = 101;

const lit = (v: string) => `'${v.replace(/'/g, "''")}'`;
const sqlArray = (values: readonly string[]) => `ARRAY[${values.map(lit).join(',')}]`;

/**
 * The g-th user of the seed (1-based), as the provider knows it: linked at the harness provider as
 * `seed-<g>` when (g - 1) % 10 < 6 (60 % of users), staff when g % 50 = 0, inactive when
 * g % 97 = 0. Returning logins pick users that are linked, active and not staff (a login
 * with use_oauth_scope_permissions would otherwise demote a staff user: a write a returning
 * customer does not cause).
 */
export function seededAccount(g: number) {
  return {
    sub: `seed-${g}`,
    email: `user${g}@${DOMAINS[g % DOMAINS.length]}`,
    email_verified: true,
    given_name: FIRST[g % FIRST.length]!,
    family_name: LAST[Math.floor(g / FIRST.length) % LAST.length]!,
  };
}

export function isReturningCandidate(g: number): boolean {
  return (g - 1) % 10 < 6 && g % 50 !== 0 && g % 97 !== 0;
}

/** Runs `text` in chunks of `chunk` rows over 1..total ($1 = first, $2 = last of a chunk). */
async function chunked(db: pg.Client, label: string, total: number, chunk: number, text: string, progress: (s: string) => void): Promise<void> {
  const started = performance.now();
  for (let lo = 1; lo <= total; lo += chunk) {
    const hi = Math.min(total, lo + chunk - 1);
    await db.query(text, [lo, hi]);
    if (total > chunk) progress(`  ${label}: ${hi.toLocaleString('en')} / ${total.toLocaleString('en')} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
  }
}

/** The seeded tables: their indexes and constraints are dropped during the load and rebuilt after it. */
const SEEDED_TABLES = ['users', 'external_identities', 'group_members', 'sessions', 'audit_events'];

/**
 * Runs `load` with the indexes, primary keys and foreign keys of SEEDED_TABLES dropped, then
 * recreates them exactly as they were (their definitions are read from the catalog, so they are
 * the migrations' own). Building an index once is far faster than growing it row by row.
 */
async function withoutIndexes(db: pg.Client, load: () => Promise<void>, progress: (s: string) => void): Promise<void> {
  const constraints = (
    await db.query<{ tbl: string; name: string; def: string; type: string }>(
      `SELECT conrelid::regclass::text AS tbl, conname AS name, pg_get_constraintdef(oid) AS def, contype AS type FROM pg_constraint
       WHERE contype IN ('p', 'u', 'f') AND connamespace = 'public'::regnamespace AND (conrelid::regclass::text = ANY($1) OR confrelid::regclass::text = ANY($1))`,
      [SEEDED_TABLES],
    )
  ).rows;
  const indexes = (
    await db.query<{ name: string; def: string }>(
      `SELECT indexname AS name, indexdef AS def FROM pg_indexes WHERE schemaname = 'public' AND tablename = ANY($1)
       AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u'))`,
      [SEEDED_TABLES],
    )
  ).rows;
  const foreign = constraints.filter((c) => c.type === 'f');
  const keys = constraints.filter((c) => c.type !== 'f');
  for (const c of foreign) await db.query(`ALTER TABLE ${c.tbl} DROP CONSTRAINT "${c.name}"`);
  for (const c of keys) await db.query(`ALTER TABLE ${c.tbl} DROP CONSTRAINT "${c.name}"`);
  for (const i of indexes) await db.query(`DROP INDEX "${i.name}"`);
  await load();
  const t0 = performance.now();
  await db.query(`SET maintenance_work_mem = '512MB'`);
  for (const c of keys) await db.query(`ALTER TABLE ${c.tbl} ADD CONSTRAINT "${c.name}" ${c.def}`);
  for (const i of indexes) await db.query(i.def);
  for (const c of foreign) await db.query(`ALTER TABLE ${c.tbl} ADD CONSTRAINT "${c.name}" ${c.def}`);
  progress(`  ${keys.length} keys, ${indexes.length} indexes, ${foreign.length} foreign keys rebuilt (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
}

/**
 * Seeds a migrated database on which the connection is already configured (configuring it
 * later would end every seeded session: a connection pointed at another provider does that):
 * `size.users` users (ids after the existing ones, joined over the last 3 years in id order;
 * 60 % linked at `issuer`, 5 % at another provider; 2 % staff, in permission groups),
 * `size.sessions` sessions of linked users (created over the last 37 days in insertion order,
 * with the 30-day refresh TTL, so some expired within the 7-day retention; 15 % revoked within
 * it; half refreshed before), and `size.auditEvents` audit events over the last 89 days (the
 * 90-day retention), of several types. Then VACUUM ANALYZE (autovacuum may be off; a live
 * database is vacuumed) and a CHECKPOINT, so the measurement does not pay for the seed.
 */
export async function seed(db: pg.Client, size: SeedSize, issuer: string, progress: (s: string) => void): Promise<void> {
  const N = size.users;
  if (N % 10 !== 0) throw new Error('users must be a multiple of 10');
  await db.query(`SET synchronous_commit = off`);
  const base = Number((await db.query(`SELECT coalesce(max(id), 0) AS m FROM users`)).rows[0].m);
  await db.query(`INSERT INTO permission_groups (name, permissions) VALUES
    ('Customer support', '{MANAGE_USERS,MANAGE_ORDERS}'), ('Catalogue', '{MANAGE_PRODUCTS,MANAGE_PRODUCT_TYPES_AND_ATTRIBUTES}'), ('Full access', '{MANAGE_USERS,MANAGE_STAFF,MANAGE_ORDERS,MANAGE_PRODUCTS,MANAGE_PLUGINS}')`);
  const linked = (N / 10) * 6;
  const filler = (len: number, salt: string) =>
    `'v1.' || substr(repeat(translate(encode(sha256((s || '${salt}')::bytea), 'base64'), '+/=', '-_'), ${Math.ceil(len / 43) + 1}), 1, ${len - 3})`;
  await withoutIndexes(
    db,
    async () => {
      const userChunk = 250_000;
      await chunked(db, 'users', N, userChunk, `
        INSERT INTO users (id, email, first_name, last_name, is_active, is_staff, is_confirmed, last_login, date_joined, updated_at, token_key, permissions, metadata, private_metadata)
        SELECT ${base} + g,
          'user' || g || '@' || (${sqlArray(DOMAINS)})[1 + g % ${DOMAINS.length}],
          (${sqlArray(FIRST)})[1 + g % ${FIRST.length}],
          (${sqlArray(LAST)})[1 + (g / ${FIRST.length}) % ${LAST.length}],
          g % 97 <> 0, g % 50 = 0, g % 13 <> 0,
          CASE WHEN g % 5 = 0 THEN NULL ELSE joined + (now() - joined) * r2 END,
          joined, joined + (now() - joined) * r2,
          translate(encode(substr(sha256(('tk' || g)::bytea), 1, 16), 'base64'), '+/=', '-_'),
          CASE WHEN g % 50 = 0 THEN '{MANAGE_ORDERS}'::text[] ELSE '{}'::text[] END,
          CASE WHEN g % 7 = 0 THEN '{"locale": "en-GB"}'::jsonb ELSE '{}'::jsonb END, '{}'::jsonb
        FROM (SELECT g, now() - interval '1095 days' * (${N} - g)::float8 / ${N} AS joined, random() AS r2 FROM generate_series($1::int, $2::int) g) x`, progress);
      await db.query(`SELECT setval(pg_get_serial_sequence('users', 'id'), $1)`, [base + N]);
      await chunked(db, 'identities', N, userChunk, `
        INSERT INTO external_identities (user_id, plugin_id, issuer, subject, created_at, last_seen)
        SELECT ${base} + g, '${PLUGIN}', ${lit(issuer)}, 'seed-' || g, u.date_joined, coalesce(u.last_login, u.date_joined)
        FROM generate_series($1::int, $2::int) g JOIN users u ON u.id = ${base} + g WHERE (g - 1) % 10 < 6
        UNION ALL
        SELECT ${base} + g, 'other.openidconnect', '${OTHER_ISSUER}', md5('other' || g), u.date_joined, u.date_joined
        FROM generate_series($1::int, $2::int) g JOIN users u ON u.id = ${base} + g WHERE g % 20 = 7`, progress);
      await db.query(`INSERT INTO group_members (user_id, group_id)
        SELECT u.id, g.id FROM users u JOIN permission_groups g ON g.id = (SELECT min(id) FROM permission_groups) + u.id % 3 WHERE u.is_staff AND u.id > ${base}`);
      // Linked users are g with (g - 1) % 10 < 6: the k-th of them (0-based) is 10 (k / 6) + k % 6 + 1.
      await chunked(db, 'sessions', size.sessions, 250_000, `
        INSERT INTO sessions (id, user_id, plugin_id, issuer, subject, provider_sid, provider_refresh_token_enc, id_token_enc,
          refresh_token_id, previous_refresh_token_id, rotated_at, provider_refreshed_at, granted_scope,
          created_at, last_used_at, expires_at, revoked_at, revoked_reason)
        SELECT substr(translate(encode(sha256(('sid' || s)::bytea), 'base64'), '+/=', '-_'), 1, 32),
          ${base} + g, '${PLUGIN}', ${lit(issuer)}, 'seed-' || g,
          CASE WHEN s % 10 <> 0 THEN md5('psid' || s)::uuid::text END,
          CASE WHEN s % 10 <> 0 THEN ${filler(SEALED_REFRESH_TOKEN_CHARS, 'rt')} END,
          ${filler(SEALED_ID_TOKEN_CHARS, 'it')},
          substr(translate(encode(sha256(('rti' || s)::bytea), 'base64'), '+/=', '-_'), 1, 32),
          CASE WHEN refreshed THEN substr(translate(encode(sha256(('prti' || s)::bytea), 'base64'), '+/=', '-_'), 1, 32) END,
          CASE WHEN refreshed THEN used END, CASE WHEN refreshed THEN used END,
          'openid email profile offline_access',
          created, used, created + interval '30 days',
          CASE WHEN revoked THEN greatest(created, now() - r3 * interval '6 days') END,
          CASE WHEN revoked THEN (ARRAY['logout', 'tokens-deactivated', 'backchannel-logout', 'refresh token reuse'])[1 + s % 4] END
        FROM (
          SELECT s, g, created, created + (least(now(), created + interval '30 days') - created) * r2 AS used, r2 < 0.5 AS refreshed, s % 7 = 0 AS revoked, r3
          FROM (
            SELECT s, 10 * (k / 6) + k % 6 + 1 AS g, now() - interval '37 days' * (${size.sessions} - s)::float8 / ${size.sessions} - r1 * interval '1 minute' AS created, r2, r3
            FROM (SELECT s, floor(random() * ${linked})::int AS k, random() AS r1, random() AS r2, random() AS r3 FROM generate_series($1::int, $2::int) s) a
          ) b
        ) c`, progress);
      const A = size.auditEvents;
      await chunked(db, 'audit events', A, 1_000_000, `
        INSERT INTO audit_events (at, type, outcome, actor_user_id, user_id, plugin_id, ip, user_agent, request_id, detail)
        SELECT now() - interval '89 days' * (${A} - a)::float8 / ${A} - random() * interval '1 second',
          t, CASE WHEN a % 23 = 0 THEN 'failure' ELSE 'success' END,
          CASE WHEN t IN ('tokens.deactivated', 'plugin.updated', 'staff.bootstrap') THEN ${base} + g END,
          CASE WHEN a % 23 = 0 AND t = 'login' THEN NULL ELSE ${base} + g END,
          CASE WHEN t IN ('login', 'refresh', 'logout') THEN '${PLUGIN}' END,
          '10.' || (a % 256) || '.' || (a / 256 % 256) || '.' || (a / 65536 % 256),
          (ARRAY['Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36',
                 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
                 'node'])[1 + a % 3],
          md5('req' || a)::uuid::text,
          CASE t WHEN 'refresh' THEN '{"via": "provider", "rotated": true}'::jsonb
                 WHEN 'login' THEN jsonb_build_object('subject', 'seed-' || g, 'staff', false)
                 WHEN 'logout' THEN '{"ended": true}'::jsonb
                 ELSE '{}'::jsonb END
        FROM (SELECT a, (ARRAY['login', 'refresh', 'refresh', 'refresh', 'logout', 'refresh', 'login', 'tokens.deactivated', 'refresh', 'plugin.updated'])[1 + a % 10] AS t,
                1 + floor(random() * ${N})::int AS g FROM generate_series($1::int, $2::int) a) x`, progress);
    },
    progress,
  );
  const t0 = performance.now();
  await db.query('VACUUM ANALYZE');
  await db.query('CHECKPOINT');
  progress(`  VACUUM ANALYZE, CHECKPOINT (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
}

/** A port nothing listens on now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------

/** Nearest-rank percentile (p in 0..1) of unsorted values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(sorted.length * p) - 1))]!;
}

// ---------------------------------------------------------------------------------------------
// Driving the server
// ---------------------------------------------------------------------------------------------

const AUTH_URL = 'mutation($p: String!, $i: JSONString!) { externalAuthenticationUrl(pluginId: $p, input: $i) { authenticationData errors { field message } } }';
const OBTAIN = 'mutation($p: String!, $i: JSONString!) { externalObtainAccessTokens(pluginId: $p, input: $i) { token refreshToken errors { field message } } }';
const REFRESH = 'mutation($p: String!, $i: JSONString!) { externalRefresh(pluginId: $p, input: $i) { token refreshToken errors { field message } } }';
const DEACTIVATE = 'mutation { tokensDeactivateAll { errors { field message } } }';

export interface Tokens {
  token: string;
  refreshToken: string;
}

/** Milliseconds of the parts of a login, as the client sees them. */
export interface LoginTiming {
  /** externalAuthenticationUrl (our server). */
  authUrl: number;
  /** The browser at the provider: authorization request, login and consent forms, redirect. */
  provider: number;
  /** externalObtainAccessTokens (our server; it calls the provider's token endpoint). */
  obtain: number;
  total: number;
}

/** One server under test: its GraphQL endpoint over a keep-alive pool. */
export class Target {
  readonly pool: HttpPool;
  constructor(
    readonly name: string,
    readonly url: string,
    connections: number,
  ) {
    this.pool = new HttpPool(url, { connections, pipelining: 1 });
  }

  async gql(query: string, variables: object, token?: string): Promise<any> {
    const res = await this.pool.request({
      path: '/graphql/',
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ query, variables }),
    });
    const json = (await res.body.json()) as any;
    if (res.statusCode !== 200 || json.errors) throw new Error(`${this.name}: HTTP ${res.statusCode} ${JSON.stringify(json).slice(0, 500)}`);
    return json.data;
  }

  /** The whole code flow for `sub` (which must be an account at the provider). */
  async login(idp: TestIdp, sub: string): Promise<{ tokens: Tokens; timing: LoginTiming }> {
    const t0 = performance.now();
    const auth = (await this.gql(AUTH_URL, { p: PLUGIN, i: JSON.stringify({ redirectUri: REDIRECT }) })).externalAuthenticationUrl;
    if (auth.errors.length) throw new Error(`externalAuthenticationUrl: ${JSON.stringify(auth.errors)}`);
    const t1 = performance.now();
    const authorized = await idp.authorize(JSON.parse(auth.authenticationData).authorizationUrl, { login: sub });
    if (!authorized.code || !authorized.state) throw new Error(`provider: ${JSON.stringify(authorized.params)}`);
    const t2 = performance.now();
    const obtained = (await this.gql(OBTAIN, { p: PLUGIN, i: JSON.stringify({ code: authorized.code, state: authorized.state }) })).externalObtainAccessTokens;
    const t3 = performance.now();
    if (obtained.errors.length || !obtained.token || !obtained.refreshToken) throw new Error(`externalObtainAccessTokens: ${JSON.stringify(obtained)}`);
    return { tokens: { token: obtained.token, refreshToken: obtained.refreshToken }, timing: { authUrl: t1 - t0, provider: t2 - t1, obtain: t3 - t2, total: t3 - t0 } };
  }

  async refresh(refreshToken: string): Promise<{ tokens: Tokens; ms: number }> {
    const t0 = performance.now();
    const r = (await this.gql(REFRESH, { p: PLUGIN, i: JSON.stringify({ refreshToken }) })).externalRefresh;
    const ms = performance.now() - t0;
    if (r.errors.length || !r.token || !r.refreshToken) throw new Error(`externalRefresh: ${JSON.stringify(r)}`);
    return { tokens: { token: r.token, refreshToken: r.refreshToken }, ms };
  }

  async deactivateAll(token: string): Promise<number> {
    const t0 = performance.now();
    const r = (await this.gql(DEACTIVATE, {}, token)).tokensDeactivateAll;
    const ms = performance.now() - t0;
    if (!r || r.errors.length) throw new Error(`tokensDeactivateAll: ${JSON.stringify(r)}`);
    return ms;
  }

  /** The server's metrics (METRICS_TOKEN). */
  async metrics(metricsToken: string) {
    const res = await this.pool.request({ path: '/metrics', method: 'GET', headers: { authorization: `Bearer ${metricsToken}` } });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`/metrics: HTTP ${res.statusCode}`);
    return parseMetrics(text);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** A provider account nobody logged in with before (a first login creates the user). */
export function newAccount() {
  const id = randomBytes(9).toString('base64url').toLowerCase().replace(/[^a-z0-9]/g, 'x');
  return { sub: `new-${id}`, email: `new-${id}@example.com`, email_verified: true, given_name: 'New', family_name: 'Customer' };
}

// ---------------------------------------------------------------------------------------------
// Where the time goes
// ---------------------------------------------------------------------------------------------

export type Samples = ReturnType<typeof parseMetrics>;

/** The server's own view, between two scrapes of /metrics. */
export function serverTimes(before: Samples, after: Samples) {
  const d = (name: string, labels: Record<string, string> = {}) => sampleSum(after, name, labels) - sampleSum(before, name, labels);
  return {
    /** Seconds spent answering POST /graphql/ (request start to response end). */
    graphqlSeconds: d('saleor_auth_http_request_duration_seconds_sum', { route: '/graphql/' }),
    graphqlRequests: d('saleor_auth_http_request_duration_seconds_count', { route: '/graphql/' }),
    /** Seconds spent waiting for the provider (every outbound call, body included). */
    providerSeconds: d('saleor_auth_provider_call_duration_seconds_sum'),
    providerCalls: d('saleor_auth_provider_call_duration_seconds_count'),
    cpuSeconds: d('process_cpu_seconds_total'),
  };
}

/**
 * Time the provider (in this process) spends on each request it serves, by path, from the
 * moment Node hands it the request to the end of its response (node:diagnostics_channel
 * `http.server.request.start` / `http.server.response.finish`; the only HTTP server in this
 * process is the provider's).
 */
export class ProviderClock {
  private readonly started = new WeakMap<IncomingMessage, number>();
  private readonly byPath = new Map<string, { n: number; ms: number }>();
  private readonly onStart = (m: unknown) => {
    this.started.set((m as { request: IncomingMessage }).request, performance.now());
  };
  private readonly onFinish = (m: unknown) => {
    const { request } = m as { request: IncomingMessage };
    const t0 = this.started.get(request);
    if (t0 === undefined) return;
    const path = new URL(request.url ?? '/', 'http://x').pathname;
    const key = path.startsWith('/interaction/') ? '/interaction/*' : path.startsWith('/auth/') ? '/auth/*' : path;
    const e = this.byPath.get(key) ?? { n: 0, ms: 0 };
    e.n++;
    e.ms += performance.now() - t0;
    this.byPath.set(key, e);
  };

  constructor() {
    diagnostics.subscribe('http.server.request.start', this.onStart);
    diagnostics.subscribe('http.server.response.finish', this.onFinish);
  }

  reset(): void {
    this.byPath.clear();
  }

  /** Calls our server makes (back channel) vs the browser's requests (front channel). */
  totals(): { backChannel: { n: number; ms: number }; frontChannel: { n: number; ms: number }; byPath: Map<string, { n: number; ms: number }> } {
    const back = new Set(['/token', '/me', '/jwks', '/.well-known/openid-configuration', '/token/introspection', '/token/revocation']);
    const backChannel = { n: 0, ms: 0 };
    const frontChannel = { n: 0, ms: 0 };
    for (const [path, e] of this.byPath) {
      const into = back.has(path) ? backChannel : frontChannel;
      into.n += e.n;
      into.ms += e.ms;
    }
    return { backChannel, frontChannel, byPath: new Map(this.byPath) };
  }

  close(): void {
    diagnostics.unsubscribe('http.server.request.start', this.onStart);
    diagnostics.unsubscribe('http.server.response.finish', this.onFinish);
  }
}

/** Busy and total CPU time of the machine (all cores), in seconds, from /proc/stat. */
export function machineCpu(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number) as number[];
  const hz = 100;
  const busy = (user! + nice! + system! + irq! + softirq! + steal!) / hz;
  return { busy, total: busy + (idle! + iowait!) / hz };
}

/**
 * CPU time (seconds) of the PostgreSQL backends connected to `database` (their command line
 * names it), from /proc: what the database does for our server.
 */
export function postgresCpu(database: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (!cmdline.startsWith('postgres:') || !cmdline.includes(` ${database} `)) continue;
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // utime and stime are fields 14 and 15 of stat (1-based), i.e. 11 and 12 after the name.
      out.set(Number(entry), (Number(fields[11]) + Number(fields[12])) / 100);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** CPU seconds the backends used between two {@link postgresCpu} readings. */
export function postgresCpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, t] of after) total += t - (before.get(pid) ?? 0);
  return total;
}

/** This process's CPU time (the provider and the clients), in seconds. */
export function ownCpu(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}
