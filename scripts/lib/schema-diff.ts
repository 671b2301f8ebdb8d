// Schema diffing without Prisma's native schema engine.
//
// `prisma migrate diff|dev` need the native schema engine, which cannot be downloaded on our
// machines. Prisma also publishes the same engine compiled to WebAssembly
// (@prisma/schema-engine-wasm); it talks to databases through a JS driver adapter instead of
// its own network drivers. This module drives that engine with in-memory PGlite databases to
// answer one question: "which SQL takes state X to the datamodel in schema.prisma?", where X is
// either an empty database or the result of replaying prisma/migrations.
//
// The wasm package is internal to Prisma and its API changes between versions (this was written
// against 8.1.0-2.59be4fda12412a79eeb9c2ae727b6aa723593323, the engine of Prisma 7.10): keep it
// on one exact version. Everything used from it is typed, by its own .d.ts or by the narrow
// interfaces below, so that an incompatible upgrade fails the type check or
// test/db/drift.test.ts rather than silently producing wrong SQL.
import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

import { PGlite } from '@electric-sql/pglite';
import {
  bindMigrationAwareSqlAdapterFactory,
  type ErrorRegistry,
  type SqlDriverAdapter,
  type SqlMigrationAwareDriverAdapterFactory,
} from '@prisma/driver-adapter-utils';
import type * as SchemaEngineWasm from '@prisma/schema-engine-wasm';
import { PrismaPGlite } from 'pglite-prisma-adapter';

export interface DiffSqlOptions {
  /**
   * Starting point: `'empty'` (an empty database) or the state reached by applying every
   * `<dir>/<name>/migration.sql` of a Prisma migrations directory, in name order.
   */
  from: 'empty' | { migrationsDir: string };
  /** Path of the Prisma schema file whose datamodel is the destination. */
  schemaPath: string;
}

/**
 * Returns the SQL script that takes `from` to the datamodel of `schemaPath`, or `''` when the
 * two are already equivalent. Every database used is a throw-away in-memory PGlite that is
 * closed before this resolves, so nothing keeps the caller's event loop alive.
 */
export async function diffSql(opts: DiffSqlOptions): Promise<string> {
  const schemaContent = await readFile(opts.schemaPath, 'utf8');
  const migrations =
    opts.from === 'empty' ? undefined : await loadMigrationList(opts.from.migrationsDir);
  // No migrations at all is the same state as an empty database. Saying so spares a shadow
  // database, and lets the very first migration be created before migration_lock.toml exists
  // (the engine refuses a migrations directory without one: it names the connector).
  const from: SchemaEngineWasm.DiffTarget =
    migrations === undefined || migrations.migrationDirectories.length === 0
      ? { tag: 'empty' }
      : { tag: 'migrations', ...migrations };

  const glue = await loadSchemaEngineWasm();
  const databases = new InMemoryPGliteFactory();
  // The engine does not call our adapter directly but the "error capturing" wrapper Prisma's
  // CLI uses: it turns every call into a Result object (the engine cannot catch JS
  // exceptions) and keeps thrown errors in a registry for the caller to look up.
  const adapterFactory = bindMigrationAwareSqlAdapterFactory(databases);

  let engine: SchemaEngineWasm.SchemaEngine | undefined;
  try {
    engine = await glue.SchemaEngine.new(
      // No datamodel at construction: the connector is chosen by the adapter (postgres), and
      // the destination schema is passed to `diff` itself.
      { datamodels: undefined },
      // The engine reports its tracing lines through this callback. They are noise for a diff
      // (failures come back as rejected promises with the engine's message), so they are
      // dropped; print them here when investigating the engine itself.
      () => {},
      adapterFactory,
    );
    const result = await engine.diff({
      from,
      to: {
        tag: 'schemaDatamodel',
        files: [{ path: opts.schemaPath, content: schemaContent }],
      },
      // `script: true` asks for executable SQL instead of the human-readable summary.
      script: true,
      exitCode: null,
      // Nothing in our database is managed outside of Prisma.
      filters: { externalTables: [], externalEnums: [] },
    });
    return normaliseScript(result.stdout);
  } catch (error) {
    throw withOriginalError(error, adapterFactory.errorRegistry);
  } finally {
    // `free` releases the engine's wasm-side memory; the wasm module itself stays loaded for
    // the next call. Then close every PGlite the engine asked for: it disposes of the shadow
    // database itself, but not of its main connection.
    engine?.free();
    await databases.closeAll();
  }
}

/**
 * An exception thrown by our adapter reaches the engine only as an id into the wrapper's error
 * registry, and the engine's message then says just "external connector error / External
 * error id#N". Put the original error's message in its place (and the error itself in
 * `cause`), so that, e.g., a broken migration shows the PostgreSQL error it failed with.
 */
