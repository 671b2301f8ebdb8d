/**
 * One OpenID Connect connection (one plugin id): Saleor's five external* mutations, bearer
 * tokens and back-channel logout, as seen from the provider. This class only talks to the
 * provider (login.ts, refresh-port.ts, resource-server.ts, backchannel.ts) and hands what the
 * provider vouched for to the core: the identity pipeline (users, staff, permissions) and the
 * session service (sessions, refresh, revocation). See saleor-contract.md section 2 for every
 * rule and where we deliberately differ from Saleor.
 *
 * Failures inside are AppErrors with codes; at this edge they become Saleor's typed field
 * errors, with a public message (the provider's own error_description goes to the log only).
 * Logins, logouts and refreshes refused before they reach the session service are counted
 * here by outcome (metrics), as is every call to the provider (by endpoint and outcome).
 */
import { AppError } from '../../core/errors.ts';
import type { ConnectionKeyStore } from './client-keys.ts';
import { FieldError } from '../../errors.ts';
import type { Prisma } from '../../db/database.ts';
import type { SecretBox } from '../../crypto/secret-box.ts';
import type { AuditLog, AuditEventInput } from '../../accounts/audit.ts';
import type { Logger } from '../../log.ts';
import type { TokenService, RefreshTokenClaims, AccessTokenClaims } from '../../tokens/jwt.ts';
import { csrfTokensMatch } from '../../tokens/csrf.ts';
import { REFRESH_COOKIE, clearRefreshCookie } from '../../auth/cookies.ts';
import { principalFromAccessClaims } from '../../auth/our-tokens.ts';
import { parseGlobalIdOf } from '../../core/ids.ts';
import type { IdentityService } from '../../identity/identity.ts';
import type { SessionService } from '../../sessions/service.ts';
import { issueSessionTokens } from '../../sessions/issue.ts';
import type {
  AuthenticationResult,
  RefreshOptions,
  ExternalTokens,
  ExternalVerifyResult,
  JsonObject,
  PluginInstance,
  PluginSettings,
  RequestInfo,
} from '../contract.ts';
import { ResourceServer } from './resource-server.ts';
import { bearerPrincipal } from './bearer.ts';
import { parseOidcSettings, type OidcSettings } from './settings.ts';
import { isAllowedRedirect } from './redirects.ts';
import { AuthorizationRequests } from './authorization-requests.ts';
import { OidcProvider } from './provider.ts';
import { OidcLogin } from './login.ts';
import { identityRules, refreshPort } from './refresh-port.ts';
import { verifyLogoutToken } from './backchannel.ts';
import { UNAVAILABLE_MESSAGE } from './failures.ts';
import { failureOutcome, type AuthOutcome, type ConnectionMetrics } from '../../metrics/metrics.ts';

/** Input keys naming the post-logout redirect URI, in order of precedence. */
const POST_LOGOUT_KEYS = ['postLogoutRedirectUri', 'post_logout_redirect_uri', 'returnTo', 'redirectUri'] as const;
export interface OidcServices {
  /** The connections' own keys (private_key_jwt client authentication). */
  connectionKeys?: Pick<ConnectionKeyStore, 'signingKey'>;
  prisma: Prisma;
  box: SecretBox;
  tokens: TokenService;
  audit: AuditLog;
  identity: IdentityService;
  sessions: SessionService;
  log: Logger;
  /** The guarded outbound fetch. */
  fetch: typeof fetch;
  allowInsecureRequests: boolean;
  jwksCooldownMs: number;
  outboundTimeoutSeconds: number;
  secureCookies: boolean;
  /** How long a validated opaque provider token is trusted before asking the provider again. */
  opaqueTokenTtlMs: number;
  /** Validations of unknown opaque bearer tokens (introspection/userinfo calls) per second, per connection. */
  tokenValidationRatePerSecond: number;
  /** Back-channel logout tokens older than this (by `iat`) are refused. */
  logoutTokenMaxAgeSeconds: number;
  /** Tolerated clock difference with providers (exp, nbf, iat in the future). */
  clockSkewSeconds: number;
  /** Counts logins, refreshes, logouts and provider calls (optional). */
  metrics?: ConnectionMetrics;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const SESSION_ENDED = 'Unable to refresh the token.';

export class OidcConnection implements PluginInstance {
  readonly id: string;
  readonly name: string;
  readonly active: boolean;
  private readonly settings: OidcSettings;
  private readonly provider: OidcProvider;
  private readonly login: OidcLogin;
  private readonly resourceServer: ResourceServer;

