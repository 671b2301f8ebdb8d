/**
 * permissionGroupCreate, permissionGroupUpdate and permissionGroupDelete under Saleor's rules
 * (saleor/graphql/account/mutations/permission_group/). The resolver checks MANAGE_STAFF and
 * refuses apps; here each mutation is one serialised transaction (see staff-admin.ts) that judges
 * the requester as its locked snapshot has them (not by a possibly stale cached principal) and
 * writes only when the pure plan* functions found nothing. Errors are PermissionGroupError:
 * - create: name REQUIRED (blank) / UNIQUE; addPermissions the requester lacks:
 *   OUT_OF_SCOPE_PERMISSION; addUsers who are not staff: ASSIGN_NON_STAFF_MEMBER.
 * - update: a group with permissions the requester lacks: OUT_OF_SCOPE_PERMISSION (field null,
 *   nothing else checked); the same item in add and remove: DUPLICATED_INPUT_ITEM (field
 *   `permissions` or `users`); then name REQUIRED / UNIQUE, OUT_OF_SCOPE_PERMISSION (adding and
 *   removing), ASSIGN_NON_STAFF_MEMBER, OUT_OF_SCOPE_USER (removing a user whose permissions
 *   exceed the requester's), CANNOT_REMOVE_FROM_LAST_GROUP (the requester leaving their only
 *   group), LEFT_NOT_MANAGEABLE_PERMISSION.
 * - delete: OUT_OF_SCOPE_PERMISSION (field null), LEFT_NOT_MANAGEABLE_PERMISSION,
 *   CANNOT_REMOVE_FROM_LAST_GROUP.
 * Group names are trimmed (they are what a provider's groups claim is matched against).
 *
 * Channels: this server has none, so a non-empty addChannels or removeChannels names channels
 * nobody can reach: OUT_OF_SCOPE_CHANNEL, nothing written (the Saleor Dashboard sends empty lists
 * when there are no channels); restrictedAccessToChannels is accepted and has nothing to restrict.
 *
 * Where we differ from Saleor: LEFT_NOT_MANAGEABLE_PERMISSION lists the permissions that would become
 * unmanageable (Saleor lists every permission being removed); CANNOT_REMOVE_FROM_LAST_GROUP only
 * when the group is the requester's (Saleor: whenever they have one group); unknown ids are
 * NOT_FOUND, which PermissionGroupErrorCode lacks, so the resolver answers them with a top-level
 * error, as Saleor does.
 */
import type { Prisma } from '../db/database.ts';
import type { PermissionGroup } from '../generated/prisma/client.ts';
import { FieldErrors } from '../errors.ts';
import { parseGlobalIdOf, toGlobalId } from '../core/ids.ts';
import { sortPermissions, type PermissionCode } from './permissions.ts';
import {
  RuleError,
  canManageGroup,
  duplicatePermissions,
  duplicateUsers,
  duplicates,
  isOutOfScopeUser,
  lostManageablePermissions,
  permissionErrors,
  permissionsOf,
  resolveIds,
  withGroup,
  withUser,
  withoutGroup,
  type Requester,
  type World,
  type WorldGroup,
} from './manageable.ts';
import { adminTransaction, loadWorld, type Tx } from './staff-admin.ts';

/** Accepted for Saleor's clients: there are no channels here (see channelErrors). */
interface ChannelInput {
  addChannels?: string[] | null;
  removeChannels?: string[] | null;
  restrictedAccessToChannels?: boolean | null;
}

export interface GroupCreateInput extends ChannelInput {
  name: string;
  addPermissions?: PermissionCode[] | null;
  addUsers?: string[] | null;
}
export interface GroupUpdateInput extends ChannelInput {
  name?: string | null;
  addPermissions?: PermissionCode[] | null;
  removePermissions?: PermissionCode[] | null;
  addUsers?: string[] | null;
  removeUsers?: string[] | null;
}

