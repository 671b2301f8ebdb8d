/**
 * The storefront's session, through @saleor/auth-sdk 1.0.3 as a storefront would use it:
 * - login: `SaleorExternalAuth.initiate` (externalAuthenticationUrl) → the provider →
 *   `obtainAccessToken` (externalObtainAccessTokens) on the callback;
 * - requests: `SaleorAuthClient.fetchWithAuth`, which attaches the access token (only to a URL
 *   equal to the token's `iss`) and renews it with `tokenRefresh` when it is missing or
 *   expired, e.g. after a reload;
 * - logout: the SDK's `signOut`, then `externalLogout` (the SDK has no call for it), which ends
 *   the session at the API and returns the provider's end-session URL.
 *
 * Token storage: the access token lives in memory only (a StorageRepository of our own, as the
 * SDK allows). The SDK's external-auth helpers leave storing tokens to the application (its
 * Next.js handler only sets a `token` cookie); the refresh token goes where the SDK's own
 * sign-in keeps it, localStorage under `<API URL>+saleor_auth_module_refresh_token`, so that
 * the SDK renews access tokens by itself.
 */
import { createSaleorAuthClient, ExternalProvider, SaleorExternalAuth, type StorageRepository } from '@saleor/auth-sdk';
import { config } from './config.ts';

export interface Me {
  email: string;
  isStaff: boolean;
  userPermissions: Array<{ code: string }>;
}

interface AccountError {
  field: string | null;
  code: string;
  message: string;
}

const REFRESH_TOKEN_KEY = `${config.apiUrl}+saleor_auth_module_refresh_token`;
const AUTH_STATE_KEY = `${config.apiUrl}+saleor_auth_module_auth_state`;

/** One slot in memory: the SDK keeps one access token per API URL, and we talk to one API. */
class MemoryTokenStorage implements StorageRepository {
  value: string | null = null;
  getItem(): string | null {
    return this.value;
  }
  setItem(_key: string, value: string): void {
    this.value = value;
  }
  removeItem(): void {
    this.value = null;
  }
}

const accessTokens = new MemoryTokenStorage();
/** How many times the SDK renewed (tried to renew) the access token with tokenRefresh on this page. */
let renewals = 0;

const client = createSaleorAuthClient({
  saleorApiUrl: config.apiUrl,
  accessTokenStorage: accessTokens,
  // Called with true when a renewal starts (possibly twice) and with false once it is done.
  onAuthRefresh: (refreshing) => {
    if (!refreshing) renewals++;
  },
});

const externalAuth = new SaleorExternalAuth(config.apiUrl, ExternalProvider.OpenIDConnect);

export function renewalCount(): number {
  return renewals;
}

function describe(errors: readonly AccountError[]): string {
  return errors.map((e) => `${e.field ?? 'request'}: ${e.message} (${e.code})`).join('; ');
}

/** Sends the browser to the provider's login page. */
export async function startLogin(): Promise<void> {
  const authorizationUrl = await externalAuth.initiate({ redirectURL: config.callbackUrl });
  window.location.assign(authorizationUrl);
}

/** The callback: exchanges `code` and `state` for our tokens and keeps them. */
export async function finishLogin(params: URLSearchParams): Promise<void> {
  const providerError = params.get('error');
  if (providerError) throw new Error(`The provider refused the login: ${params.get('error_description') ?? providerError}`);
  const code = params.get('code');
  const state = params.get('state');
  if (!code || !state) throw new Error('The callback has no code or state.');
  // The SDK types the result without `errors`; the mutation selects them.
  const result = (await externalAuth.obtainAccessToken({ code, state })) as unknown as {
    token: string | null;
    refreshToken: string | null;
    errors: AccountError[];
  };
  if (!result.token) throw new Error(`Login failed: ${describe(result.errors ?? [])}`);
  accessTokens.value = result.token;
  if (result.refreshToken) {
    localStorage.setItem(REFRESH_TOKEN_KEY, result.refreshToken);
    localStorage.setItem(AUTH_STATE_KEY, 'signedIn');
  }
}

/** `me` through fetchWithAuth (token attached, renewed when needed); null when signed out. */
export async function fetchMe(): Promise<Me | null> {
  const response = await client.fetchWithAuth(config.apiUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: 'query StorefrontMe { me { email isStaff userPermissions { code } } }' }),
  });
  const body = (await response.json()) as { data?: { me: Me | null }; errors?: Array<{ message: string }> };
  if (body.errors?.length) throw new Error(`me failed: ${body.errors.map((e) => e.message).join('; ')}`);
  return body.data?.me ?? null;
}

/** Until when the current access token is valid (null: none in memory). */
export function accessTokenExpiry(): Date | null {
  const token = accessTokens.value;
  if (!token) return null;
  try {
    const payload = JSON.parse(atob(token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))) as { exp?: number };
    return typeof payload.exp === 'number' ? new Date(payload.exp * 1000) : null;
  } catch {
    return null;
  }
}

/** Drops the access token in memory: the next fetchWithAuth renews it with tokenRefresh. */
export function forgetAccessToken(): void {
  accessTokens.removeItem();
}

/**
 * Signs out: the SDK forgets the tokens, the API ends the session (externalLogout with the
 * refresh token) and answers the provider's end-session URL, which returns to `homeUrl`.
 * Resolves with that URL (null when the provider has none).
 */
export async function logout(): Promise<string | null> {
  const refreshToken = localStorage.getItem(REFRESH_TOKEN_KEY);
  client.signOut();
  const input: Record<string, string> = { postLogoutRedirectUri: config.homeUrl };
  if (refreshToken) input['refreshToken'] = refreshToken;
  const response = await fetch(config.apiUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      query: `mutation StorefrontLogout($pluginId: String!, $input: JSONString!) {
        externalLogout(pluginId: $pluginId, input: $input) { logoutData errors { field code message } }
      }`,
      variables: { pluginId: ExternalProvider.OpenIDConnect, input: JSON.stringify(input) },
    }),
  });
  const body = (await response.json()) as {
    data?: { externalLogout: { logoutData: string | null; errors: AccountError[] } };
    errors?: Array<{ message: string }>;
  };
  const result = body.data?.externalLogout;
  if (!result) throw new Error(`externalLogout failed: ${(body.errors ?? []).map((e) => e.message).join('; ')}`);
  if (result.errors.length) throw new Error(`externalLogout failed: ${describe(result.errors)}`);
  const data = JSON.parse(result.logoutData ?? '{}') as { logoutUrl?: string };
  return data.logoutUrl ?? null;
}
