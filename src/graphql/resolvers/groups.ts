/**
 * permissionGroup, permissionGroupCreate/Update/Delete (rules in src/accounts/groups-admin.ts),
 * and the fields that say who can manage what: Group.userCanManage, User.editableGroups,
 * UserPermission.sourcePermissionGroups. Everything here requires MANAGE_STAFF, and the mutations a
 * user (apps are refused, as in Saleor). After a change every affected user's cached principals
 * are forgotten (a group's permission change reaches all its members); every attempt is audited
 * (`group.create`, `group.update`, `group.delete`).
 *
 * Where we differ from Saleor: sourcePermissionGroups(userId) about another user requires
 * MANAGE_STAFF (Saleor answers anyone who can reach a UserPermission, e.g. through `me`); so does
 * User.editableGroups, even through `me` (Saleor checks nothing there: any staff user would see
 * the names and permissions of groups, which permissionGroup(s) keep to MANAGE_STAFF). Without
 * it: a PermissionDenied error, the field null.
 */
import { GraphQLError } from 'graphql';
import type { PermissionGroup } from '../../generated/prisma/client.ts';
import { canManageGroup, editableGroups, type Requester } from '../../accounts/manageable.ts';
import { effectivePermissions } from '../../accounts/users.ts';
import { createGroup, deleteGroup, updateGroup, type GroupChange, type GroupCreateInput, type GroupUpdateInput } from '../../accounts/groups-admin.ts';
import { parseGlobalIdOf } from '../global-id.ts';
import { requirePermission, type GraphQLContext } from '../context.ts';
import { runAdminMutation, type AdminErrorItem, type AdminMutation } from './staff.ts';
import type { UserNode } from './users.ts';

/** PermissionGroupErrorCode values. */
const GROUP_CODES: ReadonlySet<string> = new Set([
  'REQUIRED',
  'UNIQUE',
  'ASSIGN_NON_STAFF_MEMBER',
  'DUPLICATED_INPUT_ITEM',
  'CANNOT_REMOVE_FROM_LAST_GROUP',
  'LEFT_NOT_MANAGEABLE_PERMISSION',
  'OUT_OF_SCOPE_PERMISSION',
  'OUT_OF_SCOPE_USER',
  'OUT_OF_SCOPE_CHANNEL',
]);

const groupErrors = (items: AdminErrorItem[]) => ({ errors: items, permissionGroupErrors: items });

/** How group mutations report (the rest of AdminMutation is per call). */
const GROUP: Omit<AdminMutation<GroupChange>, 'type' | 'where' | 'target'> = {
  codes: GROUP_CODES,
  errorLists: groupErrors,
  success: (r) => ({ payload: { group: r.group }, audit: { detail: { groupId: r.group.id, ...r.detail } } }),
  failure: { group: null },
};

const run = (ctx: GraphQLContext, type: string, where: string, target: string | null, change: (requester: Requester) => Promise<GroupChange>) =>
  runAdminMutation(ctx, { ...GROUP, type, where, target }, change);

export const groupResolvers = {
  Query: {
    permissionGroup: async (_: unknown, args: { id: string }, ctx: GraphQLContext) => {
      await requirePermission(ctx, ['MANAGE_STAFF']);
      const id = parseGlobalIdOf('Group', args.id);
      return id === null ? null : ctx.app.db.prisma.permissionGroup.findUnique({ where: { id } });
    },
  },
  Mutation: {
    permissionGroupCreate: (_: unknown, args: { input: GroupCreateInput }, ctx: GraphQLContext) =>
      run(ctx, 'group.create', 'permissionGroupCreate', null, (r) => createGroup(ctx.app.db.prisma, r, args.input)),
    permissionGroupUpdate: (_: unknown, args: { id: string; input: GroupUpdateInput }, ctx: GraphQLContext) =>
      run(ctx, 'group.update', 'permissionGroupUpdate', args.id, (r) => updateGroup(ctx.app.db.prisma, r, args.id, args.input)),
    permissionGroupDelete: (_: unknown, args: { id: string }, ctx: GraphQLContext) =>
      run(ctx, 'group.delete', 'permissionGroupDelete', args.id, (r) => deleteGroup(ctx.app.db.prisma, r, args.id)),
  },
  Group: {
    /** The requesting user holds every permission of the group (apps and anonymous: false). */
    userCanManage: async (g: PermissionGroup, _: unknown, ctx: GraphQLContext) => {
      const principal = await ctx.principal();
      return principal?.kind === 'user' && canManageGroup(principal.permissions, g);
    },
  },
  User: {
    /**
     * The groups this user can manage (Saleor: of the user resolved, which for `me` is the
     * requester). Requires MANAGE_STAFF of the requester (ours).
     */
    editableGroups: async (u: UserNode, _: unknown, ctx: GraphQLContext) => {
      await requirePermission(ctx, ['MANAGE_STAFF']);
      const isStaff = u.granted?.isStaff ?? u.isStaff;
      if (!isStaff) return [];
      const permissions = u.granted?.permissions ?? (await effectivePermissions(ctx.app.db.prisma, u));
      const groups = await ctx.app.db.prisma.permissionGroup.findMany({ orderBy: { name: 'asc' } });
      return editableGroups({ isStaff, permissions }, groups);
    },
  },
  UserPermission: {
    /** The groups of user `userId` that grant this permission. */
    sourcePermissionGroups: async (p: { code: string }, args: { userId: string }, ctx: GraphQLContext) => {
      const userId = parseGlobalIdOf('User', args.userId);
      if (userId === null) throw new GraphQLError(`Couldn't resolve id: ${args.userId}.`, { extensions: { code: 'BAD_USER_INPUT' } });
      const principal = await ctx.principal();
      if (principal?.kind !== 'user' || principal.user.id !== userId) await requirePermission(ctx, ['MANAGE_STAFF']);
      return ctx.app.db.prisma.permissionGroup.findMany({
        where: { members: { some: { userId } }, permissions: { has: p.code } },
        orderBy: { name: 'asc' },
      });
    },
  },
};