  constructor(
    plugin: PluginSettings,
    private readonly services: OidcServices,
  ) {
    this.id = plugin.id;
    this.name = plugin.name;
    this.active = plugin.active;
    this.settings = parseOidcSettings(plugin.values);
    const metrics = services.metrics;
    this.provider = new OidcProvider(this.settings, {
      fetch: services.fetch,
      allowInsecureRequests: services.allowInsecureRequests,
      jwksCooldownMs: services.jwksCooldownMs,
      timeoutSeconds: services.outboundTimeoutSeconds,
      clockSkewSeconds: services.clockSkewSeconds,
      log: services.log.child({ pluginId: plugin.id }),
      ...(metrics ? { onCall: (endpoint, outcome, seconds) => metrics.providerCall(this.id, endpoint, outcome, seconds) } : {}),
      ...(services.connectionKeys ? { clientSigningKey: () => services.connectionKeys!.signingKey(plugin.id) } : {}),
    });
    this.login = new OidcLogin(this.id, this.settings, this.provider, new AuthorizationRequests(services.prisma, services.box));
    this.resourceServer = new ResourceServer(this.settings, this.provider, services.opaqueTokenTtlMs, services.tokenValidationRatePerSecond);
  }

  /** Exposed for tests. */
  get oidcProvider(): OidcProvider {
    return this.provider;
  }

  private audit(req: RequestInfo, event: Omit<AuditEventInput, 'pluginId' | 'ip' | 'userAgent' | 'requestId'>): Promise<void> {
    return this.services.audit.record({ ...event, pluginId: this.id, ip: req.ip, userAgent: req.userAgent, requestId: req.requestId });
  }

  /**
   * An AppError as the storefront sees it: a typed field error with the public message; the
   * detail (the provider's own words) is logged. Anything else is rethrown (a bug: logged by
   * the GraphQL layer and answered with a generic error).
   */
  private fieldError(req: RequestInfo, field: string, e: unknown, where: string): FieldError {
    if (e instanceof FieldError) return e;
    if (!(e instanceof AppError)) throw e;
    const level = e.code === 'provider_unavailable' || e.code === 'provider_client_rejected' ? 'warn' : 'info';
    req.log[level](`${where} failed`, { pluginId: this.id, code: e.code, detail: e.detail, providerMessage: e.providerMessage });
    if (e.code === 'provider_client_rejected') {
      req.log.warn('the provider rejected our client credentials: check client_id, client_secret and token_endpoint_auth_method', { pluginId: this.id });
    }
    return new FieldError(field, 'INVALID', e.publicMessage);
  }

  // ---- externalAuthenticationUrl -------------------------------------------------------

  async externalAuthenticationUrl(input: JsonObject, req: RequestInfo): Promise<JsonObject> {
    const redirectUri = input['redirectUri'];
    if (redirectUri === undefined || redirectUri === null || redirectUri === '') {
      throw new FieldError('redirectUri', 'NOT_FOUND', 'Missing required field - redirectUri');
    }
    if (typeof redirectUri !== 'string' || !isAllowedRedirect(redirectUri, this.settings.allowedRedirectUris)) {
      throw new FieldError('redirectUri', 'INVALID', 'The redirect URI is not allowed for this connection.');
    }
    try {
      return { authorizationUrl: await this.login.authorizationUrl(redirectUri) };
    } catch (e) {
      throw this.fieldError(req, 'redirectUri', e, 'authorization URL');
    }
  }

