/**
 * The OpenID Connect plugin kind: configuration fields and validation (settings.ts), and one
 * OidcConnection per plugin id (several connections at once: a staff IdP, a customer IdP).
 */
import type { PluginKind, PluginSettings } from '../contract.ts';
import { OIDC_FIELDS, OIDC_PLUGIN_KIND, DEFAULT_OIDC_PLUGIN_NAME, validateOidcSettings } from './settings.ts';
import { OidcConnection, type OidcServices } from './connection.ts';

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

const PROVIDER_IDENTITY_FIELDS = new Set(['issuer_url', 'oauth_token_url', 'client_id']);
