/**
 * Every environment variable the server reads, parsed and validated in one place.
 * Nothing else in src/ reads process.env. A missing or invalid value stops the process
 * with a message naming the variable.
 */
import path from 'node:path';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type SigningAlgorithm = 'RS256' | 'ES256';

export interface Config {
  port: number;
  host: string;
  /** PostgreSQL connection string; undefined selects the embedded database. */
  databaseUrl: string | undefined;
  /** Embedded database files and the generated local secret live here. */
  dataDir: string;
  /** Server secret; undefined means "generate and keep one in dataDir" (local development). */
  secretKey: string | undefined;
  /** Absolute base URL of this server, without a trailing slash. */
  publicUrl: string;
  /** Our token issuer: the absolute GraphQL URL (as Saleor's `iss`). */
  issuer: string;
  /** `shop.name` (what the Saleor Dashboard shows). */
  shopName: string;
  /** Cookies are `Secure; SameSite=None` when the public URL is https. */
  secureCookies: boolean;
  pluginsConfigFile: string | undefined;
  outboundAllowPrivateAddresses: boolean;
  /** Time limit of one request to an identity provider. */
  outboundTimeoutMs: number;
  /** Minimum time between two JWKS refetches caused by an unknown `kid`. */
  jwksRefetchCooldownMs: number;
  /** A validated opaque provider token is trusted this long before asking the provider again. */
  opaqueTokenCacheMs: number;
  /** Bound of the validated-token cache. */
  tokenCacheMaxEntries: number;
  /** Origin patterns (`*` wildcard) allowed by CORS. */
  allowedGraphqlOrigins: string[];
  maxRequestBodyBytes: number;
  /** Node's HTTP server limits (see HttpLimits). */
  http: HttpLimits;
  /** GraphQL operation limits, checked before anything of an operation runs. */
  graphqlLimits: GraphQLLimits;
  /** Schema introspection (default: on outside production). */
  graphqlIntrospection: boolean;
  /** How many X-Forwarded-For hops (reverse proxies in front of us) to trust; 0: none. */
  trustProxy: number;
  /** Anonymous-reachable work (login starts, code exchanges, refreshes, verifies, back-channel logout) per client address per minute; 0: off. */
  rateLimitPerIpPerMinute: number;
  /** redis://… ; rate-limit counters are shared through it when set. */
  redisUrl: string | undefined;
  /** Validations of unknown opaque bearer tokens (introspection/userinfo calls) per connection per second. */
  oidcTokenValidationRatePerSecond: number;
  /** Bound of the cache of refused bearer tokens (separate from validated ones). */
  tokenRefusalCacheMaxEntries: number;
  accessTokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  /** A refresh token rotated away this recently still gets the session's current state (0: off). */
  refreshTokenReuseIntervalSeconds: number;
  /** Back-channel logout tokens issued longer ago than this are refused. */
  logoutTokenMaxAgeSeconds: number;
  /** Tolerated difference between a provider's clock and ours (exp, nbf; iat in the future). */
  oidcClockSkewSeconds: number;
  signingAlgorithm: SigningAlgorithm;
  logLevel: LogLevel;
  /** On SIGTERM, requests in flight get this long to finish. */
  shutdownGraceMs: number;
  /** A database that is not up yet is retried, with backoff, for this long at start. */
  databaseConnectTimeoutMs: number;
  /** NODE_ENV=production: SECRET_KEY becomes mandatory. */
  production: boolean;
  /** Housekeeping (src/db/housekeeping.ts) runs this often; 0: off. */
  housekeepingIntervalMs: number;
  /** Expired or revoked sessions are kept this many days (audits) before housekeeping deletes them. */
  sessionRetentionDays: number;
  /** Audit events older than this many days are deleted by housekeeping. */
  auditRetentionDays: number;
  /** A rotated-in signing key is published in the JWKS this long before it signs (JWKS cache max-age). */
  keyRotationPublishSeconds: number;
  /** Bearer token required by GET /metrics on the main port; undefined: not served there (unless development). */
  metricsToken: string | undefined;
  /** Separate port serving only GET /metrics (no token); undefined: none. */
  metricsPort: number | undefined;
}

export interface HttpLimits {
  /** Time to receive the request line and headers. */
  headersTimeoutMs: number;
  /** Time to receive a whole request, body included (slow bodies are cut off). */
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** Bytes of request line plus headers (431 beyond). */
  maxHeaderBytes: number;
  /** Number of request headers kept (the rest are dropped by Node). */
  maxHeadersCount: number;
}

