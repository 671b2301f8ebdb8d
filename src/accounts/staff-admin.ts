/**
 * staffCreate, staffUpdate and staffDelete under Saleor's rules
 * (saleor/graphql/account/mutations/staff/). The resolver checks MANAGE_STAFF and refuses apps;
 * here each mutation is one transaction, serialised with every other staff or group change
 * (adminTransaction), that loads the world, asks the pure plan* functions and writes only when
 * they found nothing: a refused mutation writes nothing, and two concurrent changes cannot
 * together leave a permission unmanageable. The requester is judged as that locked snapshot has
 * them, not by the request's principal, which may be cached (up to 30 s stale, on another
 * instance than the one that demoted them): they must still be an active staff user, their
 * permissions are the snapshot's ∩ those their token grants, and without MANAGE_STAFF among them
 * the mutation is refused (StaffManagerRequired; the resolver's PermissionDenied) before anything
 * else is checked. Errors are StaffError (AccountErrorCode):
 * - staffCreate: email REQUIRED / INVALID / UNIQUE (a staff user has it). An existing non-staff
 *   user with that email is promoted (Saleor), unless their permissions exceed the requester's
 *   (OUT_OF_SCOPE_USER, ours). addGroups the requester cannot manage: OUT_OF_SCOPE_GROUP;
 *   addPermissions they lack: OUT_OF_SCOPE_PERMISSION. New staff are confirmed (the admin vouches
 *   for the email, so a login with a verified email links to the account).
 * - staffUpdate: unknown id: NOT_FOUND; a user whose permissions exceed the requester's:
 *   OUT_OF_SCOPE_USER; the same item in add and remove: DUPLICATED_INPUT_ITEM (field `groups` or
 *   `permissions`); then OUT_OF_SCOPE_GROUP and OUT_OF_SCOPE_PERMISSION (adding and removing),
 *   DEACTIVATE_OWN_ACCOUNT, email REQUIRED / INVALID / UNIQUE, LEFT_NOT_MANAGEABLE_PERMISSION.
 *   As in Saleor, the updated user is staff afterwards.
 * - staffDelete: DELETE_OWN_ACCOUNT, DELETE_NON_STAFF_USER, OUT_OF_SCOPE_USER,
 *   LEFT_NOT_MANAGEABLE_PERMISSION. Deleting cascades to identities, sessions and memberships.
 * - Deactivation ends the user's sessions and rotates their token key, so reactivating them does
 *   not revive old access tokens.
 *
 * Where we differ from Saleor: no passwords, notes, metadata, addresses or channels (`redirectUrl`
 * is accepted and ignored: there is no password to set); direct permissions are managed with
 * addPermissions/removePermissions under the out-of-scope rule Saleor applies to groups; unknown
 * group ids are a typed NOT_FOUND (Saleor: a top-level error); see manageable.ts for the rest.
 */
import type { Prisma } from '../db/database.ts';
import type { User } from '../generated/prisma/client.ts';
import { FieldErrors } from '../errors.ts';
import { parseGlobalIdOf, toGlobalId } from '../core/ids.ts';
import { isValidEmail, knownPermissions, newTokenKey, normalizeEmail } from './users.ts';
import { sortPermissions, type PermissionCode } from './permissions.ts';
import {
  RuleError,
  canManageGroup,
  duplicateGroups,
  duplicatePermissions,
  duplicates,
  isOutOfScopeUser,
  lostManageablePermissions,
  makeWorld,
  permissionErrors,
  permissionsOf,
  requesterIn,
  resolveIds,
  StaffManagerRequired,
  withUser,
  withoutUser,
  type Requester,
  type World,
  type WorldUser,
} from './manageable.ts';

export type Tx = Parameters<Parameters<Prisma['$transaction']>[0]>[0];

/** One transaction, serialised across processes with every other staff or group change. */
export function adminTransaction<T>(prisma: Prisma, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return prisma.$transaction(async (tx) => {
    await tx.$queryRaw`SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock(hashtext('staff-and-permission-groups'))) AS l`;
    return fn(tx);
  });
}

/**
 * Every group, and every user who is staff, in a group, the requester or named in `extraUserIds`;
 * and the requester as this snapshot has them (requesterIn), whom the change must be judged by:
 * the request's principal may be cached, so stale. Throws StaffManagerRequired (nothing written)
 * when they may no longer manage staff.
 */
