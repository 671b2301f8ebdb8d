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
import { Metrics } from './metrics/metrics.ts';
import { startMetricsServer, type MetricsServer } from './metrics/http.ts';
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
import { InvalidationBus, type InvalidationTransport } from './core/invalidation.ts';
import { PgNotifyTransport } from './core/invalidation-pg.ts';
import { RedisPubSubTransport } from './core/invalidation-redis.ts';
import { ConnectionKeyStore } from './plugins/openid-connect/client-keys.ts';

export const BUILTIN_PLUGINS: readonly BuiltinPlugin[] = [
  { id: DEFAULT_OIDC_PLUGIN_ID, kind: OIDC_PLUGIN_KIND, name: DEFAULT_OIDC_PLUGIN_NAME },
];

export function keyringOptions(config: Config): KeyringOptions {
  return {
    algorithm: config.signingAlgorithm,
    maxTokenLifetimeSeconds: Math.max(config.accessTokenTtlSeconds, config.refreshTokenTtlSeconds),
    publishSeconds: config.keyRotationPublishSeconds,
  };
}

/**
 * How changes reach the other instances: Redis pub/sub when REDIS_URL is set, else PostgreSQL
 * LISTEN/NOTIFY; nothing on the embedded database (one instance).
 */
function invalidationTransport(config: Config, db: Database, box: SecretBox, log: Logger): InvalidationTransport | undefined {
  if (config.redisUrl) return new RedisPubSubTransport(config.redisUrl, `saleor-auth:invalidation:${box.identifier('invalidation-channel')}`, log);
  if (db.kind === 'postgresql' && config.databaseUrl) return new PgNotifyTransport(config.databaseUrl, db.pool, log);
  return undefined;
}

/** What each kind of change means for this process's caches. */
function applyInvalidations(app: Pick<AppServices, 'bus' | 'plugins' | 'authenticator' | 'keyring' | 'log' | 'connectionKeys'>): void {
  const reloadKeys = () => app.keyring.reloadAfterChange().catch((e: unknown) => app.log.warn('signing key reload failed', { errorMessage: String(e) }));
  app.bus.subscribe((message, origin) => {
    switch (message.topic) {
      case 'plugins':
        // This process re-read its configuration when it wrote it; others read it again now.
        if (origin === 'remote') app.plugins.invalidate();
        app.authenticator.clear();
        // A connection's keys changed (CLI `connection-keys rotate`).
        app.connectionKeys.invalidate();
        break;
      case 'sessions':
        app.authenticator.forgetSessions(message.ids);
        break;
      case 'users':
        for (const id of message.ids) app.authenticator.forgetUser(id);
        break;
      case 'keys':
        void reloadKeys();
        break;
    }
  });
  app.bus.onReset(() => {
    app.plugins.invalidate();
    app.authenticator.clear();
    app.connectionKeys.invalidate();
    void reloadKeys();
  });
}

/**
 * Opens the database, applies migrations, and builds every service.
 * @param role 'server' owns an embedded data directory; 'cli' attaches to a running server's.
 */
export async function createServices(config: Config, log: Logger, role: 'server' | 'cli'): Promise<AppServices> {
  const box = SecretBox.fromSecret(resolveServerSecret(config, log));
  const db: Database = await openDatabase(config, log, { attach: role === 'cli' });
  const metrics = new Metrics({ defaultMetrics: role === 'server' });
  metrics.observeDatabasePool(() => db.pool.totalCount - db.pool.idleCount, () => db.pool.waitingCount);
  let bus: InvalidationBus | undefined;
  try {
    await migrate(db.pool, log);
    bus = new InvalidationBus(invalidationTransport(config, db, box, log), log, metrics);
    // Listening before anything is cached: no change can slip between a read and the subscription.
    if (role === 'server') await bus.start();
    const keyring = new Keyring(db.prisma, box, { ...keyringOptions(config), lockFirstKey: db.kind === 'postgresql' }, log);
    await keyring.init();
    const tokens = new TokenService(keyring, config.issuer, config.accessTokenTtlSeconds, config.refreshTokenTtlSeconds);
    const audit = new AuditLog(db.prisma, log);
    // A login or bearer token that changed its user: this process forgets the user's other
    // cached tokens (keeping the validation in flight, which read the new state); others all.
    const identity = new IdentityService(db.prisma, async (userId) => {
      authenticator.forgetUser(userId, { keepValidationsInFlight: true });
      await bus!.publish({ topic: 'users', ids: [userId] }, { remoteOnly: true });
    });
    const sessions = new SessionService(db.prisma, box, identity, audit, {
      reuseIntervalMs: config.refreshTokenReuseIntervalSeconds * 1000,
      // Outlasts every provider call of a refresh (discovery, token endpoint, JWKS, userinfo).
      leaseMs: 4 * config.outboundTimeoutMs + 5000,
      pollMs: 50,
    }, metrics);
    // Connections' own keys (private_key_jwt): staged like our signing keys.
    const connectionKeys = new ConnectionKeyStore(db.prisma, box, { publishSeconds: config.keyRotationPublishSeconds }, log);
    const pluginServices: OidcServices = {
      connectionKeys,
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
      metrics,
    };
    const plugins: PluginManager<unknown> = new PluginManager<OidcServices>(
      [openIdConnectKind],
      BUILTIN_PLUGINS,
      new PluginConfigStore(db.prisma, box),
      pluginServices,
      log,
      () => bus!.publish({ topic: 'plugins' }),
    );
    const authenticator = new Authenticator(db.prisma, tokens, keyring, plugins, config.tokenCacheMaxEntries, config.tokenRefusalCacheMaxEntries, metrics);
    sessions.onRevoked((ids) => void bus!.publish({ topic: 'sessions', ids }));
    // A whole connection's sessions ended (too many to list): every instance forgets every
    // cached principal, as after a configuration change (which this is).
    sessions.onConnectionRevoked(() => void bus!.publish({ topic: 'plugins' }));
    const app: AppServices = { config, db, log, keyring, tokens, plugins, authenticator, audit, box, sessions, bus, metrics, connectionKeys };
    applyInvalidations(app);
    return app;
  } catch (e) {
    await bus?.close().catch(() => {});
    await db.close().catch(() => {});
    throw e;
  }
}

