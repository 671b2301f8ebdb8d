/**
 * The three ways a call to the provider can fail, as our own error classes, and the one funnel
 * (`classifyProviderError`) that turns whatever openid-client, oauth4webapi or jose threw into
 * one of them. Told apart by class and code, never by message text.
 */
import * as oidc from 'openid-client';
import { errors as joseErrors } from 'jose';
import { OutboundError } from '../../net/guarded-fetch.ts';
import { JwksError } from './jwks.ts';

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

/** A failure to reach the provider at all: told apart by class and code, never by message. */
export function isNetworkFailure(e: unknown): boolean {
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
