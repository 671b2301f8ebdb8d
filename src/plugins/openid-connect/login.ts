/**
 * The provider half of a login (OpenID Connect Core 3.1, authorization code flow): the
 * authorization URL (PKCE S256, nonce, a single-use server-side state, RFC 7636) and the code
 * exchange, whose id_token is verified here (signature, iss, aud/azp, exp, iat, nonce) and
 * completed from userinfo. What comes out is a verified identity and the provider's tokens;
 * who the user is, and the session, are the core's business.
 */
import * as oidc from 'openid-client';
import type { JWTPayload } from 'jose';
import { AppError } from '../../core/errors.ts';
import type { VerifiedIdentity } from '../../identity/identity.ts';
import type { OidcProvider } from './provider.ts';
import type { OidcSettings } from './settings.ts';
import type { AuthorizationRequests, PendingAuthorization } from './authorization-requests.ts';
import { extraAuthorizationParams, isCognito, isGoogle, requestedScope } from './quirks.ts';
import { INVALID_TOKEN_MESSAGE, providerFailure } from './failures.ts';
import { providerProfile } from './profile.ts';

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

export interface CodeExchangeResult {
  identity: VerifiedIdentity;
  /** The provider's session id (`sid`), for back-channel logout. */
  providerSid: string | null;
  providerRefreshToken: string | null;
  idToken: string;
  grantedScope: string | null;
}

function scopeOptions(settings: OidcSettings, metadata: oidc.ServerMetadata) {
  return {
    useScopePermissions: settings.useScopePermissions,
    enableRefreshToken: settings.enableRefreshToken,
    google: isGoogle({ authorizationUrl: metadata.authorization_endpoint, issuer: metadata.issuer }),
    cognito: isCognito(metadata.jwks_uri),
  };
}

export class OidcLogin {
  constructor(
    private readonly pluginId: string,
    private readonly settings: OidcSettings,
    private readonly provider: OidcProvider,
    private readonly requests: AuthorizationRequests,
  ) {}

  /** The URL that sends the user to the provider (the redirect URI was checked by the caller). */
  async authorizationUrl(redirectUri: string): Promise<string> {
    const resolved = await this.provider.get().catch((e: unknown) => Promise.reject(providerFailure(e, 'authorization-url')));
    const codeVerifier = oidc.randomPKCECodeVerifier();
    const nonce = oidc.randomNonce();
    const state = await this.requests.create(this.pluginId, { redirectUri, nonce, codeVerifier });
    const options = scopeOptions(this.settings, resolved.metadata);
    const url = oidc.buildAuthorizationUrl(resolved.config, {
      response_type: 'code',
      redirect_uri: redirectUri,
      scope: requestedScope(options),
      state,
      nonce,
      code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      ...(this.settings.audience ? { audience: this.settings.audience } : {}),
      ...(this.settings.resource ? { resource: this.settings.resource } : {}),
      ...extraAuthorizationParams(options),
    });
    return url.href;
  }

  /** The pending authorization behind `state` (consumed), or null when unknown, used or expired. */
  consumeState(state: string): Promise<PendingAuthorization | null> {
    return this.requests.consume(this.pluginId, state);
  }

  /**
   * Exchanges the code. `iss`: the one the storefront received, if it passes it (RFC 9207);
   * Saleor's clients pass only code and state, and then the expected issuer stands in (the
   * state record already binds this response to this connection, which is what `iss` protects).
   * On a multi-tenant connection a passed `iss` must name an allowed tenant, and the id_token's
   * `iss` must then be that same one (openid-client would compare it with the template).
   */
  async exchangeCode(code: string, state: string, pending: PendingAuthorization, iss: string | undefined): Promise<CodeExchangeResult> {
    const tenantIss = this.provider.tenancy ? iss : undefined;
    if (tenantIss !== undefined && !this.provider.accepts(tenantIss)) {
      throw new AppError('provider_token_invalid', INVALID_TOKEN_MESSAGE, 'authorization response iss is not an allowed tenant');
    }
    let response: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>;
    try {
      const resolved = await this.provider.get();
      const callback = new URL(pending.redirectUri);
      callback.search = '';
      callback.searchParams.set('code', code);
      callback.searchParams.set('state', state);
      const expectedIss = this.provider.tenancy ? undefined : iss ?? (resolved.metadata.authorization_response_iss_parameter_supported ? resolved.metadata.issuer : undefined);
      if (expectedIss) callback.searchParams.set('iss', expectedIss);
      response = await oidc.authorizationCodeGrant(resolved.config, callback, {
        pkceCodeVerifier: pending.codeVerifier,
        expectedNonce: pending.nonce,
        expectedState: state,
        idTokenExpected: true,
      }, this.settings.resource ? { resource: this.settings.resource } : undefined);
    } catch (e) {
      throw providerFailure(e, 'token-exchange');
    }
    if (!response.id_token) throw new AppError('provider_token_invalid', 'The identity provider returned no ID token.');
    let claims: JWTPayload & { sub: string };
    try {
      // The token endpoint is a direct, client-authenticated channel: a new signing key there
      // may always be fetched (provider key rotation is picked up by the next login).
      claims = await this.provider.verifyIdToken(response.id_token, pending.nonce);
    } catch (e) {
      throw providerFailure(e, 'id-token');
    }
    if (tenantIss !== undefined && claims.iss !== tenantIss) {
      throw new AppError('provider_token_invalid', INVALID_TOKEN_MESSAGE, 'id-token: iss differs from the authorization response iss');
    }
    const grantedScope = response.scope ?? null;
    return {
      identity: await providerProfile(this.provider, this.settings, claims, response.access_token, grantedScope),
      providerSid: str(claims['sid']) ?? null,
      providerRefreshToken: response.refresh_token ?? null,
      idToken: response.id_token,
      grantedScope,
    };
  }
}
