/**
 * `npm start` runs compiled JavaScript (issue 13): scripts/start.mjs builds dist/ with tsc when it
 * is missing or older than the sources, then runs dist/main.js in its own process (no tsx). The
 * server started that way answers GraphQL, and SIGTERM stops it with exit code 0. A second start
 * with nothing changed does not build again. Prints the cold start (to /readyz 200) and the RSS.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, startServerProcess } from '../helpers/server-process.ts';

const START = ['scripts/start.mjs', 'serve'];

async function readyWithin(url: string, ms: number): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < ms) {
    const r = await fetch(`${url}/readyz`).catch(() => undefined);
    if (r?.status === 200) return Date.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`not ready within ${ms} ms`);
}

/** Resident memory of a process, from /proc (kB → MB). */
function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

describe('npm start (compiled)', () => {
  it('builds dist/ when missing, serves from it, stops on SIGTERM; a second start does not rebuild', async () => {
    rmSync(path.join(REPO_ROOT, 'dist'), { recursive: true, force: true });
    const first = await startServerProcess({ command: START, startTimeoutMs: 180_000 });
    try {
      expect(first.stderr()).toMatch(/built dist\/ in/);
      expect(existsSync(path.join(REPO_ROOT, 'dist', 'main.js'))).toBe(true);
      // The process runs the compiled entry, not the sources through tsx.
      const cmdline = readFileSync(`/proc/${first.pid}/cmdline`, 'utf8').split('\0');
      expect(cmdline).toContain('scripts/start.mjs');
      expect(cmdline.join(' ')).not.toContain('tsx');
      await readyWithin(first.url, 60_000);
      const r = await fetch(`${first.url}/graphql/`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ shop { name passwordLoginMode availableExternalAuthentications { id } } }' }),
      });
      expect(await r.json()).toEqual({ data: { shop: { name: 'Saleor Auth', passwordLoginMode: 'DISABLED', availableExternalAuthentications: [] } } });
    } finally {
      expect(await first.stop()).toEqual({ code: 0, signal: null });
      await first.close();
    }
    const builtAt = statSync(path.join(REPO_ROOT, 'dist', '.built')).mtimeMs;
    const started = Date.now();
    const second = await startServerProcess({ command: START });
    try {
      const readyMs = (Date.now() - started) + (await readyWithin(second.url, 60_000));
      expect(second.stderr()).not.toMatch(/building dist/);
      expect(statSync(path.join(REPO_ROOT, 'dist', '.built')).mtimeMs).toBe(builtAt);
      console.log(`compiled server (${second.database.url ? 'PostgreSQL' : 'PGlite'}): start to /readyz 200 in ${readyMs} ms, RSS ${rssMb(second.pid).toFixed(0)} MB`);
    } finally {
      expect(await second.stop()).toEqual({ code: 0, signal: null });
      await second.close();
    }
  }, 300_000);

  it('the CLI runs compiled too, its stdout holding only the token', () => {
    const out = execFileSync(process.execPath, ['scripts/start.mjs', 'cli', 'staff', 'create', '--email', 'compiled-cli@example.com', '--permissions', 'MANAGE_USERS'], {
      cwd: REPO_ROOT,
      env: { ...process.env, DATABASE_URL: '', DATA_DIR: path.join(REPO_ROOT, '.dist-test-data'), SECRET_KEY: 'compiled-cli-secret-0123456789', LOG_LEVEL: 'error' },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    rmSync(path.join(REPO_ROOT, '.dist-test-data'), { recursive: true, force: true });
    expect(out.trim().split('\n')).toHaveLength(1);
    expect(out.trim()).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
  }, 120_000);
});
