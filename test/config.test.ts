import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { ConfigError, loadConfig } from '../src/config.ts';

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 8000,
      host: '0.0.0.0',
      databaseUrl: undefined,
      dataDir: path.resolve('./data'),
      secretKey: undefined,
      publicUrl: 'http://localhost:8000',
      issuer: 'http://localhost:8000/graphql/',
      secureCookies: false,
      pluginsConfigFile: undefined,
      outboundAllowPrivateAddresses: false,
      allowedGraphqlOrigins: ['http://localhost:*', 'http://127.0.0.1:*'],
      maxRequestBodyBytes: 1048576,
      accessTokenTtlSeconds: 300,
      refreshTokenTtlSeconds: 2592000,
      signingAlgorithm: 'RS256',
      logLevel: 'info',
      production: false,
    });
  });

  it('has the documented availability defaults, stricter in production', () => {
    const dev = loadConfig({});
    expect(dev).toMatchObject({
      graphqlIntrospection: true,
      trustProxy: 0,
      rateLimitPerIpPerMinute: 600,
      redisUrl: undefined,
      oidcTokenValidationRatePerSecond: 20,
      tokenRefusalCacheMaxEntries: 10000,
      http: { headersTimeoutMs: 10000, requestTimeoutMs: 30000, keepAliveTimeoutMs: 65000, maxHeaderBytes: 16384, maxHeadersCount: 100 },
      graphqlLimits: { maxTokens: 5000, maxDepth: 20, maxAliases: 30, maxFields: 40000, maxMutationFields: 10 },
    });
    const prod = loadConfig({ NODE_ENV: 'production', PUBLIC_URL: 'https://auth.example.com' });
    expect(prod.graphqlIntrospection).toBe(false);
    expect(prod.allowedGraphqlOrigins).toEqual([]);
    expect(loadConfig({ NODE_ENV: 'production', PUBLIC_URL: 'https://auth.example.com', GRAPHQL_INTROSPECTION: 'true' }).graphqlIntrospection).toBe(true);
    expect(loadConfig({ NODE_ENV: 'production', PUBLIC_URL: 'https://auth.example.com', ALLOWED_GRAPHQL_ORIGINS: 'https://shop.example.com' }).allowedGraphqlOrigins).toEqual(['https://shop.example.com']);
  });

  it('requires what a fleet shares: SECRET_KEY with DATABASE_URL, PUBLIC_URL in production', () => {
    expect(() => loadConfig({ DATABASE_URL: 'postgresql://u@h:5432/db' })).toThrow(/^SECRET_KEY: .*DATABASE_URL/);
    expect(() => loadConfig({ NODE_ENV: 'production', SECRET_KEY: 'a-shared-secret-0123456789' })).toThrow(/^PUBLIC_URL: .*production/);
    const c = loadConfig({});
    expect(c.shutdownGraceMs).toBe(10_000);
    expect(c.databaseConnectTimeoutMs).toBe(60_000);
    expect(c.oidcClockSkewSeconds).toBe(60);
    expect(c.refreshTokenReuseIntervalSeconds).toBe(30);
    expect(c.logoutTokenMaxAgeSeconds).toBe(600);
  });

  it('derives the public URL from PORT and honours an https PUBLIC_URL', () => {
    expect(loadConfig({ PORT: '9001' }).publicUrl).toBe('http://localhost:9001');
    const c = loadConfig({ PUBLIC_URL: 'https://auth.example.com/' });
    expect(c.publicUrl).toBe('https://auth.example.com');
    expect(c.issuer).toBe('https://auth.example.com/graphql/');
    expect(c.secureCookies).toBe(true);
  });

  it('parses lists, booleans and enums', () => {
    const c = loadConfig({
      ALLOWED_GRAPHQL_ORIGINS: 'https://a.example.com, https://*.b.example.com,',
      OUTBOUND_ALLOW_PRIVATE_ADDRESSES: 'TRUE',
      JWT_ALGORITHM: 'es256',
      DATABASE_URL: 'postgresql://u@h:5432/db',
      SECRET_KEY: 'a-shared-secret-0123456789',
    });
    expect(c.allowedGraphqlOrigins).toEqual(['https://a.example.com', 'https://*.b.example.com']);
    expect(c.outboundAllowPrivateAddresses).toBe(true);
    expect(c.signingAlgorithm).toBe('ES256');
    expect(c.databaseUrl).toBe('postgresql://u@h:5432/db');
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['DATABASE_URL', 'mysql://x'],
    ['SECRET_KEY', 'short'],
    ['PUBLIC_URL', 'not a url'],
    ['PUBLIC_URL', 'ftp://x.example.com'],
    ['OUTBOUND_ALLOW_PRIVATE_ADDRESSES', 'maybe'],
    ['JWT_ALGORITHM', 'HS256'],
    ['LOG_LEVEL', 'loud'],
    ['ACCESS_TOKEN_TTL_SECONDS', '5'],
    ['MAX_REQUEST_BODY_BYTES', '-1'],
    ['TRUST_PROXY', 'yes'],
    ['RATE_LIMIT_PER_IP_PER_MINUTE', '-5'],
    ['REDIS_URL', 'http://127.0.0.1:6379'],
    ['GRAPHQL_INTROSPECTION', 'sometimes'],
    ['GRAPHQL_MAX_DEPTH', '1'],
    ['OIDC_TOKEN_VALIDATION_RATE_PER_SECOND', '0'],
    ['HTTP_MAX_HEADER_BYTES', '10'],
  ])('refuses %s=%s naming the variable', (name, value) => {
    let error: unknown;
    try {
      loadConfig({ [name]: value });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(name);
    expect((error as Error).message.startsWith(`${name}:`)).toBe(true);
  });
});
