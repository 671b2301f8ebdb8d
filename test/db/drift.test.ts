// prisma/schema.prisma and prisma/migrations must describe the same database: replaying the
// migrations and diffing against the schema (what `npm run db:diff` does) must give nothing.
// A failure here means a schema change without its migration: run
// `npm run db:migration -- <name>` and commit the result.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { diffSql } from '../../scripts/lib/schema-diff.ts';

const schemaPath = fileURLToPath(new URL('../../prisma/schema.prisma', import.meta.url));
const migrationsDir = fileURLToPath(new URL('../../prisma/migrations', import.meta.url));

// Loading the wasm engine and starting in-memory PostgreSQL instances takes seconds.
const TIMEOUT_MS = 60_000;

describe('schema drift', () => {
  it(
    'prisma/migrations build exactly the datamodel of prisma/schema.prisma',
    async () => {
      expect(await diffSql({ from: { migrationsDir }, schemaPath })).toBe('');
    },
    TIMEOUT_MS,
  );

  it(
    'detects a schema change that has no migration',
    async () => {
      const dir = await mkdtemp(path.join(tmpdir(), 'schema-drift-'));
      try {
        const changedSchema = path.join(dir, 'schema.prisma');
        const extraModel = [
          '',
          'model DriftProbe {',
          '  id    Int    @id @default(autoincrement())',
          '  label String @map("probe_label")',
          '',
          '  @@map("drift_probes")',
          '}',
          '',
        ].join('\n');
        await writeFile(changedSchema, (await readFile(schemaPath, 'utf8')) + extraModel);

        const sql = await diffSql({ from: { migrationsDir }, schemaPath: changedSchema });

        expect(sql).toContain('CREATE TABLE "drift_probes"');
        expect(sql).toContain('"probe_label" TEXT NOT NULL');
        // Only the new table: nothing that the migrations already create.
        expect(sql).not.toContain('"users"');
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    TIMEOUT_MS,
  );

  it(
    'diffs from an empty database to the whole datamodel',
    async () => {
      const sql = await diffSql({ from: 'empty', schemaPath });
      expect(sql).toContain('CREATE TABLE "users"');
      expect(sql).toContain('CREATE TABLE "audit_events"');
    },
    TIMEOUT_MS,
  );
});
