/**
 * The server-side record behind an authorization request's `state` (Saleor's state is only a
 * signed copy of the redirect URI; ours names this record): redirect URI, nonce, PKCE
 * verifier, connection, expiry. Consumed once, atomically. Only a hash of the state is stored.
 */
import type { Prisma } from '../../db/database.ts';
import { hashToken, randomToken, type SecretBox } from '../../crypto/secret-box.ts';

export const AUTHORIZATION_REQUEST_TTL_SECONDS = 600;
const SEAL_VERIFIER = 'authorization-request:code-verifier';
const CLEANUP_INTERVAL_MS = 60_000;

export interface PendingAuthorization {
  redirectUri: string;
  nonce: string;
  codeVerifier: string;
}

export class AuthorizationRequests {
  private lastCleanup = 0;

  constructor(
    private readonly prisma: Prisma,
    private readonly box: SecretBox,
  ) {}

  /** Stores a new request and returns its `state` value. */
  async create(pluginId: string, pending: PendingAuthorization): Promise<string> {
    const state = randomToken(32);
    await this.prisma.authorizationRequest.create({
      data: {
        stateHash: hashToken(state),
        pluginId,
        redirectUri: pending.redirectUri,
        nonce: pending.nonce,
        codeVerifierEncrypted: this.box.seal(pending.codeVerifier, SEAL_VERIFIER),
        expiresAt: new Date(Date.now() + AUTHORIZATION_REQUEST_TTL_SECONDS * 1000),
      },
    });
    await this.cleanup();
    return state;
  }

  /**
   * Marks the request used and returns it; null when the state is unknown, belongs to another
   * connection, has expired, or was used already.
   */
  async consume(pluginId: string, state: string): Promise<PendingAuthorization | null> {
    if (state.length > 512) return null;
    const stateHash = hashToken(state);
    const { count } = await this.prisma.authorizationRequest.updateMany({
      where: { stateHash, pluginId, consumedAt: null, expiresAt: { gt: new Date() } },
      data: { consumedAt: new Date() },
    });
    if (count !== 1) return null;
    const row = await this.prisma.authorizationRequest.findUnique({ where: { stateHash } });
    if (!row) return null;
    return { redirectUri: row.redirectUri, nonce: row.nonce, codeVerifier: this.box.open(row.codeVerifierEncrypted, SEAL_VERIFIER) };
  }

  /** Drops records that expired an hour ago (at most once a minute). */
  private async cleanup(): Promise<void> {
    if (Date.now() - this.lastCleanup < CLEANUP_INTERVAL_MS) return;
    this.lastCleanup = Date.now();
    await this.prisma.authorizationRequest.deleteMany({ where: { expiresAt: { lt: new Date(Date.now() - 3600_000) } } });
  }
}
