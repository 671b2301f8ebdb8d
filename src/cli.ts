/**
 * Operator commands. Works whether or not the server is running (on the embedded database it
 * attaches to the running server's socket), and its writes are seen by the server at once.
 *
 *   npm run cli -- staff create --email <email> --permissions <NAME,NAME,…> [--ttl <seconds>]
 *       creates or promotes a staff user and prints an access token alone on the last line
 *   npm run cli -- keys rotate
 *       new signing key, published at once, signing after KEY_ROTATION_PUBLISH_SECONDS; old
 *       keys keep verifying until their tokens have expired
 *   npm run cli -- connection-keys rotate <pluginId>
 *       new private_key_jwt key of an OIDC connection, published at once at
 *       /oidc/jwks/<pluginId>, signing client assertions after KEY_ROTATION_PUBLISH_SECONDS;
 *       the old key stays published for a day (or until the next rotation). Prints the new kid
 *   npm run cli -- migrate
 *
 * Logs go to stderr so stdout carries only the result.
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config.ts';
import { createLogger } from './log.ts';
import { createServices, keyringOptions } from './app.ts';
import { upsertStaffUser, effectivePermissions } from './accounts/users.ts';
import { PERMISSION_CODES, isPermissionCode, type PermissionCode } from './accounts/permissions.ts';
import { CORE_TOKEN_OWNER } from './tokens/jwt.ts';
import { rotateSigningKey } from './tokens/keyring.ts';
import { FieldError } from './errors.ts';
import { OIDC_PLUGIN_KIND } from './plugins/openid-connect/settings.ts';
import { UnknownConnectionError } from './plugins/openid-connect/client-keys.ts';

const USAGE = `Usage:
  npm run cli -- staff create --email <email> --permissions <NAME,NAME,...> [--ttl <seconds>]
  npm run cli -- keys rotate
  npm run cli -- connection-keys rotate <pluginId>
  npm run cli -- migrate`;

class UsageError extends Error {}

function parsePermissions(list: string | undefined): PermissionCode[] {
  const names = (list ?? '').split(',').map((s) => s.trim().toUpperCase()).filter(Boolean);
  const unknown = names.filter((n) => !isPermissionCode(n));
  if (unknown.length) {
    throw new UsageError(`Unknown permission(s): ${unknown.join(', ')}. Known: ${PERMISSION_CODES.join(', ')}`);
  }
  return names as PermissionCode[];
}

async function run(argv: string[]): Promise<number> {
  const [group, action, ...rest] = argv;
  const config = loadConfig();
  const log = createLogger(config.logLevel, { component: 'cli' }, (line) => process.stderr.write(line));
  const command = `${group ?? ''} ${action ?? ''}`.trim();
  if (!['staff create', 'keys rotate', 'connection-keys rotate', 'migrate'].includes(command)) throw new UsageError(`Unknown command "${command}".`);
  const connectionId = rest[0];
  if (command === 'connection-keys rotate' && (!connectionId || rest.length !== 1)) throw new UsageError('Give the plugin id of the connection.');

  let ttl: number | undefined;
  let email: string | undefined;
  let permissions: PermissionCode[] = [];
  if (command === 'staff create') {
    const { values } = parseArgs({
      args: rest,
      options: { email: { type: 'string' }, permissions: { type: 'string' }, ttl: { type: 'string' } },
      strict: true,
    });
    if (!values.email) throw new UsageError('--email is required.');
    email = values.email;
    permissions = parsePermissions(values.permissions);
    if (values.ttl !== undefined) {
      ttl = Number(values.ttl);
      if (!Number.isInteger(ttl) || ttl < 30 || ttl > Math.min(86_400, config.refreshTokenTtlSeconds)) {
        throw new UsageError('--ttl must be a whole number of seconds between 30 and 86400.');
      }
    }
  }

  const app = await createServices(config, log, 'cli');
  try {
    if (command === 'migrate') {
      process.stdout.write('database is up to date\n');
      return 0;
    }
    if (command === 'keys rotate') {
      const { kid, retired, signsFrom } = await rotateSigningKey(app.db.prisma, app.box, keyringOptions(config));
      // Every running instance publishes the new key in its JWKS now; all sign with it from signsFrom.
      await app.bus.publish({ topic: 'keys' });
      log.info('signing key rotated', { kid, retired, signsFrom: signsFrom.toISOString() });
      process.stdout.write(`${kid}\n`);
      return 0;
    }
    if (command === 'connection-keys rotate') {
      if ((await app.plugins.get(connectionId!))?.kind !== OIDC_PLUGIN_KIND) throw new UnknownConnectionError(connectionId!);
      const { kid, retired, signsFrom } = await app.connectionKeys.rotate(connectionId!);
      // Running instances drop their cached keys: they publish the new one now, sign with it from signsFrom.
      await app.bus.publish({ topic: 'plugins' });
      log.info('connection key rotated', { pluginId: connectionId, kid, retired, signsFrom: signsFrom.toISOString() });
      process.stdout.write(`${kid}\n`);
      return 0;
    }
    const user = await upsertStaffUser(app.db.prisma, { email: email!, permissions });
    const granted = await effectivePermissions(app.db.prisma, user);
    await app.bus.publish({ topic: 'users', ids: [user.id] });
    await app.audit.record({ type: 'staff.bootstrap', outcome: 'success', userId: user.id, detail: { permissions: granted, via: 'cli' } });
    await app.keyring.reload();
    const token = await (ttl
      ? app.tokens.mintAccessTokenWithTtl(user, granted, CORE_TOKEN_OWNER, ttl)
      : app.tokens.mintAccessToken(user, granted, CORE_TOKEN_OWNER));
    process.stderr.write(`staff user ${user.email} (id ${user.id}) with ${granted.join(', ') || 'no permissions'}\n`);
    process.stdout.write(`${token}\n`);
    return 0;
  } finally {
    app.plugins.close();
    await app.bus.close();
    await app.db.close();
  }
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof UsageError) process.stderr.write(`${e.message}\n\n${USAGE}\n`);
    else if (e instanceof ConfigError || e instanceof FieldError) process.stderr.write(`${e.message}\n`);
    else process.stderr.write(`Failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(e instanceof UsageError ? 2 : 1);
  },
);
