/**
 * OpenID Connect Discovery 1.0 of a connection's issuer, and the issuer check made before a
 * connection is activated. The document is fetched through the guarded fetch (address policy,
 * time limit) and its `issuer` is checked here, by one rule (tenancy.ts
 * `discoveredIssuerProblem`): equal to `issuer_url` (section 4.3), or, for a connection with
 * `allowed_tenants`, the multi-tenant template `issuer_url` stands for. openid-client is given
 * the document's URL, so that it compares nothing itself (it would let Entra and Azure AD B2C
 * hosts through with another issuer, and refuse a template on any other host).
 */
import * as oidc from 'openid-client';
import type { OidcSettings } from './settings.ts';
import { OutboundError } from '../../net/guarded-fetch.ts';
import { ProviderUnavailableError, isNetworkFailure } from './provider-errors.ts';
import { discoveredIssuerProblem, type IssuerProblem } from './tenancy.ts';

export interface DiscoveryOptions {
  fetch: typeof fetch;
  timeoutSeconds: number;
  /** Plain http (tests against a local provider). */
  allowInsecureRequests: boolean;
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

export function hasRequiredEndpoints(metadata: Partial<oidc.ServerMetadata>): boolean {
  return missingRequiredEndpoints(metadata).length === 0;
}

/**
 * Discovery failed; `reason` says why in words fit for an administrator (no secret, no body),
 * and `field` which setting is to blame.
 */
export class DiscoveryError extends ProviderUnavailableError {
  readonly field: IssuerProblem['field'];
  constructor(
    readonly reason: string,
    options?: { cause?: unknown; field?: IssuerProblem['field'] },
  ) {
    super(`OpenID discovery failed: ${reason}`, options);
    this.name = 'DiscoveryError';
    this.field = options?.field ?? 'issuerUrl';
  }
}

/** Why openid-client's fetch of the document failed, told apart by class and code (never by message). */
function discoveryFailureReason(e: unknown): string {
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
  }
  if (e instanceof TypeError && e.message === 'fetch failed') return 'the issuer could not be reached';
  return 'unexpected failure';
}

/** `<issuer>/.well-known/openid-configuration` (section 4.1: the issuer's trailing slash is not doubled). */
export function discoveryUrl(issuerUrl: string): URL {
  const url = new URL(issuerUrl);
  url.pathname = `${url.pathname}/.well-known/openid-configuration`.replace('//', '/');
  return url;
}

/**
 * OpenID Connect Discovery 1.0 (section 4) of `settings.issuerUrl` through `options.fetch`:
 * the document must be a JSON object whose `issuer` fits the configuration (see the module
 * comment). Throws DiscoveryError.
 */
export async function discoverIssuer(
  settings: Pick<OidcSettings, 'issuerUrl' | 'allowedTenants'>,
  options: DiscoveryOptions,
): Promise<oidc.ServerMetadata> {
  const { issuerUrl } = settings;
  let url: URL;
  try {
    url = discoveryUrl(issuerUrl);
  } catch (e) {
    throw new DiscoveryError('the issuer URL is not a valid URL', { cause: e });
  }
  let metadata: oidc.ServerMetadata;
  try {
    // Only the server metadata is used: the client id and authentication do not matter here.
    const found = await oidc.discovery(url, 'discovery', undefined, oidc.None(), {
      [oidc.customFetch]: options.fetch,
      timeout: options.timeoutSeconds,
      ...(options.allowInsecureRequests ? { execute: [oidc.allowInsecureRequests] } : {}),
    });
    metadata = { ...found.serverMetadata() };
  } catch (e) {
    throw new DiscoveryError(discoveryFailureReason(e), { cause: e });
  }
  const problem = discoveredIssuerProblem(issuerUrl, settings.allowedTenants, metadata.issuer);
  if (problem) throw new DiscoveryError(problem.reason, { field: problem.field });
  return metadata;
}

/**
 * The issuer check made before a connection with `issuer_url` is activated: discovery must
 * work, its issuer must fit the configuration, and with the configured endpoints it must give
 * the ones a login needs. Null when all is well, else the field to blame and the reason (for an
 * administrator: no secret).
 */
export async function issuerProblem(settings: OidcSettings, options: DiscoveryOptions): Promise<{ field: IssuerProblem['field']; message: string } | null> {
  if (!settings.issuerUrl) return null;
  let discovered: oidc.ServerMetadata;
  try {
    discovered = await discoverIssuer(settings, options);
  } catch (e) {
    if (e instanceof DiscoveryError && e.field === 'allowedTenants') {
      return { field: e.field, message: `${e.reason.charAt(0).toUpperCase()}${e.reason.slice(1)}.` };
    }
    return { field: 'issuerUrl', message: `OpenID discovery of ${settings.issuerUrl} failed: ${e instanceof DiscoveryError ? e.reason : 'unexpected failure'}.` };
  }
  const missing = missingRequiredEndpoints({ ...discovered, ...explicitMetadata(settings) });
  if (missing.length) {
    return { field: 'issuerUrl', message: `The discovery document of ${settings.issuerUrl} has no ${missing.join(', ')}, and the matching endpoint field is not set.` };
  }
  return null;
}
