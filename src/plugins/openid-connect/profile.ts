/**
 * The identity a login (or a refresh) states: the verified id_token's claims, completed from
 * userinfo (called with the access token when the provider has the endpoint; a userinfo `sub`
 * other than the id_token's is refused, OpenID Connect Core 5.3.2). Throws AppError:
 * `identity_subject_mismatch`, `identity_no_subject`, `identity_no_email`, or a provider failure.
 */
import * as oidc from 'openid-client';
import type { JWTPayload } from 'jose';
import { AppError } from '../../core/errors.ts';
import type { VerifiedIdentity } from '../../identity/identity.ts';
import type { OidcProvider } from './provider.ts';
import type { OidcSettings } from './settings.ts';
import { groupsFromClaims } from './groups-claim.ts';
import { providerFailure } from './failures.ts';

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

export async function providerProfile(
  provider: OidcProvider,
  settings: OidcSettings,
  claims: JWTPayload & { sub: string },
  accessToken: string,
  grantedScope: string | null,
): Promise<VerifiedIdentity> {
  const sub = str(claims.sub);
  if (!sub) throw new AppError('identity_no_subject', 'Missing subject identifier.');
  let info: Record<string, unknown> = {};
  const { config, metadata } = await provider.get().catch((e: unknown) => Promise.reject(providerFailure(e, 'metadata')));
  if (metadata.userinfo_endpoint) {
    try {
      info = await oidc.fetchUserInfo(config, accessToken, sub);
    } catch (e) {
      if ((e as { code?: string }).code === 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED') {
        throw new AppError('identity_subject_mismatch', 'The identity provider returned a different subject from userinfo.', 'userinfo sub differs from the id_token sub');
      }
      throw providerFailure(e, 'userinfo');
    }
  }
  const pick = (name: string) => claims[name] ?? info[name];
  const email = str(pick('email'));
  if (!email) throw new AppError('identity_no_email', "Missing user's email.");
  return {
    // Multi-tenant: the id_token's own issuer (its tenant): one sub in two tenants is two users.
    issuer: provider.issuerOf(claims),
    subject: sub,
    email,
    emailVerified: pick('email_verified') === true || pick('email_verified') === 'true',
    firstName: str(pick('given_name')),
    lastName: str(pick('family_name')),
    scope: grantedScope,
    permissionsClaim: pick('permissions'),
    groups: settings.groupsClaimPaths ? groupsFromClaims({ ...info, ...claims }, settings.groupsClaimPaths) : undefined,
  };
}
