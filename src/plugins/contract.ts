/**
 * The plugin contract. A plugin *kind* (e.g. "openid-connect") describes its configuration
 * fields and validation and creates *instances*; each instance has its own plugin id and
 * stored configuration (one kind can serve several ids: several OIDC connections).
 *
 * The manager calls hooks by plugin id; a hook that is absent, or a plugin that is unknown or
 * inactive, yields the default result (Saleor's behaviour: empty result, no error).
 * Hooks fail on bad input by throwing FieldError (src/errors.ts).
 */
import type { AuthenticatedUser, Principal } from '../accounts/principal.ts';
import type { FieldError } from '../errors.ts';

export type JsonObject = Record<string, unknown>;

export type ConfigFieldType = 'STRING' | 'MULTILINE' | 'BOOLEAN' | 'SECRET' | 'SECRETMULTILINE' | 'PASSWORD' | 'OUTPUT';

export const SECRET_FIELD_TYPES: ReadonlySet<ConfigFieldType> = new Set(['SECRET', 'SECRETMULTILINE', 'PASSWORD']);

export interface ConfigField {
  /** snake_case, as Saleor names configuration fields. */
  name: string;
  type: ConfigFieldType;
  label: string;
  helpText: string;
  default: string | boolean | null;
}

/** Decrypted configuration values by field name. */
export type ConfigValues = Record<string, string | boolean | null>;

/** What an instance is created from. */
export interface PluginSettings {
  id: string;
  name: string;
  active: boolean;
  values: ConfigValues;
}

export type { RequestInfo } from '../core/request.ts';
import type { RequestInfo } from '../core/request.ts';

export interface AuthenticationResult {
  principal: Principal;
  /** Until when the result may be reused without asking again (ms since epoch). */
  expiresAt: number;
}

export interface RefreshOptions {
  /**
   * Rotate the refresh token (externalRefresh). Saleor's `tokenRefresh` returns no refresh
   * token, so clients of it (@saleor/auth-sdk) keep sending the one they have: that path
   * refreshes without rotating.
   */
  rotate: boolean;
}

export interface ExternalTokens {
  token: string;
  refreshToken: string | null;
  csrfToken: string | null;
  user: AuthenticatedUser;
}

export interface ExternalVerifyResult {
  user: AuthenticatedUser | null;
  isValid: boolean;
  verifyData: JsonObject | null;
}

export interface PluginInstance {
  readonly id: string;
  readonly name: string;
  readonly active: boolean;
  /** → `authenticationData`. */
  externalAuthenticationUrl?(input: JsonObject, req: RequestInfo): Promise<JsonObject>;
  externalObtainAccessTokens?(input: JsonObject, req: RequestInfo): Promise<ExternalTokens | null>;
  /** Also reached through `tokenRefresh` with a refresh token this plugin minted. */
  externalRefresh?(input: JsonObject, req: RequestInfo, options?: RefreshOptions): Promise<ExternalTokens | null>;
  /** → `logoutData`. */
  externalLogout?(input: JsonObject, req: RequestInfo): Promise<JsonObject>;
  externalVerify?(input: JsonObject, req: RequestInfo): Promise<ExternalVerifyResult>;
  /**
   * Authenticates a bearer token that is not one of ours. Null: not this plugin's token (let
   * others try). Throws TokenRefused-style errors for invalid tokens; the caller caches the
   * answer (keyed by a hash of the token) until `expiresAt`.
   */
  authenticateRequest?(token: string, req: RequestInfo): Promise<AuthenticationResult | null>;
  /** OpenID Connect Back-Channel Logout: true when the logout token was valid and handled. */
  backchannelLogout?(form: URLSearchParams, req: RequestInfo): Promise<boolean>;
  /** Releases timers and caches when the instance is replaced or the server stops. */
  close?(): void;
}

export interface PluginKind<Services = unknown> {
  kind: string;
  /** Name given to a new instance when none is given. */
  defaultName: string;
  description: string;
  fields: readonly ConfigField[];
  /** Defaults that differ for instances created at run time (not the built-in one). */
  createdDefaults?: ConfigValues;
  /** Validation of an active configuration; field names in errors are camelCase. */
  validate(values: ConfigValues): FieldError[];
  /**
   * Checks that need I/O (e.g. the provider's discovery document), made before an active
   * configuration is saved: called by PluginManager.update, after `validate` passed, when the
   * result is active and something changed (`changed` holds the changed field names, and
   * `active` when the plugin is being activated); the kind decides which changes matter.
   * A non-empty answer refuses the update and nothing is saved. Runs outside the database
   * transaction (a slow provider must not hold the configuration lock). Skipped for
   * PLUGINS_CONFIG_FILE at start (see config-file.ts).
   */
  validateActivation?(values: ConfigValues, changed: readonly string[], services: Services): Promise<FieldError[]>;
  create(settings: PluginSettings, services: Services): PluginInstance;
  /** Called after a saved configuration change, with the names of the changed fields. */
  afterUpdate?(id: string, changed: readonly string[], services: Services): Promise<void>;
  /** Called after an instance was removed. */
  afterRemove?(id: string, services: Services): Promise<void>;
}
