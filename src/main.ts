/**
 * Entry point: `serve` (default) reads the configuration, opens the database, applies
 * migrations and serves; `migrate` applies pending migrations and exits.
 */
import { ConfigError, loadConfig } from './config.ts';
import { createLogger, describeError } from './log.ts';
import { startServer } from './app.ts';
import { openDatabase } from './db/database.ts';
import { migrate } from './db/migrator.ts';

async function main(command: string): Promise<number> {
  let config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`Configuration error: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  const log = createLogger(config.logLevel);
  // Last line of defence: whatever escapes every error boundary is logged, never silently
  // fatal. One request must not be able to end the process for everyone else.
  process.on('unhandledRejection', (reason) => log.error('unhandled promise rejection', describeError(reason)));
  process.on('uncaughtException', (error) => log.error('uncaught exception', describeError(error)));
  try {
    if (command === 'migrate') {
      const db = await openDatabase(config, log, { attach: true });
      try {
        const applied = await migrate(db.pool, log);
        log.info(applied.length ? 'migrations applied' : 'database is up to date', { applied });
      } finally {
        await db.close();
      }
      return 0;
    }
    if (command !== 'serve') {
      process.stderr.write(`Unknown command "${command}". Use: serve | migrate\n`);
      return 2;
    }
    const running = await startServer(config, log);
    const stop = (signal: string) => {
      log.info('shutting down', { signal, graceMs: config.shutdownGraceMs });
      running.shutdown(config.shutdownGraceMs).then(
        () => {
          log.info('stopped');
          process.exit(0);
        },
        (e: unknown) => {
          log.error('shutdown failed', describeError(e));
          process.exit(1);
        },
      );
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
    return -1; // keep running
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    log.error('cannot start', { errorName: e instanceof Error ? e.name : undefined, errorMessage: message });
    process.stderr.write(`Cannot start: ${message}\n`);
    return 1;
  }
}

main(process.argv[2] ?? 'serve').then((code) => {
  if (code >= 0) process.exit(code);
});
