/**
 * The storefront's second section: a back-end service calling the API with a provider token.
 * Server side only (the service's secret never reaches the browser):
 * 1. client credentials grant at the provider's token endpoint (RFC 6749 §4.4), client
 *    authentication `client_secret_basic` (§2.3.1: id and secret form-encoded), with an RFC 8707
 *    `resource` equal to the API audience, so the provider issues a JWT access token whose
 *    `aud` is that audience (RFC 9068);
 * 2. `plugins(first: 5)` at the API with `Authorization: Bearer <token>` (needs MANAGE_PLUGINS,
 *    which the API grants the app from the token's `saleor:manage_plugins` scope).
 */

export const SERVICE_SCOPE = 'saleor:manage_plugins';

export interface ServiceCallOptions {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** The API audience, sent as `resource`. */
  audience: string;
  /** The API's GraphQL URL. */
  apiUrl: string;
}

export interface ServiceCallAnswer {
  /** What the token says (decoded for display, not verified: the API verifies it). */
  token?: { iss: unknown; aud: unknown; scope: unknown; client_id: unknown; exp: unknown };
  status?: number;
  plugins?: Array<{ id: string; name: string }>;
  body?: unknown;
  error?: string;
}

const PLUGINS_QUERY = 'query ServicePlugins { plugins(first: 5) { edges { node { id name } } } }';

function formEncode(value: string): string {
  return encodeURIComponent(value).replace(/%20/g, '+');
}

function claimsOf(jwt: string): Record<string, unknown> {
  const payload = jwt.split('.')[1];
  if (!payload) throw new Error('the provider did not issue a JWT access token');
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
}

export function createServiceCaller(options: ServiceCallOptions): () => Promise<ServiceCallAnswer> {
  let tokenEndpoint: string | undefined;
  async function discoverTokenEndpoint(): Promise<string> {
    if (tokenEndpoint) return tokenEndpoint;
    const res = await fetch(`${options.issuer}/.well-known/openid-configuration`);
    if (!res.ok) throw new Error(`provider discovery answered HTTP ${res.status}`);
    const metadata = (await res.json()) as { token_endpoint?: string };
    if (!metadata.token_endpoint) throw new Error('provider discovery names no token endpoint');
    return (tokenEndpoint = metadata.token_endpoint);
  }

  return async function callApiAsService(): Promise<ServiceCallAnswer> {
    try {
      const basic = Buffer.from(`${formEncode(options.clientId)}:${formEncode(options.clientSecret)}`).toString('base64');
      const tokenResponse = await fetch(await discoverTokenEndpoint(), {
        method: 'POST',
        headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope: SERVICE_SCOPE, resource: options.audience }),
      });
      const tokenBody = (await tokenResponse.json()) as { access_token?: string; error?: string; error_description?: string };
      if (!tokenResponse.ok || !tokenBody.access_token) {
        return { error: `token endpoint answered HTTP ${tokenResponse.status}: ${tokenBody.error ?? ''} ${tokenBody.error_description ?? ''}`.trim() };
      }
      const claims = claimsOf(tokenBody.access_token);
      const apiResponse = await fetch(options.apiUrl, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokenBody.access_token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ query: PLUGINS_QUERY }),
      });
      const body = (await apiResponse.json()) as {
        data?: { plugins?: { edges: Array<{ node: { id: string; name: string } }> } | null };
      };
      const edges = body.data?.plugins?.edges;
      return {
        token: { iss: claims['iss'], aud: claims['aud'], scope: claims['scope'], client_id: claims['client_id'], exp: claims['exp'] },
        status: apiResponse.status,
        ...(edges ? { plugins: edges.map((e) => e.node) } : {}),
        body,
      };
    } catch (e) {
      return { error: (e as Error).message };
    }
  };
}
