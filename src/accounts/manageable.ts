/**
 * Who may manage what: Saleor's staff-management rules (saleor/graphql/account/utils.py) as pure
 * functions over a snapshot ("world") of staff users and permission groups. The admin mutations
 * (staff-admin.ts, groups-admin.ts) load the world, ask these functions, then write.
 *
 * - A requester can grant, take away or check only permissions they hold themselves
 *   (get_out_of_scope_permissions).
 * - A requester can manage a group when they hold all of its permissions
 *   (can_user_manage_group_permissions), and a user when they hold all of that user's
 *   permissions (get_out_of_scope_users). Editable groups are only a staff member's.
 * - The requester is who the world says (requesterIn): an active staff user holding MANAGE_STAFF,
 *   with the world's permissions ∩ their token's, whatever their (possibly cached) principal says.
 * - Every permission someone could manage before a change must stay manageable after it: held,
 *   together with MANAGE_STAFF, by at least one active staff member (the LEFT_NOT_MANAGEABLE_
 *   PERMISSION family of checks).
 *
 * Where we differ from Saleor:
 * - Our users also hold permissions directly (from provider scopes), so a user's permissions are
 *   direct ∪ groups everywhere, and a manager is anyone active and staff holding MANAGE_STAFF
 *   either way (Saleor looks only at groups).
 * - "Still manageable" is one before/after comparison of the whole world, applied to every change
 *   that can take permissions away (deactivation, deletion, removing permissions or members,
 *   deleting a group, and our removePermissions/removeGroups on a staff user). Saleor has one
 *   special-cased check per mutation and none on staffUpdate's removeGroups; a permission nobody
 *   could manage before the change is not blamed on it.
 * - No superuser (Saleor's superuser skips every rule) and no channels (yet).
 */
import { FieldError } from '../errors.ts';
import { parseGlobalIdOf } from '../core/ids.ts';
import { knownPermissions } from './users.ts';
import { sortPermissions, type PermissionCode } from './permissions.ts';

export interface WorldUser {
  id: number;
  isActive: boolean;
  isStaff: boolean;
  /** Direct permissions. */
  permissions: readonly PermissionCode[];
  groupIds: readonly number[];
}

export interface WorldGroup {
  id: number;
  name: string;
  permissions: readonly PermissionCode[];
}

export interface World {
  users: ReadonlyMap<number, WorldUser>;
  groups: ReadonlyMap<number, WorldGroup>;
}

/** Who asks: their id, whether staff, and the permissions their request is authenticated with. */
export interface Requester {
  userId: number;
  isStaff: boolean;
  permissions: readonly PermissionCode[];
}

/**
 * The requester as `world` has them, or null when they may no longer manage staff. The principal a
 * request comes with may be cached (stale): the user must still exist and be active and staff, and
 * their permissions are those the world gives them ∩ those of the principal (what their token
 * grants), among which MANAGE_STAFF must still be.
 */
export function requesterIn(world: World, requester: Requester): Requester | null {
  const user = world.users.get(requester.userId);
  if (!user?.isActive || !user.isStaff) return null;
  const granted = new Set(requester.permissions);
  const permissions = permissionsOf(world, user).filter((p) => granted.has(p));
  return permissions.includes('MANAGE_STAFF') ? { userId: user.id, isStaff: true, permissions } : null;
}

/** The requester lost MANAGE_STAFF, or their account, since their principal was cached. */
export class StaffManagerRequired extends Error {
  constructor() {
    super('You need one of the following permissions: MANAGE_STAFF');
    this.name = 'StaffManagerRequired';
  }
}

export function makeWorld(users: readonly WorldUser[], groups: readonly WorldGroup[]): World {
  return { users: new Map(users.map((u) => [u.id, u])), groups: new Map(groups.map((g) => [g.id, g])) };
}

export const withUser = (world: World, user: WorldUser): World => ({ ...world, users: new Map(world.users).set(user.id, user) });

export function withoutUser(world: World, id: number): World {
  const users = new Map(world.users);
  users.delete(id);
  return { ...world, users };
}

export const withGroup = (world: World, group: WorldGroup): World => ({ ...world, groups: new Map(world.groups).set(group.id, group) });

export function withoutGroup(world: World, id: number): World {
  const groups = new Map(world.groups);
  groups.delete(id);
  return { ...world, groups };
}