  // ---- externalObtainAccessTokens ------------------------------------------------------

  /** `error`, counted as a login, refresh or logout refused with `outcome` (metrics). */
  private refused(kind: 'login' | 'refresh' | 'logout', outcome: AuthOutcome, error: FieldError): FieldError {
    this.services.metrics?.[kind](outcome);
    return error;
  }

  async externalObtainAccessTokens(input: JsonObject, req: RequestInfo): Promise<ExternalTokens> {
    const code = input['code'];
    const state = input['state'];
    if (!code) throw this.refused('login', 'invalid_request', new FieldError('code', 'NOT_FOUND', 'Missing required field - code'));
    if (!state) throw this.refused('login', 'invalid_request', new FieldError('state', 'NOT_FOUND', 'Missing required field - state'));
    if (typeof code !== 'string') throw this.refused('login', 'invalid_request', new FieldError('code', 'INVALID', 'Invalid code.'));
    const pending = typeof state === 'string' ? await this.login.consumeState(state) : null;
    if (!pending) throw this.refused('login', 'invalid_state', new FieldError('state', 'INVALID', 'Invalid or expired state.'));
    try {
      const exchanged = await this.login.exchangeCode(code, state as string, pending, str(input['iss']));
      const auth = await this.services.identity.resolve(exchanged.identity, identityRules(this.id, this.settings));
      const session =
        this.settings.enableRefreshToken && exchanged.providerRefreshToken
          ? await this.services.sessions.create({
              userId: auth.user.id,
              pluginId: this.id,
              issuer: exchanged.identity.issuer,
              subject: exchanged.identity.subject,
              providerSid: exchanged.providerSid,
              providerRefreshToken: exchanged.providerRefreshToken,
              idToken: exchanged.idToken,
              grantedScope: exchanged.grantedScope,
              ttlSeconds: this.services.tokens.refreshTokenTtl,
            })
          : null;
      const issued = await issueSessionTokens(this.services.tokens, this.id, auth, session, req, { withRefreshToken: true, secureCookies: this.services.secureCookies });
      await this.audit(req, { type: 'login', outcome: 'success', userId: auth.user.id, detail: { subject: exchanged.identity.subject, staff: auth.isStaff } });
      this.services.metrics?.login('success');
      return issued;
    } catch (e) {
      this.services.metrics?.login(failureOutcome(e));
      const error = this.fieldError(req, 'code', e, 'login');
      await this.audit(req, { type: 'login', outcome: 'failure', detail: { reason: e instanceof AppError ? e.detail ?? e.code : error.message } });
      throw error;
    }
  }

  // ---- externalRefresh (also reached through tokenRefresh) -----------------------------

