/**
 * The staff-management rules as pure functions (src/accounts/manageable.ts and the plan*
 * functions of staff-admin.ts and groups-admin.ts), table-driven over one small world.
 */
import { describe, expect, it } from 'vitest';
import {
  canManageGroup,
  duplicates,
  editableGroups,
  isOutOfScopeUser,
  lostManageablePermissions,
  makeWorld,
  manageablePermissions,
  missingPermissions,
  permissionsOf,
  requesterIn,
  withGroup,
  withUser,
  withoutGroup,
  withoutUser,
  type Requester,
  type World,
  type WorldUser,
} from '../../src/accounts/manageable.ts';
import { planStaffCreate, planStaffDelete, planStaffUpdate, type StaffUpdateInput } from '../../src/accounts/staff-admin.ts';
import { planGroupCreate, planGroupDelete, planGroupUpdate, type GroupUpdateInput } from '../../src/accounts/groups-admin.ts';
import { toGlobalId } from '../../src/core/ids.ts';
import type { PermissionCode } from '../../src/accounts/permissions.ts';

const ADMINS = 1;
const ORDERS = 2;
const TRANSLATORS = 3;
const EMPTY = 4;
const [ROOT, LIMITED, TRANSLATOR, CLERK, CUSTOMER, RETIRED] = [1, 2, 3, 4, 5, 6] as const;

const staff = (id: number, permissions: PermissionCode[], groupIds: number[], more: Partial<WorldUser> = {}): WorldUser => ({
  id,
  isActive: true,
  isStaff: true,
  permissions,
  groupIds,
  ...more,
});

const WORLD: World = makeWorld(
  [
    staff(ROOT, ['MANAGE_STAFF', 'MANAGE_ORDERS', 'MANAGE_PRODUCTS', 'MANAGE_PLUGINS'], [ADMINS]),
    staff(LIMITED, ['MANAGE_STAFF'], [ORDERS]),
    staff(TRANSLATOR, [], [TRANSLATORS]),
    staff(CLERK, [], [ORDERS]),
    staff(CUSTOMER, [], [], { isStaff: false }),
    staff(RETIRED, ['MANAGE_STAFF', 'MANAGE_SHIPPING'], [], { isActive: false }),
  ],
  [
    { id: ADMINS, name: 'Admins', permissions: ['MANAGE_STAFF', 'MANAGE_ORDERS', 'MANAGE_PRODUCTS'] },
    { id: ORDERS, name: 'Orders', permissions: ['MANAGE_ORDERS'] },
    { id: TRANSLATORS, name: 'Translators', permissions: ['MANAGE_STAFF', 'MANAGE_TRANSLATIONS'] },
    { id: EMPTY, name: 'Empty', permissions: [] },
  ],
);

const user = (id: number) => WORLD.users.get(id)!;
const group = (id: number) => WORLD.groups.get(id)!;
const as = (id: number): Requester => ({ userId: id, isStaff: user(id).isStaff, permissions: permissionsOf(WORLD, user(id)) });
const gid = (id: number) => toGlobalId('Group', id);
const uid = (id: number) => toGlobalId('User', id);
/** code, field and lists of each error, for compact expectations. */
const summary = (errors: Array<{ field: string | null; code: string; params?: object }>) =>
  errors.map((e) => ({ field: e.field, code: e.code, ...(e.params ?? {}) }));

