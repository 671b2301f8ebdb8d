/**
 * The session service: every plugin's sessions are created, refreshed, revoked and logged out
 * here (plugins only talk to their provider). Revocation is per session, per user and per
 * connection, and every revocation is announced and counted by reason: the ids of the sessions
 * ended to `onRevoked` listeners (the request authenticator forgets cached principals of those
 * sessions at once); for a whole connection's (which may be millions, never loaded), its id to
 * `onConnectionRevoked` listeners (every cached principal is forgotten).
 *
 * Back-channel logout tokens are single-use: their (issuer, jti) is remembered in the database
 * until they expire, so every instance refuses a replay, and only sessions created before the
 * token was issued end (a delayed delivery never ends a newer login).
 */
import type { Prisma } from '../db/database.ts';
import type { SecretBox } from '../crypto/secret-box.ts';
import type { AuditLog } from '../accounts/audit.ts';
import type { IdentityService } from '../identity/identity.ts';
import type { RequestInfo } from '../core/request.ts';
import type { SessionMetrics } from '../metrics/metrics.ts';
import { SessionStore, type NewSession, type Session } from './store.ts';
import { SessionRefresher, type RefreshOutcome, type RefreshPort, type RefreshRequest, type RefreshTiming } from './refresh.ts';

export type { Session, NewSession, RefreshOutcome, RefreshPort, RefreshRequest };

/** Tolerance between the provider's clock (iat) and ours (a session's createdAt). */
const CLOCK_SKEW_SECONDS = 60;

export interface LogoutTokenFacts {
  pluginId: string;
  issuer: string;
  jti: string;
  /** Seconds since epoch. */
  iat: number;
  /** Seconds since epoch; the jti is remembered until then. */
  rememberUntil: number;
  providerSid: string | undefined;
  subject: string | undefined;
}

export class SessionService {
  readonly store: SessionStore;
  private readonly refresher: SessionRefresher;
  private readonly listeners: Array<(sessionIds: string[]) => void> = [];
  private readonly connectionListeners: Array<(pluginId: string) => void> = [];

  /** `metrics`: counts refreshes by outcome and revocations by reason (optional). */
  constructor(prisma: Prisma, box: SecretBox, identity: IdentityService, audit: AuditLog, timing: RefreshTiming, metrics?: SessionMetrics) {
    this.store = new SessionStore(prisma, box, (ids) => this.announce(ids), metrics);
    this.refresher = new SessionRefresher(this.store, identity, audit, timing, metrics);
  }

  /** Called with the ids of sessions that just ended. */
  onRevoked(listener: (sessionIds: string[]) => void): void {
    this.listeners.push(listener);
  }

  /** Called with a connection whose sessions all just ended (its sessions' ids are not loaded). */
  onConnectionRevoked(listener: (pluginId: string) => void): void {
    this.connectionListeners.push(listener);
  }

  private announce(ids: string[]): void {
    if (ids.length) for (const l of this.listeners) l(ids);
  }

  create(s: NewSession): Promise<Session> {
    return this.store.create(s);
  }

  get(id: string): Promise<Session | null> {
    return this.store.get(id);
  }

  refresh(request: RefreshRequest, port: RefreshPort, req: RequestInfo): Promise<RefreshOutcome> {
    return this.refresher.refresh(request, port, req);
  }

  revoke(id: string, reason: string): Promise<boolean> {
    return this.store.revoke(id, reason);
  }

  revokeUser(userId: number, reason: string): Promise<string[]> {
    return this.store.revokeAllOfUser(userId, reason);
  }

  /** Sessions revoked by a transaction of another module (e.g. with the user's token key): counted and announced. */
  announceRevoked(ids: string[], reason: string): void {
    this.store.announceRevoked(ids, reason);
  }

  async revokeConnection(pluginId: string, reason: string): Promise<number> {
    const count = await this.store.revokeAllOf(pluginId, reason);
    if (count > 0) for (const l of this.connectionListeners) l(pluginId);
    return count;
  }

  idToken(session: Session): string | null {
    return this.store.idToken(session);
  }

  /** 'replayed' when this logout token was used before (nothing ends then), else the ended sessions. */
  backchannelLogout(facts: LogoutTokenFacts): Promise<'replayed' | Session[]> {
    return this.store.logoutByToken(
      { issuer: facts.issuer, jti: facts.jti, rememberUntil: new Date(facts.rememberUntil * 1000) },
      { pluginId: facts.pluginId, providerSid: facts.providerSid, subject: facts.subject, createdBefore: new Date((facts.iat + CLOCK_SKEW_SECONDS) * 1000) },
      'backchannel-logout',
    );
  }
}