  async externalRefresh(input: JsonObject, req: RequestInfo, options: RefreshOptions = { rotate: true }): Promise<ExternalTokens> {
    if (!this.settings.enableRefreshToken) {
      throw this.refused('refresh', 'disabled', new FieldError('refreshToken', 'INVALID', 'Unable to refresh the token. Support for refreshing tokens is disabled'));
    }
    const fromInput = str(input['refreshToken']);
    const token = fromInput ?? str(req.cookies[REFRESH_COOKIE]);
    if (!token) throw this.refused('refresh', 'invalid_request', new FieldError('refreshToken', 'NOT_FOUND', 'Missing token.'));
    const verified = await this.services.tokens.verify(token, 'refresh');
    if (!verified.ok || verified.claims.owner !== this.id) throw this.refused('refresh', 'invalid_token', new FieldError('refreshToken', 'INVALID', SESSION_ENDED));
    const claims = verified.claims as RefreshTokenClaims;
    // A refresh token from the cookie needs the CSRF token it was issued with: a cross-site
    // request carries the cookie but cannot know the CSRF token.
    if (!fromInput && !csrfTokensMatch(input['csrfToken'], claims.csrf_token)) {
      throw this.refused('refresh', 'invalid_request', new FieldError('csrfToken', 'INVALID', 'Invalid or missing CSRF token.'));
    }
    // A multi-tenant session is refreshed under its own tenant's issuer while that tenant is allowed.
    const issuer = this.provider.sessionIssuer(this.provider.tenancy ? (await this.services.sessions.get(claims.sid))?.issuer : undefined);
    // From here on the session service counts the refresh.
    let outcome;
    try {
      outcome = await this.services.sessions.refresh(
        { sessionId: claims.sid, refreshTokenId: claims.rti, userId: parseGlobalIdOf('User', claims.user_id), rotate: options.rotate },
        refreshPort(this.id, this.settings, this.provider, issuer),
        req,
      );
    } catch (e) {
      if (e instanceof AppError && e.code === 'session_ended') throw new FieldError('refreshToken', 'INVALID', SESSION_ENDED);
      throw this.fieldError(req, 'refreshToken', e, 'refresh');
    }
    // Rotating (externalRefresh), or a token rotated away within the reuse window: hand out the
    // session's current refresh token. tokenRefresh on the current token keeps its token.
    const handOut = options.rotate || claims.rti !== outcome.session.refreshTokenId;
    const issued = await issueSessionTokens(this.services.tokens, this.id, outcome.user, outcome.session, req, {
      withRefreshToken: handOut,
      secureCookies: this.services.secureCookies,
    });
    return handOut ? issued : { ...issued, refreshToken: token, csrfToken: str(input['csrfToken']) ?? null };
  }

  // ---- externalLogout --------------------------------------------------------------------

  async externalLogout(input: JsonObject, req: RequestInfo): Promise<JsonObject> {
    // The Saleor Dashboard sends `returnTo` (its own URL); other clients name it as the spec does.
    // The field reported in an error is the input key the caller used.
    const postLogoutKey = POST_LOGOUT_KEYS.find((key) => str(input[key]) !== undefined);
    const postLogout = postLogoutKey ? str(input[postLogoutKey]) : undefined;
    if (postLogoutKey && postLogout && !isAllowedRedirect(postLogout, this.settings.allowedPostLogoutRedirectUris)) {
      const field = postLogoutKey === 'post_logout_redirect_uri' ? 'postLogoutRedirectUri' : postLogoutKey;
      throw this.refused('logout', 'invalid_request', new FieldError(field, 'INVALID', 'The post-logout redirect URI is not allowed for this connection.'));
    }
    const fromInput = str(input['refreshToken']);
    const token = fromInput ?? str(req.cookies[REFRESH_COOKIE]);
    let idTokenHint: string | null = null;
    let userId: number | null = null;
    let ended = false;
    if (token) {
      const verified = await this.services.tokens.verify(token, 'refresh');
      // The cookie alone does not identify the caller: a cross-site request carries it too.
      // Without the CSRF token it was issued with, the session is neither ended nor disclosed
      // (the id_token_hint names the user); the cookie is still cleared. A page the operator
      // listed exactly in ALLOWED_GRAPHQL_ORIGINS is proof enough (the Saleor Dashboard drops its
      // tokens before logging out, and sends only `returnTo` and its cookies).
      const csrfOk =
        fromInput !== undefined ||
        req.trustedOrigin ||
        (verified.ok && csrfTokensMatch(input['csrfToken'], (verified.claims as RefreshTokenClaims).csrf_token));
      if (verified.ok && verified.claims.owner === this.id && csrfOk) {
        const session = await this.services.sessions.get((verified.claims as RefreshTokenClaims).sid);
        if (session && session.pluginId === this.id) {
          idTokenHint = this.services.sessions.idToken(session);
          userId = session.userId;
          ended = await this.services.sessions.revoke(session.id, 'logout');
        }
      }
    }
    req.setCookie(clearRefreshCookie({ secure: this.services.secureCookies }));
    await this.audit(req, { type: 'logout', outcome: 'success', userId });
    // no_session: nothing of ours to end (no or foreign token, no CSRF proof, already ended).
    this.services.metrics?.logout(ended ? 'success' : 'no_session');

    let endSession: string | undefined;
    try {
      endSession = (await this.provider.get()).metadata.end_session_endpoint;
    } catch (e) {
      // Logout still ends our session when the provider is down; the client just gets no URL.
      req.log.warn('logout without provider metadata', { pluginId: this.id, errorMessage: (e as Error).message });
      endSession = this.settings.logoutUrl;
    }
    if (!endSession) return {};
    const url = new URL(endSession);
    url.searchParams.set('client_id', this.settings.clientId);
    if (idTokenHint) url.searchParams.set('id_token_hint', idTokenHint);
    if (postLogout) url.searchParams.set('post_logout_redirect_uri', postLogout);
    const state = str(input['state']);
    if (state) url.searchParams.set('state', state);
    return { logoutUrl: url.href };
  }