export interface GraphQLLimits {
  /** Lexical tokens in one document (graphql-js `parse` maxTokens). */
  maxTokens: number;
  /** Nesting of fields, fragments expanded. */
  maxDepth: number;
  /** Aliased fields, fragments expanded. */
  maxAliases: number;
  /** Fields selected, aliases and fragments expanded (a list's `first`/`last` multiplies what it selects). */
  maxFields: number;
  /** Root fields of one mutation, fragments and inline fragments expanded. */
  maxMutationFields: number;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

function text(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = text(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `expected a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = text(env, name)?.toLowerCase();
  if (raw === undefined) return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError(name, `expected true or false, got "${raw}"`);
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = text(env, name);
  if (raw === undefined) return fallback;
  const found = allowed.find((a) => a.toLowerCase() === raw.toLowerCase());
  if (!found) throw new ConfigError(name, `expected one of ${allowed.join(', ')}, got "${raw}"`);
  return found;
}

function absoluteUrl(name: string, raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(name, `not a valid absolute URL: "${raw}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(name, `must be an http or https URL, got "${raw}"`);
  }
  return url;
}

/** CORS patterns used in development when ALLOWED_GRAPHQL_ORIGINS is unset. */
/** Cache-Control max-age of /.well-known/jwks.json: how long a relying party may keep our key set. */
export const JWKS_MAX_AGE_SECONDS = 300;

function metricsToken(env: Env): string | undefined {
  const raw = text(env, 'METRICS_TOKEN');
  if (raw !== undefined && raw.length < 16) throw new ConfigError('METRICS_TOKEN', 'must be at least 16 characters long');
  return raw;
}

function shopName(env: Env): string {
  const raw = text(env, 'SHOP_NAME') ?? 'Saleor Auth';
  if (raw.length > 100) throw new ConfigError('SHOP_NAME', 'must be at most 100 characters long');
  return raw;
}

export const DEVELOPMENT_ORIGINS = 'http://localhost:*,http://127.0.0.1:*';

function redisUrl(env: Env): string | undefined {
  const raw = text(env, 'REDIS_URL');
  if (raw !== undefined && !/^rediss?:\/\//i.test(raw)) throw new ConfigError('REDIS_URL', 'must start with redis:// or rediss://');
  return raw;
}

/** Parses the environment. Throws ConfigError naming the first bad variable. */
export function loadConfig(env: Env = process.env): Config {
  const port = integer(env, 'PORT', 8000, 0, 65535);
  const host = text(env, 'HOST') ?? '0.0.0.0';

  const databaseUrl = text(env, 'DATABASE_URL');
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//i.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL', 'must start with postgresql:// or postgres://');
  }

  const secretKey = text(env, 'SECRET_KEY');
  if (secretKey !== undefined && secretKey.length < 16) {
    throw new ConfigError('SECRET_KEY', 'must be at least 16 characters long');
  }
  // Instances sharing a database must share the secret that seals what it stores (signing
  // keys, plugin secrets): a secret generated per instance could not read the others'.
  if (databaseUrl !== undefined && secretKey === undefined) {
    throw new ConfigError('SECRET_KEY', 'is required with DATABASE_URL (every instance on that database must use the same one)');
  }
  const production = text(env, 'NODE_ENV') === 'production';
  if (production && text(env, 'PUBLIC_URL') === undefined) {
    throw new ConfigError('PUBLIC_URL', 'is required in production (it is our token issuer and decides cookie security)');
  }

  const publicUrlRaw = text(env, 'PUBLIC_URL') ?? `http://localhost:${port}`;
  const publicUrl = absoluteUrl('PUBLIC_URL', publicUrlRaw).toString().replace(/\/+$/, '');

  // Unset: no credentialed cross-origin access in production; local pages in development.
  const origins = (text(env, 'ALLOWED_GRAPHQL_ORIGINS') ?? (production ? '' : DEVELOPMENT_ORIGINS))
    .split(',')
    .map((o) => o.trim())
    .filter((o) => o !== '');

  const pluginsConfigFile = text(env, 'PLUGINS_CONFIG_FILE');

  return {
    port,
    host,
    databaseUrl,
    dataDir: path.resolve(text(env, 'DATA_DIR') ?? './data'),
    secretKey,
    publicUrl,
    issuer: `${publicUrl}/graphql/`,
    shopName: shopName(env),
    secureCookies: publicUrl.startsWith('https:'),
    pluginsConfigFile: pluginsConfigFile === undefined ? undefined : path.resolve(pluginsConfigFile),
    outboundAllowPrivateAddresses: boolean(env, 'OUTBOUND_ALLOW_PRIVATE_ADDRESSES', false),
    outboundTimeoutMs: integer(env, 'OUTBOUND_TIMEOUT_MS', 5000, 100, 60_000),
    jwksRefetchCooldownMs: integer(env, 'OIDC_JWKS_REFETCH_COOLDOWN_SECONDS', 10, 0, 3600) * 1000,
    opaqueTokenCacheMs: integer(env, 'OIDC_OPAQUE_TOKEN_CACHE_SECONDS', 60, 0, 3600) * 1000,
    tokenCacheMaxEntries: integer(env, 'TOKEN_CACHE_MAX_ENTRIES', 10_000, 0, 10_000_000),
    allowedGraphqlOrigins: origins,
    maxRequestBodyBytes: integer(env, 'MAX_REQUEST_BODY_BYTES', 1024 * 1024, 1024, 100 * 1024 * 1024),
    accessTokenTtlSeconds: integer(env, 'ACCESS_TOKEN_TTL_SECONDS', 300, 30, 24 * 3600),
    refreshTokenTtlSeconds: integer(env, 'REFRESH_TOKEN_TTL_SECONDS', 30 * 24 * 3600, 60, 365 * 24 * 3600),
    refreshTokenReuseIntervalSeconds: integer(env, 'REFRESH_TOKEN_REUSE_INTERVAL_SECONDS', 30, 0, 3600),
    logoutTokenMaxAgeSeconds: integer(env, 'OIDC_LOGOUT_TOKEN_MAX_AGE_SECONDS', 600, 10, 86_400),
    oidcClockSkewSeconds: integer(env, 'OIDC_CLOCK_SKEW_SECONDS', 60, 0, 3600),
    signingAlgorithm: oneOf(env, 'JWT_ALGORITHM', ['RS256', 'ES256'] as const, 'RS256'),
    logLevel: oneOf(env, 'LOG_LEVEL', ['debug', 'info', 'warn', 'error'] as const, 'info'),
    http: {
      headersTimeoutMs: integer(env, 'HTTP_HEADERS_TIMEOUT_MS', 10_000, 1000, 120_000),
      requestTimeoutMs: integer(env, 'HTTP_REQUEST_TIMEOUT_MS', 30_000, 1000, 600_000),
      keepAliveTimeoutMs: integer(env, 'HTTP_KEEP_ALIVE_TIMEOUT_MS', 65_000, 1000, 600_000),
      maxHeaderBytes: integer(env, 'HTTP_MAX_HEADER_BYTES', 16 * 1024, 1024, 256 * 1024),
      maxHeadersCount: integer(env, 'HTTP_MAX_HEADERS', 100, 10, 2000),
    },
    graphqlLimits: {
      maxTokens: integer(env, 'GRAPHQL_MAX_TOKENS', 5000, 100, 1_000_000),
      maxDepth: integer(env, 'GRAPHQL_MAX_DEPTH', 20, 2, 1000),
      maxAliases: integer(env, 'GRAPHQL_MAX_ALIASES', 30, 0, 100_000),
      maxFields: integer(env, 'GRAPHQL_MAX_FIELDS', 40_000, 10, 10_000_000),
      maxMutationFields: integer(env, 'GRAPHQL_MAX_MUTATION_FIELDS', 10, 1, 1000),
    },
    graphqlIntrospection: boolean(env, 'GRAPHQL_INTROSPECTION', !production),
    trustProxy: integer(env, 'TRUST_PROXY', 0, 0, 10),
    rateLimitPerIpPerMinute: integer(env, 'RATE_LIMIT_PER_IP_PER_MINUTE', 600, 0, 10_000_000),
    redisUrl: redisUrl(env),
    oidcTokenValidationRatePerSecond: integer(env, 'OIDC_TOKEN_VALIDATION_RATE_PER_SECOND', 20, 1, 100_000),
    tokenRefusalCacheMaxEntries: integer(env, 'TOKEN_REFUSAL_CACHE_MAX_ENTRIES', 10_000, 1, 10_000_000),
    shutdownGraceMs: integer(env, 'SHUTDOWN_GRACE_SECONDS', 10, 0, 600) * 1000,
    databaseConnectTimeoutMs: integer(env, 'DATABASE_CONNECT_TIMEOUT_SECONDS', 60, 0, 3600) * 1000,
    production,
    housekeepingIntervalMs: integer(env, 'HOUSEKEEPING_INTERVAL_SECONDS', 300, 0, 7 * 86_400) * 1000,
    sessionRetentionDays: integer(env, 'SESSION_RETENTION_DAYS', 7, 0, 3650),
    auditRetentionDays: integer(env, 'AUDIT_RETENTION_DAYS', 90, 1, 36_500),
    keyRotationPublishSeconds: integer(env, 'KEY_ROTATION_PUBLISH_SECONDS', JWKS_MAX_AGE_SECONDS, 0, 7 * 86_400),
    metricsToken: metricsToken(env),
    metricsPort: text(env, 'METRICS_PORT') === undefined ? undefined : integer(env, 'METRICS_PORT', 0, 0, 65535),
  };
}