function withOriginalError(error: unknown, registry: ErrorRegistry): unknown {
  if (!(error instanceof Error)) return error;
  const match = /external connector error\s*External error id#(\d+)/i.exec(error.message);
  const id = match?.[1];
  const record = id === undefined ? undefined : registry.consumeError(Number(id));
  if (record === undefined) return error;
  const original = record.error;
  const detail = original instanceof Error ? original.message : String(original);
  const explained = new Error(error.message.replace(match?.[0] ?? '', detail), { cause: original });
  // Keep the engine's own fields (its `name` "SchemaConnectorError", its error `code`).
  return Object.assign(explained, error);
}

/** The script Prisma emits when a diff has no steps (kept, e.g., by `migrate dev --create-only`). */
const EMPTY_MIGRATION_SCRIPT = '-- This is an empty migration.';

/** Maps every way the engine says "no difference" to '' and leaves real scripts untouched. */
function normaliseScript(stdout: string | null): string {
  const trimmed = (stdout ?? '').trim();
  if (trimmed === '' || trimmed === EMPTY_MIGRATION_SCRIPT) return '';
  return stdout ?? '';
}

// ---------------------------------------------------------------------------------------------
// Migrations directory

/**
 * Reads a migrations directory into the engine's `MigrationList`: the engine runs in wasm and
 * cannot read files itself, so the caller hands it every migration script (and the lock file,
 * which it checks against the provider). Layout and ordering follow Prisma's CLI: one
 * sub-directory per migration, applied in name order; a missing directory means "no
 * migrations".
 */
