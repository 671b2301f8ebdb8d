/**
 * The resource-server half of a connection: what a provider's own access token says, verified
 * (saleor-contract.md sections 1, 4, 5; issue "resource server").
 *
 * - A JWT whose `iss` is this provider: verified locally against the provider's JWKS
 *   (asymmetric algorithm allow-list, `iss`, `exp` required, the configured audience required).
 * - Anything else (opaque): RFC 7662 introspection when the provider has the endpoint,
 *   otherwise userinfo.
 * The email, when the token has none, comes from userinfo (same `sub` required) or from the
 * identity we already know. Tokens without a user (client credentials) become an app.
 *
 * The provider is protected from us: introspection/userinfo calls for opaque tokens we have
 * not validated yet are capped per connection (`validationsPerSecond`, a fixed one-second
 * window of rate-limiter-flexible). Beyond the cap the token is not checked at all
 * (ValidationRateLimitedError: the request stays anonymous and nothing is remembered, so a
 * valid token works when retried). Tokens already validated are answered from the
 * authenticator's cache and never reach here; when their cached validation runs out, their
 * re-validation has a budget of its own (as large), so a flood of junk cannot lock their
 * users out. Errors carry a `code` the authenticator reads.
 */
import * as oidc from 'openid-client';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { decodeProtectedHeader, type JWTPayload } from 'jose';
import { hashToken } from '../../crypto/secret-box.ts';
import { TtlLru } from '../../cache/ttl-lru.ts';
import type { OidcSettings } from './settings.ts';
import { groupsFromClaims } from './groups-claim.ts';
import { audiences, jwtIssuer, scopeOf } from './access-token-claims.ts';
import { responseStatus } from './failures.ts';
import type { OidcProvider } from './provider.ts';
import { ProviderTokenError, ProviderUnavailableError, classifyProviderError } from './provider-errors.ts';

export interface TokenIdentity {
  kind: 'user' | 'app';
  /** The issuer the identity belongs to (multi-tenant: the token's own, tenant included). */
  issuer: string;
  subject: string | undefined;
  email: string | undefined;
  emailVerified: boolean;
  firstName: string | undefined;
  lastName: string | undefined;
  /** Granted scope (space-separated). */
  scope: string;
  permissionsClaim: unknown;
  /** Names from the configured groups claim; undefined when none is configured. */
  groups: string[] | undefined;
  /** The token's `aud` contains the configured audience (scope permissions apply only then). */
  audienceMatches: boolean;
  clientId: string | undefined;
  /** Validated by userinfo only: who the user is, but not that the token was meant for us. */
  identityOnly: boolean;
  /** Until when this result may be cached (ms since epoch). */
  expiresAt: number;
}

/**
 * The token is not valid (for this provider): refuse it, and remember that for a while, but not
 * past `retryAt` when set (the verdict may change then: an unknown kid, keys refetchable).
 */
export class TokenRefusedError extends Error {
  override name = 'TokenRefusedError';
  readonly code = 'TOKEN_REFUSED';
  readonly retryAt: number | undefined;
  /** Userinfo named another subject than the token (never let through, whatever else we know). */
  readonly subjectMismatch: boolean;
  constructor(message: string, options: { retryAt?: number | undefined; subjectMismatch?: boolean } = {}) {
    super(message);
    this.retryAt = options.retryAt;
    this.subjectMismatch = options.subjectMismatch ?? false;
  }
}

/** The connection's validation budget for this second is spent: the token was not checked. */
export class ValidationRateLimitedError extends Error {
  override name = 'ValidationRateLimitedError';
  readonly code = 'VALIDATION_RATE_LIMITED';
  constructor(readonly retryAfterMs: number) {
    super('token validations at the provider are rate-limited');
  }
}

/** A provider JWT's validation is reused at most this long, whatever its own lifetime. */
const MAX_JWT_CACHE_MS = 5 * 60_000;

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

export class ResourceServer {
  /** Validations of opaque tokens never validated here, and re-validations of known ones. */
  private readonly validations: { unknown: RateLimiterMemory; known: RateLimiterMemory };
  /**
   * Hashes of opaque tokens validated here, until their own expiry. A token enters only through
   * the capped lane (a re-validation refreshes its entry), so the bound holds every token
   * admitted within one cache TTL; beyond that, the least recently validated go first.
   */
  private readonly known: TtlLru<true>;

  constructor(
    private readonly settings: OidcSettings,
    private readonly provider: OidcProvider,
    /** How long an opaque token's validation is trusted before asking the provider again. */
    private readonly opaqueTtlMs: number,
    /** Opaque-token validations (introspection or userinfo calls) per second for this connection. */
    validationsPerSecond: number,
  ) {
    const points = Math.max(1, validationsPerSecond);
    this.validations = { unknown: new RateLimiterMemory({ points, duration: 1 }), known: new RateLimiterMemory({ points, duration: 1 }) };
    this.known = new TtlLru<true>(points * Math.max(1, Math.ceil(opaqueTtlMs / 1000)));
  }

