/**
 * Scopes and provider quirks for the authorization request (saleor-contract.md section 2).
 */
import { permissionScopes } from '../../accounts/permissions.ts';

const GOOGLE_HOSTS = new Set(['accounts.google.com', 'googleapis.com', 'www.googleapis.com']);

function hostOf(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return new URL(url).hostname.toLowerCase();
  } catch {
    return undefined;
  }
}

/** Google wants `access_type=offline` instead of the offline_access scope. */
export function isGoogle(urls: { authorizationUrl?: string | undefined; issuer?: string | undefined }): boolean {
  return [urls.authorizationUrl, urls.issuer].some((u) => {
    const h = hostOf(u);
    return h !== undefined && GOOGLE_HOSTS.has(h);
  });
}

/** AWS Cognito refuses the offline_access scope (it issues refresh tokens anyway). */
export function isCognito(jwksUrl: string | undefined): boolean {
  return jwksUrl?.includes('cognito-idp.') ?? false;
}

export interface ScopeOptions {
  useScopePermissions: boolean;
  enableRefreshToken: boolean;
  google: boolean;
  cognito: boolean;
}

/** `openid profile email`, the saleor: scopes when scope permissions are on, offline_access when refresh is on (not for Google/Cognito). */
export function requestedScope(o: ScopeOptions): string {
  const scopes = ['openid', 'profile', 'email'];
  if (o.useScopePermissions) scopes.push(...permissionScopes());
  if (o.enableRefreshToken && !o.google && !o.cognito) scopes.push('offline_access');
  return scopes.join(' ');
}

/**
 * Extra authorization parameters: `access_type=offline` for Google with refresh enabled, and
 * `prompt=consent` whenever offline_access is requested (OpenID Connect Core 1.0 section 11:
 * the prompt MUST contain consent then; providers such as oidc-provider drop offline_access
 * without it).
 */
export function extraAuthorizationParams(o: ScopeOptions): Record<string, string> {
  if (!o.enableRefreshToken) return {};
  if (o.google) return { access_type: 'offline' };
  if (o.cognito) return {};
  return { prompt: 'consent' };
}