export interface RunningServer {
  app: AppServices;
  server: http.Server;
  /** Base URL the server listens on, e.g. http://127.0.0.1:8000 */
  url: string;
  /** Base URL of the dedicated metrics port (METRICS_PORT), if any. */
  metricsUrl?: string;
  /**
   * Graceful stop: /readyz turns 503, no new connections are accepted, requests in flight get
   * up to `graceMs` to finish, then everything closes. True when nothing had to be cut.
   */
  shutdown(graceMs: number): Promise<boolean>;
  /** Immediate stop (what remains in flight is cut). */
  close(): Promise<void>;
}

/** Listens on config.port/host; resolves with the URL to reach it. */
async function listen(server: http.Server, config: Config): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${address.port}`;
}

function closeListener(server: http.Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/**
 * Listens at once (/healthz 200, /readyz and everything else 503 "starting"), then opens the
 * database (waiting for it), migrates, loads keys and plugin configuration, and only then serves.
 */
export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  const drain = new Drain();
  const { server, serve } = createHttpServer(config.http, log, drain);
  const url = await listen(server, config);
  log.info('accepting connections; starting', { url });
  let app: AppServices;
  try {
    app = await createServices(config, log, 'server');
  } catch (e) {
    await closeListener(server);
    throw e;
  }
  let rateLimiter: RequestRateLimiter | undefined;
  let metricsServer: MetricsServer | undefined;
  try {
    if (config.pluginsConfigFile) {
      const applied = await applyPluginsConfigFile(app.plugins, config.pluginsConfigFile);
      log.info('plugin configuration file applied', { file: config.pluginsConfigFile, plugins: applied });
    }
    try {
      await app.plugins.list();
    } catch (e) {
      throw new Error(`stored plugin configuration cannot be read (${(e as Error).message}); every instance must use the same SECRET_KEY`);
    }
    rateLimiter = RequestRateLimiter.create({ perMinute: config.rateLimitPerIpPerMinute, redisUrl: config.redisUrl }, log);
    const graphql = createGraphQLServer(log, config, rateLimiter, app.metrics);
    await graphql.apollo.start();
    serve({ app, graphql, rateLimiter });
    metricsServer = config.metricsPort !== undefined ? await startMetricsServer(config.metricsPort, config.host, app.metrics, log) : undefined;
    log.info('server listening', { url, publicUrl: config.publicUrl, database: app.db.kind, invalidation: app.bus.channel });
    const { sessionRetentionDays, auditRetentionDays } = config;
    const housekeeping = config.housekeepingIntervalMs > 0
      ? startHousekeeping(app.db.pool, { sessionRetentionDays, auditRetentionDays, lock: app.db.kind === 'postgresql' }, config.housekeepingIntervalMs, log)
      : undefined;
    let closing: Promise<void> | undefined;
    const running: RunningServer = {
      app,
      server,
      url,
      ...(metricsServer ? { metricsUrl: metricsServer.url } : {}),
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
          await closeListener(server);
          await metricsServer?.close();
          graphql.known.close();
          await graphql.apollo.stop();
          await rateLimiter?.close();
          app.plugins.close();
          await housekeeping?.stop();
          await app.bus.close();
          await app.db.close();
        })()),
    };
    return running;
  } catch (e) {
    await closeListener(server);
    await metricsServer?.close();
    await rateLimiter?.close();
    app.plugins.close();
    await app.bus.close().catch(() => {});
    await app.db.close().catch(() => {});
    throw e;
  }
}
