/**
 * One OpenID Connect connection (one plugin id): the relying-party flow behind Saleor's five
 * external* mutations, plus back-channel logout. See saleor-contract.md section 2 for every
 * rule and where we deliberately differ from Saleor.
 */
import * as oidc from 'openid-client';
import type { JWTPayload } from 'jose';
import { FieldError } from '../../errors.ts';
import type { Prisma } from '../../db/database.ts';
import type { SecretBox } from '../../crypto/secret-box.ts';
import type { AuditLog, AuditEventInput } from '../../accounts/audit.ts';
import type { Logger } from '../../log.ts';
import { fingerprint } from '../../log.ts';
import type { TokenService, RefreshTokenClaims, AccessTokenClaims } from '../../tokens/jwt.ts';
import { createCsrfToken, csrfTokensMatch } from '../../tokens/csrf.ts';
import { SessionStore, type Session } from '../../sessions/store.ts';
import { REFRESH_COOKIE, clearRefreshCookie, refreshCookie } from '../../auth/cookies.ts';
import { principalFromAccessClaims } from '../../auth/our-tokens.ts';
import { applyStaffDecision, linkUser, touchLastLogin } from '../../accounts/provisioning.ts';
import { decideStaff } from '../../accounts/staff.ts';
import { effectivePermissions, normalizeEmail } from '../../accounts/users.ts';
import type { AuthenticatedUser } from '../../accounts/principal.ts';
import { parseGlobalIdOf } from '../../graphql/global-id.ts';
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
import { ResourceServer, TokenRefusedError } from './resource-server.ts';
import { groupsFromClaims, parseOidcSettings, type OidcSettings } from './settings.ts';
import { isAllowedRedirect } from './redirects.ts';
import { extraAuthorizationParams, isCognito, isGoogle, requestedScope } from './quirks.ts';
import { AuthorizationRequests } from './authorization-requests.ts';
import {
  OidcProvider,
  ProviderRefusedError,
  ProviderTokenError,
  ProviderUnavailableError,
  classifyProviderError,
} from './provider.ts';

export interface OidcServices {
  prisma: Prisma;
  box: SecretBox;
  tokens: TokenService;
  audit: AuditLog;
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
}

const UNAVAILABLE = 'The identity provider is unavailable. Please try again later.';
const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

export class OidcConnection implements PluginInstance {
  readonly id: string;
  readonly name: string;
  readonly active: boolean;
  private readonly settings: OidcSettings;
  private readonly provider: OidcProvider;
  private readonly sessions: SessionStore;
  private readonly requests: AuthorizationRequests;
  private readonly resourceServer: ResourceServer;

  constructor(
    plugin: PluginSettings,
    private readonly services: OidcServices,
  ) {
    this.id = plugin.id;
    this.name = plugin.name;
    this.active = plugin.active;
    this.settings = parseOidcSettings(plugin.values);
    this.provider = new OidcProvider(this.settings, {
      fetch: services.fetch,
      allowInsecureRequests: services.allowInsecureRequests,
      jwksCooldownMs: services.jwksCooldownMs,
      timeoutSeconds: services.outboundTimeoutSeconds,
    });
    this.sessions = new SessionStore(services.prisma, services.box);
    this.requests = new AuthorizationRequests(services.prisma, services.box);
    this.resourceServer = new ResourceServer(this.settings, this.provider, services.opaqueTokenTtlMs, services.tokenValidationRatePerSecond);
  }

  /** Exposed for the resource-server half and tests. */
  get oidcProvider(): OidcProvider {
    return this.provider;
  }

  private audit(req: RequestInfo, event: Omit<AuditEventInput, 'pluginId' | 'ip' | 'userAgent' | 'requestId'>): Promise<void> {
    return this.services.audit.record({ ...event, pluginId: this.id, ip: req.ip, userAgent: req.userAgent, requestId: req.requestId });
  }

  /** Logs the provider failure in detail and returns the typed error for the client. */
  private providerFailure(req: RequestInfo, field: string, e: unknown, where: string): FieldError {
    const err = classifyProviderError(e);
    req.log.warn('identity provider failure', {
      pluginId: this.id,
      where,
      kind: err.name,
      errorMessage: err.message,
      cause: err.cause instanceof Error ? err.cause.message : undefined,
    });
    if (err instanceof ProviderUnavailableError) return new FieldError(field, 'INVALID', UNAVAILABLE);
    if (err instanceof ProviderRefusedError) return new FieldError(field, 'INVALID', err.description ?? err.error);
    return new FieldError(field, 'INVALID', 'The identity provider returned an invalid token.');
  }

