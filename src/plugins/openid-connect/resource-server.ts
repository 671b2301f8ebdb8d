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
 */
import * as oidc from 'openid-client';
import { decodeJwt, decodeProtectedHeader, type JWTPayload } from 'jose';
import { groupsFromClaims, type OidcSettings } from './settings.ts';
import { type OidcProvider, ProviderTokenError, ProviderUnavailableError, classifyProviderError } from './provider.ts';

export interface TokenIdentity {
  kind: 'user' | 'app';
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

/** The token is not valid (for this provider): refuse it, and remember that for a while. */
export class TokenRefusedError extends Error {
  override name = 'TokenRefusedError';
}

/** A provider JWT's validation is reused at most this long, whatever its own lifetime. */
const MAX_JWT_CACHE_MS = 5 * 60_000;

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

function scopeOf(claims: Record<string, unknown>): string {
  if (typeof claims['scope'] === 'string') return claims['scope'];
  if (Array.isArray(claims['scp'])) return claims['scp'].filter((s): s is string => typeof s === 'string').join(' ');
  if (typeof claims['scp'] === 'string') return claims['scp'];
  return '';
}

function audiences(aud: unknown): string[] {
  if (typeof aud === 'string') return [aud];
  return Array.isArray(aud) ? aud.filter((a): a is string => typeof a === 'string') : [];
}

/** Cheap look at a token: is it a JWT claiming to come from `issuer`? (Not verified.) */
export function jwtIssuer(token: string): string | undefined {
  if (token.split('.').length !== 3) return undefined;
  try {
    return str(decodeJwt(token).iss);
  } catch {
    return undefined;
  }
}

export class ResourceServer {
  constructor(
    private readonly settings: OidcSettings,
    private readonly provider: OidcProvider,
    /** How long an opaque token's validation is trusted before asking the provider again. */
    private readonly opaqueTtlMs: number,
  ) {}

  /**
   * What the token says, or null when it is not this provider's token at all (a JWT from
   * another issuer). Throws TokenRefusedError (invalid) or ProviderUnavailableError.
   */
  async identify(token: string): Promise<TokenIdentity | null> {
    const iss = jwtIssuer(token);
    if (iss !== undefined) return iss === this.provider.issuer ? this.fromJwt(token) : null;
    return this.settings.acceptOpaqueBearerTokens ? this.fromOpaque(token) : null;
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
      if (e instanceof ProviderTokenError) throw new TokenRefusedError(e.message);
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
      identityOnly: false,
      // Re-validate at least every few minutes, whatever the token's own lifetime.
      expiresAt: Math.min((claims.exp as number) * 1000, Date.now() + MAX_JWT_CACHE_MS),
    });
  }

  private async fromOpaque(token: string): Promise<TokenIdentity> {
    const { config, metadata } = await this.provider.get();
    const cap = Date.now() + this.opaqueTtlMs;
    if (metadata.introspection_endpoint) {
      let info: oidc.IntrospectionResponse;
      try {
        info = await oidc.tokenIntrospection(config, token);
      } catch (e) {
        throw classifyProviderError(e) instanceof ProviderUnavailableError ? classifyProviderError(e) : new TokenRefusedError('introspection failed');
      }
      if (!info.active) throw new TokenRefusedError('token is not active');
      if (info.iss !== undefined && info.iss !== this.provider.issuer) throw new TokenRefusedError('introspected token has another issuer');
      if (info.exp !== undefined && info.exp * 1000 <= Date.now()) throw new TokenRefusedError('token expired');
      if (info.token_type !== undefined && !/^(access_token|bearer)$/i.test(String(info.token_type))) {
        throw new TokenRefusedError('not an access token');
      }
      const binding = this.bindingOf(info as Record<string, unknown>);
      return this.complete(token, info as Record<string, unknown>, {
        ...binding,
        identityOnly: false,
        expiresAt: info.exp !== undefined ? Math.min(info.exp * 1000, cap) : cap,
      });
    }
    // No introspection: userinfo proves only that the provider knows the token, not for whom
    // it was issued. Accepted as an identity without any permission, and only when no audience
    // is configured (an audience cannot be checked this way).
    if (this.settings.audience !== undefined) throw new TokenRefusedError('cannot check the audience of an opaque token without introspection');
    const info = await this.userinfo(token, undefined);
    return this.complete(token, { ...info, scope: '' }, { audienceMatches: false, identityOnly: true, expiresAt: cap });
  }

  private async userinfo(token: string, sub: string | undefined): Promise<Record<string, unknown>> {
    const { config, metadata } = await this.provider.get();
    if (!metadata.userinfo_endpoint) throw new TokenRefusedError('no userinfo endpoint to validate the token with');
    try {
      return await oidc.fetchUserInfo(config, token, sub ?? oidc.skipSubjectCheck);
    } catch (e) {
      const err = classifyProviderError(e);
      if (err instanceof ProviderUnavailableError) throw err;
      throw new TokenRefusedError(`userinfo refused the token: ${err.message}`);
    }
  }

  private async complete(
    token: string,
    claims: Record<string, unknown>,
    extra: { audienceMatches: boolean; identityOnly: boolean; expiresAt: number },
  ): Promise<TokenIdentity> {
    const subject = str(claims['sub']);
    const clientId = str(claims['client_id']) ?? str(claims['azp']);
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
        if (e instanceof TokenRefusedError && /sub/i.test(e.message)) throw e;
      }
    }
    return {
      kind: machine ? 'app' : 'user',
      subject,
      email: str(profile['email']),
      emailVerified: profile['email_verified'] === true || profile['email_verified'] === 'true',
      firstName: str(profile['given_name']),
      lastName: str(profile['family_name']),
      scope: scopeOf(claims),
      permissionsClaim: claims['permissions'],
      groups: this.settings.groupsClaim ? groupsFromClaims(profile, this.settings.groupsClaim) : undefined,
      audienceMatches: extra.audienceMatches,
      identityOnly: extra.identityOnly,
      clientId,
      expiresAt: extra.expiresAt,
    };
  }
}