/** A user's permissions in the world: direct ∪ those of every group they are in. */
export function permissionsOf(world: World, user: Pick<WorldUser, 'permissions' | 'groupIds'>): PermissionCode[] {
  return sortPermissions([...user.permissions, ...user.groupIds.flatMap((id) => world.groups.get(id)?.permissions ?? [])]);
}

/** The permissions of `wanted` that `have` lacks (get_out_of_scope_permissions), sorted. */
export function missingPermissions(have: readonly string[], wanted: readonly string[]): PermissionCode[] {
  const held = new Set(have);
  return knownPermissions(wanted.filter((p) => !held.has(p)));
}

/** Whether someone holding `have` can manage a group (has every one of its permissions). */
export const canManageGroup = (have: readonly string[], group: { permissions: readonly string[] }): boolean =>
  missingPermissions(have, group.permissions).length === 0;

/** The groups a user can manage (get_groups_which_user_can_manage): none unless staff. */
export function editableGroups<G extends { permissions: readonly string[] }>(
  user: { isStaff: boolean; permissions: readonly string[] },
  groups: readonly G[],
): G[] {
  return user.isStaff ? groups.filter((g) => canManageGroup(user.permissions, g)) : [];
}

/** Whether a user with `targetPermissions` is beyond a requester holding `have` (get_out_of_scope_users). */
export const isOutOfScopeUser = (have: readonly string[], targetPermissions: readonly string[]): boolean =>
  missingPermissions(have, targetPermissions).length > 0;

/** Every permission some active staff member holding MANAGE_STAFF also holds. */
export function manageablePermissions(world: World): Set<PermissionCode> {
  const result = new Set<PermissionCode>();
  for (const user of world.users.values()) {
    if (!user.isActive || !user.isStaff) continue;
    const held = permissionsOf(world, user);
    if (held.includes('MANAGE_STAFF')) for (const p of held) result.add(p);
  }
  return result;
}

/** Permissions manageable in `before` that nobody can manage in `after`, sorted. */
export function lostManageablePermissions(before: World, after: World): PermissionCode[] {
  const still = manageablePermissions(after);
  return sortPermissions([...manageablePermissions(before)].filter((p) => !still.has(p)));
}

/** Items present in both lists (check_for_duplicates), in the order of `a`, once each. */
export function duplicates<T>(a: readonly T[] | null | undefined, b: readonly T[] | null | undefined): T[] {
  if (!a?.length || !b?.length) return [];
  const inB = new Set(b);
  return [...new Set(a.filter((x) => inB.has(x)))];
}

/** What an error is about, beside its field: Saleor's `permissions`, `groups`, `users` lists. */
export interface RuleParams {
  permissions?: PermissionCode[];
  /** Group global ids. */
  groups?: string[];
  /** User global ids. */
  users?: string[];
}

/** A refused admin change: a FieldError with Saleor's extra lists. */
export class RuleError extends FieldError {
  constructor(
    field: string | null,
    code: string,
    message: string,
    readonly params: RuleParams = {},
  ) {
    super(field, code, message);
    this.name = 'RuleError';
  }
}

/** Global ids of `type` → the ids that exist, and the global ids that name nothing. */
export function resolveIds(raw: readonly string[] | null | undefined, type: 'User' | 'Group', exists: (id: number) => boolean) {
  const ids: number[] = [];
  const unknown: string[] = [];
  for (const globalId of new Set(raw ?? [])) {
    const id = parseGlobalIdOf(type, globalId);
    if (id !== null && exists(id)) ids.push(id);
    else unknown.push(globalId);
  }
  return { ids, unknown };
}

/** OUT_OF_SCOPE_PERMISSION for permissions the requester lacks (granting or taking away). */
export function permissionErrors(requester: Requester, permissions: readonly PermissionCode[] | null | undefined, field: string): RuleError[] {
  const missing = missingPermissions(requester.permissions, permissions ?? []);
  return missing.length ? [new RuleError(field, 'OUT_OF_SCOPE_PERMISSION', "You can't manage permissions that you don't have.", { permissions: missing })] : [];
}

const DUPLICATED = 'The same object cannot be in both list for adding and removing items.';
export const duplicateGroups = (groups: string[]) => new RuleError('groups', 'DUPLICATED_INPUT_ITEM', DUPLICATED, { groups });
export const duplicatePermissions = (permissions: PermissionCode[]) =>
  new RuleError('permissions', 'DUPLICATED_INPUT_ITEM', DUPLICATED, { permissions: sortPermissions(permissions) });
export const duplicateUsers = (users: string[]) => new RuleError('users', 'DUPLICATED_INPUT_ITEM', DUPLICATED, { users });