export interface GroupPlan {
  errors: RuleError[];
  /** The group as the change leaves it (id 0 when new). */
  next: WorldGroup;
  addUsers: number[];
  removeUsers: number[];
}

const gids = (ids: number[]) => ids.map((id) => toGlobalId('User', id));

function nameErrors(world: World, name: string, groupId: number): RuleError[] {
  if (!name) return [new RuleError('name', 'REQUIRED', 'This field cannot be blank.')];
  const taken = [...world.groups.values()].some((g) => g.name === name && g.id !== groupId);
  return taken ? [new RuleError('name', 'UNIQUE', 'Group with this Name already exists.')] : [];
}

function userRefs(world: World, raw: readonly string[] | null | undefined, field: string) {
  const { ids, unknown } = resolveIds(raw, 'User', (id) => world.users.has(id));
  const errors = unknown.length ? [new RuleError(field, 'NOT_FOUND', "Couldn't resolve these users.", { users: unknown })] : [];
  return { ids, errors };
}

function addUserRefs(world: World, raw: readonly string[] | null | undefined) {
  const refs = userRefs(world, raw, 'addUsers');
  const nonStaff = refs.ids.filter((id) => !world.users.get(id)!.isStaff);
  if (nonStaff.length) refs.errors.push(new RuleError('addUsers', 'ASSIGN_NON_STAFF_MEMBER', 'User must be staff member.', { users: gids(nonStaff) }));
  return refs;
}

/** A group left by `requester` that is the only one they are in. */
function isRequesterLastGroup(world: World, requester: Requester, groupId: number): boolean {
  const groups = world.users.get(requester.userId)?.groupIds ?? [];
  return groups.length === 1 && groups[0] === groupId;
}

/** The world after `group` became `next` and the members changed. */
function afterGroupChange(world: World, next: WorldGroup, add: number[], remove: number[]): World {
  let after = withGroup(world, next);
  for (const id of [...add, ...remove]) {
    const user = after.users.get(id)!;
    const others = user.groupIds.filter((g) => g !== next.id);
    after = withUser(after, { ...user, groupIds: add.includes(id) ? [...others, next.id] : others });
  }
  return after;
}

/** Channel ids: there are no channels, so any is out of the requester's scope. */
function channelErrors(input: ChannelInput): RuleError[] {
  return (['addChannels', 'removeChannels'] as const)
    .filter((field) => (input[field]?.length ?? 0) > 0)
    .map((field) => new RuleError(field, 'OUT_OF_SCOPE_CHANNEL', 'These channels do not exist: this server has no channels.'));
}

export function planGroupCreate(world: World, requester: Requester, input: GroupCreateInput): GroupPlan {
  const name = input.name.trim();
  const users = addUserRefs(world, input.addUsers);
  const errors = [...nameErrors(world, name, 0), ...permissionErrors(requester, input.addPermissions, 'addPermissions'), ...users.errors, ...channelErrors(input)];
  const next = { id: 0, name, permissions: sortPermissions(input.addPermissions ?? []) };
  return { errors, next, addUsers: users.ids, removeUsers: [] };
}

