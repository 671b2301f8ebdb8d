// Prisma CLI configuration. Only `prisma generate` is used by this project: the native
// schema engine cannot be downloaded on our machines, and migrations are applied by our own
// migrator (src/db/migrator.ts). generate never needs that engine, so a placeholder is set.
import { defineConfig } from 'prisma/config';

process.env.PRISMA_SCHEMA_ENGINE_BINARY ??= '/bin/false';

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
});
