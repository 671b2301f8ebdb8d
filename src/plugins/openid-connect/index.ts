/**
 * The OpenID Connect plugin kind: configuration fields and validation (settings.ts), and one
 * OidcConnection per plugin id (several connections at once: a staff IdP, a customer IdP).
 */
import type { PluginKind, PluginSettings } from '../contract.ts';
import type { ConfigValues } from '../contract.ts';
import type { FieldError } from '../../errors.ts';
import { OIDC_FIELDS, OIDC_PLUGIN_KIND, DEFAULT_OIDC_PLUGIN_NAME, misconfigured, parseOidcSettings, validateOidcSettings } from './settings.ts';
import { OidcConnection, type OidcServices } from './connection.ts';
import { issuerProblem } from './discovery.ts';

export type { OidcServices };

export const openIdConnectKind: PluginKind<OidcServices> = {
  kind: OIDC_PLUGIN_KIND,
  defaultName: DEFAULT_OIDC_PLUGIN_NAME,
  description: 'Log users in through any OpenID Connect provider and accept its access tokens.',
  fields: OIDC_FIELDS,
  // Every connection that accepts opaque bearer tokens is shown each one (it cannot tell whose
  // it is): only the built-in connection does by default; others opt in.
  createdDefaults: { accept_opaque_bearer_tokens: false },
  validate: validateOidcSettings,
  validateActivation: validateOidcActivation,
  create: (settings: PluginSettings, services: OidcServices) => new OidcConnection(settings, services),
  /**
   * Pointing a connection at another provider or client ends its sessions: the provider refresh
   * tokens they hold belong to the old one and must not be sent to the new token endpoint.
   */
  async afterUpdate(id, changed, services) {
    if (!changed.some((name) => PROVIDER_IDENTITY_FIELDS.has(name))) return;
    await services.sessions.revokeConnection(id, 'connection-reconfigured');
  },
  /** A removed connection's sessions end with it. */
  async afterRemove(id, services) {
    await services.sessions.revokeConnection(id, 'connection-deleted');
  },
};

/** Changes that call for a new look at the issuer. */
const ISSUER_CHECK_TRIGGERS = new Set(['active', 'issuer_url', 'allowed_tenants']);

/**
 * Before a connection is activated, or an active connection's issuer URL or allowed tenants
 * change: OpenID discovery of `issuer_url` through the plugin's own guarded fetch (address
 * policy, time limit) must work, name that same issuer (or, with allowed tenants, the
 * multi-tenant template it stands for: tenancy.ts), and give (with the endpoint fields) the
 * endpoints a login needs. A discovered multi-tenant issuer without allowed tenants is refused
 * on `allowedTenants`, as are allowed tenants for an issuer that is not multi-tenant. A
 * mistyped issuer is refused here rather than at the first login. Without an issuer URL
 * nothing is fetched. Other changes to an active connection fetch nothing either.
 */
export async function validateOidcActivation(values: ConfigValues, changed: readonly string[], services: OidcServices): Promise<FieldError[]> {
  if (!changed.some((name) => ISSUER_CHECK_TRIGGERS.has(name))) return [];
  const problem = await issuerProblem(parseOidcSettings(values), {
    fetch: services.fetch,
    timeoutSeconds: services.outboundTimeoutSeconds,
    allowInsecureRequests: services.allowInsecureRequests,
  });
  return problem ? [misconfigured(problem.field, problem.message)] : [];
}

const PROVIDER_IDENTITY_FIELDS = new Set(['issuer_url', 'oauth_token_url', 'client_id']);
