// `npm run db:diff`: is prisma/schema.prisma in step with prisma/migrations?
//
// Prints the SQL that would take a database built from the migrations to the datamodel in the
// schema. Exit codes: 0 = no drift (nothing printed), 1 = drift (the SQL on stdout, a hint on
// stderr), 2 = the check itself failed (e.g. a migration that does not apply).
// This is what `prisma migrate diff --from-migrations … --to-schema …` would say, which needs
// Prisma's native engine; see scripts/lib/schema-diff.ts.
import { fileURLToPath } from 'node:url';

import { diffSql } from '../scripts/lib/schema-diff.ts';

// The same locations as prisma.config.ts, resolved from this file so that the script works
// from any working directory.
const schemaPath = fileURLToPath(new URL('../prisma/schema.prisma', import.meta.url));
const migrationsDir = fileURLToPath(new URL('../prisma/migrations', import.meta.url));

let exitCode: number;
try {
  const sql = await diffSql({ from: { migrationsDir }, schemaPath });
  if (sql === '') {
    exitCode = 0;
  } else {
    process.stdout.write(sql.endsWith('\n') ? sql : `${sql}\n`);
    process.stderr.write(
      'prisma/schema.prisma differs from prisma/migrations (SQL above). ' +
        'Create a migration with: npm run db:migration -- <name>\n',
    );
    exitCode = 1;
  }
} catch (error) {
  process.stderr.write(`db:diff failed: ${error instanceof Error ? error.message : String(error)}\n`);
  exitCode = 2;
}
// Exit explicitly, once both streams have flushed: the wasm engine can leave timers behind (it
// does after applyMigrations), and a check must never hang.
process.exitCode = exitCode;
process.stdout.write('', () => process.stderr.write('', () => process.exit()));