describe('primitives', () => {
  it.each([
    [['MANAGE_STAFF'], ['MANAGE_STAFF'], []],
    [['MANAGE_STAFF'], ['MANAGE_ORDERS', 'MANAGE_STAFF', 'MANAGE_ORDERS'], ['MANAGE_ORDERS']],
    [[], ['MANAGE_TRANSLATIONS', 'MANAGE_USERS'], ['MANAGE_USERS', 'MANAGE_TRANSLATIONS']],
    [['MANAGE_ORDERS'], ['NOT_A_PERMISSION'], []],
  ])('missingPermissions(%j, %j) = %j', (have, wanted, missing) => {
    expect(missingPermissions(have, wanted)).toEqual(missing);
  });

  it.each([
    [ROOT, ADMINS, true],
    [ROOT, TRANSLATORS, false],
    [LIMITED, ORDERS, true],
    [LIMITED, ADMINS, false],
    [CLERK, EMPTY, true],
  ])('user %i can manage group %i: %s', (u, g, expected) => {
    expect(canManageGroup(permissionsOf(WORLD, user(u)), group(g))).toBe(expected);
  });

  it.each([
    [ROOT, [ADMINS, ORDERS, EMPTY]],
    [LIMITED, [ORDERS, EMPTY]],
    [TRANSLATOR, [TRANSLATORS, EMPTY]],
    [CUSTOMER, []],
  ])('editable groups of user %i: %j', (u, expected) => {
    const who = { isStaff: user(u).isStaff, permissions: permissionsOf(WORLD, user(u)) };
    expect(editableGroups(who, [...WORLD.groups.values()]).map((g) => g.id)).toEqual(expected);
  });

  it.each<[string, number, PermissionCode[], PermissionCode[] | null]>([
    ['root, token granting all it holds', ROOT, ['MANAGE_STAFF', 'MANAGE_ORDERS', 'MANAGE_PRODUCTS', 'MANAGE_PLUGINS'], ['MANAGE_STAFF', 'MANAGE_ORDERS', 'MANAGE_PLUGINS', 'MANAGE_PRODUCTS']],
    ['root, token granting less than it holds', ROOT, ['MANAGE_STAFF', 'MANAGE_ORDERS'], ['MANAGE_STAFF', 'MANAGE_ORDERS']],
    ['limited, stale principal with a permission since taken away', LIMITED, ['MANAGE_STAFF', 'MANAGE_ORDERS', 'MANAGE_PLUGINS'], ['MANAGE_STAFF', 'MANAGE_ORDERS']],
    ['translator, MANAGE_STAFF from a group', TRANSLATOR, ['MANAGE_STAFF', 'MANAGE_TRANSLATIONS'], ['MANAGE_STAFF', 'MANAGE_TRANSLATIONS']],
    ['root, token not granting MANAGE_STAFF', ROOT, ['MANAGE_ORDERS'], null],
    ['clerk, stale principal with MANAGE_STAFF since taken away', CLERK, ['MANAGE_STAFF', 'MANAGE_ORDERS'], null],
    ['retired (inactive), stale principal', RETIRED, ['MANAGE_STAFF', 'MANAGE_SHIPPING'], null],
    ['customer (not staff), stale principal', CUSTOMER, ['MANAGE_STAFF'], null],
    ['a deleted user, stale principal', 99, ['MANAGE_STAFF'], null],
  ])('the requester as the world has them: %s', (_, id, principal, expected) => {
    const requester = requesterIn(WORLD, { userId: id, isStaff: true, permissions: principal });
    expect(requester).toEqual(expected && { userId: id, isStaff: true, permissions: expected });
  });

  it.each([
    [ROOT, LIMITED, false],
    [LIMITED, ROOT, true],
    [ROOT, TRANSLATOR, true],
    [LIMITED, CLERK, false],
    [CLERK, LIMITED, true],
  ])('user %i sees user %i as out of scope: %s', (requester, target, expected) => {
    expect(isOutOfScopeUser(permissionsOf(WORLD, user(requester)), permissionsOf(WORLD, user(target)))).toBe(expected);
  });

  it.each([
    [['a', 'b', 'b'], ['b', 'c'], ['b']],
    [['a'], null, []],
    [undefined, ['a'], []],
    [['a', 'b'], ['b', 'a'], ['a', 'b']],
  ])('duplicates(%j, %j) = %j', (a, b, expected) => {
    expect(duplicates(a, b)).toEqual(expected);
  });

  it('a permission is manageable when an active staff member holds it with MANAGE_STAFF', () => {
    // Not MANAGE_SHIPPING: only the inactive user holds it.
    expect([...manageablePermissions(WORLD)].sort()).toEqual(
      ['MANAGE_ORDERS', 'MANAGE_PLUGINS', 'MANAGE_PRODUCTS', 'MANAGE_STAFF', 'MANAGE_TRANSLATIONS'].sort(),
    );
  });

  it.each<[string, World, PermissionCode[]]>([
    ['deactivating the only translator manager', withUser(WORLD, { ...user(TRANSLATOR), isActive: false }), ['MANAGE_TRANSLATIONS']],
    ['deleting the only translator manager', withoutUser(WORLD, TRANSLATOR), ['MANAGE_TRANSLATIONS']],
    ['the translator losing staff', withUser(WORLD, { ...user(TRANSLATOR), isStaff: false }), ['MANAGE_TRANSLATIONS']],
    ['MANAGE_STAFF leaving the Translators group', withGroup(WORLD, { ...group(TRANSLATORS), permissions: ['MANAGE_TRANSLATIONS'] }), ['MANAGE_TRANSLATIONS']],
    ['deleting the Translators group', withoutGroup(WORLD, TRANSLATORS), ['MANAGE_TRANSLATIONS']],
    ['deleting the limited manager (root still manages orders)', withoutUser(WORLD, LIMITED), []],
    ['deleting the Orders group', withoutGroup(WORLD, ORDERS), []],
    ['root losing everything', withoutUser(WORLD, ROOT), ['MANAGE_PLUGINS', 'MANAGE_PRODUCTS']],
    ['a gain', withUser(WORLD, { ...user(CLERK), permissions: ['MANAGE_STAFF', 'MANAGE_SHIPPING'] }), []],
  ])('lost by %s: %j', (_name, after, lost) => {
    expect(lostManageablePermissions(WORLD, after)).toEqual(lost);
  });

  it('a permission nobody could manage before is not blamed on a change', () => {
    const before = withoutUser(WORLD, TRANSLATOR);
    expect(lostManageablePermissions(before, withoutGroup(before, TRANSLATORS))).toEqual([]);
  });
});