  // ---- externalVerify ---------------------------------------------------------------------

  async externalVerify(input: JsonObject): Promise<ExternalVerifyResult> {
    const invalid = { user: null, isValid: false, verifyData: null };
    const token = str(input['token']);
    if (!token) return invalid;
    const verified = await this.services.tokens.verify(token, 'access');
    if (!verified.ok || verified.claims.owner !== this.id) return invalid;
    const claims = verified.claims as AccessTokenClaims;
    const principal = await principalFromAccessClaims(this.services.prisma, claims);
    if (!principal) throw new FieldError('token', 'INVALID', 'The token does not match its user.');
    return { user: principal, isValid: true, verifyData: { ...claims } };
  }

  // ---- resource server: the provider's access tokens as bearer tokens --------------------

  /** A provider access token → principal (bearer.ts). Throws TokenRefusedError or provider_unavailable. */
  async authenticateRequest(token: string, req: RequestInfo): Promise<AuthenticationResult | null> {
    const result = await bearerPrincipal(token, { pluginId: this.id, settings: this.settings, resourceServer: this.resourceServer, identity: this.services.identity });
    if (result?.principal.kind === 'user') req.log.debug('provider token accepted', { pluginId: this.id, userId: result.principal.user.id });
    return result;
  }

  // ---- back-channel logout (OpenID Connect Back-Channel Logout 1.0, section 2.6) ---------

  async backchannelLogout(form: URLSearchParams, req: RequestInfo): Promise<boolean> {
    const logoutToken = form.get('logout_token');
    if (!logoutToken) {
      this.services.metrics?.logout('invalid_request', 'backchannel');
      return false;
    }
    let facts;
    try {
      facts = await verifyLogoutToken(this.provider, this.settings.clientId, this.id, logoutToken, this.services.logoutTokenMaxAgeSeconds);
    } catch (e) {
      if (!(e instanceof AppError)) throw e;
      this.services.metrics?.logout(failureOutcome(e), 'backchannel');
      req.log.info('back-channel logout token refused', { pluginId: this.id, reason: e.detail });
      return false;
    }
    const ended = await this.services.sessions.backchannelLogout(facts);
    if (ended === 'replayed') {
      this.services.metrics?.logout('replayed', 'backchannel');
      req.log.warn('back-channel logout token replayed', { pluginId: this.id });
      await this.audit(req, { type: 'logout.backchannel', outcome: 'failure', detail: { reason: 'replayed logout token' } });
      return false;
    }
    await this.audit(req, { type: 'logout.backchannel', outcome: 'success', userId: ended[0]?.userId ?? null, detail: { sessions: ended.length } });
    this.services.metrics?.logout(ended.length ? 'success' : 'no_session', 'backchannel');
    return true;
  }
}

export { UNAVAILABLE_MESSAGE };