async function loadMigrationList(migrationsDir: string): Promise<SchemaEngineWasm.MigrationList> {
  const baseDir = path.resolve(migrationsDir);
  const lockfilePath = 'migration_lock.toml';
  const lockfileContent = await readFile(path.join(baseDir, lockfilePath), 'utf8').catch(
    () => null,
  );

  let entries: { name: string; isDirectory(): boolean }[];
  try {
    entries = await readdir(baseDir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    entries = [];
  }

  const names = entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    // Code-unit order, not locale order: the timestamp prefixes must sort the same everywhere.
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

  const migrationDirectories = await Promise.all(
    names.map(async (name): Promise<SchemaEngineWasm.MigrationDirectory> => {
      const file = 'migration.sql';
      // An unreadable script is passed on as an error value rather than thrown: the engine
      // then reports which migration is broken, in its own words.
      const content: SchemaEngineWasm.JsResult<string, string> = await readFile(
        path.join(baseDir, name, file),
        'utf8',
      ).then(
        (value) => ({ tag: 'ok', value }),
        (error: unknown) => ({ tag: 'error', value: String(error) }),
      );
      return { path: name, migrationFile: { path: file, content } };
    }),
  );

  return {
    baseDir,
    lockfile: { path: lockfilePath, content: lockfileContent },
    // Run on the shadow database before the migrations; we need no extensions or roles.
    shadowDbInitScript: '',
    migrationDirectories,
  };
}

// ---------------------------------------------------------------------------------------------
// Databases

/**
 * The driver-adapter factory handed to the engine. Every connection it asks for, main or
 * shadow, is a brand-new in-memory PGlite, so a diff never depends on (or touches) any real
 * database, and every instance is tracked so that `closeAll` can shut it down.
 *
 * pglite-prisma-adapter's own factory is not used directly because its shadow database is
 * never closed, and because its `executeScript` does not wait for the script: a failing
 * migration would be reported as applied and surface later as an unhandled rejection.
 */
class InMemoryPGliteFactory implements SqlMigrationAwareDriverAdapterFactory {
  readonly provider = 'postgres';
  readonly adapterName = 'pglite-in-memory';
  private readonly opened: PGlite[] = [];

  connect(): Promise<SqlDriverAdapter> {
    return this.open();
  }

  connectToShadowDb(): Promise<SqlDriverAdapter> {
    return this.open();
  }

  private async open(): Promise<SqlDriverAdapter> {
    const db = await freshInMemoryPGlite();
    this.opened.push(db);
    const adapter = await new PrismaPGlite(db).connect();
    // Keep the adapter's query and transaction handling (type mapping, error conversion) and
    // replace what it gets wrong for us:
    // - executeScript runs whole migration scripts. PGlite's `exec` runs a multi-statement
    //   script in one round trip, as the engine expects; awaiting it (the adapter does not)
    //   makes a failing migration fail the diff.
    // - dispose: the engine disposes of the shadow database as soon as it is done with it;
    //   closing it then frees its memory early (closeAll is the safety net).
    return {
      provider: adapter.provider,
      adapterName: adapter.adapterName,
      queryRaw: (query) => adapter.queryRaw(query),
      executeRaw: (query) => adapter.executeRaw(query),
      startTransaction: (isolationLevel) => adapter.startTransaction(isolationLevel),
      getConnectionInfo: adapter.getConnectionInfo?.bind(adapter),
      executeScript: async (script) => {
        await db.exec(script);
      },
      dispose: async () => {
        await adapter.dispose();
        if (!db.closed) await db.close();
      },
    };
  }

  async closeAll(): Promise<void> {
    const dbs = this.opened.splice(0);
    await Promise.allSettled(dbs.map((db) => (db.closed ? undefined : db.close())));
  }
}

/**
 * A pristine PostgreSQL cluster, as a PGlite data-directory tarball, made by the first
 * `freshInMemoryPGlite` of the process.
 */
let templatePromise: Promise<Blob | File> | undefined;

/**
 * Returns a new, empty, in-memory PGlite. Creating one runs initdb, which takes 2-3 s; loading
 * a saved data directory takes under 0.5 s. A diff from migrations needs two databases (the
 * engine checks its main connection although it only uses the shadow one), so the first of the
 * process is dumped right after initdb and later ones are loaded from that dump. The dump is
 * about 40 MB uncompressed, kept for the life of the process: acceptable for dev tooling and
 * tests, which are the only users of this module (gzip would make it 4.5 MB but cost ~1.5 s).
 */
async function freshInMemoryPGlite(): Promise<PGlite> {
  if (templatePromise === undefined) {
    const first = (async () => {
      const db = new PGlite();
      await db.waitReady;
      // Dump before anyone else can use the database, so the template is exactly initdb's.
      return { db, dump: await db.dumpDataDir('none') };
    })();
    templatePromise = first.then((created) => created.dump);
    // If the first creation fails, let the next call try again from scratch.
    templatePromise.catch(() => {
      templatePromise = undefined;
    });
    return (await first).db;
  }
  const db = new PGlite({ loadDataDir: await templatePromise });
  await db.waitReady;
  return db;
}

// ---------------------------------------------------------------------------------------------
// Wasm loading

/** What we use of the package's JS glue (schema_engine_bg.js). */
interface SchemaEngineGlue {
  SchemaEngine: typeof SchemaEngineWasm.SchemaEngine;
  __wbg_set_wasm(exports: WasmExports): void;
}

type WasmExports = Record<string, unknown>;

/**
 * The part of the WebAssembly JS API used here. Node has it as a global, but our compiler
 * settings (lib ES2023, no DOM; @types/node 20) do not declare it.
 */
interface WebAssemblyApi {
  compile(bytes: Uint8Array): Promise<object>;
  instantiate(
    module: object,
    imports: Record<string, Record<string, unknown>>,
  ): Promise<{ exports: WasmExports }>;
}

let gluePromise: Promise<SchemaEngineGlue> | undefined;

/**
 * Loads the wasm engine once per process. The package's entry point does
 * `import * as wasm from "./schema_engine_bg.wasm"`, which Node 20 refuses (wasm ES modules
 * need --experimental-wasm-modules), so we do by hand what that entry point does: compile the
 * .wasm, instantiate it with the JS glue as its import object (the module imports its host
 * functions from "./schema_engine_bg.js"), hand the instance back to the glue, and run the
 * module's start function.
 */
function loadSchemaEngineWasm(): Promise<SchemaEngineGlue> {
  gluePromise ??= (async () => {
    const require = createRequire(import.meta.url);
    // The package exports only its JS files; the .wasm sits next to the glue.
    const gluePath = require.resolve('@prisma/schema-engine-wasm/schema_engine_bg');
    const wasmPath = path.join(path.dirname(gluePath), 'schema_engine_bg.wasm');

    // The glue's published .d.ts describes the raw wasm exports, not the glue itself, hence
    // the cast to the narrow interface above.
    const glueModule: unknown = await import('@prisma/schema-engine-wasm/schema_engine_bg');
    const glue = glueModule as SchemaEngineGlue;

    const wasm = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;
    const wasmModule = await wasm.compile(await readFile(wasmPath));
    // Given a compiled module (not bytes), `instantiate` resolves to the instance itself.
    const instance = await wasm.instantiate(wasmModule, {
      './schema_engine_bg.js': glueModule as Record<string, unknown>,
    });
    glue.__wbg_set_wasm(instance.exports);
    // wasm-bindgen's start function: initialises the Rust side (panic hook, tables) once.
    (instance.exports['__wbindgen_start'] as () => void)();
    return glue;
  })();
  // A failed load is not cached, so a later call can retry (and report the error again).
  gluePromise.catch(() => {
    gluePromise = undefined;
  });
  return gluePromise;
}
