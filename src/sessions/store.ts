/**
 * Login sessions behind our refresh tokens (the data; the refresh flow is in refresh.ts). A
 * refresh token names its session and the refresh-token id it was issued for; the session keeps
 * the current id, and the one rotated away last with the time of that rotation (the reuse grace
 * window). Every state change is a compare-and-set on the row, so concurrent writers cannot both
 * win. A refresh holds the session through a lease (refresh_lease_until): one refresh per
 * session at a time across every instance, and a crashed holder's lease simply runs out.
 * The provider's refresh token and id_token stay here, sealed with the server secret.
 */
import { randomBytes } from 'node:crypto';
import type { Prisma } from '../db/database.ts';
import type { SecretBox } from '../crypto/secret-box.ts';
import type { Session } from '../generated/prisma/client.ts';
import type { SessionMetrics, RevocationReason } from '../metrics/metrics.ts';

const live = () => ({ revokedAt: null, expiresAt: { gt: new Date() } });

export type { Session };

const SEAL_REFRESH = 'session:provider-refresh-token';
const SEAL_ID_TOKEN = 'session:id-token';

const newId = () => randomBytes(24).toString('base64url');

export interface NewSession {
  userId: number;
  pluginId: string;
  issuer: string;
  subject: string;
  providerSid: string | null;
  providerRefreshToken: string | null;
  idToken: string | null;
  grantedScope: string | null;
  ttlSeconds: number;
}

export class SessionStore {
  constructor(
    private readonly prisma: Prisma,
    private readonly box: SecretBox,
    /** Told the ids of sessions that were just revoked. */
    private readonly announce: (ids: string[]) => void = () => {},
    private readonly metrics?: Pick<SessionMetrics, 'sessionsRevoked'>,
  ) {}

  /**
   * Every revocation ends here: listeners are told, and it is counted by reason (`label` when
   * the stored reason is free text, e.g. a provider's refusal).
   */
  private revoked(ids: string[], reason: string, label?: RevocationReason): void {
    this.metrics?.sessionsRevoked(label ?? reason, ids.length);
    this.announce(ids);
  }

  /** Sessions revoked outside this store (in another module's transaction), once committed. */
  announceRevoked(ids: string[], reason: string): void {
    if (ids.length) this.revoked(ids, reason);
  }

  async create(s: NewSession): Promise<Session> {
    return this.prisma.session.create({
      data: {
        id: newId(),
        refreshTokenId: newId(),
        userId: s.userId,
        pluginId: s.pluginId,
        issuer: s.issuer,
        subject: s.subject,
        providerSid: s.providerSid,
        providerRefreshTokenEnc: s.providerRefreshToken ? this.box.seal(s.providerRefreshToken, SEAL_REFRESH) : null,
        idTokenEnc: s.idToken ? this.box.seal(s.idToken, SEAL_ID_TOKEN) : null,
        grantedScope: s.grantedScope,
        expiresAt: new Date(Date.now() + s.ttlSeconds * 1000),
      },
    });
  }

  get(id: string): Promise<Session | null> {
    return this.prisma.session.findUnique({ where: { id } });
  }

  /** A session that can still be used: not revoked, not expired. */
  static isLive(s: Session): boolean {
    return s.revokedAt === null && s.expiresAt.getTime() > Date.now();
  }

  providerRefreshToken(s: Session): string | null {
    return s.providerRefreshTokenEnc ? this.box.open(s.providerRefreshTokenEnc, SEAL_REFRESH) : null;
  }

  idToken(s: Session): string | null {
    return s.idTokenEnc ? this.box.open(s.idTokenEnc, SEAL_ID_TOKEN) : null;
  }

  /**
   * Takes the session's refresh lease until now + `ms`, only if nobody holds it (or the holder's
   * lease ran out) AND the session is still as `seen` (same current refresh-token id, same last
   * provider refresh): a refresh never acts on a copy read before another one finished.
   * Returns the holder id, or null.
   */
  async acquireLease(seen: Session, ms: number): Promise<string | null> {
    const now = new Date();
    const holder = newId();
    const { count } = await this.prisma.session.updateMany({
      where: {
        id: seen.id,
        ...live(),
        refreshTokenId: seen.refreshTokenId,
        providerRefreshedAt: seen.providerRefreshedAt,
        OR: [{ refreshLeaseUntil: null }, { refreshLeaseUntil: { lte: now } }],
      },
      data: { refreshLeaseUntil: new Date(now.getTime() + ms), refreshLeaseHolder: holder },
    });
    return count === 1 ? holder : null;
  }

  /** Releases the lease, if `holder` still holds it (a holder whose lease ran out releases nothing). */
  async releaseLease(id: string, holder: string): Promise<void> {
    await this.prisma.session.updateMany({ where: { id, refreshLeaseHolder: holder }, data: { refreshLeaseUntil: null, refreshLeaseHolder: null } });
  }