  private scopeOptions(metadata: oidc.ServerMetadata) {
    return {
      useScopePermissions: this.settings.useScopePermissions,
      enableRefreshToken: this.settings.enableRefreshToken,
      google: isGoogle({ authorizationUrl: metadata.authorization_endpoint, issuer: metadata.issuer }),
      cognito: isCognito(metadata.jwks_uri),
    };
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
    let resolved;
    try {
      resolved = await this.provider.get();
    } catch (e) {
      throw this.providerFailure(req, 'redirectUri', e, 'authorization-url');
    }
    const codeVerifier = oidc.randomPKCECodeVerifier();
    const nonce = oidc.randomNonce();
    const state = await this.requests.create(this.id, { redirectUri, nonce, codeVerifier });
    const options = this.scopeOptions(resolved.metadata);
    const url = oidc.buildAuthorizationUrl(resolved.config, {
      response_type: 'code',
      redirect_uri: redirectUri,
      scope: requestedScope(options),
      state,
      nonce,
      code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      ...(this.settings.audience ? { audience: this.settings.audience } : {}),
      ...extraAuthorizationParams(options),
    });
    return { authorizationUrl: url.href };
  }

  // ---- externalObtainAccessTokens ------------------------------------------------------

  async externalObtainAccessTokens(input: JsonObject, req: RequestInfo): Promise<ExternalTokens> {
    const code = input['code'];
    const state = input['state'];
    if (!code) throw new FieldError('code', 'NOT_FOUND', 'Missing required field - code');
    if (!state) throw new FieldError('state', 'NOT_FOUND', 'Missing required field - state');
    if (typeof code !== 'string') throw new FieldError('code', 'INVALID', 'Invalid code.');
    const pending = typeof state === 'string' ? await this.requests.consume(this.id, state) : null;
    if (!pending) throw new FieldError('state', 'INVALID', 'Invalid or expired state.');

    try {
      return await this.completeLogin(code, state as string, pending, input, req);
    } catch (e) {
      await this.audit(req, {
        type: 'login',
        outcome: 'failure',
        detail: { reason: e instanceof FieldError ? e.message : 'unexpected error' },
      });
      throw e;
    }
  }

  private async completeLogin(
    code: string,
    state: string,
    pending: { redirectUri: string; nonce: string; codeVerifier: string },
    input: JsonObject,
    req: RequestInfo,
  ): Promise<ExternalTokens> {
    let resolved;
    let response: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>;
    try {
      resolved = await this.provider.get();
      const callback = new URL(pending.redirectUri);
      callback.search = '';
      callback.searchParams.set('code', code);
      callback.searchParams.set('state', state);
      // RFC 9207: the storefront may pass the `iss` it received; Saleor's clients pass only
      // code and state, and then the expected issuer stands in (the state record already
      // binds this response to this connection, which is what `iss` protects).
      const iss = str(input['iss']) ?? (resolved.metadata.authorization_response_iss_parameter_supported ? resolved.metadata.issuer : undefined);
      if (iss) callback.searchParams.set('iss', iss);
      response = await oidc.authorizationCodeGrant(resolved.config, callback, {
        pkceCodeVerifier: pending.codeVerifier,
        expectedNonce: pending.nonce,
        expectedState: state,
        idTokenExpected: true,
      });
    } catch (e) {
      throw this.providerFailure(req, 'code', e, 'token-exchange');
    }
    if (!response.id_token) throw new FieldError('code', 'INVALID', 'The identity provider returned no ID token.');
    let claims: JWTPayload & { sub: string };
    try {
      claims = await this.provider.verifyIdToken(response.id_token, pending.nonce);
    } catch (e) {
      throw this.providerFailure(req, 'code', e, 'id-token');
    }
    const profile = await this.profile(claims, response.access_token, resolved.metadata, req, 'code');
    const auth = await this.signIn(profile, response.scope ?? null, req);

    let refreshToken: string | null = null;
    let csrfToken: string | null = null;
    if (this.settings.enableRefreshToken && response.refresh_token) {
      const session = await this.sessions.create({
        userId: auth.user.id,
        pluginId: this.id,
        issuer: this.provider.issuer,
        subject: claims.sub,
        providerSid: str(claims['sid']) ?? null,
        providerRefreshToken: response.refresh_token,
        idToken: response.id_token,
        grantedScope: response.scope ?? null,
        ttlSeconds: this.services.tokens.refreshTokenTtl,
      });
      ({ refreshToken, csrfToken } = await this.issueRefresh(auth, session, req));
    }
    const token = await this.services.tokens.mintAccessToken(auth.user, auth.permissions, this.id);
    await this.audit(req, { type: 'login', outcome: 'success', userId: auth.user.id, detail: { subject: claims.sub, staff: auth.isStaff } });
    return { token, refreshToken, csrfToken, user: auth };
  }

