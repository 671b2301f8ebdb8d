/**
 * The server secret from which at-rest encryption keys are derived. SECRET_KEY when set;
 * otherwise, outside production, a random secret generated once and kept in DATA_DIR so that
 * the server and the CLI (and later runs) agree on it.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.ts';
import { ConfigError } from '../config.ts';
import type { Logger } from '../log.ts';

export const LOCAL_SECRET_FILE = 'secret_key';

export function resolveServerSecret(
  config: Pick<Config, 'secretKey' | 'dataDir' | 'production'>,
  log: Logger,
): string {
  if (config.secretKey) return config.secretKey;
  if (config.production) {
    throw new ConfigError('SECRET_KEY', 'is required when NODE_ENV=production');
  }
  const file = path.join(config.dataDir, LOCAL_SECRET_FILE);
  if (existsSync(file)) {
    const secret = readFileSync(file, 'utf8').trim();
    if (secret.length >= 16) {
      log.warn('SECRET_KEY is not set: using the local development secret', { file });
      return secret;
    }
  }
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const secret = randomBytes(32).toString('base64url');
  try {
    writeFileSync(file, secret + '\n', { mode: 0o600, flag: 'wx' });
  } catch (e) {
    // Another process generated it at the same moment: use theirs.
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return readFileSync(file, 'utf8').trim();
    throw e;
  }
  log.warn('SECRET_KEY is not set: generated a local development secret (set SECRET_KEY in production)', {
    file,
  });
  return secret;
}
