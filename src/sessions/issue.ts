/**
 * The tokens a login or a refresh hands out for a session: an access token bound to the session
 * (`sid`: it dies with it), and, for sessions that can be refreshed, a refresh token naming the
 * session's current refresh-token id with a fresh CSRF token (Saleor's scheme), also set as the
 * HttpOnly `refreshToken` cookie.
 */
import type { AuthenticatedUser } from '../accounts/principal.ts';
import type { RequestInfo } from '../core/request.ts';
import type { TokenService } from '../tokens/jwt.ts';
import { createCsrfToken } from '../tokens/csrf.ts';
import { refreshCookie } from '../auth/cookies.ts';
import type { Session } from './store.ts';

export interface IssuedTokens {
  token: string;
  refreshToken: string | null;
  csrfToken: string | null;
  user: AuthenticatedUser;
}

export async function issueSessionTokens(
  tokens: TokenService,
  owner: string,
  auth: AuthenticatedUser,
  session: Session | null,
  req: RequestInfo,
  options: { withRefreshToken: boolean; secureCookies: boolean },
): Promise<IssuedTokens> {
  const token = await tokens.mintAccessToken(auth.user, auth.permissions, owner, session?.id);
  if (!session || !options.withRefreshToken) return { token, refreshToken: null, csrfToken: null, user: auth };
  const csrfToken = createCsrfToken();
  const refreshToken = await tokens.mintRefreshToken(auth.user, owner, {
    id: session.id,
    refreshTokenId: session.refreshTokenId,
    csrfToken,
    expiresAt: session.expiresAt,
  });
  const maxAgeSeconds = Math.max(0, Math.floor((session.expiresAt.getTime() - Date.now()) / 1000));
  req.setCookie(refreshCookie(refreshToken, { secure: options.secureCookies, maxAgeSeconds }));
  return { token, refreshToken, csrfToken, user: auth };
}