  /**
   * The identity as the provider tells it: id_token claims, completed from userinfo (called
   * with the access token when the provider has the endpoint; a different `sub` is refused).
   */
  private async profile(
    claims: JWTPayload & { sub: string },
    accessToken: string,
    metadata: oidc.ServerMetadata,
    req: RequestInfo,
    field: string,
  ) {
    let info: Record<string, unknown> = {};
    if (metadata.userinfo_endpoint) {
      try {
        const { config } = await this.provider.get();
        info = await oidc.fetchUserInfo(config, accessToken, claims.sub);
      } catch (e) {
        if ((e as { code?: string }).code === 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED' || /sub/.test((e as Error).message ?? '')) {
          req.log.warn('userinfo subject mismatch', { pluginId: this.id });
          throw new FieldError(field, 'INVALID', 'The identity provider returned a different subject from userinfo.');
        }
        throw this.providerFailure(req, field, e, 'userinfo');
      }
    }
    const pick = (name: string) => claims[name] ?? info[name];
    const sub = str(claims.sub);
    if (!sub) throw new FieldError(field, 'INVALID', 'Missing subject identifier.');
    const email = str(pick('email'));
    if (!email) throw new FieldError(field, 'INVALID', "Missing user's email.");
    return {
      subject: sub,
      email,
      emailVerified: pick('email_verified') === true || pick('email_verified') === 'true',
      firstName: str(pick('given_name')),
      lastName: str(pick('family_name')),
      permissionsClaim: pick('permissions'),
      groups: this.settings.groupsClaim ? groupsFromClaims({ ...info, ...claims }, this.settings.groupsClaim) : undefined,
    };
  }

  /** Links/creates the user, applies staff rules, records the login. */
  private async signIn(
    profile: Awaited<ReturnType<OidcConnection['profile']>>,
    grantedScope: string | null,
    req: RequestInfo,
  ): Promise<AuthenticatedUser> {
    const prisma = this.services.prisma;
    const user = await linkUser(
      prisma,
      { pluginId: this.id, issuer: this.provider.issuer, ...profile },
      { linkByVerifiedEmail: this.settings.linkByVerifiedEmail },
    );
    if (!user.isActive) {
      req.log.info('login refused: inactive user', { pluginId: this.id, userId: user.id });
      throw new FieldError('code', 'INVALID', 'Unable to log in.');
    }
    const decision = decideStaff(
      { useScopePermissions: this.settings.useScopePermissions, staffDomains: this.settings.staffDomains },
      {
        scope: grantedScope,
        permissionsClaim: profile.permissionsClaim,
        email: user.email,
        // Verified means: the provider verified *this* email (the stored one may differ when
        // the provider's new email belongs to someone else and was not copied).
        emailVerified: profile.emailVerified && normalizeEmail(profile.email) === user.email,
      },
    );
    const applied = await applyStaffDecision(prisma, user, decision, {
      useScopePermissions: this.settings.useScopePermissions,
      defaultGroupName: this.settings.defaultGroupName,
      providerGroups: profile.groups,
    });
    const current = await touchLastLogin(prisma, applied.user);
    return { user: current, permissions: applied.permissions, isStaff: current.isStaff };
  }

  private async issueRefresh(auth: AuthenticatedUser, session: Session, req: RequestInfo) {
    const csrfToken = createCsrfToken();
    const refreshToken = await this.services.tokens.mintRefreshToken(auth.user, this.id, {
      id: session.id,
      refreshTokenId: session.refreshTokenId,
      csrfToken,
      expiresAt: session.expiresAt,
    });
    const maxAgeSeconds = Math.max(0, Math.floor((session.expiresAt.getTime() - Date.now()) / 1000));
    req.setCookie(refreshCookie(refreshToken, { secure: this.services.secureCookies, maxAgeSeconds }));
    return { refreshToken, csrfToken };
  }

