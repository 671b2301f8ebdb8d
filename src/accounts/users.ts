/**
 * Users, their groups and permissions.
 */
import { randomBytes } from 'node:crypto';
import type { Prisma } from '../db/database.ts';
import type { User } from '../generated/prisma/client.ts';
import { FieldError } from '../errors.ts';
import { isPermissionCode, sortPermissions, type PermissionCode } from './permissions.ts';

/** A new random key for `User.tokenKey`. */
export function newTokenKey(): string {
  return randomBytes(16).toString('base64url');
}

/** Emails are stored lower-cased: that is what makes them unique case-insensitively. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

const EMAIL_SHAPE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export function isValidEmail(email: string): boolean {
  return email.length <= 254 && EMAIL_SHAPE.test(email);
}

export function knownPermissions(values: readonly string[]): PermissionCode[] {
  return sortPermissions(values.filter(isPermissionCode));
}

/** Direct permissions plus those of every group the user is in. */
export async function effectivePermissions(prisma: Prisma, user: Pick<User, 'id' | 'permissions'>): Promise<PermissionCode[]> {
  const groups = await prisma.permissionGroup.findMany({
    where: { members: { some: { userId: user.id } } },
    select: { permissions: true },
  });
  return knownPermissions([...user.permissions, ...groups.flatMap((g) => g.permissions)]);
}

/**
 * Creates a staff user, or promotes an existing one: active, staff, and exactly the given
 * direct permissions. (Operator bootstrap; see `npm run cli -- staff create`.)
 */
export async function upsertStaffUser(
  prisma: Prisma,
  input: { email: string; permissions: readonly PermissionCode[] },
): Promise<User> {
  const email = normalizeEmail(input.email);
  if (!isValidEmail(email)) throw new FieldError('email', 'INVALID', `Not a valid email address: ${input.email}`);
  const permissions = sortPermissions(input.permissions);
  return prisma.user.upsert({
    where: { email },
    create: { email, isStaff: true, isActive: true, isConfirmed: true, permissions, tokenKey: newTokenKey() },
    update: { isStaff: true, isActive: true, permissions },
  });
}

/**
 * Invalidates every token of the user (Saleor's tokensDeactivateAll): a new token key kills
 * the access tokens, and revoking the sessions kills the refresh tokens. One transaction.
 * Returns the ids of the sessions it ended (for SessionService.announceRevoked).
 */
export async function deactivateAllTokens(prisma: Prisma, userId: number): Promise<string[]> {
  const [, ended] = await prisma.$transaction([
    prisma.user.update({ where: { id: userId }, data: { tokenKey: newTokenKey() }, select: { id: true } }),
    prisma.session.updateManyAndReturn({
      where: { userId, revokedAt: null },
      data: { revokedAt: new Date(), revokedReason: 'tokens-deactivated' },
      select: { id: true },
    }),
  ]);
  return ended.map((s) => s.id);
}
