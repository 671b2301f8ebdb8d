/**
 * `npm run bench:flood`: what 2 × 20,000 distinct junk bearer tokens cost the server and the
 * identity provider (issue 8, "the provider is protected from us", "memory stays bounded").
 *
 * Same approach as bench/run.ts: a local OpenID provider (the oidc-provider test harness) in
 * this process, the server as a child process (`src/main.ts serve`, production mode, default
 * log level, embedded database or DATABASE_URL), a real login for a valid token. Then:
 * 1. `me` with valid tokens alone (the "before" latency): our access token, and a provider
 *    opaque token validated once (both answered from the server's token cache);
 * 2. 20,000 JWT-shaped tokens naming the provider's issuer with unknown `kid`s, then 20,000
 *    opaque tokens, sent by a separate process (this one's event loop stays free to time the
 *    valid requests) at FLOOD_RATE tokens/s over FLOOD_CONNECTIONS sockets, while
 *    VALID_CONNECTIONS per valid token keep asking `me` (the "during" latency).
 * A warm-up flood of 2,000 tokens of each kind runs first. It prints the server's RSS (from
 * /proc) before, at its peak during and at the end of the flood, as sampled and after a full
 * GC in the server (asked through its inspector, bound to 127.0.0.1), the provider calls per
 * second during each flood, and p50/p99 of `me` before and during.
 *
 * Environment: FLOOD_TOKENS (per kind, default 20000), FLOOD_RATE (tokens/s, default 1000;
 * 0: as fast as the sockets go), FLOOD_CONNECTIONS (default 64), VALID_CONNECTIONS (default 2),
 * FLOOD_TRACE=1 (print the RSS samples), FLOOD_SERVER_NODE_FLAGS (e.g. "--cpu-prof").
 * The server's own settings (OIDC_TOKEN_VALIDATION_RATE_PER_SECOND, ...) pass through.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Pool as HttpPool, WebSocket } from 'undici';
import { junkJwt, junkOpaque } from '../test/helpers/junk.ts';
import { AUDIENCE, configureAndLogIn, root, serverEnv, startBenchIdp, waitForHealth } from './lib.ts';

const TOKENS = Number(process.env['FLOOD_TOKENS'] ?? 20_000);
const RATE = Number(process.env['FLOOD_RATE'] ?? 1000);
const FLOOD_CONNECTIONS = Number(process.env['FLOOD_CONNECTIONS'] ?? 64);
const VALID_CONNECTIONS = Number(process.env['VALID_CONNECTIONS'] ?? 2);
const WARM_UP_TOKENS = 2000;
const ME = JSON.stringify({ query: '{ me { email } }' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resident set size of a process, in MB (Linux /proc). */
function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
}

/**
 * RSS after a full garbage collection in the server, asked for through its inspector
 * (HeapProfiler.collectGarbage): what the server holds, without the garbage V8 has not
 * collected yet (which alone moves RSS by tens of MB either way).
 */
async function rssAfterGc(pid: number, inspectPort: number): Promise<number> {
  const [target] = (await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json()) as Array<{ webSocketDebuggerUrl: string }>;
  const ws = new WebSocket(target!.webSocketDebuggerUrl);
  await new Promise<void>((resolve, reject) => {
    ws.onerror = () => reject(new Error('inspector connection failed'));
    ws.onopen = () => ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' }));
    ws.onmessage = (m) => {
      if (JSON.parse(String(m.data)).id === 1) resolve();
    };
  });
  ws.close();
  await sleep(1000);
  return rssMb(pid);
}

// ---- the flood sender (this file run with `--send <kind>` in a child process) ---------------

