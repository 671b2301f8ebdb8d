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
 *
 * Issuers: a token's `iss` must be the configured issuer URL, except on a multi-tenant
 * connection (`allowed_tenants`, tenancy.ts), where it must be the issuer template with the
 * token's own allowed `tid` put in. Whose issuer a verified token names is `issuerOf(claims)`:
 * identities are linked, and sessions kept, by that.
 */
import * as oidc from 'openid-client';
import { clientAuthentication, type ClientSigningKeySource } from './client-auth.ts';
import { errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { OidcSettings } from './settings.ts';
import { observedFetch, type OutboundOutcome } from '../../net/guarded-fetch.ts';
import type { ProviderEndpoint } from '../../metrics/metrics.ts';
import type { Logger } from '../../log.ts';
import { ALLOWED_JWS_ALGORITHMS, JwksCache, JwksError, UnknownSigningKeyError } from './jwks.ts';
import { ProviderTokenError, ProviderUnavailableError, classifyProviderError } from './provider-errors.ts';
import { DiscoveryError, discoverIssuer, explicitMetadata, hasRequiredEndpoints } from './discovery.ts';
import { isAllowedTenantIssuer, tenancyOf, tenantSegment, tenantTokenProblem, type Tenancy } from './tenancy.ts';
import { templateIssuerConfiguration } from './tenant-configuration.ts';

// The provider errors lived here before provider-errors.ts: still importable from here.
export { ProviderRefusedError, ProviderTokenError, ProviderUnavailableError, classifyProviderError } from './provider-errors.ts';

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
  /** Set on a multi-tenant connection (`allowed_tenants`): the issuer template and its tenants. */
  readonly tenancy: Tenancy | undefined;

  constructor(
    private readonly settings: OidcSettings,
    private readonly options: ProviderOptions,
  ) {
    this.endpoints = explicitMetadata(settings);
    this.tenancy = tenancyOf(settings.issuerUrl, settings.allowedTenants);
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
        discovered = await discoverIssuer(s, { ...this.options, fetch: this.fetch });
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
    const template = this.tenancy?.template;
    // A multi-tenant authorization response's `iss` (RFC 9207) names a tenant: checked by login.ts.
    const { authorization_response_iss_parameter_supported: issParameter, ...rest } = { ...discovered, ...explicit };
    const metadata: oidc.ServerMetadata = { ...rest, issuer: template ?? s.issuerUrl, ...(template || issParameter === undefined ? {} : { authorization_response_iss_parameter_supported: issParameter }) };
    this.endpoints = metadata;
    const clientMetadata = s.clientSecret ? { client_secret: s.clientSecret } : undefined;
    const config = template
      ? await templateIssuerConfiguration(metadata, s.clientId, clientMetadata, this.clientAuth())
      : new oidc.Configuration(metadata, s.clientId, clientMetadata, this.clientAuth());
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

  /** The configured issuer URL (a single-issuer connection's one issuer). */
  get issuerUrl(): string {
    return this.settings.issuerUrl;
  }

  /**
   * Does a JWT claiming `iss` come from this provider? (Not verified: which connection a token
   * is for.) The issuer URL; on a multi-tenant connection, the template with any tenant put in
   * (verification then refuses tenants not allowed).
   */
  signsAs(iss: string): boolean {
    if (!this.tenancy) return iss === this.settings.issuerUrl;
    return this.tenancy.template !== undefined && tenantSegment(this.tenancy.template, iss) !== undefined;
  }

  /** Is `iss` (told by the provider: introspection, an authorization response) one of this connection's issuers? */
  accepts(iss: unknown): boolean {
    return this.tenancy ? isAllowedTenantIssuer(this.tenancy, iss) : iss === this.settings.issuerUrl;
  }

  /** The issuer a verified token's identity belongs to: its own `iss` on a multi-tenant connection (tenant included). */
  issuerOf(claims: JWTPayload): string {
    return this.tenancy && typeof claims.iss === 'string' ? claims.iss : this.settings.issuerUrl;
  }

  /**
   * The issuer a session of this connection must have to be refreshed (the session service ends
   * a session whose issuer differs): the issuer URL; on a multi-tenant connection, the session's
   * own issuer while its tenant is allowed.
   */
  sessionIssuer(stored: string | undefined): string {
    if (!this.tenancy) return this.settings.issuerUrl;
    return isAllowedTenantIssuer(this.tenancy, stored) ? stored : (this.tenancy.template ?? this.settings.issuerUrl);
  }

  /** Keys cache of this provider (undefined when it publishes none). */
  async jwks(): Promise<JwksCache | undefined> {
    return (await this.get()).jwks;
  }

  /**
   * Verifies a JWT signed by the provider and sent by anyone (bearer, back-channel logout):
   * signature by a key of its JWKS with an algorithm from the allow-list, `iss` = the
   * provider's issuer (multi-tenant: tenancy.ts `tenantTokenProblem`), `aud` containing
   * `audience`, not expired (`audience` undefined: no
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
        ...(this.tenancy ? {} : { issuer: this.settings.issuerUrl }),
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
      const tenantProblem = this.tenancy ? tenantTokenProblem(this.tenancy, payload) : null;
      if (tenantProblem) throw new ProviderTokenError(tenantProblem);
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
