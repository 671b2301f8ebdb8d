/**
 * The embedded database: PGlite (PostgreSQL compiled to WASM) persisted in DATA_DIR.
 *
 * PGlite is a single connection inside one process. To let the CLI work while the server
 * runs (and to give both the same code path as real PostgreSQL), the process that opens the
 * data directory serves it on a Unix socket speaking the PostgreSQL wire protocol
 * (@electric-sql/pglite-socket); every client, the owner included, then talks to it with `pg`.
 * The socket server's query queue keeps each connection's transaction whole.
 *
 * Ownership: a lock file (O_EXCL, holding the owner's pid) says which process has the
 * directory open. A second process either attaches to the live socket (the CLI) or refuses
 * (a second server).
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import type { Logger } from '../log.ts';

/** `pg` derives the socket file name from host + port: `<dir>/.s.PGSQL.<port>`. */
const SOCKET_PORT = 5432;
const SOCKET_FILE = `.s.PGSQL.${SOCKET_PORT}`;
/** Unix socket paths are limited to ~107 bytes; leave room. */
const MAX_SOCKET_PATH = 100;

export interface EmbeddedDatabase {
  /** Connection settings for `pg` (host is the socket directory). */
  connection: { host: string; port: number; user: string; database: string };
  /** True when this process opened PGlite (and must close it). */
  owner: boolean;
  close(): Promise<void>;
}

export class DataDirInUseError extends Error {
  constructor(dataDir: string) {
    super(
      `DATA_DIR ${dataDir} is already open in another process (a running server or CLI). ` +
        'Stop it, or point DATA_DIR elsewhere.',
    );
    this.name = 'DataDirInUseError';
  }
}

function socketDirFor(dataDir: string): string {
  if (path.join(dataDir, SOCKET_FILE).length <= MAX_SOCKET_PATH) return dataDir;
  const digest = createHash('sha256').update(dataDir).digest('hex').slice(0, 16);
  return path.join(os.tmpdir(), `saleor-auth-${digest}`);
}

/**
 * The socket directory outside DATA_DIR (in the shared temp directory) must be ours: a real
 * directory (not a link), owned by us, closed to others. Otherwise someone else could plant a
 * socket there and have the CLI talk to their database.
 */
function assertPrivateDirectory(dir: string): void {
  const st = lstatSync(dir);
  const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new Error(`The embedded database socket directory ${dir} is not a private directory of this user; remove it or use a shorter DATA_DIR.`);
  }
}

function socketAlive(socketPath: string): Promise<boolean> {
  if (!existsSync(socketPath)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    const done = (alive: boolean) => {
      s.removeAllListeners();
      s.destroy();
      resolve(alive);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(1000, () => done(false));
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the lock file; returns false while another live process holds it. */
function tryLock(lockPath: string): boolean {
  try {
    writeFileSync(lockPath, String(process.pid), { flag: 'wx' });
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const holder = Number.parseInt(readFileSync(lockPath, 'utf8'), 10);
  if (Number.isInteger(holder) && holder !== process.pid && pidAlive(holder)) return false;
  // Stale lock from a process that died: take it over.
  rmSync(lockPath, { force: true });
  try {
    writeFileSync(lockPath, String(process.pid), { flag: 'wx' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Opens (or attaches to) the embedded database in `dataDir`.
 * @param attach when another process already serves the directory: true attaches to it,
 *   false throws DataDirInUseError.
 */
export async function openEmbeddedDatabase(
  dataDir: string,
  log: Logger,
  { attach }: { attach: boolean },
): Promise<EmbeddedDatabase> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // The directory holds the database (and the local secret): owner only.
  chmodSync(dataDir, 0o700);
  const socketDir = socketDirFor(dataDir);
  if (socketDir !== dataDir) {
    mkdirSync(socketDir, { recursive: true, mode: 0o700 });
    assertPrivateDirectory(socketDir);
  }
  const socketPath = path.join(socketDir, SOCKET_FILE);
  const lockPath = path.join(dataDir, 'embedded.lock');
  const connection = { host: socketDir, port: SOCKET_PORT, user: 'postgres', database: 'postgres' };
  const attached = (): EmbeddedDatabase => ({ connection, owner: false, close: async () => {} });

  // Another process may be starting up: wait a little for its socket before giving up.
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (await socketAlive(socketPath)) {
      if (!attach) throw new DataDirInUseError(dataDir);
      return attached();
    }
    if (tryLock(lockPath)) break;
    if (Date.now() > deadline) throw new DataDirInUseError(dataDir);
    await new Promise((r) => setTimeout(r, 200));
  }

  try {
    rmSync(socketPath, { force: true });
    const started = Date.now();
    const db = await PGlite.create(path.join(dataDir, 'pg'));
    const server = new PGLiteSocketServer({ db, path: socketPath, maxConnections: 32 });
    await server.start();
    // Whoever can connect is the database superuser: only our own user may.
    chmodSync(socketPath, 0o600);
    log.info('embedded database open', { dataDir, ms: Date.now() - started });
    let closed = false;
    return {
      connection,
      owner: true,
      close: async () => {
        if (closed) return;
        closed = true;
        await server.stop();
        await db.close();
        rmSync(socketPath, { force: true });
        rmSync(lockPath, { force: true });
      },
    };
  } catch (e) {
    rmSync(lockPath, { force: true });
    throw e;
  }
}