export function planGroupUpdate(world: World, requester: Requester, group: WorldGroup, input: GroupUpdateInput): GroupPlan {
  const refused = (errors: RuleError[]): GroupPlan => ({ errors, next: group, addUsers: [], removeUsers: [] });
  if (!canManageGroup(requester.permissions, group)) {
    return refused([new RuleError(null, 'OUT_OF_SCOPE_PERMISSION', "You can't manage group with permissions out of your scope.")]);
  }
  const dupPermissions = duplicates(input.addPermissions, input.removePermissions);
  const dupUsers = duplicates(input.addUsers, input.removeUsers);
  if (dupPermissions.length || dupUsers.length) {
    return refused([
      ...(dupPermissions.length ? [duplicatePermissions(dupPermissions)] : []),
      ...(dupUsers.length ? [duplicateUsers(dupUsers)] : []),
    ]);
  }
  const name = input.name != null ? input.name.trim() : group.name;
  const add = addUserRefs(world, input.addUsers);
  const remove = userRefs(world, input.removeUsers, 'removeUsers');
  const errors = [
    ...(input.name != null ? nameErrors(world, name, group.id) : []),
    ...permissionErrors(requester, input.addPermissions, 'addPermissions'),
    ...permissionErrors(requester, input.removePermissions, 'removePermissions'),
    ...add.errors,
    ...remove.errors,
    ...channelErrors(input),
  ];
  const beyond = remove.ids.filter((id) => isOutOfScopeUser(requester.permissions, permissionsOf(world, world.users.get(id)!)));
  if (beyond.length) errors.push(new RuleError('removeUsers', 'OUT_OF_SCOPE_USER', "You can't manage these users.", { users: gids(beyond) }));
  if (remove.ids.includes(requester.userId) && isRequesterLastGroup(world, requester, group.id)) {
    errors.push(new RuleError('removeUsers', 'CANNOT_REMOVE_FROM_LAST_GROUP', 'You cannot remove yourself from your last group.', { users: gids([requester.userId]) }));
  }
  const removed = new Set<string>(input.removePermissions ?? []);
  const permissions = sortPermissions([...group.permissions, ...(input.addPermissions ?? [])]).filter((p) => !removed.has(p));
  const next = { ...group, name, permissions };
  const lost = lostManageablePermissions(world, afterGroupChange(world, next, add.ids, remove.ids));
  if (lost.length) {
    const byPermissions = lostManageablePermissions(world, withGroup(world, next)).length > 0;
    const message = `${byPermissions ? 'Permissions' : 'Users'} cannot be removed, some of permissions will not be manageable.`;
    errors.push(new RuleError(byPermissions ? 'removePermissions' : 'removeUsers', 'LEFT_NOT_MANAGEABLE_PERMISSION', message, { permissions: lost }));
  }
  return { errors, next, addUsers: add.ids, removeUsers: remove.ids };
}

export function planGroupDelete(world: World, requester: Requester, group: WorldGroup): RuleError[] {
  if (!canManageGroup(requester.permissions, group)) {
    return [new RuleError(null, 'OUT_OF_SCOPE_PERMISSION', "You can't manage group with permissions out of your scope.")];
  }
  const errors: RuleError[] = [];
  const lost = lostManageablePermissions(world, withoutGroup(world, group.id));
  if (lost.length) {
    errors.push(new RuleError('id', 'LEFT_NOT_MANAGEABLE_PERMISSION', 'Group cannot be removed, some of permissions will not be manageable.', { permissions: lost }));
  }
  if (isRequesterLastGroup(world, requester, group.id)) {
    errors.push(new RuleError('id', 'CANNOT_REMOVE_FROM_LAST_GROUP', 'You cannot delete your last group.'));
  }
  return errors;
}

export interface GroupChange {
  group: PermissionGroup;
  /** Users whose cached principals must be forgotten. */
  affectedUserIds: number[];
  /** For the audit trail (names, ids, codes). */
  detail: Record<string, unknown>;
}

const membersOf = (world: World, groupId: number) => [...world.users.values()].filter((u) => u.groupIds.includes(groupId)).map((u) => u.id);

/** A concurrent login created the group (default staff group) between our check and our write. */
function nameRace(e: unknown): never {
  if ((e as { code?: string } | null)?.code === 'P2002') throw new FieldErrors([new RuleError('name', 'UNIQUE', 'Group with this Name already exists.')]);
  throw e;
}

const notFound = () => new FieldErrors([new RuleError('id', 'NOT_FOUND', "Couldn't resolve to a node.")]);

