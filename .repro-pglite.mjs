import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import pg from 'pg';
import { mkdtempSync } from 'node:fs';
import path from 'node:path';
const dir = mkdtempSync('/tmp/pgr-');
const db = await PGlite.create(path.join(dir, 'pg'));
const server = new PGLiteSocketServer({ db, path: path.join(dir, '.s.PGSQL.5432'), maxConnections: 32 });
await server.start();
const pool = new pg.Pool({ host: dir, port: 5432, user: 'postgres', database: 'postgres', max: 8 });
await pool.query('CREATE TABLE t (id int primary key, v text)');
const msgs = {}; let wrong = 0; let ok = 0;
async function one(i) {
  try {
    if (i % 3 === 0) {
      const c = await pool.connect();
      try {
        await c.query('BEGIN');
        await c.query('INSERT INTO t (id, v) VALUES ($1, $2)', [i, 'v' + i]);
        const r = await c.query('SELECT v FROM t WHERE id = $1', [i]);
        if (r.rows[0]?.v !== 'v' + i) wrong++;
        await c.query('COMMIT');
      } finally { c.release(); }
    } else {
      const r = await pool.query(i % 2 ? 'SELECT $1::int AS n' : 'SELECT $1::int AS n, $2::text AS t, $3::text AS u', i % 2 ? [i] : [i, 'x', 'y']);
      if (r.rows[0].n !== i) wrong++;
    }
    ok++;
  } catch (e) { msgs[e.message] = (msgs[e.message] ?? 0) + 1; }
}
await Promise.race([Promise.all(Array.from({ length: 300 }, (_, i) => one(i))), new Promise((r) => setTimeout(r, 30000))]);
console.log({ ok, wrong, errors: msgs });
process.exit(0);
