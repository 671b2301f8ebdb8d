/**
 * How a connection authenticates itself at the provider's token endpoint (and introspection,
 * revocation): the four methods of OpenID Connect Core §9, by their registered names
 * (RFC 7591 `token_endpoint_auth_method`):
 * - `client_secret_basic` (default): HTTP Basic with the client id and secret each
 *   form-urlencoded first (RFC 6749 §2.3.1; openid-client's ClientSecretBasic does that encoding);
 * - `client_secret_post`: `client_id` and `client_secret` in the form body;
 * - `client_secret_jwt`: an HS256 client assertion keyed with the client secret (RFC 7523 §2.2);
 * - `private_key_jwt`: a client assertion signed with the connection's own private key, whose
 *   public half the provider reads from /oidc/jwks/<pluginId> (client-keys.ts).
 *
 * For `private_key_jwt` the key is asked for on every request, not once: a staged rotation
 * switches the signing key at an instant, and the provider's Configuration outlives it.
 */
import * as oidc from 'openid-client';
import type { CryptoKey } from 'jose';

export const TOKEN_ENDPOINT_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'client_secret_jwt', 'private_key_jwt'] as const;

export type TokenEndpointAuthMethod = (typeof TOKEN_ENDPOINT_AUTH_METHODS)[number];

export const DEFAULT_TOKEN_ENDPOINT_AUTH_METHOD: TokenEndpointAuthMethod = 'client_secret_basic';

/** The current private key of a connection, with its `kid` (put in the assertion's header). */
export interface ClientSigningKey {
  key: CryptoKey;
  kid: string;
}

/** Gives the key that signs client assertions now (looked up on every request). */
export type ClientSigningKeySource = () => Promise<ClientSigningKey>;

export function isTokenEndpointAuthMethod(value: unknown): value is TokenEndpointAuthMethod {
  return typeof value === 'string' && (TOKEN_ENDPOINT_AUTH_METHODS as readonly string[]).includes(value);
}

/**
 * The configured method: blank (or not a string) means the default, an unknown name means
 * undefined (the settings validation refuses it; see {@link validateTokenEndpointAuthMethod}).
 */
export function parseTokenEndpointAuthMethod(value: unknown): TokenEndpointAuthMethod | undefined {
  const name = typeof value === 'string' ? value.trim() : '';
  if (name === '') return DEFAULT_TOKEN_ENDPOINT_AUTH_METHOD;
  return isTokenEndpointAuthMethod(name) ? name : undefined;
}

/** The methods that send or derive from the client secret (all but private_key_jwt). */
export function needsClientSecret(method: TokenEndpointAuthMethod): boolean {
  return method !== 'private_key_jwt';
}

/** The method signs with the connection's own key pair (client-keys.ts). */
export function usesConnectionKey(method: TokenEndpointAuthMethod): boolean {
  return method === 'private_key_jwt';
}

/** A problem of the method/secret pair, on the GraphQL field it belongs to. */
export interface ClientAuthProblem {
  field: 'tokenEndpointAuthMethod' | 'clientSecret';
  message: string;
}

/**
 * Problems of a configured method and client secret (empty: fine): an unknown method name; a
 * missing secret for the methods that use one (private_key_jwt needs none); a client_secret_jwt
 * secret shorter than 32 bytes, since an HS256 key "of the same size as the hash output (for
 * instance, 256 bits for HS256) or larger MUST be used" (RFC 7518 §3.2).
 */
export function validateTokenEndpointAuthMethod(methodValue: unknown, clientSecretValue: unknown): ClientAuthProblem[] {
  const method = parseTokenEndpointAuthMethod(methodValue);
  const secret = typeof clientSecretValue === 'string' ? clientSecretValue.trim() : '';
  if (method === undefined) return [{ field: 'tokenEndpointAuthMethod', message: `Use one of: ${TOKEN_ENDPOINT_AUTH_METHODS.join(', ')}.` }];
  if (needsClientSecret(method) && secret === '') return [{ field: 'clientSecret', message: 'Client Secret is required.' }];
  if (method === 'client_secret_jwt' && Buffer.byteLength(secret, 'utf8') < 32) {
    return [{ field: 'clientSecret', message: 'client_secret_jwt signs with HS256: the Client Secret must be at least 32 bytes long.' }];
  }
  return [];
}

/** Thrown when the method cannot be set up (a missing secret or key source: a configuration error). */
export class ClientAuthConfigurationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClientAuthConfigurationError';
  }
}

/**
 * The openid-client ClientAuth for `method`. `clientSecret` is used by the client_secret_*
 * methods; `signingKey` is required for private_key_jwt and asked for on every request.
 */
export function clientAuthentication(method: TokenEndpointAuthMethod, clientSecret: string, signingKey?: ClientSigningKeySource): oidc.ClientAuth {
  if (needsClientSecret(method) && clientSecret === '') throw new ClientAuthConfigurationError(`${method} needs a client secret.`);
  switch (method) {
    case 'client_secret_basic':
      return oidc.ClientSecretBasic(clientSecret);
    case 'client_secret_post':
      return oidc.ClientSecretPost(clientSecret);
    case 'client_secret_jwt':
      return oidc.ClientSecretJwt(clientSecret);
    case 'private_key_jwt': {
      if (!signingKey) throw new ClientAuthConfigurationError('private_key_jwt needs the connection\'s signing key.');
      // openid-client types ClientAuth as returning void; oauth4webapi awaits it (its own
      // PrivateKeyJwt is async too).
      return async (as, client, body, headers) => {
        const { key, kid } = await signingKey();
        await oidc.PrivateKeyJwt({ key, kid })(as, client, body, headers);
      };
    }
    default:
      throw new ClientAuthConfigurationError(`Unknown token endpoint authentication method ${String(method satisfies never)}.`);
  }
}
