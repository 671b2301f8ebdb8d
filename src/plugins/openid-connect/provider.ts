/**
 * One connection's view of its OpenID provider: metadata (discovery from the issuer, with the
 * explicitly configured endpoints taking precedence), the openid-client Configuration, the
 * provider's keys, and verification of the JWTs it signs. Every request goes through the
 * guarded fetch it is given.
 *
 * With an issuer, discovery always runs, and the explicitly configured endpoint fields override
 * what it finds (OpenID Connect Discovery 1.0 section 3, RFC 8414 section 2). When discovery
 * fails but the configured authorization, token and JWKS URLs are all set, the connection works
 * with those alone: the failure is logged (warn) once per failure period, and discovery is
 * retried every METADATA_FALLBACK_TTL_MS. Otherwise the provider is unavailable.
 *
 * Failures count as fetches: a failed discovery is answered again, without asking the provider,
 * for METADATA_FAILURE_TTL_MS, and concurrent callers share the one discovery in flight; the
 * JWKS has the same rule with its own cooldown (jwks.ts). Keys are looked up by how far the
 * token's sender is trusted: `verifyIdToken` (a token-endpoint response) may always refetch the
 * JWKS for an unknown kid, `verifyJwt` (bearer and logout tokens, anyone can send them) only
 * when the cooldown allows.
 *
 * With `onCall`, every request is reported with the provider endpoint it went to (classified
 * from its URL against the metadata: discovery, jwks, token, userinfo, introspection,
 * revocation, other), its outcome and its duration (metrics).
 */
import * as oidc from 'openid-client';
import { clientAuthentication, type ClientSigningKeySource } from './client-auth.ts';
import { errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { OidcSettings } from './settings.ts';
import { OutboundError, observedFetch, type OutboundOutcome } from '../../net/guarded-fetch.ts';
import type { ProviderEndpoint } from '../../metrics/metrics.ts';
import type { Logger } from '../../log.ts';
import { ALLOWED_JWS_ALGORITHMS, JwksCache, JwksError, UnknownSigningKeyError } from './jwks.ts';

/** Metadata is re-discovered after this long. */
const METADATA_TTL_MS = 60 * 60_000;
/** After a failed discovery, callers get the failure again for this long (no hammering). */
const METADATA_FAILURE_TTL_MS = 5_000;
/**
 * After a failed discovery that the configured endpoints could stand in for, they are used
 * for this long before discovery is tried again.
 */
const METADATA_FALLBACK_TTL_MS = 60_000;

export interface ProviderOptions {
  fetch: typeof fetch;
  /** Plain http (tests against a local provider). */
  allowInsecureRequests: boolean;
  jwksCooldownMs: number;
  timeoutSeconds: number;
  /** Tolerated difference between the provider's clock and ours (exp, nbf, and an iat in the future). */
  clockSkewSeconds: number;
  /** Where a discovery failure the configured endpoints stand in for is reported (warn). */
  log?: Pick<Logger, 'warn' | 'info'>;
  /** Told about every request to the provider, once it ended (metrics). */
  onCall?: (endpoint: ProviderEndpoint, outcome: OutboundOutcome, seconds: number) => void;
  /** The connection's current private key (private_key_jwt), asked for on every request. */
  clientSigningKey?: ClientSigningKeySource;
}

/** origin + pathname: how request URLs and metadata endpoints are compared. */
function endpointKey(url: string | URL): string | undefined {
  try {
    const u = typeof url === 'string' ? new URL(url) : url;
    return `${u.origin}${u.pathname}`;
  } catch {
    return undefined;
  }
}

/** Which of the provider's endpoints `url` is (RFC 8414 / OpenID Discovery names). */
export function providerEndpointOf(url: URL | undefined, metadata: Partial<oidc.ServerMetadata>): ProviderEndpoint {
  if (!url) return 'other';
  if (url.pathname.endsWith('/.well-known/openid-configuration') || url.pathname.startsWith('/.well-known/oauth-authorization-server')) return 'discovery';
  const key = endpointKey(url);
  const named: Array<[ProviderEndpoint, string | undefined]> = [
    ['token', metadata.token_endpoint],
    ['jwks', metadata.jwks_uri],
    ['userinfo', metadata.userinfo_endpoint],
    ['introspection', metadata.introspection_endpoint],
    ['revocation', metadata.revocation_endpoint],
  ];
  for (const [endpoint, configured] of named) if (configured !== undefined && endpointKey(configured) === key) return endpoint;
  return 'other';
}

/** The provider could not be reached or answered nonsense. */
export class ProviderUnavailableError extends Error {
  /** Read by the request authenticator: not the token's fault, so no refusal is remembered. */
  readonly code = 'PROVIDER_UNAVAILABLE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProviderUnavailableError';
  }
}

