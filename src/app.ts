/**
 * Wiring: from a parsed Config to running services. Used by the server (src/main.ts), the CLI
 * (src/cli.ts) and the tests, so all three run the same code.
 */
import type { AddressInfo } from 'node:net';
import type http from 'node:http';
import type { Config } from './config.ts';
import type { Logger } from './log.ts';
import { openDatabase, type Database } from './db/database.ts';
import { migrate } from './db/migrator.ts';
import { SecretBox } from './crypto/secret-box.ts';
import { resolveServerSecret } from './crypto/server-secret.ts';
import { Keyring, type KeyringOptions } from './tokens/keyring.ts';
import { TokenService } from './tokens/jwt.ts';
import { PluginConfigStore } from './plugins/store.ts';
import { PluginManager, type BuiltinPlugin } from './plugins/manager.ts';
import { applyPluginsConfigFile } from './plugins/config-file.ts';
import { openIdConnectKind, type OidcServices } from './plugins/openid-connect/index.ts';
import { createGuardedFetch } from './net/guarded-fetch.ts';
import { DEFAULT_OIDC_PLUGIN_ID, DEFAULT_OIDC_PLUGIN_NAME, OIDC_PLUGIN_KIND } from './plugins/openid-connect/settings.ts';
import { Authenticator } from './auth/authenticate.ts';
import { AuditLog } from './accounts/audit.ts';
import { IdentityService } from './identity/identity.ts';
import { SessionService } from './sessions/service.ts';
import type { AppServices } from './graphql/context.ts';
import { createGraphQLServer } from './graphql/server.ts';
import { createHttpServer } from './http/server.ts';
import { Drain } from './http/drain.ts';
import { RequestRateLimiter } from './core/rate-limit.ts';
import { startHousekeeping } from './db/housekeeping.ts';

export const BUILTIN_PLUGINS: readonly BuiltinPlugin[] = [
  { id: DEFAULT_OIDC_PLUGIN_ID, kind: OIDC_PLUGIN_KIND, name: DEFAULT_OIDC_PLUGIN_NAME },
];

export function keyringOptions(config: Config): KeyringOptions {
  return {
    algorithm: config.signingAlgorithm,
    maxTokenLifetimeSeconds: Math.max(config.accessTokenTtlSeconds, config.refreshTokenTtlSeconds),
  };
}

/**
 * Opens the database, applies migrations, and builds every service.
 * @param role 'server' owns an embedded data directory; 'cli' attaches to a running server's.
 */
export async function createServices(config: Config, log: Logger, role: 'server' | 'cli'): Promise<AppServices> {
  const box = SecretBox.fromSecret(resolveServerSecret(config, log));
  const db: Database = await openDatabase(config, log, { attach: role === 'cli' });
  try {
    await migrate(db.pool, log);
    const keyring = new Keyring(db.prisma, box, keyringOptions(config), log);
    await keyring.init();
    const tokens = new TokenService(keyring, config.issuer, config.accessTokenTtlSeconds, config.refreshTokenTtlSeconds);
    const audit = new AuditLog(db.prisma, log);
    const identity = new IdentityService(db.prisma);
    const sessions = new SessionService(db.prisma, box, identity, audit, {
      reuseIntervalMs: config.refreshTokenReuseIntervalSeconds * 1000,
      // Outlasts every provider call of a refresh (discovery, token endpoint, JWKS, userinfo).
      leaseMs: 4 * config.outboundTimeoutMs + 5000,
      pollMs: 50,
    });
    const pluginServices: OidcServices = {
      prisma: db.prisma,
      box,
      tokens,
      audit,
      identity,
      sessions,
      logoutTokenMaxAgeSeconds: config.logoutTokenMaxAgeSeconds,
      clockSkewSeconds: config.oidcClockSkewSeconds,
      log,
      fetch: createGuardedFetch({
        allowPrivateAddresses: config.outboundAllowPrivateAddresses,
        timeoutMs: config.outboundTimeoutMs,
      }),
      allowInsecureRequests: config.outboundAllowPrivateAddresses,
      jwksCooldownMs: config.jwksRefetchCooldownMs,
      outboundTimeoutSeconds: Math.ceil(config.outboundTimeoutMs / 1000),
      secureCookies: config.secureCookies,
      opaqueTokenTtlMs: config.opaqueTokenCacheMs,
      tokenValidationRatePerSecond: config.oidcTokenValidationRatePerSecond,
    };
    const plugins: PluginManager<unknown> = new PluginManager<OidcServices>(
      [openIdConnectKind],
      BUILTIN_PLUGINS,
      new PluginConfigStore(db.prisma, box),
      pluginServices,
      log,
    );
    const authenticator = new Authenticator(db.prisma, tokens, keyring, plugins, config.tokenCacheMaxEntries, config.tokenRefusalCacheMaxEntries);
    sessions.onRevoked((ids) => authenticator.forgetSessions(ids));
    return { config, db, log, keyring, tokens, plugins, authenticator, audit, box, sessions };
  } catch (e) {
    await db.close().catch(() => {});
    throw e;
  }
}

export interface RunningServer {
  app: AppServices;
  server: http.Server;
  /** Base URL the server listens on, e.g. http://127.0.0.1:8000 */
  url: string;
  /**
   * Graceful stop: /readyz turns 503, no new connections are accepted, requests in flight get
   * up to `graceMs` to finish, then everything closes. True when nothing had to be cut.
   */
  shutdown(graceMs: number): Promise<boolean>;
  /** Immediate stop (what remains in flight is cut). */
  close(): Promise<void>;
}

export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  const app = await createServices(config, log, 'server');
  let rateLimiter: RequestRateLimiter | undefined;
  try {
    if (config.pluginsConfigFile) {
      const applied = await applyPluginsConfigFile(app.plugins, config.pluginsConfigFile);
      log.info('plugin configuration file applied', { file: config.pluginsConfigFile, plugins: applied });
    }
    rateLimiter = RequestRateLimiter.create({ perMinute: config.rateLimitPerIpPerMinute, redisUrl: config.redisUrl }, log);
    const graphql = createGraphQLServer(log, config, rateLimiter);
    await graphql.start();
    const drain = new Drain();
    const server = createHttpServer({ app, graphql, log, rateLimiter, drain });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    const url = `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${address.port}`;
    log.info('server listening', { url, publicUrl: config.publicUrl, database: app.db.kind });
    const { sessionRetentionDays, auditRetentionDays } = config;
    const housekeeping = config.housekeepingIntervalMs > 0
      ? startHousekeeping(app.db.pool, { sessionRetentionDays, auditRetentionDays, lock: app.db.kind === 'postgresql' }, config.housekeepingIntervalMs, log)
      : undefined;
    let closing: Promise<void> | undefined;
    const running: RunningServer = {
      app,
      server,
      url,
      async shutdown(graceMs: number) {
        drain.begin();
        server.close();
        server.closeIdleConnections();
        const clean = await drain.idle(graceMs);
        if (!clean) log.warn('shutdown grace period over: cutting requests in flight', { pending: drain.pending });
        await running.close();
        return clean;
      },
      close: () =>
        (closing ??= (async () => {
          await new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          });
          await graphql.stop();
          await rateLimiter?.close();
          app.plugins.close();
          await housekeeping?.stop();
          await app.db.close();
        })()),
    };
    return running;
  } catch (e) {
    await rateLimiter?.close();
    app.plugins.close();
    await app.db.close().catch(() => {});
    throw e;
  }
}