  // ---- externalRefresh (also reached through tokenRefresh) -----------------------------

  async externalRefresh(input: JsonObject, req: RequestInfo, options: RefreshOptions = { rotate: true }): Promise<ExternalTokens> {
    if (!this.settings.enableRefreshToken) {
      throw new FieldError('refreshToken', 'INVALID', 'Unable to refresh the token. Support for refreshing tokens is disabled');
    }
    const fromInput = str(input['refreshToken']);
    const token = fromInput ?? str(req.cookies[REFRESH_COOKIE]);
    if (!token) throw new FieldError('refreshToken', 'NOT_FOUND', 'Missing token.');
    const verified = await this.services.tokens.verify(token, 'refresh');
    if (!verified.ok || verified.claims.owner !== this.id) {
      throw new FieldError('refreshToken', 'INVALID', 'Unable to refresh the token.');
    }
    const claims = verified.claims as RefreshTokenClaims;
    // A refresh token from the cookie needs the CSRF token it was issued with: a cross-site
    // request carries the cookie but cannot know the CSRF token.
    if (!fromInput && !csrfTokensMatch(input['csrfToken'], claims.csrf_token)) {
      throw new FieldError('csrfToken', 'INVALID', 'Invalid or missing CSRF token.');
    }
    const refused = async (reason: string, revoke: boolean) => {
      if (revoke) await this.sessions.revoke(claims.sid, reason);
      await this.audit(req, { type: 'refresh', outcome: 'failure', userId: parseGlobalIdOf('User', claims.user_id), detail: { reason } });
      return new FieldError('refreshToken', 'INVALID', 'Unable to refresh the token.');
    };

    const session = await this.sessions.get(claims.sid);
    if (!session || session.pluginId !== this.id || !SessionStore.isLive(session)) throw await refused('session ended', false);
    if (session.refreshTokenId !== claims.rti) {
      // A rotated refresh token came back: it was stolen or replayed. End the session.
      req.log.warn('refresh token reuse: session revoked', { pluginId: this.id, session: fingerprint(session.id) });
      throw await refused('refresh token reuse', true);
    }
    if (parseGlobalIdOf('User', claims.user_id) !== session.userId) throw await refused('owner mismatch', true);
    // The connection was pointed at another provider since: its refresh token must not go there.
    if (session.issuer !== this.provider.issuer) throw await refused('provider changed', true);
    const providerRefreshToken = this.sessions.providerRefreshToken(session);
    if (!providerRefreshToken) throw await refused('no provider refresh token', true);

    let response: Awaited<ReturnType<typeof oidc.refreshTokenGrant>>;
    let resolved;
    try {
      resolved = await this.provider.get();
      response = await oidc.refreshTokenGrant(resolved.config, providerRefreshToken);
    } catch (e) {
      const err = classifyProviderError(e);
      if (err instanceof ProviderRefusedError) {
        req.log.info('provider refused the refresh token', { pluginId: this.id, error: err.error });
        throw await refused(`provider refused: ${err.error}`, true);
      }
      if (err instanceof ProviderTokenError) {
        // e.g. openid-client refused the refreshed id_token (another iss): end the session.
        this.providerFailure(req, 'refreshToken', e, 'refresh');
        throw await refused('invalid id_token on refresh', true);
      }
      throw this.providerFailure(req, 'refreshToken', e, 'refresh');
    }
    let claimsFromIdToken: (JWTPayload & { sub: string }) | undefined;
    if (response.id_token) {
      try {
        claimsFromIdToken = await this.provider.verifyIdToken(response.id_token, undefined);
      } catch (e) {
        if (classifyProviderError(e) instanceof ProviderTokenError) {
          this.providerFailure(req, 'refreshToken', e, 'refresh-id-token');
          throw await refused('invalid id_token on refresh', true);
        }
        throw this.providerFailure(req, 'refreshToken', e, 'refresh-id-token');
      }
      // The session's user stays the session's user: another issuer or subject is refused.
      if (claimsFromIdToken.iss !== session.issuer || claimsFromIdToken.sub !== session.subject) {
        req.log.warn('refreshed id_token names another identity: session revoked', { pluginId: this.id });
        throw await refused('identity changed', true);
      }
    }
    await this.sessions.storeProviderTokens(session.id, {
      providerRefreshToken: response.refresh_token ?? null,
      idToken: response.id_token ?? null,
      grantedScope: response.scope ?? null,
    });

    const user = await this.services.prisma.user.findUnique({ where: { id: session.userId } });
    if (!user || !user.isActive) throw await refused('user inactive', true);
    let auth: AuthenticatedUser;
    if (claimsFromIdToken) {
      const profile = await this.profile(claimsFromIdToken, response.access_token, resolved.metadata, req, 'refreshToken');
      auth = await this.signIn(profile, response.scope ?? session.grantedScope, req);
    } else {
      // No new identity statement from the provider: the staff status and permissions decided
      // at the last login stand (scope permissions are stored on the user).
      const permissions = user.isStaff ? await effectivePermissions(this.services.prisma, user) : [];
      auth = { user, permissions, isStaff: user.isStaff };
    }

    let refreshToken = token;
    let csrfToken = str(input['csrfToken']) ?? null;
    if (options.rotate) {
      // Rotation last: everything that can fail has succeeded, so the client gets the new
      // refresh token whenever the old one stops working.
      const rotated = await this.sessions.rotate(session.id, claims.rti);
      if (!rotated) throw await refused('concurrent refresh', true);
      ({ refreshToken, csrfToken } = await this.issueRefresh(auth, rotated, req));
    }
    const accessToken = await this.services.tokens.mintAccessToken(auth.user, auth.permissions, this.id);
    await this.audit(req, { type: 'refresh', outcome: 'success', userId: auth.user.id, detail: { rotated: options.rotate } });
    return { token: accessToken, refreshToken, csrfToken, user: auth };
  }