  /** Takes one validation from this second's budget of `lane`, or throws ValidationRateLimitedError. */
  private async admitValidation(lane: 'unknown' | 'known'): Promise<void> {
    try {
      await this.validations[lane].consume(lane);
    } catch (e) {
      if (e instanceof RateLimiterRes) throw new ValidationRateLimitedError(e.msBeforeNext);
      throw e;
    }
  }

  /**
   * What the token says, or null when it is not this provider's token at all (a JWT from
   * another issuer). Throws TokenRefusedError (invalid), ProviderUnavailableError or
   * ValidationRateLimitedError (not checked: neither is the token's fault).
   */
  async identify(token: string): Promise<TokenIdentity | null> {
    const iss = jwtIssuer(token);
    if (iss !== undefined) return this.provider.signsAs(iss) ? this.fromJwt(token) : null;
    if (!this.settings.acceptOpaqueBearerTokens) return null;
    // Neither introspection nor userinfo tells the tenant reliably: no identity to link.
    if (this.provider.tenancy) throw new TokenRefusedError('a multi-tenant connection accepts JWT access tokens only');
    return this.fromOpaque(token);
  }

  /**
   * Was the token issued for us? With an audience configured, its `aud` must contain it (any
   * client of the provider may call our API then). Without one, it must have been issued to
   * our own client (`client_id`, RFC 9068 / RFC 7662). Tokens for other clients of the same
   * provider (another site's "log in with …") are refused.
   */
  private bindingOf(claims: Record<string, unknown>): { audienceMatches: boolean } {
    if (this.settings.audience !== undefined) {
      if (!audiences(claims['aud']).includes(this.settings.audience)) throw new TokenRefusedError('token audience does not include ours');
      return { audienceMatches: true };
    }
    if (claims['client_id'] !== this.settings.clientId) throw new TokenRefusedError('token was issued to another client');
    return { audienceMatches: false };
  }

