/**
 * Who one of our own access tokens speaks for, checked against the database.
 */
import type { Prisma } from '../db/database.ts';
import type { Principal } from '../accounts/principal.ts';
import { knownPermissions } from '../accounts/users.ts';
import { parseGlobalIdOf } from '../graphql/global-id.ts';
import type { AccessTokenClaims } from '../tokens/jwt.ts';

/**
 * The user behind verified access-token claims: the user exists, is active, and the token's
 * key is the user's current one (tokensDeactivateAll rotates it). Null otherwise.
 * The permissions are the token's own (Saleor: the request is authenticated with them).
 */
export async function principalFromAccessClaims(
  prisma: Prisma,
  claims: AccessTokenClaims,
): Promise<Extract<Principal, { kind: 'user' }> | null> {
  const id = parseGlobalIdOf('User', claims.user_id);
  if (id === null) return null;
  const user = await prisma.user.findUnique({ where: { id } });
  if (!user || !user.isActive || user.tokenKey !== claims.token) return null;
  return {
    kind: 'user',
    owner: claims.owner,
    user,
    permissions: knownPermissions(Array.isArray(claims.permissions) ? claims.permissions : []),
    isStaff: claims.is_staff === true,
  };
}