  // ---- externalLogout --------------------------------------------------------------------

  async externalLogout(input: JsonObject, req: RequestInfo): Promise<JsonObject> {
    const postLogout = str(input['postLogoutRedirectUri']) ?? str(input['post_logout_redirect_uri']) ?? str(input['redirectUri']);
    if (postLogout && !isAllowedRedirect(postLogout, this.settings.allowedPostLogoutRedirectUris)) {
      throw new FieldError('postLogoutRedirectUri', 'INVALID', 'The post-logout redirect URI is not allowed for this connection.');
    }
    const fromInput = str(input['refreshToken']);
    const token = fromInput ?? str(req.cookies[REFRESH_COOKIE]);
    let idTokenHint: string | null = null;
    let userId: number | null = null;
    if (token) {
      const verified = await this.services.tokens.verify(token, 'refresh');
      // The cookie alone does not identify the caller: a cross-site request carries it too.
      // Without the CSRF token it was issued with, the session is neither ended nor disclosed
      // (the id_token_hint names the user); the cookie is still cleared.
      const csrfOk = fromInput !== undefined || (verified.ok && csrfTokensMatch(input['csrfToken'], (verified.claims as RefreshTokenClaims).csrf_token));
      if (verified.ok && verified.claims.owner === this.id && csrfOk) {
        const claims = verified.claims as RefreshTokenClaims;
        const session = await this.sessions.get(claims.sid);
        if (session && session.pluginId === this.id) {
          idTokenHint = this.sessions.idToken(session);
          userId = session.userId;
          await this.sessions.revoke(session.id, 'logout');
        }
      }
    }
    req.setCookie(clearRefreshCookie({ secure: this.services.secureCookies }));
    await this.audit(req, { type: 'logout', outcome: 'success', userId });

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

  /**
   * A provider access token → principal. Users are linked or created as at login; staff rules
   * apply when the token's scope is authoritative (scope permissions need the configured
   * audience, as Saleor) and the email is known; database writes happen only on change.
   * Throws TokenRefusedError (invalid token) or ProviderUnavailableError.
   */
  async authenticateRequest(token: string, req: RequestInfo): Promise<AuthenticationResult | null> {
    const identity = await this.resourceServer.identify(token);
    if (!identity) return null;
    const rules = { useScopePermissions: this.settings.useScopePermissions && identity.audienceMatches, staffDomains: this.settings.staffDomains };
    if (identity.kind === 'app') {
      const { permissions } = decideStaff(rules, { scope: identity.scope, permissionsClaim: identity.permissionsClaim, email: '', emailVerified: false });
      return {
        principal: { kind: 'app', owner: this.id, clientId: identity.clientId ?? identity.subject ?? 'unknown', permissions },
        expiresAt: identity.expiresAt,
      };
    }
    const prisma = this.services.prisma;
    let user;
    if (identity.email) {
      try {
        user = await linkUser(
          prisma,
          {
            pluginId: this.id,
            issuer: this.provider.issuer,
            subject: identity.subject!,
            email: identity.email,
            emailVerified: identity.emailVerified,
            firstName: identity.firstName,
            lastName: identity.lastName,
          },
          { linkByVerifiedEmail: this.settings.linkByVerifiedEmail },
        );
      } catch (e) {
        if (e instanceof FieldError) throw new TokenRefusedError(e.message);
        throw e;
      }
    } else {
      const link = await prisma.externalIdentity.findUnique({
        where: { issuer_subject: { issuer: this.provider.issuer, subject: identity.subject! } },
        include: { user: true },
      });
      if (!link) throw new TokenRefusedError('token names an unknown user and carries no email');
      user = link.user;
    }
    if (!user.isActive) throw new TokenRefusedError('user is inactive');
    if (identity.identityOnly) {
      user = await touchLastLogin(prisma, user);
      return { principal: { kind: 'user', owner: this.id, user, permissions: [], isStaff: false }, expiresAt: identity.expiresAt };
    }
    let permissions;
    // The token's scope decides when it is authoritative: scope permissions need the configured
    // audience (as Saleor). Without that, or with neither an email nor scope permissions to go
    // by, the stored staff status and permissions stand.
    if ((!this.settings.useScopePermissions || identity.audienceMatches) && (identity.email || rules.useScopePermissions || identity.groups !== undefined)) {
      const decision = decideStaff(rules, {
        scope: identity.scope,
        permissionsClaim: identity.permissionsClaim,
        email: user.email,
        // Verified: the provider verified this very email. A token with no email (the user was
        // found by its identity link) keeps a staff domain's verdict from the last login.
        emailVerified: identity.email ? identity.emailVerified && normalizeEmail(identity.email) === user.email : user.isStaff,
      });
      ({ user, permissions } = await applyStaffDecision(prisma, user, decision, {
        useScopePermissions: rules.useScopePermissions,
        defaultGroupName: this.settings.defaultGroupName,
        providerGroups: identity.groups,
      }));
    } else {
      permissions = user.isStaff ? await effectivePermissions(prisma, user) : [];
    }
    user = await touchLastLogin(prisma, user);
    req.log.debug('provider token accepted', { pluginId: this.id, userId: user.id });
    return {
      principal: { kind: 'user', owner: this.id, user, permissions, isStaff: user.isStaff },
      expiresAt: identity.expiresAt,
    };
  }

  // ---- back-channel logout (OpenID Connect Back-Channel Logout 1.0, section 2.6) ---------

  async backchannelLogout(form: URLSearchParams, req: RequestInfo): Promise<boolean> {
    const logoutToken = form.get('logout_token');
    if (!logoutToken) return false;
    let claims: JWTPayload;
    try {
      claims = await this.provider.verifyJwt(logoutToken, { audience: this.settings.clientId, requiredClaims: ['iat', 'jti'], maxTokenAge: '10m' });
    } catch (e) {
      req.log.info('back-channel logout token refused', { pluginId: this.id, reason: (e as Error).message });
      return false;
    }
    const events = claims['events'];
    const event = events && typeof events === 'object' && !Array.isArray(events) ? (events as Record<string, unknown>)[BACKCHANNEL_EVENT] : undefined;
    const sid = str(claims['sid']);
    const sub = str(claims.sub);
    const reasons = [
      !(event && typeof event === 'object' && !Array.isArray(event)) && 'missing back-channel logout event',
      claims['nonce'] !== undefined && 'nonce present',
      !sid && !sub && 'neither sid nor sub',
    ].filter(Boolean);
    if (reasons.length) {
      req.log.info('back-channel logout token refused', { pluginId: this.id, reason: reasons.join(', ') });
      return false;
    }
    const revoked = await this.sessions.revokeByProvider(
      { pluginId: this.id, issuer: this.provider.issuer, providerSid: sid, subject: sub },
      'backchannel-logout',
    );
    await this.audit(req, {
      type: 'logout.backchannel',
      outcome: 'success',
      userId: revoked[0]?.userId ?? null,
      detail: { sessions: revoked.length },
    });
    return true;
  }
}

