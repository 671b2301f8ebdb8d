/**
 * Who one of our own access tokens speaks for, checked against the database.
 *
 * Revocation reaches access tokens: the user must exist and be active, the token's key must be
 * the user's current one (tokensDeactivateAll rotates it), and a token minted for a session
 * (`sid`) dies with the session (logout, back-channel logout, replay, a removed connection).
 * Permissions come from the current user record (direct and group permissions, only while the
 * user is staff), limited to those the token was granted: a demoted user's old token loses what
 * was taken away, and a token never gains what it was not granted.
 */
import type { Prisma } from '../db/database.ts';
import type { Principal } from '../accounts/principal.ts';
import { effectivePermissions, knownPermissions } from '../accounts/users.ts';
import { parseGlobalIdOf } from '../core/ids.ts';
import type { AccessTokenClaims } from '../tokens/jwt.ts';

/** The user behind verified access-token claims, or null when the token no longer speaks for anyone. */
export async function principalFromAccessClaims(
  prisma: Prisma,
  claims: AccessTokenClaims,
): Promise<Extract<Principal, { kind: 'user' }> | null> {
  const id = parseGlobalIdOf('User', claims.user_id);
  if (id === null) return null;
  const [user, session] = await Promise.all([
    prisma.user.findUnique({ where: { id } }),
    typeof claims.sid === 'string' ? prisma.session.findUnique({ where: { id: claims.sid }, select: { revokedAt: true, userId: true } }) : undefined,
  ]);
  if (!user || !user.isActive || user.tokenKey !== claims.token) return null;
  if (session === null || (session && (session.revokedAt !== null || session.userId !== user.id))) return null;
  const isStaff = user.isStaff && claims.is_staff === true;
  const granted = new Set(knownPermissions(Array.isArray(claims.permissions) ? claims.permissions : []));
  const permissions = isStaff ? (await effectivePermissions(prisma, user)).filter((p) => granted.has(p)) : [];
  return { kind: 'user', owner: claims.owner, user, permissions, isStaff };
}