export async function loadWorld(tx: Tx, requester: Requester, extraUserIds: readonly number[] = []): Promise<{ world: World; requester: Requester }> {
  const groups = await tx.permissionGroup.findMany({ select: { id: true, name: true, permissions: true } });
  const users = await tx.user.findMany({
    where: { OR: [{ isStaff: true }, { groups: { some: {} } }, { id: { in: [requester.userId, ...extraUserIds] } }] },
    select: { id: true, isActive: true, isStaff: true, permissions: true, groups: { select: { groupId: true } } },
  });
  const world = makeWorld(
    users.map(({ groups: memberships, ...u }) => ({ ...u, permissions: knownPermissions(u.permissions), groupIds: memberships.map((g) => g.groupId) })),
    groups.map((g) => ({ ...g, permissions: knownPermissions(g.permissions) })),
  );
  const current = requesterIn(world, requester);
  if (!current) throw new StaffManagerRequired();
  return { world, requester: current };
}

/** Ends every live session of a user. Alone, so that the session service can take it over. */
export async function endUserSessions(db: Tx, userId: number, reason: string): Promise<string[]> {
  const ended = await db.session.updateManyAndReturn({ where: { userId, revokedAt: null }, data: { revokedAt: new Date(), revokedReason: reason }, select: { id: true } });
  return ended.map((s) => s.id);
}

function groupRefs(world: World, requester: Requester, raw: readonly string[] | null | undefined, field: string) {
  const { ids, unknown } = resolveIds(raw, 'Group', (id) => world.groups.has(id));
  const errors: RuleError[] = [];
  if (unknown.length) errors.push(new RuleError(field, 'NOT_FOUND', "Couldn't resolve these groups.", { groups: unknown }));
  // get_groups_which_user_can_manage: only staff manage groups.
  const outOfScope = ids.filter((id) => !requester.isStaff || !canManageGroup(requester.permissions, world.groups.get(id)!));
  if (outOfScope.length) {
    errors.push(new RuleError(field, 'OUT_OF_SCOPE_GROUP', "You can't manage these groups.", { groups: outOfScope.map((id) => toGlobalId('Group', id)) }));
  }
  return { ids, errors };
}

function emailErrors(email: string, takenByOther: boolean): RuleError[] {
  if (!email) return [new RuleError('email', 'REQUIRED', 'This field cannot be blank.')];
  if (!isValidEmail(email)) return [new RuleError('email', 'INVALID', 'Enter a valid email address.')];
  return takenByOther ? [new RuleError('email', 'UNIQUE', 'User with this Email already exists.')] : [];
}

export interface StaffFields {
  email?: string | null;
  firstName?: string | null;
  lastName?: string | null;
  isActive?: boolean | null;
  addGroups?: string[] | null;
  addPermissions?: PermissionCode[] | null;
}
export interface StaffCreateInput extends StaffFields {
  /** Saleor's set-password link; accepted and ignored (no passwords here). */
  redirectUrl?: string | null;
}
export interface StaffUpdateInput extends StaffFields {
  removeGroups?: string[] | null;
  removePermissions?: PermissionCode[] | null;
}

export interface StaffPlan {
  errors: RuleError[];
  /** The user as the change leaves them. */
  next: WorldUser;
  addGroups: number[];
  removeGroups: number[];
}

const refused = (errors: RuleError[], next: WorldUser): StaffPlan => ({ errors, next, addGroups: [], removeGroups: [] });
const union = <T>(a: readonly T[], b: readonly T[], minus: readonly T[] = []) => [...new Set([...a, ...b])].filter((x) => !minus.includes(x));

/** staffCreate's rules; `existing` is the user who has the email, if any (in `world`). */
export function planStaffCreate(world: World, requester: Requester, input: StaffCreateInput, existing: WorldUser | null): StaffPlan {
  const errors = emailErrors(normalizeEmail(input.email ?? ''), existing?.isStaff === true);
  if (!errors.length && existing && isOutOfScopeUser(requester.permissions, permissionsOf(world, existing))) {
    errors.push(new RuleError('email', 'OUT_OF_SCOPE_USER', "You can't manage this user.", { users: [toGlobalId('User', existing.id)] }));
  }
  const add = groupRefs(world, requester, input.addGroups, 'addGroups');
  errors.push(...add.errors, ...permissionErrors(requester, input.addPermissions, 'addPermissions'));
  const next: WorldUser = {
    id: existing?.id ?? 0,
    isStaff: true,
    isActive: input.isActive ?? existing?.isActive ?? true,
    permissions: sortPermissions([...(existing?.permissions ?? []), ...(input.addPermissions ?? [])]),
    groupIds: union(existing?.groupIds ?? [], add.ids),
  };
  return { errors, next, addGroups: add.ids, removeGroups: [] };
}

