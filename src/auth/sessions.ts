/**
 * Login sessions behind our refresh tokens. A refresh token names its session and the one
 * refresh-token id that is currently valid; every refresh rotates that id with a
 * compare-and-set, so a replayed (rotated) refresh token is detected and the whole session is
 * revoked. The provider's refresh token and id_token stay here, sealed with the server secret.
 */
import { randomBytes } from 'node:crypto';
import type { Prisma } from '../db/database.ts';
import type { SecretBox } from '../crypto/secret-box.ts';
import type { Session } from '../generated/prisma/client.ts';

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
  ) {}

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
   * Stores what a provider refresh returned (its refresh token may have rotated), only while
   * `expectedRefreshTokenId` is still current and the session live. Done before anything else
   * can fail, so a retry with the same refresh token finds the provider's newest token.
   */
  async storeProviderTokens(
    s: Session,
    expectedRefreshTokenId: string,
    update: { providerRefreshToken?: string | null; idToken?: string | null; grantedScope?: string | null },
  ): Promise<boolean> {
    const { count } = await this.prisma.session.updateMany({
      where: { id: s.id, refreshTokenId: expectedRefreshTokenId, revokedAt: null, expiresAt: { gt: new Date() } },
      data: {
        lastUsedAt: new Date(),
        ...(update.providerRefreshToken ? { providerRefreshTokenEnc: this.box.seal(update.providerRefreshToken, SEAL_REFRESH) } : {}),
        ...(update.idToken ? { idTokenEnc: this.box.seal(update.idToken, SEAL_ID_TOKEN) } : {}),
        ...(update.grantedScope ? { grantedScope: update.grantedScope } : {}),
      },
    });
    return count === 1;
  }

  /**
   * Moves the session to a new refresh-token id, only if `expectedRefreshTokenId` is still the
   * current one and the session is live. Returns the updated session, or null when another
   * refresh won the race or the token was already rotated (the caller treats that as reuse).
   */
  async rotate(s: Session, expectedRefreshTokenId: string): Promise<Session | null> {
    const { count } = await this.prisma.session.updateMany({
      where: { id: s.id, refreshTokenId: expectedRefreshTokenId, revokedAt: null, expiresAt: { gt: new Date() } },
      data: { refreshTokenId: newId(), lastUsedAt: new Date() },
    });
    return count === 1 ? this.get(s.id) : null;
  }

  async revoke(id: string, reason: string): Promise<boolean> {
    const { count } = await this.prisma.session.updateMany({
      where: { id, revokedAt: null },
      data: { revokedAt: new Date(), revokedReason: reason },
    });
    return count > 0;
  }

  /** Every live session of one connection (it was removed or pointed elsewhere). */
  async revokeAllOf(pluginId: string, reason: string): Promise<number> {
    const { count } = await this.prisma.session.updateMany({
      where: { pluginId, revokedAt: null },
      data: { revokedAt: new Date(), revokedReason: reason },
    });
    return count;
  }

  /** Back-channel logout: by the provider's session id, or every session of a subject. */
  async revokeByProvider(
    where: { pluginId: string; issuer: string; providerSid?: string | undefined; subject?: string | undefined },
    reason: string,
  ): Promise<Session[]> {
    const filter = {
      pluginId: where.pluginId,
      issuer: where.issuer,
      revokedAt: null,
      ...(where.providerSid ? { providerSid: where.providerSid } : {}),
      ...(where.subject ? { subject: where.subject } : {}),
    };
    const sessions = await this.prisma.session.findMany({ where: filter });
    if (sessions.length) {
      await this.prisma.session.updateMany({
        where: { id: { in: sessions.map((s) => s.id) }, revokedAt: null },
        data: { revokedAt: new Date(), revokedReason: reason },
      });
    }
    return sessions;
  }
}
