/**
 * me, user, and the User and Group types (the lists are in ./lists.ts).
 */
import type { User } from '../../generated/prisma/client.ts';
import type { AuthenticatedUser, Principal } from '../../accounts/principal.ts';
import { effectivePermissions, normalizeEmail } from '../../accounts/users.ts';
import { PERMISSIONS, type PermissionCode } from '../../accounts/permissions.ts';
import { parseGlobalIdOf, toGlobalId } from '../global-id.ts';
import { requirePermission, type GraphQLContext } from '../context.ts';

/**
 * A User as resolvers pass it around. `granted` is set when the user comes with the
 * permissions of a token (me, login results): then those are shown, not the stored ones.
 */
export type UserNode = User & { granted?: { permissions: PermissionCode[]; isStaff: boolean } };

const nodes = new WeakMap<AuthenticatedUser, UserNode>();

/** The User of a login or a request's principal (built once per principal: principals are cached). */
export function userNode(auth: AuthenticatedUser): UserNode {
  let node = nodes.get(auth);
  if (!node) {
    node = { ...auth.user, granted: { permissions: auth.permissions, isStaff: auth.isStaff } };
    nodes.set(auth, node);
  }
  return node;
}

const PERMISSION_BY_CODE = new Map(PERMISSIONS.map((p) => [p.code, p]));
export const permissionView = (code: PermissionCode) => ({ code, name: PERMISSION_BY_CODE.get(code)?.name ?? code });

function metadataList(value: unknown): Array<{ key: string; value: string }> {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return [];
  return Object.entries(value as Record<string, unknown>).map(([key, v]) => ({ key, value: String(v) }));
}

const USER_ADMIN: PermissionCode[] = ['MANAGE_USERS', 'MANAGE_STAFF'];

export const userResolvers = {
  Query: {
    // Synchronous when the principal is already known (the hot path: no promise to resolve).
    me: (_: unknown, __: unknown, ctx: GraphQLContext): UserNode | null | Promise<UserNode | null> => {
      const asUser = (p: Principal | null) => (p?.kind === 'user' ? userNode(p) : null);
      const now = ctx.principalNow();
      return now !== undefined ? asUser(now) : ctx.principal().then(asUser);
    },
    user: async (
      _: unknown,
      args: { id?: string | null; email?: string | null; externalReference?: string | null },
      ctx: GraphQLContext,
    ): Promise<User | null> => {
      await requirePermission(ctx, USER_ADMIN);
      const prisma = ctx.app.db.prisma;
      if (args.id) {
        const id = parseGlobalIdOf('User', args.id);
        return id === null ? null : prisma.user.findUnique({ where: { id } });
      }
      if (args.email) return prisma.user.findUnique({ where: { email: normalizeEmail(args.email) } });
      if (args.externalReference) return prisma.user.findUnique({ where: { externalReference: args.externalReference } });
      return null;
    },
  },
  User: {
    id: (u: UserNode) => toGlobalId('User', u.id),
    isStaff: (u: UserNode) => u.granted?.isStaff ?? u.isStaff,
    metadata: (u: UserNode) => metadataList(u.metadata),
    privateMetadata: async (u: UserNode, _: unknown, ctx: GraphQLContext) => {
      await requirePermission(ctx, USER_ADMIN);
      return metadataList(u.privateMetadata);
    },
    userPermissions: async (u: UserNode, _: unknown, ctx: GraphQLContext) => {
      const codes = u.granted?.permissions ?? (await effectivePermissions(ctx.app.db.prisma, u));
      return codes.map(permissionView);
    },
    permissionGroups: (u: UserNode, _: unknown, ctx: GraphQLContext) =>
      ctx.app.db.prisma.permissionGroup.findMany({
        where: { members: { some: { userId: u.id } } },
        orderBy: { name: 'asc' },
      }),
  },
  Group: {
    id: (g: { id: number }) => toGlobalId('Group', g.id),
    permissions: (g: { permissions: string[] }) =>
      g.permissions.filter((p): p is PermissionCode => PERMISSION_BY_CODE.has(p as PermissionCode)).map((p) => permissionView(p)),
    users: async (g: { id: number }, _: unknown, ctx: GraphQLContext) => {
      await requirePermission(ctx, ['MANAGE_STAFF']);
      return ctx.app.db.prisma.user.findMany({ where: { groups: { some: { groupId: g.id } } }, orderBy: { email: 'asc' } });
    },
  },
};
