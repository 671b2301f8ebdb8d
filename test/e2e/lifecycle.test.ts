/**
 * Operating the server as a process (issue "scale-out", its lifecycle part): SIGTERM lets the
 * requests in flight finish (100 concurrent login starts held up by a slow provider), closes
 * their connections after the answer, refuses new connections, and exits 0;
 * a server started before its PostgreSQL is up retries and starts once it comes up.
 */
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.ts';
import { TEST_DATABASE_URL } from '../helpers/database.ts';
import { exchange, header } from '../helpers/raw-http.ts';

const PLUGIN = 'mirumee.authentication.openidconnect';
const REDIRECT = 'https://shop.example.com/callback';
const DISCOVERY_DELAY_MS = 3000;

let provider: http.Server;
let issuer: string;
let discoveries = 0;
let firstDiscovery: Promise<void>;

beforeAll(async () => {
  let signal!: () => void;
  firstDiscovery = new Promise((r) => (signal = r));
  provider = http.createServer((req, res) => {
    if (!req.url?.endsWith('/.well-known/openid-configuration')) {
      res.writeHead(404).end();
      return;
    }
    discoveries++;
    signal();
    // A slow provider: every login start waits for it.
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks` }));
    }, DISCOVERY_DELAY_MS);
  });
  await new Promise<void>((r) => provider.listen(0, '127.0.0.1', r));
  issuer = `http://127.0.0.1:${(provider.address() as AddressInfo).port}`;
});
afterAll(async () => {
  provider.closeAllConnections();
  await new Promise((r) => provider.close(r));
});

function pluginsFile(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sat-plugins-'));
  const file = path.join(dir, 'plugins.json');
  writeFileSync(
    file,
    JSON.stringify({ plugins: [{ id: PLUGIN, active: true, configuration: { issuer_url: issuer, client_id: 'c', client_secret: 's', allowed_redirect_uris: REDIRECT } }] }),
  );
  return file;
}

const loginStart = (url: string) =>
  fetch(`${url}/graphql/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      query: `mutation { externalAuthenticationUrl(pluginId: "${PLUGIN}", input: ${JSON.stringify(JSON.stringify({ redirectUri: REDIRECT }))}) { authenticationData errors { code } } }`,
    }),
  }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));

/** Each behaviour without Redis, and with it (rate limits and invalidations through Redis). */
const VARIANTS: Array<{ name: string; env: Record<string, string> }> = [
  { name: 'without Redis', env: {} },
  { name: 'with Redis', env: { REDIS_URL: 'redis://127.0.0.1:6379' } },
];

describe.each(VARIANTS)('graceful shutdown ($name)', ({ env }) => {
  let proc: ServerProcess;

  beforeAll(async () => {
    proc = await startServerProcess({
      env: { ...env, PLUGINS_CONFIG_FILE: pluginsFile(), OUTBOUND_ALLOW_PRIVATE_ADDRESSES: 'true', RATE_LIMIT_PER_IP_PER_MINUTE: '0', SHUTDOWN_GRACE_SECONDS: '10' },
    });
  });
  afterAll(async () => {
    await proc?.close();
  });

  it('SIGTERM during 100 requests in flight: every one is answered and closes its connection, new connections are refused, exit 0', async () => {
    const before = discoveries;
    // A keep-alive connection busy with a login start when shutdown begins: its answer closes the
    // connection, so what it pipelined next (/readyz, sent after SIGTERM) is not served by a
    // stopping process. (SIGTERM goes out ~1 s after the first request; the login takes 3 s.)
    const pipelined = exchange(
      proc.port,
      [
        `POST /graphql/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(loginBody())}\r\n\r\n${loginBody()}`,
        `GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n`,
      ],
      { responses: 2, timeoutMs: 15_000, partDelayMs: 2000 },
    );
    const inFlight = Array.from({ length: 100 }, () => loginStart(proc.url));
    await firstDiscovery;
    while (discoveries === before) await new Promise((r) => setTimeout(r, 10));
    // Let the server accept all 100 connections first (on a loaded machine some still sit in the
    // listen backlog for a while, and closing the listener resets those).
    await new Promise((r) => setTimeout(r, 1000));
    expect(discoveries).toBe(before + 1); // all of them wait for the one slow discovery
    const sentAt = Date.now();
    proc.kill('SIGTERM');
    // No new connection is accepted any more (once the signal has been handled: allow for a
    // loaded machine, up to 2 s).
    const connectOnce = () =>
      new Promise<string>((resolve) => {
        const s = net.connect(proc.port, '127.0.0.1');
        s.once('connect', () => {
          s.destroy();
          resolve('connected');
        });
        s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      });
    let refused = 'not tried';
    for (let i = 0; i < 20 && refused !== 'ECONNREFUSED'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      refused = await connectOnce();
    }
    expect(refused).toBe('ECONNREFUSED');
    const answers = await Promise.all(inFlight);
    expect(answers.map((a) => a.status)).toEqual(Array(100).fill(200));
    for (const a of answers) {
      expect(a.body.data.externalAuthenticationUrl.errors).toEqual([]);
      expect(JSON.parse(a.body.data.externalAuthenticationUrl.authenticationData).authorizationUrl).toContain(`${issuer}/authorize`);
    }
    const raw = await pipelined;
    expect(raw.finals.map((f) => f.status)).toEqual([200]);
    expect(header(raw.finals[0]!, 'connection')).toBe('close');
    expect(raw.closedByServer).toBe(true);
    const exit = await proc.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(Date.now() - sentAt).toBeLessThan(10_000);
    const messages = proc.logRecords().map((r) => r['message']);
    expect(messages).toContain('shutting down');
    expect(messages).toContain('stopped');
  });
});

function loginBody(): string {
  return JSON.stringify({
    query: `mutation { externalAuthenticationUrl(pluginId: "${PLUGIN}", input: ${JSON.stringify(JSON.stringify({ redirectUri: REDIRECT }))}) { authenticationData } }`,
  });
}

describe.skipIf(!TEST_DATABASE_URL).each(VARIANTS)('a database that is not up yet ($name)', ({ env: variantEnv }) => {
  it('the server retries with backoff, says so, answers /readyz and /healthz 503 "starting" meanwhile, and starts once PostgreSQL comes up', async () => {
    // A relay to the real PostgreSQL that drops every connection for 2 s after the first one
    // arrives (the database "is not up yet"), then passes them through.
    const real = new URL(TEST_DATABASE_URL!);
    let upAt: number | undefined;
    let dropped = 0;
    const relay = net.createServer((client) => {
      upAt ??= Date.now() + 2000;
      if (Date.now() < upAt) {
        dropped++;
        client.destroy();
        return;
      }
      const upstream = net.connect(Number(real.port || 5432), real.hostname);
      client.pipe(upstream).pipe(client);
      const end = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', end);
      upstream.on('error', end);
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    const { createTestDatabase } = await import('../helpers/database.ts');
    const database = await createTestDatabase();
    const relayed = new URL(database.url!);
    relayed.hostname = '127.0.0.1';
    relayed.port = String((relay.address() as AddressInfo).port);
    // A known port, so that the server can be asked before it says it is listening.
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (probe.address() as AddressInfo).port;
        probe.close(() => resolve(p));
      });
    });
    const whileStarting: Array<{ readyz: number; body: string; healthz: number; graphql: number }> = [];
    let started = false;
    const poll = (async () => {
      while (!started) {
        try {
          const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
          const body = await ready.text();
          if (ready.status === 200) break;
          const healthz = (await fetch(`http://127.0.0.1:${port}/healthz`)).status;
          const graphql = (await fetch(`http://127.0.0.1:${port}/graphql/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ shop { name } }"}' })).status;
          whileStarting.push({ readyz: ready.status, body, healthz, graphql });
        } catch {
          // not listening yet
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    let proc: ServerProcess | undefined;
    try {
      proc = await startServerProcess({
        database: { url: relayed.toString(), drop: async () => {} },
        env: { ...variantEnv, DATABASE_CONNECT_TIMEOUT_SECONDS: '30', PORT: String(port) },
        startTimeoutMs: 30_000,
      });
      started = true;
      await poll;
      expect(whileStarting.length).toBeGreaterThanOrEqual(4);
      // The last poll may straddle the moment the server became ready (its three requests in turn).
      for (const seen of whileStarting.slice(0, -1)) expect(seen).toEqual({ readyz: 503, body: '{"status":"starting"}', healthz: 503, graphql: 503 });
      expect(dropped).toBeGreaterThanOrEqual(1);
      const waits = proc.logRecords().filter((r) => r['message'] === 'database not reachable yet; retrying');
      expect(waits.length).toBeGreaterThanOrEqual(1);
      expect((await fetch(`${proc.url}/readyz`)).status).toBe(200);
    } finally {
      await proc?.close();
      relay.close();
      await database.drop();
    }
  });
});