/** The group `groupId` names, inside the transaction, with the users `userIds` name (and the requester, see loadWorld). */
async function loadTarget(tx: Tx, principal: Requester, groupId: string, userIds: Array<string | null | undefined> = []) {
  const id = parseGlobalIdOf('Group', groupId);
  const extra = userIds.map((u) => (u ? parseGlobalIdOf('User', u) : null)).filter((u): u is number => u !== null);
  const { world, requester } = await loadWorld(tx, principal, extra);
  const group = id === null ? undefined : world.groups.get(id);
  if (!group) throw notFound();
  return { world, requester, group };
}

const userIdsOf = (raw: readonly string[] | null | undefined) => (raw ?? []).map((u) => parseGlobalIdOf('User', u)).filter((u): u is number => u !== null);

async function addMembers(tx: Tx, groupId: number, userIds: number[]): Promise<void> {
  if (userIds.length) await tx.groupMember.createMany({ data: userIds.map((userId) => ({ userId, groupId })), skipDuplicates: true });
}

export async function createGroup(prisma: Prisma, principal: Requester, input: GroupCreateInput): Promise<GroupChange> {
  return adminTransaction(prisma, async (tx) => {
    const { world, requester } = await loadWorld(tx, principal, userIdsOf(input.addUsers));
    const plan = planGroupCreate(world, requester, input);
    if (plan.errors.length) throw new FieldErrors(plan.errors);
    const group = await tx.permissionGroup.create({ data: { name: plan.next.name, permissions: [...plan.next.permissions] } });
    await addMembers(tx, group.id, plan.addUsers);
    return { group, affectedUserIds: plan.addUsers, detail: { name: group.name, permissions: group.permissions, addUsers: plan.addUsers } };
  }).catch(nameRace);
}

export async function updateGroup(prisma: Prisma, principal: Requester, groupId: string, input: GroupUpdateInput): Promise<GroupChange> {
  return adminTransaction(prisma, async (tx) => {
    const { world, requester, group } = await loadTarget(tx, principal, groupId, [...(input.addUsers ?? []), ...(input.removeUsers ?? [])]);
    const plan = planGroupUpdate(world, requester, group, input);
    if (plan.errors.length) throw new FieldErrors(plan.errors);
    const permissionsChanged = plan.next.permissions.join() !== group.permissions.join();
    const updated = await tx.permissionGroup.update({
      where: { id: group.id },
      data: { name: plan.next.name, ...(permissionsChanged ? { permissions: [...plan.next.permissions] } : {}) },
    });
    await addMembers(tx, group.id, plan.addUsers);
    if (plan.removeUsers.length) await tx.groupMember.deleteMany({ where: { groupId: group.id, userId: { in: plan.removeUsers } } });
    // A permission change reaches every member; a membership change only those who moved.
    const affected = new Set([...(permissionsChanged ? membersOf(world, group.id) : []), ...plan.addUsers, ...plan.removeUsers]);
    const detail = {
      name: updated.name,
      ...(updated.name !== group.name ? { previousName: group.name } : {}),
      addPermissions: input.addPermissions ?? [],
      removePermissions: input.removePermissions ?? [],
      addUsers: plan.addUsers,
      removeUsers: plan.removeUsers,
    };
    return { group: updated, affectedUserIds: [...affected], detail };
  }).catch(nameRace);
}

export async function deleteGroup(prisma: Prisma, principal: Requester, groupId: string): Promise<GroupChange> {
  return adminTransaction(prisma, async (tx) => {
    const { world, requester, group } = await loadTarget(tx, principal, groupId);
    const errors = planGroupDelete(world, requester, group);
    if (errors.length) throw new FieldErrors(errors);
    const members = membersOf(world, group.id);
    // Memberships go with it (onDelete: Cascade).
    const deleted = await tx.permissionGroup.delete({ where: { id: group.id } });
    return { group: deleted, affectedUserIds: members, detail: { name: deleted.name, permissions: deleted.permissions, members } };
  });
}
