/**
 * The openid-client Configuration of a multi-tenant connection (tenancy.ts).
 *
 * openid-client checks the id_tokens of the code exchange and of refreshes itself, their `iss`
 * against the configuration's issuer. For an issuer template it has one rule, `iss` = the
 * template with the token's `tid` put in, which it applies to configurations it discovered from
 * login.microsoftonline.com whose issuer differs from the URL asked for. This builds such a
 * configuration from `metadata` (handed over through customFetch: nothing is fetched, the URL
 * only selects the rule), whatever the provider's host, so that a provider shaped like Entra
 * in tests gets the treatment Entra gets. Our own verification (OidcProvider.verifyIdToken)
 * applies the whole rule afterwards, allowed tenants included.
 *
 * Should a later openid-client drop that rule, its check compares `iss` with the literal
 * template and every multi-tenant login fails: closed, not open (test/e2e/provider-shapes).
 */
import * as oidc from 'openid-client';

/** A URL of Entra's multi-tenant form: only what openid-client recognises, never requested. */
const ENTRA_MULTI_TENANT = 'https://login.microsoftonline.com/organizations/v2.0';

export async function templateIssuerConfiguration(
  metadata: oidc.ServerMetadata,
  clientId: string,
  clientMetadata: Partial<oidc.ClientMetadata> | undefined,
  clientAuth: oidc.ClientAuth,
): Promise<oidc.Configuration> {
  const document = JSON.stringify(metadata);
  return oidc.discovery(new URL(ENTRA_MULTI_TENANT), clientId, clientMetadata, clientAuth, {
    [oidc.customFetch]: async () => new Response(document, { status: 200, headers: { 'content-type': 'application/json' } }),
  });
}
