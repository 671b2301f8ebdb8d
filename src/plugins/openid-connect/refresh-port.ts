/**
 * The provider half of a session refresh (OpenID Connect Core 12): the refresh_token grant,
 * and, when the provider returns a new id_token, its verification and the identity it states.
 * Failures are classified by failures.ts; a refreshed id_token that fails its checks ends the
 * grant (`grant_ended`), since the provider no longer vouches for this session.
 */
import * as oidc from 'openid-client';
import { AppError } from '../../core/errors.ts';
import type { ProviderGrant, RefreshPort } from '../../sessions/refresh.ts';
import type { IdentityRules } from '../../identity/identity.ts';
import type { OidcProvider } from './provider.ts';
import type { OidcSettings } from './settings.ts';
import { providerFailure } from './failures.ts';
import { providerProfile } from './profile.ts';

/** A token problem from the provider at refresh means the grant can no longer be trusted. */
function endsGrant(e: AppError): AppError {
  return e.code === 'provider_token_invalid' || e.code === 'identity_subject_mismatch' ? new AppError('grant_ended', e.publicMessage, e.detail ?? e.code, { cause: e }) : e;
}

export function identityRules(pluginId: string, settings: OidcSettings): IdentityRules {
  return {
    pluginId,
    linkByVerifiedEmail: settings.linkByVerifiedEmail,
    useScopePermissions: settings.useScopePermissions,
    staffDomains: settings.staffDomains,
    defaultGroupName: settings.defaultGroupName,
  };
}

/**
 * `issuer`: the one the session must have (OidcProvider.sessionIssuer). A refreshed id_token is
 * verified as at login (multi-tenant: its tid allowed, iss naming it), and the identity it states
 * (issuer included, so its tenant) must be the session's: the session service ends it otherwise.
 */
export function refreshPort(pluginId: string, settings: OidcSettings, provider: OidcProvider, issuer: string): RefreshPort {
  return {
    pluginId,
    issuer,
    rules: identityRules(pluginId, settings),
    async refreshGrant(providerRefreshToken: string): Promise<ProviderGrant> {
      let response: Awaited<ReturnType<typeof oidc.refreshTokenGrant>>;
      try {
        response = await oidc.refreshTokenGrant((await provider.get()).config, providerRefreshToken, settings.resource ? { resource: settings.resource } : undefined);
      } catch (e) {
        throw endsGrant(providerFailure(e, 'refresh'));
      }
      return { providerRefreshToken: response.refresh_token ?? null, idToken: response.id_token ?? null, grantedScope: response.scope ?? null, accessToken: response.access_token };
    },
    async identityOf(grant: ProviderGrant) {
      if (!grant.idToken) return undefined;
      try {
        const claims = await provider.verifyIdToken(grant.idToken, undefined);
        return await providerProfile(provider, settings, claims, grant.accessToken, grant.grantedScope);
      } catch (e) {
        throw endsGrant(providerFailure(e, 'refresh-id-token'));
      }
    },
  };
}
