/**
 * The refresh of a session, whatever plugin owns it. The plugin only talks to its provider
 * (RefreshPort.refreshAtProvider); everything else is decided here:
 *
 * 1. One refresh per session at a time: an in-process queue per session, and across instances
 *    the session's lease (store.ts). A waiter re-reads the session once it gets its turn.
 * 2. The presented refresh token is the session's current one: refresh. It is the one rotated
 *    away last, within REFRESH_TOKEN_REUSE_INTERVAL_SECONDS of that rotation (a second tab, a
 *    retry after a lost response): the session's current state is returned, nothing is spent.
 *    Anything older: replay; the session is revoked.
 * 3. The provider was asked within the reuse interval already: it is not asked again.
 * 4. Otherwise the provider is asked. Only a dead grant (invalid_grant) or a refreshed id_token
 *    that fails its checks or names another identity ends the session; an unavailable provider
 *    or one refusing our client credentials is a typed error, the session is kept.
 * 5. The provider's new tokens are stored at once; the user is resolved through the identity
 *    pipeline; rotation comes last (a compare-and-set that also releases the lease), so the
 *    client gets the new refresh token whenever the old one stops being current.
 */
import type { Session } from '../generated/prisma/client.ts';
import type { AuthenticatedUser } from '../accounts/principal.ts';
import type { AuditLog } from '../accounts/audit.ts';
import type { RequestInfo } from '../core/request.ts';
import { AppError } from '../core/errors.ts';
import { fingerprint } from '../log.ts';
import { failureOutcome, type RevocationReason, type SessionMetrics } from '../metrics/metrics.ts';
import type { IdentityRules, IdentityService, VerifiedIdentity } from '../identity/identity.ts';
import { SessionStore } from './store.ts';
import { KeyedQueue } from './keyed-queue.ts';

/** What the provider's token endpoint returned for a refresh (not verified yet). */
export interface ProviderGrant {
  providerRefreshToken: string | null;
  idToken: string | null;
  grantedScope: string | null;
  accessToken: string;
}

/**
 * A plugin's side of a refresh. `refreshGrant` asks the provider and throws AppError
 * `grant_ended` (the session must end), `provider_unavailable` or `provider_client_rejected`
 * (the session is kept). `identityOf` verifies what came back (a refreshed id_token, completed
 * from userinfo): undefined when there is no new id_token; throws `grant_ended` when it fails its
 * checks, `provider_unavailable` when it cannot be checked now. The grant is stored between the
 * two, so nothing the provider handed out is lost when the second step fails.
 */
export interface RefreshPort {
  pluginId: string;
  /** The provider the connection points at now (a session of another one must not go there). */
  issuer: string;
  rules: IdentityRules;
  refreshGrant(providerRefreshToken: string): Promise<ProviderGrant>;
  identityOf(grant: ProviderGrant): Promise<VerifiedIdentity | undefined>;
}

export interface RefreshRequest {
  sessionId: string;
  refreshTokenId: string;
  /** The user the refresh token names. */
  userId: number | null;
  rotate: boolean;
}

export interface RefreshOutcome {
  user: AuthenticatedUser;
  /** The session as it stands now (its current refresh-token id is the one to hand out). */
  session: Session;
  /** How it was served: the provider asked, a recent refresh reused, or the reuse grace. */
  via: 'provider' | 'recent' | 'grace';
}

export interface RefreshTiming {
  reuseIntervalMs: number;
  /** A refresh holds its session at most this long (outlasts every provider call). */
  leaseMs: number;
  pollMs: number;
}

