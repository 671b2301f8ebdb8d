/**
 * The JWTs we mint and verify: access and refresh tokens with Saleor's claim names, so the
 * Dashboard and Saleor Apps read them, but with our own short lifetime and no provider token
 * inside (see saleor-contract.md section 3).
 */
import { randomUUID } from 'node:crypto';
import { SignJWT, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { Keyring } from './keyring.ts';
import { toGlobalId } from '../core/ids.ts';

/** Owner of tokens minted by the core (the CLI); plugin-minted tokens carry the plugin id. */
export const CORE_TOKEN_OWNER = 'saleor';

export type TokenType = 'access' | 'refresh';

export interface AccessTokenClaims extends JWTPayload {
  iat: number;
  exp: number;
  iss: string;
  jti: string;
  owner: string;
  type: 'access';
  /** The user's token key; rotating it (tokensDeactivateAll) kills every token. */
  token: string;
  email: string;
  user_id: string;
  is_staff: boolean;
  permissions: string[];
  /** Our session the token was minted for (login/refresh); it dies with the session. */
  sid?: string;
}

export interface RefreshTokenClaims extends JWTPayload {
  iat: number;
  exp: number;
  iss: string;
  jti: string;
  owner: string;
  type: 'refresh';
  token: string;
  email: string;
  user_id: string;
  /** Our server-side session; the provider's refresh token never leaves the database. */
  sid: string;
  /** Id of this refresh token within its session; only the newest one is valid (rotation). */
  rti: string;
  csrf_token: string;
}

export type OurTokenClaims = AccessTokenClaims | RefreshTokenClaims;

export interface TokenSubject {
  id: number;
  email: string;
  tokenKey: string;
  isStaff: boolean;
}

/** Saleor's JWT error codes (AccountErrorCode). */
export type JwtErrorCode = 'JWT_SIGNATURE_EXPIRED' | 'JWT_DECODE_ERROR' | 'JWT_INVALID_TOKEN';

export type VerifyResult =
  | { ok: true; claims: OurTokenClaims; kid: string }
  | { ok: false; code: JwtErrorCode; message: string; ours: boolean };

export class TokenService {
  constructor(
    private readonly keyring: Keyring,
    private readonly issuer: string,
    private readonly accessTtlSeconds: number,
    private readonly refreshTtlSeconds: number,
  ) {}

  get accessTokenTtl(): number {
    return this.accessTtlSeconds;
  }

  get refreshTokenTtl(): number {
    return this.refreshTtlSeconds;
  }

  private async sign(claims: Record<string, unknown>, ttlSeconds: number): Promise<string> {
    const key = this.keyring.signingKey();
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ ...claims, iss: this.issuer, iat: now, exp: now + ttlSeconds, jti: randomUUID() })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
      .sign(key.privateKey);
  }

  /** `sessionId`: the session the token belongs to (it stops working when the session ends). */
  mintAccessToken(user: TokenSubject, permissions: readonly string[], owner: string, sessionId?: string): Promise<string> {
    return this.mintAccessTokenWithTtl(user, permissions, owner, this.accessTtlSeconds, sessionId);
  }

  /** An access token with a lifetime of its own (operator bootstrap tokens). */
  mintAccessTokenWithTtl(user: TokenSubject, permissions: readonly string[], owner: string, ttlSeconds: number, sessionId?: string): Promise<string> {
    return this.sign(
      {
        owner,
        type: 'access',
        token: user.tokenKey,
        email: user.email,
        user_id: toGlobalId('User', user.id),
        is_staff: user.isStaff,
        permissions: [...permissions],
        ...(sessionId ? { sid: sessionId } : {}),
      },
      ttlSeconds,
    );
  }

  mintRefreshToken(
    user: TokenSubject,
    owner: string,
    session: { id: string; refreshTokenId: string; csrfToken: string; expiresAt: Date },
  ): Promise<string> {
    const ttl = Math.max(1, Math.floor((session.expiresAt.getTime() - Date.now()) / 1000));
    return this.sign(
      {
        owner,
        type: 'refresh',
        token: user.tokenKey,
        email: user.email,
        user_id: toGlobalId('User', user.id),
        sid: session.id,
        rti: session.refreshTokenId,
        csrf_token: session.csrfToken,
      },
      Math.min(ttl, this.refreshTtlSeconds),
    );
  }

  /**
   * Verifies one of our tokens: known kid, the key's own algorithm, not expired.
   * `ours: false` in a failure means the token is not ours at all (other kid / not a JWT), so
   * another authenticator (a plugin) may try it.
   */
  async verify(token: string, expectedType?: TokenType): Promise<VerifyResult> {
    let kid: string | undefined;
    try {
      const header = decodeProtectedHeader(token);
      kid = typeof header.kid === 'string' ? header.kid : undefined;
    } catch {
      return { ok: false, code: 'JWT_DECODE_ERROR', message: 'Invalid token.', ours: false };
    }
    const key = kid === undefined ? undefined : await this.keyring.verificationKey(kid);
    if (!kid || !key) {
      return { ok: false, code: 'JWT_DECODE_ERROR', message: 'Invalid token.', ours: false };
    }
    let payload: JWTPayload;
    try {
      // `iss` is required but not compared with this process's PUBLIC_URL: what makes a
      // token ours is the signature by one of our own keys (the kid names a key in our
      // database). The CLI may mint tokens without knowing the server's PUBLIC_URL, and a
      // deployment that changes its URL must not invalidate every token at once.
      ({ payload } = await jwtVerify(token, key.publicKey, {
        algorithms: [key.alg],
        requiredClaims: ['iss', 'exp', 'iat', 'type', 'owner', 'user_id', 'token'],
      }));
    } catch (e) {
      if (e instanceof joseErrors.JWTExpired) {
        return { ok: false, code: 'JWT_SIGNATURE_EXPIRED', message: 'Signature has expired', ours: true };
      }
      return { ok: false, code: 'JWT_DECODE_ERROR', message: 'Invalid token.', ours: true };
    }
    const type = payload['type'];
    if ((type !== 'access' && type !== 'refresh') || (expectedType && type !== expectedType)) {
      return { ok: false, code: 'JWT_INVALID_TOKEN', message: 'Invalid token type.', ours: true };
    }
    return { ok: true, claims: payload as OurTokenClaims, kid };
  }
}