/** The provider answered with an OAuth error (e.g. invalid_grant). */
export class ProviderRefusedError extends Error {
  constructor(
    readonly error: string,
    readonly description: string | undefined,
  ) {
    super(description ?? error);
    this.name = 'ProviderRefusedError';
  }
}

/** A JWT from the provider failed verification. */
export class ProviderTokenError extends Error {
  /**
   * Set when the verdict may change at that time (ms since epoch): the token's kid is unknown
   * and the provider's keys may be refetched then.
   */
  readonly retryAt: number | undefined;
  constructor(message: string, options?: { cause?: unknown; retryAt?: number }) {
    super(message, options);
    this.name = 'ProviderTokenError';
    this.retryAt = options?.retryAt;
  }
}

export interface VerifyOptions {
  audience: string | undefined;
  requiredClaims?: string[];
  maxTokenAge?: string | number;
}

interface Resolved {
  config: oidc.Configuration;
  /** Discovered metadata overridden by the explicitly configured endpoints. */
  metadata: oidc.ServerMetadata;
  jwks: JwksCache | undefined;
  /** Discovery failed and the configured endpoints stand in for it. */
  fallback: boolean;
}

/** A failure to reach the provider at all: told apart by class and code, never by message. */
function isNetworkFailure(e: unknown): boolean {
  for (let c: unknown = e; c; c = (c as { cause?: unknown }).cause) {
    if (c instanceof OutboundError || c instanceof JwksError) return true;
    // AbortSignal.timeout() / abort(): openid-client's own time limit.
    if (c instanceof DOMException && (c.code === DOMException.TIMEOUT_ERR || c.code === DOMException.ABORT_ERR)) return true;
    if (c === (c as { cause?: unknown }).cause) break;
  }
  return false;
}

/**
 * Turns whatever openid-client threw into one of our three provider errors, so callers map
 * them onto the contract's typed errors.
 */
export function classifyProviderError(e: unknown): ProviderUnavailableError | ProviderRefusedError | ProviderTokenError {
  if (e instanceof ProviderUnavailableError || e instanceof ProviderRefusedError || e instanceof ProviderTokenError) return e;
  if (e instanceof oidc.ResponseBodyError) return new ProviderRefusedError(e.error, e.error_description);
  if (isNetworkFailure(e)) return new ProviderUnavailableError('The identity provider is unreachable.', { cause: e });
  const code = (e as { code?: string }).code;
  // oauth4webapi: a response that is not what OAuth says (wrong status, not JSON, ...).
  // (OAUTH_INVALID_RESPONSE, e.g. an id_token with a refused alg or no nonce, is a token
  // problem, not an outage: it falls through to ProviderTokenError.)
  if (code === 'OAUTH_RESPONSE_IS_NOT_JSON' || code === 'OAUTH_RESPONSE_IS_NOT_CONFORM') {
    return new ProviderUnavailableError('The identity provider gave an invalid response.', { cause: e });
  }
  // A protocol or token check that failed (oauth4webapi's OAUTH_* codes, jose's ERR_J*): the
  // provider's answer is not acceptable. Anything else is not the provider's statement about
  // the token (a bug, an unexpected failure): never treated as one (it would end sessions).
  if ((typeof code === 'string' && (code.startsWith('OAUTH_') || code.startsWith('ERR_J'))) || e instanceof joseErrors.JOSEError) {
    return new ProviderTokenError((e as Error)?.message ?? String(e), { cause: e });
  }
  return new ProviderUnavailableError('Unexpected failure talking to the identity provider.', { cause: e });
}

/** The endpoints set explicitly in the configuration, by their metadata names. */
export function explicitMetadata(s: OidcSettings): Partial<oidc.ServerMetadata> {
  return {
    ...(s.authorizationUrl ? { authorization_endpoint: s.authorizationUrl } : {}),
    ...(s.tokenUrl ? { token_endpoint: s.tokenUrl } : {}),
    ...(s.jwksUrl ? { jwks_uri: s.jwksUrl } : {}),
    ...(s.userInfoUrl ? { userinfo_endpoint: s.userInfoUrl } : {}),
    ...(s.logoutUrl ? { end_session_endpoint: s.logoutUrl } : {}),
    ...(s.introspectionUrl ? { introspection_endpoint: s.introspectionUrl } : {}),
    ...(s.revocationUrl ? { revocation_endpoint: s.revocationUrl } : {}),
  };
}