  /** Someone holds the session's refresh lease now. */
  static leased(s: Session): boolean {
    return s.refreshLeaseUntil !== null && s.refreshLeaseUntil.getTime() > Date.now();
  }

  /**
   * Stores what a provider refresh returned (its refresh token may have rotated) at once, before
   * anything else can fail, so the next refresh sends the provider its newest token.
   */
  async storeProviderTokens(
    id: string,
    update: { providerRefreshToken?: string | null; idToken?: string | null; grantedScope?: string | null },
  ): Promise<void> {
    await this.prisma.session.updateMany({
      where: { id },
      data: {
        lastUsedAt: new Date(),
        providerRefreshedAt: new Date(),
        ...(update.providerRefreshToken ? { providerRefreshTokenEnc: this.box.seal(update.providerRefreshToken, SEAL_REFRESH) } : {}),
        ...(update.idToken ? { idTokenEnc: this.box.seal(update.idToken, SEAL_ID_TOKEN) } : {}),
        ...(update.grantedScope ? { grantedScope: update.grantedScope } : {}),
      },
    });
  }

  /**
   * Moves the session to a new refresh-token id, only if `expectedRefreshTokenId` is still the
   * current one and the session is live; the old id becomes the previous one (reuse grace).
   * Null when the compare-and-set lost.
   */
  async rotate(id: string, expectedRefreshTokenId: string): Promise<Session | null> {
    const now = new Date();
    const { count } = await this.prisma.session.updateMany({
      where: { id, refreshTokenId: expectedRefreshTokenId, ...live() },
      data: { refreshTokenId: newId(), previousRefreshTokenId: expectedRefreshTokenId, rotatedAt: now, lastUsedAt: now },
    });
    return count === 1 ? this.get(id) : null;
  }

  /** `label`: the reason's metrics label, when `reason` is not one of REVOCATION_REASONS. */
  async revoke(id: string, reason: string, label?: RevocationReason): Promise<boolean> {
    const { count } = await this.prisma.session.updateMany({
      where: { id, revokedAt: null },
      data: { revokedAt: new Date(), revokedReason: reason },
    });
    if (count > 0) this.revoked([id], reason, label);
    return count > 0;
  }

  /** Every live session of one user (deactivated, deleted, tokens deactivated). */
  async revokeAllOfUser(userId: number, reason: string): Promise<string[]> {
    const sessions = await this.prisma.session.findMany({ where: { userId, revokedAt: null }, select: { id: true } });
    if (sessions.length) {
      await this.prisma.session.updateMany({ where: { id: { in: sessions.map((x) => x.id) }, revokedAt: null }, data: { revokedAt: new Date(), revokedReason: reason } });
    }
    this.revoked(sessions.map((x) => x.id), reason);
    return sessions.map((x) => x.id);
  }

  /**
   * Every live session of one connection (it was removed or pointed elsewhere), in one UPDATE:
   * their ids are not loaded (a connection may have millions), so they are counted but not
   * announced one by one; SessionService tells its listeners the connection instead.
   */
  async revokeAllOf(pluginId: string, reason: string): Promise<number> {
    const { count } = await this.prisma.session.updateMany({
      where: { pluginId, revokedAt: null },
      data: { revokedAt: new Date(), revokedReason: reason },
    });
    if (count > 0) this.metrics?.sessionsRevoked(reason, count);
    return count;
  }

  /**
   * Back-channel logout in one transaction: remembers the logout token (issuer + jti) until it
   * expires, and ends the matching sessions. 'replayed' when the token was used before (on
   * whatever instance): nothing ends then. If ending fails, the token is not remembered either,
   * so the provider's retry is honoured.
   */
  async logoutByToken(
    token: { issuer: string; jti: string; rememberUntil: Date },
    where: { pluginId: string; providerSid?: string | undefined; subject?: string | undefined; createdBefore: Date },
    reason: string,
  ): Promise<'replayed' | Session[]> {
    const ended = await this.prisma.$transaction(async (tx) => {
      const { count } = await tx.usedLogoutToken.createMany({ data: [{ issuer: token.issuer, jti: token.jti, expiresAt: token.rememberUntil }], skipDuplicates: true });
      if (count !== 1) return 'replayed' as const;
      const filter = {
        pluginId: where.pluginId,
        issuer: token.issuer,
        revokedAt: null,
        createdAt: { lte: where.createdBefore },
        ...(where.providerSid ? { providerSid: where.providerSid } : {}),
        ...(where.subject ? { subject: where.subject } : {}),
      };
      const sessions = await tx.session.findMany({ where: filter });
      if (sessions.length) {
        await tx.session.updateMany({ where: { id: { in: sessions.map((x) => x.id) }, revokedAt: null }, data: { revokedAt: new Date(), revokedReason: reason } });
      }
      return sessions;
    });
    if (ended !== 'replayed') this.revoked(ended.map((x) => x.id), reason);
    return ended;
  }
}