const SESSION_ENDED = 'Unable to refresh the token.';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class SessionRefresher {
  private readonly queue = new KeyedQueue();

  constructor(
    private readonly store: SessionStore,
    private readonly identity: IdentityService,
    private readonly audit: AuditLog,
    private readonly timing: RefreshTiming,
    private readonly metrics?: Pick<SessionMetrics, 'refresh'>,
  ) {}

  refresh(request: RefreshRequest, port: RefreshPort, req: RequestInfo): Promise<RefreshOutcome> {
    return this.queue.run(request.sessionId, () => this.refreshInTurn(request, port, req)).then(
      async (outcome) => {
        this.metrics?.refresh('success');
        await this.record(req, port, outcome.user.user.id, 'success', { via: outcome.via, rotated: request.rotate && outcome.via !== 'grace' });
        return outcome;
      },
      async (e: unknown) => {
        this.metrics?.refresh(failureOutcome(e));
        const reason = e instanceof AppError ? e.detail ?? e.code : 'unexpected error';
        await this.record(req, port, request.userId, 'failure', { reason, code: e instanceof AppError ? e.code : undefined });
        throw e;
      },
    );
  }

  private record(req: RequestInfo, port: RefreshPort, userId: number | null, outcome: 'success' | 'failure', detail: Record<string, unknown>) {
    return this.audit.record({ type: 'refresh', outcome, userId, pluginId: port.pluginId, ip: req.ip, userAgent: req.userAgent, requestId: req.requestId, detail });
  }

  /** `label`: the metrics label when `reason` is free text (see REVOCATION_REASONS). */
  private async end(session: Session, reason: string, req: RequestInfo, label?: RevocationReason): Promise<never> {
    await this.store.revoke(session.id, reason, label);
    req.log.warn('session revoked', { session: fingerprint(session.id), reason });
    throw new AppError('session_ended', SESSION_ENDED, reason);
  }

  private async refreshInTurn(request: RefreshRequest, port: RefreshPort, req: RequestInfo): Promise<RefreshOutcome> {
    // A waiter outlasts a crashed holder's lease.
    const deadline = Date.now() + this.timing.leaseMs + 1000;
    for (;;) {
      const session = await this.store.get(request.sessionId);
      if (!session || session.pluginId !== port.pluginId || !SessionStore.isLive(session)) {
        throw new AppError('session_ended', SESSION_ENDED, 'session ended');
      }
      if (request.userId !== session.userId) return this.end(session, 'owner mismatch', req);
      if (session.issuer !== port.issuer) return this.end(session, 'provider changed', req);
      if (request.refreshTokenId !== session.refreshTokenId) {
        const graced =
          request.refreshTokenId === session.previousRefreshTokenId &&
          session.rotatedAt !== null &&
          Date.now() - session.rotatedAt.getTime() < this.timing.reuseIntervalMs;
        if (!graced) return this.end(session, 'refresh token reuse', req);
        return { user: await this.current(session, req), session, via: 'grace' };
      }
      // While another refresh holds the session, wait for its outcome (then look again).
      if (!SessionStore.leased(session)) {
        const recent = session.providerRefreshedAt !== null && Date.now() - session.providerRefreshedAt.getTime() < this.timing.reuseIntervalMs;
        if (recent) {
          const user = await this.current(session, req);
          if (!request.rotate) return { user, session, via: 'recent' };
          const rotated = await this.store.rotate(session.id, request.refreshTokenId);
          if (rotated) return { user, session: rotated, via: 'recent' };
          continue; // another refresh rotated first: look again (the grace applies)
        }
        const holder = await this.store.acquireLease(session, this.timing.leaseMs);
        if (holder) {
          const outcome = await this.withLease(session, holder, request, port, req);
          if (outcome) return outcome;
          continue;
        }
      }
      if (Date.now() > deadline) throw new AppError('provider_unavailable', 'The identity provider is unavailable. Please try again later.', 'session refresh lease busy');
      await sleep(this.timing.pollMs);
    }
  }

  private async current(session: Session, req: RequestInfo): Promise<AuthenticatedUser> {
    try {
      return await this.identity.current(session.userId);
    } catch (e) {
      if (e instanceof AppError) return this.end(session, 'user inactive', req);
      throw e;
    }
  }

  /** Ends the session when the provider says the grant is over; rethrows anything else. */
  private async orEnd<T>(session: Session, req: RequestInfo, step: () => Promise<T>): Promise<T> {
    try {
      return await step();
    } catch (e) {
      if (e instanceof AppError && e.code === 'grant_ended') return this.end(session, e.detail ?? 'provider ended the grant', req, 'grant_ended');
      throw e;
    }
  }

  /** The refresh proper, holding the lease. Null: another refresh rotated first (look again). */
  private async withLease(session: Session, holder: string, request: RefreshRequest, port: RefreshPort, req: RequestInfo): Promise<RefreshOutcome | null> {
    try {
      const providerRefreshToken = this.store.providerRefreshToken(session);
      if (!providerRefreshToken) return await this.end(session, 'no provider refresh token', req);
      const grant = await this.orEnd(session, req, () => port.refreshGrant(providerRefreshToken));
      // Stored at once: whatever fails next, the provider's newest refresh token is kept.
      await this.store.storeProviderTokens(session.id, grant);
      const identity = await this.orEnd(session, req, () => port.identityOf(grant));
      let user: AuthenticatedUser;
      if (identity) {
        // The session's user stays the session's user: another issuer or subject is refused.
        if (identity.issuer !== session.issuer || identity.subject !== session.subject) return await this.end(session, 'identity changed', req);
        try {
          user = await this.identity.resolve({ ...identity, scope: identity.scope ?? session.grantedScope }, port.rules);
        } catch (e) {
          if (e instanceof AppError) return await this.end(session, e.detail ?? e.code, req, 'identity_refused');
          throw e;
        }
      } else {
        user = await this.current(session, req);
      }
      if (!request.rotate) return { user, session, via: 'provider' };
      const rotated = await this.store.rotate(session.id, request.refreshTokenId);
      return rotated ? { user, session: rotated, via: 'provider' } : null;
    } finally {
      await this.store.releaseLease(session.id, holder);
    }
  }
}