describe('staffUpdate rules', () => {
  const plan = (requester: number, target: number, input: StaffUpdateInput, emailOwner: number | null = null) =>
    summary(planStaffUpdate(WORLD, as(requester), user(target), input, emailOwner).errors);

  it.each<[string, number, number, StaffUpdateInput, unknown[]]>([
    ['a more powerful user', LIMITED, ROOT, { firstName: 'x' }, [{ field: 'id', code: 'OUT_OF_SCOPE_USER' }]],
    [
      'duplicates stop everything else',
      ROOT,
      CLERK,
      { addGroups: [gid(ORDERS), gid(TRANSLATORS)], removeGroups: [gid(ORDERS)], addPermissions: ['MANAGE_ORDERS', 'MANAGE_PLUGINS'], removePermissions: ['MANAGE_ORDERS'] },
      [
        { field: 'groups', code: 'DUPLICATED_INPUT_ITEM', groups: [gid(ORDERS)] },
        { field: 'permissions', code: 'DUPLICATED_INPUT_ITEM', permissions: ['MANAGE_ORDERS'] },
      ],
    ],
    ['a group beyond the requester', ROOT, CLERK, { addGroups: [gid(TRANSLATORS), gid(EMPTY)] }, [{ field: 'addGroups', code: 'OUT_OF_SCOPE_GROUP', groups: [gid(TRANSLATORS)] }]],
    ['leaving a group beyond the requester', LIMITED, CLERK, { removeGroups: [gid(ADMINS)] }, [{ field: 'removeGroups', code: 'OUT_OF_SCOPE_GROUP', groups: [gid(ADMINS)] }]],
    ['an unknown group', ROOT, CLERK, { addGroups: ['R3JvdXA6OTk=', 'junk'] }, [{ field: 'addGroups', code: 'NOT_FOUND', groups: ['R3JvdXA6OTk=', 'junk'] }]],
    [
      'permissions beyond the requester',
      LIMITED,
      CLERK,
      { addPermissions: ['MANAGE_PLUGINS', 'MANAGE_ORDERS'], removePermissions: ['MANAGE_PRODUCTS'] },
      [
        { field: 'addPermissions', code: 'OUT_OF_SCOPE_PERMISSION', permissions: ['MANAGE_PLUGINS'] },
        { field: 'removePermissions', code: 'OUT_OF_SCOPE_PERMISSION', permissions: ['MANAGE_PRODUCTS'] },
      ],
    ],
    ['deactivating oneself', LIMITED, LIMITED, { isActive: false }, [{ field: 'isActive', code: 'DEACTIVATE_OWN_ACCOUNT' }]],
    ['a blank email', ROOT, CLERK, { email: ' ' }, [{ field: 'email', code: 'REQUIRED' }]],
    ['a bad email', ROOT, CLERK, { email: 'not-an-email' }, [{ field: 'email', code: 'INVALID' }]],
    ['a taken email', ROOT, CLERK, { email: 'x@example.com' }, [{ field: 'email', code: 'UNIQUE' }]],
    [
      'the last translator manager leaving their group',
      TRANSLATOR,
      TRANSLATOR,
      { removeGroups: [gid(TRANSLATORS)] },
      [{ field: 'removeGroups', code: 'LEFT_NOT_MANAGEABLE_PERMISSION', permissions: ['MANAGE_TRANSLATIONS'] }],
    ],
    [
      'root giving up MANAGE_STAFF while others manage only orders',
      ROOT,
      ROOT,
      { removePermissions: ['MANAGE_STAFF'], removeGroups: [gid(ADMINS)] },
      [{ field: 'removePermissions', code: 'LEFT_NOT_MANAGEABLE_PERMISSION', permissions: ['MANAGE_PLUGINS', 'MANAGE_PRODUCTS'] }],
    ],
    ['an allowed change', LIMITED, CLERK, { addPermissions: ['MANAGE_STAFF'], addGroups: [gid(EMPTY)], isActive: false, email: 'clerk@example.com' }, []],
  ])('%s', (_name, requester, target, input, expected) => {
    expect(plan(requester, target, input, input.email === 'x@example.com' ? ROOT : null)).toEqual(expected);
  });

  it('keeps the email of the user being updated', () => {
    expect(plan(ROOT, CLERK, { email: 'clerk@example.com' }, CLERK)).toEqual([]);
  });

  it('leaves the user staff, with the merged permissions and groups', () => {
    const { next } = planStaffUpdate(WORLD, as(ROOT), user(CUSTOMER), { addPermissions: ['MANAGE_ORDERS'], addGroups: [gid(ORDERS)] }, null);
    expect(next).toEqual({ ...user(CUSTOMER), isStaff: true, permissions: ['MANAGE_ORDERS'], groupIds: [ORDERS] });
  });
});

