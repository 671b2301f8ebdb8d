/**
 * The OpenID Connect plugin kind. This version carries the configuration (fields, validation,
 * storage through the plugin manager); the login flow and bearer-token validation arrive with
 * the OIDC issues. Until then an active connection answers every external* mutation with a
 * clear INVALID error instead of pretending to work.
 */
import { FieldError } from '../../errors.ts';
import type { PluginInstance, PluginKind, PluginSettings } from '../contract.ts';
import { OIDC_FIELDS, OIDC_PLUGIN_KIND, DEFAULT_OIDC_PLUGIN_NAME, validateOidcSettings } from './settings.ts';

const notYet = (): never => {
  throw new FieldError(null, 'INVALID', 'OpenID Connect login is not available on this server yet.');
};

export const openIdConnectKind: PluginKind = {
  kind: OIDC_PLUGIN_KIND,
  defaultName: DEFAULT_OIDC_PLUGIN_NAME,
  description: 'Log users in through any OpenID Connect provider and accept its access tokens.',
  fields: OIDC_FIELDS,
  validate: validateOidcSettings,
  create(settings: PluginSettings): PluginInstance {
    return {
      id: settings.id,
      name: settings.name,
      active: settings.active,
      externalAuthenticationUrl: async () => notYet(),
      externalObtainAccessTokens: async () => notYet(),
      externalRefresh: async () => notYet(),
      externalLogout: async () => notYet(),
    };
  },
};