/** staffUpdate's rules; `emailOwnerId` is who has the new email now, if anyone. */
export function planStaffUpdate(world: World, requester: Requester, target: WorldUser, input: StaffUpdateInput, emailOwnerId: number | null): StaffPlan {
  if (isOutOfScopeUser(requester.permissions, permissionsOf(world, target))) {
    return refused([new RuleError('id', 'OUT_OF_SCOPE_USER', "You can't manage this user.")], target);
  }
  const dupGroups = duplicates(input.addGroups, input.removeGroups);
  const dupPermissions = duplicates(input.addPermissions, input.removePermissions);
  if (dupGroups.length || dupPermissions.length) {
    return refused([...(dupGroups.length ? [duplicateGroups(dupGroups)] : []), ...(dupPermissions.length ? [duplicatePermissions(dupPermissions)] : [])], target);
  }
  const add = groupRefs(world, requester, input.addGroups, 'addGroups');
  const remove = groupRefs(world, requester, input.removeGroups, 'removeGroups');
  const errors = [
    ...add.errors,
    ...remove.errors,
    ...permissionErrors(requester, input.addPermissions, 'addPermissions'),
    ...permissionErrors(requester, input.removePermissions, 'removePermissions'),
  ];
  if (input.isActive === false && target.id === requester.userId) {
    errors.push(new RuleError('isActive', 'DEACTIVATE_OWN_ACCOUNT', 'Cannot deactivate your own account.'));
  }
  if (input.email != null) errors.push(...emailErrors(normalizeEmail(input.email), emailOwnerId !== null && emailOwnerId !== target.id));
  const next: WorldUser = {
    ...target,
    isStaff: true,
    isActive: input.isActive ?? target.isActive,
    permissions: sortPermissions(union(target.permissions, input.addPermissions ?? [], input.removePermissions ?? [])),
    groupIds: union(target.groupIds, add.ids, remove.ids),
  };
  const lost = lostManageablePermissions(world, withUser(world, next));
  if (lost.length) {
    const field = input.isActive === false ? 'isActive' : input.removePermissions?.length ? 'removePermissions' : 'removeGroups';
    errors.push(new RuleError(field, 'LEFT_NOT_MANAGEABLE_PERMISSION', 'Some permissions would be left without anyone who can manage them.', { permissions: lost }));
  }
  return { errors, next, addGroups: add.ids, removeGroups: remove.ids };
}

/** staffDelete's rules. */
export function planStaffDelete(world: World, requester: Requester, target: WorldUser): RuleError[] {
  if (target.id === requester.userId) return [new RuleError('id', 'DELETE_OWN_ACCOUNT', 'You cannot delete your own account.')];
  const users = [toGlobalId('User', target.id)];
  const errors: RuleError[] = [];
  if (!target.isStaff) errors.push(new RuleError('id', 'DELETE_NON_STAFF_USER', 'Cannot delete a non-staff user.', { users }));
  if (isOutOfScopeUser(requester.permissions, permissionsOf(world, target))) {
    errors.push(new RuleError('id', 'OUT_OF_SCOPE_USER', "You can't manage this user.", { users }));
  }
  const lost = lostManageablePermissions(world, withoutUser(world, target.id));
  if (lost.length) {
    errors.push(new RuleError('id', 'LEFT_NOT_MANAGEABLE_PERMISSION', 'User cannot be removed, some of permissions will not be manageable.', { permissions: lost }));
  }
  return errors;
}

export interface StaffChange {
  user: User;
  /** Users whose cached principals must be forgotten. */
  affectedUserIds: number[];
  /** For the audit trail (names, ids, codes). */
  detail: Record<string, unknown>;
  /** Sessions the change ended (a deactivation), to be announced once it is committed. */
  endedSessions?: EndedSessions;
}

/** Sessions a transaction revoked, and why. */
export interface EndedSessions {
  ids: string[];
  reason: string;
}

const isUniqueViolation = (e: unknown) => (e as { code?: string } | null)?.code === 'P2002';

/** A concurrent login took the email between our check and our write. */
function emailRace(e: unknown): never {
  if (isUniqueViolation(e)) throw new FieldErrors([new RuleError('email', 'UNIQUE', 'User with this Email already exists.')]);
  throw e;
}

const names = (input: StaffFields) => ({
  ...(input.firstName != null ? { firstName: input.firstName } : {}),
  ...(input.lastName != null ? { lastName: input.lastName } : {}),
});

async function changeMemberships(tx: Tx, userId: number, add: number[], remove: number[]): Promise<void> {
  if (add.length) await tx.groupMember.createMany({ data: add.map((groupId) => ({ userId, groupId })), skipDuplicates: true });
  if (remove.length) await tx.groupMember.deleteMany({ where: { userId, groupId: { in: remove } } });
}