/** The endpoints a login cannot do without (OpenID Connect Core 3.1). */
const REQUIRED_ENDPOINTS = ['authorization_endpoint', 'token_endpoint', 'jwks_uri'] as const;

/** The metadata names among REQUIRED_ENDPOINTS that `metadata` lacks. */
export function missingRequiredEndpoints(metadata: Partial<oidc.ServerMetadata>): string[] {
  return REQUIRED_ENDPOINTS.filter((name) => typeof metadata[name] !== 'string' || metadata[name] === '');
}

function hasRequiredEndpoints(metadata: Partial<oidc.ServerMetadata>): boolean {
  return missingRequiredEndpoints(metadata).length === 0;
}

/** Discovery failed; `reason` says why in words fit for an administrator (no secret, no body). */
export class DiscoveryError extends ProviderUnavailableError {
  constructor(
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`OpenID discovery failed: ${reason}`, options);
    this.name = 'DiscoveryError';
  }
}

const quoted = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v.length > 200 ? `${v.slice(0, 200)}…` : v) : String(v));

/** Why openid-client's discovery failed, told apart by class and code (never by message). */
function discoveryFailureReason(e: unknown, issuerUrl: string): string {
  if (isNetworkFailure(e)) {
    for (let c: unknown = e; c; c = (c as { cause?: unknown }).cause) {
      if (c instanceof OutboundError) return `the issuer could not be reached (${c.message})`;
      if (c === (c as { cause?: unknown }).cause) break;
    }
    return 'the issuer could not be reached (timed out)';
  }
  const err = e as { code?: unknown; cause?: unknown };
  switch (err.code) {
    case 'OAUTH_RESPONSE_IS_NOT_CONFORM': {
      const status = err.cause instanceof Response ? err.cause.status : undefined;
      return `the discovery document could not be fetched${status ? ` (HTTP ${status})` : ''}`;
    }
    case 'OAUTH_RESPONSE_IS_NOT_JSON':
    case 'OAUTH_PARSE_ERROR':
      return 'the discovery document is not JSON';
    case 'OAUTH_INVALID_RESPONSE': {
      // oauth4webapi's own words about the document's shape (it quotes no values).
      const detail = err.cause instanceof Error ? `: ${err.cause.message}` : '';
      return `the discovery document is not valid${detail}`;
    }
    case 'OAUTH_HTTP_REQUEST_FORBIDDEN':
      return 'only https issuers are allowed';
    case 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED': {
      const body = (err.cause as { body?: { issuer?: unknown } } | undefined)?.body;
      return `the discovery document names the issuer ${quoted(body?.issuer)}, not ${quoted(issuerUrl)} (they must be equal, OpenID Connect Discovery 1.0 section 4.3)`;
    }
  }
  if (e instanceof TypeError && e.message === 'fetch failed') return 'the issuer could not be reached';
  return 'unexpected failure';
}

/**
 * OpenID Connect Discovery 1.0 (section 4) of `issuerUrl` through `options.fetch` (the guarded
 * fetch: address policy, time limit): the document must be a JSON object whose `issuer`
 * equals `issuerUrl` exactly (section 4.3). Throws DiscoveryError.
 */
export async function discoverIssuer(
  issuerUrl: string,
  options: Pick<ProviderOptions, 'fetch' | 'timeoutSeconds' | 'allowInsecureRequests'>,
): Promise<oidc.ServerMetadata> {
  let url: URL;
  try {
    url = new URL(issuerUrl);
  } catch (e) {
    throw new DiscoveryError('the issuer URL is not a valid URL', { cause: e });
  }
  try {
    // Only the server metadata is used: the client id and authentication do not matter here.
    const found = await oidc.discovery(url, 'discovery', undefined, oidc.None(), {
      [oidc.customFetch]: options.fetch,
      timeout: options.timeoutSeconds,
      ...(options.allowInsecureRequests ? { execute: [oidc.allowInsecureRequests] } : {}),
    });
    return { ...found.serverMetadata() };
  } catch (e) {
    throw new DiscoveryError(discoveryFailureReason(e, issuerUrl), { cause: e });
  }
}

/**
 * The issuer check made before a connection with `issuer_url` is activated: discovery must
 * work, and with the configured endpoints it must give the ones a login needs. Null when all
 * is well, else the reason (for an administrator: no secret).
 */
