/**
 * What a provider failure means for the caller, as AppError codes (never by message text):
 * - `grant_ended`: the provider says the grant is dead (invalid_grant), or what it returned
 *   fails its checks (a refreshed id_token from another issuer): the session must end;
 * - `provider_client_rejected`: the provider refused our client credentials (invalid_client,
 *   unauthorized_client, a 401 challenge): an operator must fix the configuration;
 * - `provider_unavailable`: unreachable, timed out, 429, 5xx, garbage;
 * - `provider_refused`: any other OAuth error (its code, never its description, is shown);
 * - `provider_token_invalid`: a token from the provider failed verification.
 * The provider's own error_description goes into `detail` (the log), never to the client.
 */
import * as oidc from 'openid-client';
import { AppError } from '../../core/errors.ts';
import { ProviderRefusedError, ProviderTokenError, ProviderUnavailableError, classifyProviderError } from './provider-errors.ts';

export const UNAVAILABLE_MESSAGE = 'The identity provider is unavailable. Please try again later.';
export const CLIENT_REJECTED_MESSAGE = 'The identity provider rejected this server\'s client credentials.';
export const INVALID_TOKEN_MESSAGE = 'The identity provider returned an invalid token.';

const CLIENT_ERRORS = new Set(['invalid_client', 'unauthorized_client']);

/** The HTTP status of the provider's answer behind a failure, if there was one. */
export function responseStatus(e: unknown): number | undefined {
  for (let c: unknown = e; c; c = (c as { cause?: unknown }).cause) {
    const status = (c as { status?: unknown }).status;
    if (typeof status === 'number') return status;
    if (c instanceof Response) return c.status;
  }
  return undefined;
}

/** Classifies a failure of a call to the provider (`where` names the call, for the log). */
export function providerFailure(e: unknown, where: string): AppError {
  if (e instanceof AppError) return e;
  if (e instanceof oidc.WWWAuthenticateChallengeError) {
    return new AppError('provider_client_rejected', CLIENT_REJECTED_MESSAGE, `${where}: HTTP ${e.status} challenge`, { cause: e });
  }
  const err = classifyProviderError(e);
  const status = responseStatus(e);
  if (err instanceof ProviderRefusedError) {
    const detail = `${where}: ${err.error.replace(/[^\w.-]/g, '').slice(0, 64)}${status ? ` HTTP ${status}` : ''}`;
    const said = { cause: e, providerMessage: err.description };
    if (status === 429 || (status !== undefined && status >= 500)) return new AppError('provider_unavailable', UNAVAILABLE_MESSAGE, detail, said);
    if (err.error === 'invalid_grant') {
      // At the code exchange: the code is spent or expired. At a refresh: the grant is dead
      // (the reason recorded on the session; the provider's words stay in the log).
      return where === 'token-exchange'
        ? new AppError('provider_refused', 'The authorization code is invalid or expired.', detail, said)
        : new AppError('grant_ended', 'The identity provider ended the grant.', 'provider refused: invalid_grant', said);
    }
    if (CLIENT_ERRORS.has(err.error)) return new AppError('provider_client_rejected', CLIENT_REJECTED_MESSAGE, detail, said);
    return new AppError('provider_refused', `The identity provider refused the request (${err.error.replace(/[^\w.-]/g, '').slice(0, 64)}).`, detail, said);
  }
  if (err instanceof ProviderUnavailableError) {
    return new AppError('provider_unavailable', UNAVAILABLE_MESSAGE, `${where}: ${err.message}${status ? ` (HTTP ${status})` : ''}`, { cause: e });
  }
  if (err instanceof ProviderTokenError) return new AppError('provider_token_invalid', INVALID_TOKEN_MESSAGE, `${where}: ${err.message}`, { cause: e });
  return new AppError('provider_unavailable', UNAVAILABLE_MESSAGE, `${where}: ${(err as Error).message}`, { cause: e });
}