  private async fromJwt(token: string): Promise<TokenIdentity> {
    let claims: JWTPayload;
    let header: { typ?: unknown };
    try {
      header = decodeProtectedHeader(token);
      claims = await this.provider.verifyJwt(token, { audience: this.settings.audience, requiredClaims: ['exp'] });
    } catch (e) {
      if (e instanceof ProviderTokenError) throw new TokenRefusedError(e.message, { retryAt: e.retryAt });
      throw e;
    }
    // Not an access token: ID tokens (nonce, at_hash) and logout tokens (events) are refused.
    const typ = typeof header.typ === 'string' ? header.typ.toLowerCase().replace(/^application\//, '') : undefined;
    if ((typ !== undefined && typ !== 'at+jwt' && typ !== 'jwt') || claims['nonce'] !== undefined || claims['events'] !== undefined || claims['at_hash'] !== undefined) {
      throw new TokenRefusedError('not an access token');
    }
    const binding = this.bindingOf(claims as Record<string, unknown>);
    return this.complete(token, claims as Record<string, unknown>, {
      ...binding,
      issuer: this.provider.issuerOf(claims),
      identityOnly: false,
      // Re-validate at least every few minutes, whatever the token's own lifetime.
      expiresAt: Math.min((claims.exp as number) * 1000, Date.now() + MAX_JWT_CACHE_MS),
    });
  }

  private async fromOpaque(token: string): Promise<TokenIdentity> {
    const { config, metadata } = await this.provider.get();
    if (!metadata.introspection_endpoint && this.settings.audience !== undefined) {
      throw new TokenRefusedError('cannot check the audience of an opaque token without introspection (none discovered, introspection_url not set)');
    }
    const key = hashToken(token);
    await this.admitValidation(this.known.get(key) ? 'known' : 'unknown');
    try {
      const { identity, tokenExpiresAt } = await this.validateOpaque(token, config, metadata);
      this.known.set(key, true, tokenExpiresAt);
      return identity;
    } catch (e) {
      if (e instanceof TokenRefusedError) this.known.delete(key);
      throw e;
    }
  }

  /** One introspection (or userinfo) call; `tokenExpiresAt`: the token's own expiry when told. */
  private async validateOpaque(
    token: string,
    config: oidc.Configuration,
    metadata: oidc.ServerMetadata,
  ): Promise<{ identity: TokenIdentity; tokenExpiresAt: number }> {
    const cap = Date.now() + this.opaqueTtlMs;
    if (metadata.introspection_endpoint) {
      let info: oidc.IntrospectionResponse;
      try {
        info = await oidc.tokenIntrospection(config, token);
      } catch (e) {
        const status = responseStatus(e);
        if (status === 401 || status === 403) throw new TokenRefusedError(`introspection refused (HTTP ${status})`);
        const err = classifyProviderError(e);
        throw err instanceof ProviderUnavailableError ? err : new TokenRefusedError('introspection failed');
      }
      if (!info.active) throw new TokenRefusedError('token is not active');
      if (info.iss !== undefined && !this.provider.accepts(info.iss)) throw new TokenRefusedError('introspected token has another issuer');
      if (info.exp !== undefined && info.exp * 1000 <= Date.now()) throw new TokenRefusedError('token expired');
      if (info.token_type !== undefined && !/^(access_token|bearer)$/i.test(String(info.token_type))) {
        throw new TokenRefusedError('not an access token');
      }
      const binding = this.bindingOf(info as Record<string, unknown>);
      const identity = await this.complete(token, info as Record<string, unknown>, {
        ...binding,
        issuer: this.provider.issuerUrl,
        identityOnly: false,
        expiresAt: info.exp !== undefined ? Math.min(info.exp * 1000, cap) : cap,
      });
      return { identity, tokenExpiresAt: info.exp !== undefined ? info.exp * 1000 : Number.POSITIVE_INFINITY };
    }
    // No introspection: userinfo proves only that the provider knows the token, not for whom
    // it was issued. Accepted as an identity without any permission, and only when no audience
    // is configured (an audience cannot be checked this way; refused above).
    const info = await this.userinfo(token, undefined);
    const identity = await this.complete(token, { ...info, scope: '' }, { issuer: this.provider.issuerUrl, audienceMatches: false, identityOnly: true, expiresAt: cap });
    return { identity, tokenExpiresAt: Number.POSITIVE_INFINITY };
  }

  private async userinfo(token: string, sub: string | undefined): Promise<Record<string, unknown>> {
    const { config, metadata } = await this.provider.get();
    if (!metadata.userinfo_endpoint) throw new TokenRefusedError('no userinfo endpoint to validate the token with');
    try {
      return await oidc.fetchUserInfo(config, token, sub ?? oidc.skipSubjectCheck);
    } catch (e) {
      // oauth4webapi: the answer's `sub` is not the expected one (its only JSON comparison here).
      if ((e as { code?: unknown }).code === 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED') {
        throw new TokenRefusedError('userinfo names another subject', { subjectMismatch: true });
      }
      // A 401 or 403 (with or without a WWW-Authenticate challenge; some providers answer a bare
      // 401 for an unknown token) is the provider refusing this token, not an outage.
      const status = responseStatus(e);
      if (status === 401 || status === 403) throw new TokenRefusedError(`userinfo refused the token (HTTP ${status})`);
      const err = classifyProviderError(e);
      if (err instanceof ProviderUnavailableError) throw err;
      throw new TokenRefusedError(`userinfo refused the token: ${err.message}`);
    }
  }

  private async complete(
    token: string,
    claims: Record<string, unknown>,
    extra: { issuer: string; audienceMatches: boolean; identityOnly: boolean; expiresAt: number },
  ): Promise<TokenIdentity> {
    // The user: `sub`, or the configured claim (Okta: `uid`; its `sub` is the login). Okta
    // names the client `cid`.
    const subject = str(claims[this.settings.userIdClaim]);
    const clientId = str(claims['client_id']) ?? str(claims['cid']) ?? str(claims['azp']);
    // Client-credentials tokens name no user: no sub, or the client itself as sub.
    const machine = !subject || (clientId !== undefined && subject === clientId) || claims['gty'] === 'client-credentials';
    let profile = claims;
    if (!machine && !str(claims['email'])) {
      // The token carries no email: userinfo may (a different sub is refused). A provider may
      // refuse userinfo for API-audience tokens; the caller then relies on the linked identity.
      try {
        profile = { ...claims, ...(await this.userinfo(token, subject)) };
      } catch (e) {
        if (e instanceof ProviderUnavailableError) throw e;
        if (e instanceof TokenRefusedError && e.subjectMismatch) throw e;
      }
    }
    return {
      kind: machine ? 'app' : 'user',
      issuer: extra.issuer,
      subject,
      email: str(profile['email']),
      emailVerified: profile['email_verified'] === true || profile['email_verified'] === 'true',
      firstName: str(profile['given_name']),
      lastName: str(profile['family_name']),
      scope: scopeOf(claims),
      permissionsClaim: claims['permissions'],
      groups: this.settings.groupsClaimPaths ? groupsFromClaims(profile, this.settings.groupsClaimPaths) : undefined,
      audienceMatches: extra.audienceMatches,
      identityOnly: extra.identityOnly,
      clientId,
      expiresAt: extra.expiresAt,
    };
  }
}