describe('staffCreate and staffDelete rules', () => {
  it.each<[string, Parameters<typeof planStaffCreate>[2], number | null, unknown[]]>([
    ['no email', { firstName: 'x' }, null, [{ field: 'email', code: 'REQUIRED' }]],
    ['a staff user has the email', { email: 'ROOT@example.com' }, ROOT, [{ field: 'email', code: 'UNIQUE' }]],
    ['a customer has the email: promoted', { email: 'c@example.com' }, CUSTOMER, []],
    [
      'groups and permissions beyond the requester',
      { email: 'n@example.com', addGroups: [gid(ADMINS)], addPermissions: ['MANAGE_PLUGINS'] },
      null,
      [
        { field: 'addGroups', code: 'OUT_OF_SCOPE_GROUP', groups: [gid(ADMINS)] },
        { field: 'addPermissions', code: 'OUT_OF_SCOPE_PERMISSION', permissions: ['MANAGE_PLUGINS'] },
      ],
    ],
  ])('create: %s', (_name, input, existing, expected) => {
    expect(summary(planStaffCreate(WORLD, as(LIMITED), input, existing === null ? null : user(existing)).errors)).toEqual(expected);
  });

  it('create: promoting a user beyond the requester is refused', () => {
    const world = withUser(WORLD, { ...user(CUSTOMER), permissions: ['MANAGE_PLUGINS'] });
    const errors = planStaffCreate(world, as(LIMITED), { email: 'c@example.com' }, world.users.get(CUSTOMER)!).errors;
    expect(summary(errors)).toEqual([{ field: 'email', code: 'OUT_OF_SCOPE_USER', users: [uid(CUSTOMER)] }]);
  });

  it.each<[string, number, number, unknown[]]>([
    ['oneself', LIMITED, LIMITED, [{ field: 'id', code: 'DELETE_OWN_ACCOUNT' }]],
    ['a customer', ROOT, CUSTOMER, [{ field: 'id', code: 'DELETE_NON_STAFF_USER', users: [uid(CUSTOMER)] }]],
    [
      'the only translator manager, by root',
      ROOT,
      TRANSLATOR,
      [
        { field: 'id', code: 'OUT_OF_SCOPE_USER', users: [uid(TRANSLATOR)] },
        { field: 'id', code: 'LEFT_NOT_MANAGEABLE_PERMISSION', permissions: ['MANAGE_TRANSLATIONS'] },
      ],
    ],
    ['a clerk', LIMITED, CLERK, []],
  ])('delete: %s', (_name, requester, target, expected) => {
    expect(summary(planStaffDelete(WORLD, as(requester), user(target)))).toEqual(expected);
  });
});