/** Sends `count` fresh junk tokens of `kind` at RATE; prints "started", then a JSON summary. */
async function sendFlood(url: string, kind: string, issuer: string, count: number): Promise<void> {
  const tokens = Array.from({ length: count }, () => (kind === 'jwt' ? junkJwt(issuer, { aud: AUDIENCE, client_id: 'storefront' }) : junkOpaque()));
  const pool = new HttpPool(url, { connections: FLOOD_CONNECTIONS, pipelining: 1 });
  let next = 0;
  let notAnonymous = 0;
  process.stdout.write('started\n');
  const started = performance.now();
  await Promise.all(
    Array.from({ length: FLOOD_CONNECTIONS }, async () => {
      while (next < tokens.length) {
        const i = next++;
        // Open loop: token i leaves at started + i / RATE, whatever the answers' speed.
        if (RATE > 0) await sleep(started + (i * 1000) / RATE - performance.now());
        const res = await pool.request({ path: '/graphql/', method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens[i]}` }, body: ME });
        const json = (await res.body.json()) as any;
        if (res.statusCode !== 200 || json.data?.me !== null) notAnonymous++;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await pool.close();
  process.stdout.write(`${JSON.stringify({ seconds, notAnonymous })}\n`);
}

/** Runs the sender in a child process; `onStart` when it starts sending. */
function flood(url: string, kind: 'jwt' | 'opaque', issuer: string, onStart: () => void, count = TOKENS): Promise<{ seconds: number; notAnonymous: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'bench/junk-flood.ts'), '--send', kind, url, issuer, String(count)], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let result: { seconds: number; notAnonymous: number } | undefined;
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line === 'started') onStart();
      else if (line.startsWith('{')) result = JSON.parse(line);
    });
    child.on('exit', (code) => (code === 0 && result ? resolve(result) : reject(new Error(`flood sender exited with ${code}`))));
  });
}

// ---- the measuring side ----------------------------------------------------------------------

interface Latencies {
  ms: number[];
  errors: number;
}

/** `me` with `token` on `connections` workers until `until` settles. */
async function valid(pool: HttpPool, token: string, connections: number, until: Promise<unknown>, into: Latencies = { ms: [], errors: 0 }): Promise<Latencies> {
  let done = false;
  void until.finally(() => (done = true));
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (!done) {
        const t0 = performance.now();
        const res = await pool.request({ path: '/graphql/', method: 'POST', headers, body: ME });
        const json = (await res.body.json()) as any;
        into.ms.push(performance.now() - t0);
        if (res.statusCode !== 200 || json.data?.me?.email !== 'alice@example.com') into.errors++;
      }
    }),
  );
  return into;
}

async function main() {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'bench-flood-'));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const idp = await startBenchIdp();
  // The default log level, as deployed: every refusal is a log line.
  const env: Record<string, string> = { ...serverEnv(port, dataDir), LOG_LEVEL: 'info' };
  let server: ChildProcess | undefined;
  const url = `http://127.0.0.1:${port}`;
  try {
    // The log goes to /dev/null: written, as in production, but not kept by us.
    const nodeFlags = (process.env['FLOOD_SERVER_NODE_FLAGS'] ?? '').split(' ').filter(Boolean);
    const inspectPort = port + 1;
    server = spawn(process.execPath, [...nodeFlags, `--inspect=127.0.0.1:${inspectPort}`, '--import', 'tsx', 'src/main.ts', 'serve'], { cwd: root, env: { ...process.env, ...env }, stdio: 'ignore' });
    await waitForHealth(url);
    const pid = server.pid!;
    let peak = 0;
    const trace: string[] = [];
    const t0 = performance.now();
    const mark = (phase: string) => trace.push(`[${phase}]`);
    const sampler = setInterval(() => {
      const now = rssMb(pid);
      peak = Math.max(peak, now);
      trace.push(`${((performance.now() - t0) / 1000).toFixed(0)}s ${now.toFixed(0)}`);
    }, 1000);

    const ourToken = await configureAndLogIn(idp, url, env);
    const opaque = await idp.issueAccessToken({ sub: 'alice', clientId: 'storefront', scope: 'saleor:manage_orders', resource: AUDIENCE, format: 'opaque' });
    const pool = new HttpPool(url, { connections: 2 * VALID_CONNECTIONS, pipelining: 1 });
    mark('warm-up');
    await valid(pool, ourToken, VALID_CONNECTIONS, sleep(1500));
    await valid(pool, opaque, VALID_CONNECTIONS, sleep(1500));
    // Every code path of the flood runs once before anything is measured (JIT, heap sizes).
    for (const kind of ['jwt', 'opaque'] as const) await flood(url, kind, idp.issuer, () => {}, WARM_UP_TOKENS);
    mark('before');
    const both = (until: Promise<unknown>, into?: { ours: Latencies; opaque: Latencies }) =>
      Promise.all([valid(pool, ourToken, VALID_CONNECTIONS, until, into?.ours), valid(pool, opaque, VALID_CONNECTIONS, until, into?.opaque)]);
    const [beforeOurs, beforeOpaque] = await both(sleep(4000));
    const rawBefore = rssMb(pid);
    const rssBefore = await rssAfterGc(pid, inspectPort);
    peak = rawBefore;

    const during = { ours: { ms: [], errors: 0 } as Latencies, opaque: { ms: [], errors: 0 } as Latencies };
    const rows: string[] = [];
    for (const [name, kind] of [['JWT, unknown kid', 'jwt'], ['opaque', 'opaque']] as const) {
      mark(name);
      let measuring: Promise<unknown> = Promise.resolve();
      const sent = flood(url, kind, idp.issuer, () => {
        idp.resetCounts();
        measuring = both(sent, during);
      });
      const r = await sent;
      await measuring;
      const counts = idp.counts();
      const calls = Object.values(counts).reduce((a, b) => a + b, 0);
      rows.push(
        [name.padEnd(18), String(TOKENS).padStart(7), r.seconds.toFixed(1).padStart(7), (TOKENS / r.seconds).toFixed(0).padStart(9),
          String(calls).padStart(10), (calls / r.seconds).toFixed(1).padStart(9), String(r.notAnonymous).padStart(13), `  ${JSON.stringify(counts)}`].join(' '),
      );
    }
    mark('after');
    const rssAfter = rssMb(pid);
    const rssAfterFullGc = await rssAfterGc(pid, inspectPort);
    clearInterval(sampler);
    await pool.close();

    console.log(`\nnode ${process.version}, ${os.cpus().length} cores, database ${env['DATABASE_URL'] ? 'PostgreSQL' : 'embedded PGlite'}, flood ${RATE || 'max'} tokens/s over ${FLOOD_CONNECTIONS} connections (separate process), valid tokens on ${VALID_CONNECTIONS}+${VALID_CONNECTIONS} connections`);
    if (process.env['FLOOD_TRACE']) console.log(`RSS samples (MB): ${trace.join(' ')}`);
    console.log('\njunk flood');
    console.log(['tokens'.padEnd(18), 'count'.padStart(7), 'seconds'.padStart(7), 'tokens/s'.padStart(9), 'idp calls'.padStart(10), 'calls/s'.padStart(9), 'not anonymous'.padStart(13), '  idp calls by path'].join(' '));
    for (const r of rows) console.log(r);
    console.log('\nserver RSS (MB)');
    console.log(['', 'before', 'peak during', 'at the end', 'growth'].map((h, i) => (i ? h.padStart(12) : h.padEnd(22))).join(''));
    console.log(['as sampled'.padEnd(22), rawBefore, peak, rssAfter, rssAfter - rawBefore].map((v, i) => (i ? (v as number).toFixed(1).padStart(12) : v)).join(''));
    console.log(['after a full GC'.padEnd(22), rssBefore, NaN, rssAfterFullGc, rssAfterFullGc - rssBefore].map((v, i) => (i ? (Number.isNaN(v) ? '' : (v as number).toFixed(1)).padStart(12) : v)).join(''));
    console.log('\nme with a valid token');
    console.log(['token'.padEnd(26), 'p50 ms'.padStart(8), 'p99 ms'.padStart(8), 'requests'.padStart(9), 'errors'.padStart(7)].join(' '));
    const line = (name: string, l: Latencies) => {
      const sorted = [...l.ms].sort((a, b) => a - b);
      const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
      console.log([name.padEnd(26), pct(0.5).toFixed(2).padStart(8), pct(0.99).toFixed(2).padStart(8), String(sorted.length).padStart(9), String(l.errors).padStart(7)].join(' '));
    };
    line('our token, before', beforeOurs);
    line('our token, during flood', during.ours);
    line('provider opaque, before', beforeOpaque);
    line('provider opaque, during', during.opaque);
  } finally {
    server?.kill('SIGTERM');
    await sleep(500);
    await idp.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const sender = process.argv.indexOf('--send');
(sender >= 0 ? sendFlood(process.argv[sender + 2]!, process.argv[sender + 1]!, process.argv[sender + 3]!, Number(process.argv[sender + 4])) : main()).then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