export async function issuerProblem(
  settings: OidcSettings,
  options: Pick<ProviderOptions, 'fetch' | 'timeoutSeconds' | 'allowInsecureRequests'>,
): Promise<string | null> {
  if (!settings.issuerUrl) return null;
  let discovered: oidc.ServerMetadata;
  try {
    discovered = await discoverIssuer(settings.issuerUrl, options);
  } catch (e) {
    return `OpenID discovery of ${settings.issuerUrl} failed: ${e instanceof DiscoveryError ? e.reason : 'unexpected failure'}.`;
  }
  const missing = missingRequiredEndpoints({ ...discovered, ...explicitMetadata(settings) });
  if (missing.length) {
    return `The discovery document of ${settings.issuerUrl} has no ${missing.join(', ')}, and the matching endpoint field is not set.`;
  }
  return null;
}

export class OidcProvider {
  private resolved: Promise<Resolved> | undefined;
  private resolvedAt = 0;
  private resolvedTtl = METADATA_TTL_MS;
  private failedAt = 0;
  /** The reason discovery last failed while the configured endpoints stood in (logged once). */
  private discoveryFailure: string | undefined;
  /** The guarded fetch, observed when `options.onCall` is set. */
  private readonly fetch: typeof fetch;
  /** The endpoints known so far (configured ones, then the last resolved metadata). */
  private endpoints: Partial<oidc.ServerMetadata>;

  constructor(
    private readonly settings: OidcSettings,
    private readonly options: ProviderOptions,
  ) {
    this.endpoints = explicitMetadata(settings);
    const onCall = options.onCall;
    this.fetch = onCall ? observedFetch(options.fetch, (url, outcome, seconds) => onCall(providerEndpointOf(url, this.endpoints), outcome, seconds)) : options.fetch;
  }

  private clientAuth(): oidc.ClientAuth {
    return clientAuthentication(this.settings.tokenEndpointAuthMethod, this.settings.clientSecret, this.options.clientSigningKey);
  }

  private async resolve(): Promise<Resolved> {
    const s = this.settings;
    const explicit = explicitMetadata(s);
    let discovered: Partial<oidc.ServerMetadata> = {};
    let fallback = false;
    if (s.issuerUrl) {
      try {
        discovered = await discoverIssuer(s.issuerUrl, { ...this.options, fetch: this.fetch });
        this.discoveryRecovered();
      } catch (e) {
        const reason = e instanceof DiscoveryError ? e.reason : 'unexpected failure';
        if (!hasRequiredEndpoints(explicit)) {
          throw new ProviderUnavailableError(`OpenID discovery failed for ${s.issuerUrl}: ${reason}`, { cause: e });
        }
        // The explicitly configured endpoints are enough to work with (Saleor-style
        // configuration); what only discovery would add (introspection, end-session, ...) is
        // missing until discovery works again.
        this.discoveryFailed(reason);
        fallback = true;
      }
    }
    const metadata: oidc.ServerMetadata = { ...discovered, ...explicit, issuer: s.issuerUrl };
    this.endpoints = metadata;
    const config = new oidc.Configuration(metadata, s.clientId, s.clientSecret ? { client_secret: s.clientSecret } : undefined, this.clientAuth());
    config[oidc.customFetch] = this.fetch;
    config.timeout = this.options.timeoutSeconds;
    if (this.options.allowInsecureRequests) oidc.allowInsecureRequests(config);
    const jwks = metadata.jwks_uri
      ? new JwksCache(metadata.jwks_uri, this.fetch, { cooldownMs: this.options.jwksCooldownMs })
      : undefined;
    return { config, metadata, jwks, fallback };
  }

  /** Warns once per failure period (and again only when the reason changes). */
  private discoveryFailed(reason: string): void {
    if (this.discoveryFailure === reason) return;
    this.discoveryFailure = reason;
    this.options.log?.warn('OpenID discovery failed; using the configured endpoints', {
      issuer: this.settings.issuerUrl,
      reason,
      retryInSeconds: METADATA_FALLBACK_TTL_MS / 1000,
    });
  }

  private discoveryRecovered(): void {
    if (this.discoveryFailure === undefined) return;
    this.discoveryFailure = undefined;
    this.options.log?.info('OpenID discovery works again', { issuer: this.settings.issuerUrl });
  }