describe('permission group rules', () => {
  const update = (requester: number, g: number, input: GroupUpdateInput) => summary(planGroupUpdate(WORLD, as(requester), group(g), input).errors);

  it.each<[string, number, Parameters<typeof planGroupCreate>[2], unknown[]]>([
    ['a blank name', ROOT, { name: '  ' }, [{ field: 'name', code: 'REQUIRED' }]],
    ['a taken name (trimmed)', ROOT, { name: ' Orders ' }, [{ field: 'name', code: 'UNIQUE' }]],
    ['permissions beyond the requester', LIMITED, { name: 'New', addPermissions: ['MANAGE_ORDERS', 'MANAGE_PLUGINS'] }, [{ field: 'addPermissions', code: 'OUT_OF_SCOPE_PERMISSION', permissions: ['MANAGE_PLUGINS'] }]],
    ['a non-staff member', ROOT, { name: 'New', addUsers: [uid(CUSTOMER), uid(CLERK)] }, [{ field: 'addUsers', code: 'ASSIGN_NON_STAFF_MEMBER', users: [uid(CUSTOMER)] }]],
    ['an unknown member', ROOT, { name: 'New', addUsers: ['VXNlcjo5OQ=='] }, [{ field: 'addUsers', code: 'NOT_FOUND', users: ['VXNlcjo5OQ=='] }]],
    ['a new group', LIMITED, { name: 'New', addPermissions: ['MANAGE_ORDERS'], addUsers: [uid(ROOT)] }, []],
  ])('create: %s', (_name, requester, input, expected) => {
    expect(summary(planGroupCreate(WORLD, as(requester), input).errors)).toEqual(expected);
  });

  it.each<[string, number, number, GroupUpdateInput, unknown[]]>([
    ['a group beyond the requester', LIMITED, ADMINS, { name: '' }, [{ field: null, code: 'OUT_OF_SCOPE_PERMISSION' }]],
    [
      'duplicates',
      ROOT,
      ORDERS,
      { addPermissions: ['MANAGE_STAFF'], removePermissions: ['MANAGE_STAFF'], addUsers: [uid(ROOT)], removeUsers: [uid(ROOT)] },
      [
        { field: 'permissions', code: 'DUPLICATED_INPUT_ITEM', permissions: ['MANAGE_STAFF'] },
        { field: 'users', code: 'DUPLICATED_INPUT_ITEM', users: [uid(ROOT)] },
      ],
    ],
    ['a taken name', ROOT, ORDERS, { name: 'Admins' }, [{ field: 'name', code: 'UNIQUE' }]],
    ['its own name', ROOT, ORDERS, { name: 'Orders' }, []],
    ['removing a more powerful member', LIMITED, ORDERS, { removeUsers: [uid(CLERK), uid(ROOT)] }, [{ field: 'removeUsers', code: 'OUT_OF_SCOPE_USER', users: [uid(ROOT)] }]],
    [
      'the last translator manager dropping MANAGE_STAFF',
      TRANSLATOR,
      TRANSLATORS,
      { removePermissions: ['MANAGE_STAFF'] },
      [{ field: 'removePermissions', code: 'LEFT_NOT_MANAGEABLE_PERMISSION', permissions: ['MANAGE_TRANSLATIONS'] }],
    ],
    [
      'the last translator manager leaving',
      TRANSLATOR,
      TRANSLATORS,
      { removeUsers: [uid(TRANSLATOR)] },
      [
        { field: 'removeUsers', code: 'CANNOT_REMOVE_FROM_LAST_GROUP', users: [uid(TRANSLATOR)] },
        { field: 'removeUsers', code: 'LEFT_NOT_MANAGEABLE_PERMISSION', permissions: ['MANAGE_TRANSLATIONS'] },
      ],
    ],
    [
      'leaving while a new manager joins: still their last group',
      TRANSLATOR,
      TRANSLATORS,
      { removeUsers: [uid(TRANSLATOR)], addUsers: [uid(LIMITED)] },
      [{ field: 'removeUsers', code: 'CANNOT_REMOVE_FROM_LAST_GROUP', users: [uid(TRANSLATOR)] }],
    ],
    ['adding a non-staff member', ROOT, ORDERS, { addUsers: [uid(CUSTOMER)] }, [{ field: 'addUsers', code: 'ASSIGN_NON_STAFF_MEMBER', users: [uid(CUSTOMER)] }]],
    ['an allowed change', LIMITED, ORDERS, { name: 'Order desk', addPermissions: ['MANAGE_STAFF'], removeUsers: [uid(CLERK)] }, []],
  ])('update: %s', (_name, requester, g, input, expected) => {
    expect(update(requester, g, input)).toEqual(expected);
  });

  it.each<[string, number, number, unknown[]]>([
    ['a group beyond the requester', LIMITED, ADMINS, [{ field: null, code: 'OUT_OF_SCOPE_PERMISSION' }]],
    [
      "the translators' only group, by its only member",
      TRANSLATOR,
      TRANSLATORS,
      [
        { field: 'id', code: 'LEFT_NOT_MANAGEABLE_PERMISSION', permissions: ['MANAGE_TRANSLATIONS'] },
        { field: 'id', code: 'CANNOT_REMOVE_FROM_LAST_GROUP' },
      ],
    ],
    ['Orders, by root (who manages orders directly)', ROOT, ORDERS, []],
    ['an empty group', CLERK, EMPTY, []],
  ])('delete: %s', (_name, requester, g, expected) => {
    expect(summary(planGroupDelete(WORLD, as(requester), group(g)))).toEqual(expected);
  });
});