export async function createStaff(prisma: Prisma, principal: Requester, input: StaffCreateInput): Promise<StaffChange> {
  return adminTransaction(prisma, async (tx) => {
    const email = normalizeEmail(input.email ?? '');
    const owner = email ? await tx.user.findUnique({ where: { email }, select: { id: true } }) : null;
    const { world, requester } = await loadWorld(tx, principal, owner ? [owner.id] : []);
    const existing = owner ? (world.users.get(owner.id) ?? null) : null;
    const plan = planStaffCreate(world, requester, input, existing);
    if (plan.errors.length) throw new FieldErrors(plan.errors);
    const data = { isStaff: true, isActive: plan.next.isActive, permissions: [...plan.next.permissions], ...names(input) };
    const user = existing
      ? await tx.user.update({ where: { id: existing.id }, data })
      : await tx.user.create({ data: { ...data, email, isConfirmed: true, tokenKey: newTokenKey() } });
    await changeMemberships(tx, user.id, plan.addGroups, []);
    const detail = { promoted: existing !== null, isActive: user.isActive, addPermissions: input.addPermissions ?? [], addGroups: plan.addGroups };
    return { user, affectedUserIds: [user.id], detail };
  }).catch(emailRace);
}

const notFound = () => new FieldErrors([new RuleError('id', 'NOT_FOUND', "Couldn't resolve to a node.")]);

/**
 * Runs `change` in one admin transaction on the existing user `userId` (NOT_FOUND otherwise), with
 * the requester as the transaction's snapshot has them (see loadWorld).
 */
function onExistingUser<T>(
  prisma: Prisma,
  principal: Requester,
  userId: string,
  change: (tx: Tx, world: World, requester: Requester, target: WorldUser, id: number) => Promise<T>,
): Promise<T> {
  const id = parseGlobalIdOf('User', userId);
  if (id === null) throw notFound();
  return adminTransaction(prisma, async (tx) => {
    const { world, requester } = await loadWorld(tx, principal, [id]);
    const target = world.users.get(id);
    if (!target) throw notFound();
    return change(tx, world, requester, target, id);
  });
}

export async function updateStaff(prisma: Prisma, principal: Requester, userId: string, input: StaffUpdateInput): Promise<StaffChange> {
  return onExistingUser(prisma, principal, userId, async (tx, world, requester, target, id) => {
    const email = input.email != null ? normalizeEmail(input.email) : null;
    const owner = email ? await tx.user.findUnique({ where: { email }, select: { id: true } }) : null;
    const plan = planStaffUpdate(world, requester, target, input, owner?.id ?? null);
    if (plan.errors.length) throw new FieldErrors(plan.errors);
    const deactivated = target.isActive && !plan.next.isActive;
    const permissionsChanged = Boolean(input.addPermissions?.length || input.removePermissions?.length);
    const user = await tx.user.update({
      where: { id },
      data: {
        isStaff: true,
        isActive: plan.next.isActive,
        ...(email !== null ? { email } : {}),
        ...names(input),
        ...(permissionsChanged ? { permissions: [...plan.next.permissions] } : {}),
        ...(deactivated ? { tokenKey: newTokenKey() } : {}),
      },
    });
    await changeMemberships(tx, id, plan.addGroups, plan.removeGroups);
    const endedSessions = { ids: deactivated ? await endUserSessions(tx, id, 'user-deactivated') : [], reason: 'user-deactivated' };
    const detail = {
      changed: Object.keys(input).filter((k) => input[k as keyof StaffUpdateInput] != null),
      isActive: user.isActive,
      ...(permissionsChanged ? { addPermissions: input.addPermissions ?? [], removePermissions: input.removePermissions ?? [] } : {}),
      addGroups: plan.addGroups,
      removeGroups: plan.removeGroups,
    };
    return { user, affectedUserIds: [id], detail, endedSessions };
  }).catch(emailRace);
}

export async function deleteStaff(prisma: Prisma, principal: Requester, userId: string): Promise<StaffChange> {
  return onExistingUser(prisma, principal, userId, async (tx, world, requester, target, id) => {
    const errors = planStaffDelete(world, requester, target);
    if (errors.length) throw new FieldErrors(errors);
    // Identities, sessions and memberships go with it (onDelete: Cascade).
    const user = await tx.user.delete({ where: { id } });
    return { user, affectedUserIds: [id], detail: { email: user.email, permissions: permissionsOf(world, target) } };
  });
}
