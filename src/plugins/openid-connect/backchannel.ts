/**
 * Verification of a back-channel logout token (OpenID Connect Back-Channel Logout 1.0, 2.4 and
 * 2.6): signed by the provider (its JWKS, asymmetric algorithms), iss, aud = our client id,
 * iat within the configured window, a jti (single use is the session service's job), the
 * back-channel logout event, no nonce, and a sid or a sub. The result names what to end.
 */
import type { JWTPayload } from 'jose';
import { AppError } from '../../core/errors.ts';
import type { LogoutTokenFacts } from '../../sessions/service.ts';
import type { OidcProvider } from './provider.ts';

const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

export async function verifyLogoutToken(provider: OidcProvider, clientId: string, pluginId: string, logoutToken: string, maxAgeSeconds: number): Promise<LogoutTokenFacts> {
  let claims: JWTPayload;
  try {
    claims = await provider.verifyJwt(logoutToken, { audience: clientId, requiredClaims: ['iat', 'jti'], maxTokenAge: maxAgeSeconds });
  } catch (e) {
    throw new AppError('logout_token_invalid', 'invalid_request', (e as Error).message, { cause: e });
  }
  const events = claims['events'];
  const event = events && typeof events === 'object' && !Array.isArray(events) ? (events as Record<string, unknown>)[BACKCHANNEL_EVENT] : undefined;
  const sid = str(claims['sid']);
  const sub = str(claims.sub);
  const jti = str(claims.jti);
  const reasons = [
    !(event && typeof event === 'object' && !Array.isArray(event)) && 'missing back-channel logout event',
    claims['nonce'] !== undefined && 'nonce present',
    !sid && !sub && 'neither sid nor sub',
    !jti && 'no jti',
  ].filter(Boolean);
  if (reasons.length) throw new AppError('logout_token_invalid', 'invalid_request', reasons.join(', '));
  const iat = claims.iat as number;
  // The jti is remembered while the token could still be accepted (its iat window, or its exp).
  const rememberUntil = Math.max(iat + maxAgeSeconds, typeof claims.exp === 'number' ? claims.exp : 0) + 60;
  // Multi-tenant: the token's own issuer (its tenant), so only that tenant's sessions end.
  return { pluginId, issuer: provider.issuerOf(claims), jti: jti!, iat, rememberUntil, providerSid: sid, subject: sub };
}