  /** The resolved provider (cached; re-discovered hourly; failures cached briefly). */
  async get(): Promise<Resolved> {
    const now = Date.now();
    if (this.resolved && this.failedAt && now - this.failedAt > METADATA_FAILURE_TTL_MS) this.resolved = undefined;
    if (this.resolved && !this.failedAt && now - this.resolvedAt > this.resolvedTtl) this.resolved = undefined;
    if (!this.resolved) {
      this.failedAt = 0;
      this.resolvedAt = now;
      this.resolvedTtl = METADATA_TTL_MS;
      this.resolved = this.resolve().then(
        (r) => {
          // Working without discovery: try it again sooner than the normal refresh.
          if (r.fallback) this.resolvedTtl = METADATA_FALLBACK_TTL_MS;
          return r;
        },
        (e: unknown) => {
          this.failedAt = Date.now();
          throw e instanceof ProviderUnavailableError ? e : classifyProviderError(e);
        },
      );
    }
    return this.resolved;
  }

  get issuer(): string {
    return this.settings.issuerUrl;
  }

  /** Keys cache of this provider (undefined when it publishes none). */
  async jwks(): Promise<JwksCache | undefined> {
    return (await this.get()).jwks;
  }

  /**
   * Verifies a JWT signed by the provider and sent by anyone (bearer, back-channel logout):
   * signature by a key of its JWKS with an algorithm from the allow-list, `iss` = the
   * provider's issuer, `aud` containing `audience`, not expired (`audience` undefined: no
   * audience check). An unknown kid refetches the JWKS only when its cooldown allows. Throws
   * ProviderTokenError (with `retryAt` for an unknown kid) or ProviderUnavailableError.
   */
  async verifyJwt(token: string, opts: VerifyOptions): Promise<JWTPayload> {
    const { jwks } = await this.get();
    if (!jwks) throw new ProviderTokenError('The provider publishes no JWKS to verify its tokens with.');
    return this.verify(token, jwks.getKey, opts);
  }

  private async verify(token: string, getKey: JwksCache['getKey'], opts: VerifyOptions): Promise<JWTPayload> {
    try {
      const { payload } = await jwtVerify(token, getKey, {
        algorithms: [...ALLOWED_JWS_ALGORITHMS],
        issuer: this.settings.issuerUrl,
        ...(opts.audience !== undefined ? { audience: opts.audience } : {}),
        requiredClaims: opts.requiredClaims ?? ['exp', 'iat'],
        clockTolerance: this.options.clockSkewSeconds,
        ...(opts.maxTokenAge !== undefined ? { maxTokenAge: opts.maxTokenAge } : {}),
      });
      // jose checks iat only against a maximum age: a token issued in the future (beyond the
      // tolerated skew) is refused here (OpenID Connect Core 3.1.3.7, item 10).
      if (typeof payload.iat === 'number' && payload.iat > Date.now() / 1000 + this.options.clockSkewSeconds) {
        throw new ProviderTokenError('The token was issued in the future (iat beyond the clock skew).');
      }
      return payload;
    } catch (e) {
      if (e instanceof ProviderTokenError) throw e;
      if (e instanceof JwksError) throw new ProviderUnavailableError(e.message, { cause: e });
      if (e instanceof UnknownSigningKeyError) throw new ProviderTokenError(`${e.code}: ${e.message}`, { retryAt: e.retryAt });
      if (e instanceof joseErrors.JOSEError) throw new ProviderTokenError(`${e.code}: ${e.message}`, { cause: e });
      throw e;
    }
  }

  /**
   * Verifies an id_token (OpenID Connect Core 3.1.3.7): the JWT checks above, `sub` present,
   * `azp` = our client id when present (and required with several audiences), `nonce` when
   * one is expected. It comes from the token endpoint (the direct, client-authenticated
   * channel): an unknown kid always gets one JWKS refetch, whatever the bearer-token cooldown.
   */
  async verifyIdToken(idToken: string, expectedNonce: string | undefined): Promise<JWTPayload & { sub: string }> {
    const { jwks } = await this.get();
    if (!jwks) throw new ProviderTokenError('The provider publishes no JWKS to verify its tokens with.');
    const claims = await this.verify(idToken, jwks.getKeyForTrustedToken, { audience: this.settings.clientId, requiredClaims: ['exp', 'iat', 'sub'] });
    const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (claims['azp'] !== undefined && claims['azp'] !== this.settings.clientId) {
      throw new ProviderTokenError('ID token azp is not our client id.');
    }
    if (aud.length > 1 && claims['azp'] === undefined) throw new ProviderTokenError('ID token with several audiences has no azp.');
    if (expectedNonce !== undefined && claims['nonce'] !== expectedNonce) throw new ProviderTokenError('ID token nonce mismatch.');
    return claims as JWTPayload & { sub: string };
  }
}
