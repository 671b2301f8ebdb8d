/**
 * Staff and permission-group administration over HTTP (issue 9, issue 12 item 5): staffCreate,
 * staffUpdate, staffDelete, permissionGroupCreate/Update/Delete, permissionGroup,
 * Group.userCanManage, User.editableGroups, UserPermission.sourcePermissionGroups. Every refusal
 * is checked with its exact code and lists, and with the database unchanged; a demoted or
 * deactivated user's existing access token loses access on its next request.
 *
 * One server; the tests run in order and build on each other's state. The root admin holds
 * every permission but MANAGE_TRANSLATIONS, so a translators' group is beyond it.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upsertStaffUser, effectivePermissions } from '../../src/accounts/users.ts';
import { PERMISSION_CODES, type PermissionCode } from '../../src/accounts/permissions.ts';
import { CORE_TOKEN_OWNER } from '../../src/tokens/jwt.ts';
import { toGlobalId } from '../../src/core/ids.ts';
import type { Prisma } from '../../src/db/database.ts';
import { startTestServer, type GqlResponse, type TestServer } from '../helpers/server.ts';
import { adminToken } from '../helpers/oidc-flow.ts';

const ROOT_PERMISSIONS = PERMISSION_CODES.filter((p) => p !== 'MANAGE_TRANSLATIONS');
const ERR = 'field code message permissions users';
const USER = 'id email isStaff isActive userPermissions { code } permissionGroups { name }';
const GROUP = 'id name permissions { code } users { email } userCanManage';
const DOCS = {
  staffCreate: `mutation($input: StaffCreateInput!) { staffCreate(input: $input) { user { ${USER} } errors { ${ERR} groups } staffErrors { ${ERR} groups } } }`,
  staffUpdate: `mutation($id: ID!, $input: StaffUpdateInput!) { staffUpdate(id: $id, input: $input) { user { ${USER} } errors { ${ERR} groups } staffErrors { ${ERR} groups } } }`,
  staffDelete: `mutation($id: ID!) { staffDelete(id: $id) { user { id email } errors { ${ERR} groups } staffErrors { ${ERR} groups } } }`,
  permissionGroupCreate: `mutation($input: PermissionGroupCreateInput!) { permissionGroupCreate(input: $input) { group { ${GROUP} } errors { ${ERR} } permissionGroupErrors { ${ERR} } } }`,
  permissionGroupUpdate: `mutation($id: ID!, $input: PermissionGroupUpdateInput!) { permissionGroupUpdate(id: $id, input: $input) { group { ${GROUP} } errors { ${ERR} } permissionGroupErrors { ${ERR} } } }`,
  permissionGroupDelete: `mutation($id: ID!) { permissionGroupDelete(id: $id) { group { id name } errors { ${ERR} } permissionGroupErrors { ${ERR} } } }`,
};
type Mutation = keyof typeof DOCS;
const ME = `{ me { isStaff userPermissions { code } } staffUsers(first: 1) { totalCount } }`;

let s: TestServer;
let prisma: Prisma;
let root: string;
let rootId: string;
let limited: string;
let limitedId: string;
let customerId: string;
const groups: Record<string, string> = {};

const uid = (id: number) => toGlobalId('User', id);

/** A staff user (direct permissions), and an access token carrying their current permissions. */
async function staffWithToken(email: string, permissions: PermissionCode[]) {
  const user = await upsertStaffUser(prisma, { email, permissions });
  return { id: uid(user.id), token: await tokenFor(email) };
}
async function tokenFor(email: string) {
  const user = (await prisma.user.findUnique({ where: { email } }))!;
  return s.running.app.tokens.mintAccessToken(user, await effectivePermissions(prisma, user), CORE_TOKEN_OWNER);
}

async function dbState() {
  return {
    users: await prisma.user.findMany({ orderBy: { id: 'asc' } }),
    groups: await prisma.permissionGroup.findMany({ orderBy: { id: 'asc' } }),
    members: await prisma.groupMember.findMany({ orderBy: [{ userId: 'asc' }, { groupId: 'asc' }] }),
    sessions: await prisma.session.findMany({ orderBy: { id: 'asc' }, select: { id: true, revokedAt: true } }),
    identities: await prisma.externalIdentity.count(),
  };
}

async function call(mutation: Mutation, variables: Record<string, unknown>, token = root) {
  const r = await s.gql(DOCS[mutation], variables, { token });
  expect(r.status).toBe(200);
  expect(r.body.errors).toBeUndefined();
  const out = r.body.data[mutation];
  // The deprecated duplicate always carries the same list.
  expect(out.staffErrors ?? out.permissionGroupErrors).toEqual(out.errors);
  return out;
}

async function succeed(mutation: Mutation, variables: Record<string, unknown>, token = root) {
  const out = await call(mutation, variables, token);
  expect(out.errors).toEqual([]);
  return out.user ?? out.group;
}

/** The mutation is refused with exactly `expected` (code, field and lists) and writes nothing. */
async function refused(mutation: Mutation, variables: Record<string, unknown>, token: string, expected: object[]) {
  const before = await dbState();
  const out = await call(mutation, variables, token);
  expect(mutation.startsWith('staff') ? out.user : out.group).toBeNull();
  expect(out.errors.map(({ message, ...rest }: { message: string }) => (expect(message).toEqual(expect.any(String)), rest))).toEqual(
    expected.map((e) => ({ permissions: null, users: null, ...(mutation.startsWith('staff') ? { groups: null } : {}), ...e })),
  );
  expect(await dbState()).toEqual(before);
}

/** The code of the first top-level error, if any. */
const topCode = (r: GqlResponse): unknown => r.body.errors?.[0]?.extensions?.['code'];

async function me(token: string) {
  const r = await s.gql(ME, {}, { token });
  return { me: r.body.data?.me ?? null, staffUsers: r.body.data?.staffUsers ?? null, denied: topCode(r) ?? null };
}

beforeAll(async () => {
  s = await startTestServer();
  prisma = s.running.app.db.prisma;
  root = await adminToken(s, ROOT_PERMISSIONS);
  rootId = uid((await prisma.user.findUnique({ where: { email: 'root-admin@example.com' } }))!.id);
  ({ id: limitedId, token: limited } = await staffWithToken('limited@example.com', ['MANAGE_STAFF', 'MANAGE_ORDERS']));
  customerId = uid((await prisma.user.create({ data: { email: 'customer@example.com', tokenKey: 'k' } })).id);
});
afterAll(async () => {
  await s?.close();
});

describe('access', () => {
  it('requires MANAGE_STAFF for every mutation and permissionGroup', async () => {
    const { token: ordersOnly } = await staffWithToken('orders-only@example.com', ['MANAGE_ORDERS']);
    const vars: Record<Mutation, Record<string, unknown>> = {
      staffCreate: { input: { email: 'x@example.com' } },
      staffUpdate: { id: rootId, input: {} },
      staffDelete: { id: rootId },
      permissionGroupCreate: { input: { name: 'x' } },
      permissionGroupUpdate: { id: toGlobalId('Group', 1), input: {} },
      permissionGroupDelete: { id: toGlobalId('Group', 1) },
    };
    for (const token of [undefined, ordersOnly]) {
      for (const [mutation, variables] of Object.entries(vars)) {
        const r = await s.gql(DOCS[mutation as Mutation], variables, token ? { token } : {});
        expect(r.body.data[mutation]).toBeNull();
        expect(topCode(r)).toBe('PermissionDenied');
      }
      const q = await s.gql(`query($id: ID!) { permissionGroup(id: $id) { id } }`, { id: toGlobalId('Group', 1) }, token ? { token } : {});
      expect(topCode(q)).toBe('PermissionDenied');
    }
  });
});

describe('permission groups', () => {
  it('creates groups with permissions and staff members', async () => {
    const orders = await succeed('permissionGroupCreate', { input: { name: ' Orders ', addPermissions: ['MANAGE_ORDERS'], addUsers: [limitedId] } });
    expect(orders).toMatchObject({ name: 'Orders', permissions: [{ code: 'MANAGE_ORDERS' }], users: [{ email: 'limited@example.com' }], userCanManage: true });
    groups['Orders'] = orders.id;
    groups['Plugins'] = (await succeed('permissionGroupCreate', { input: { name: 'Plugins', addPermissions: ['MANAGE_PLUGINS'] } })).id;
  });

  it('refuses with Saleor codes, writing nothing', async () => {
    await refused('permissionGroupCreate', { input: { name: 'Orders' } }, root, [{ field: 'name', code: 'UNIQUE' }]);
    await refused('permissionGroupCreate', { input: { name: '  ' } }, root, [{ field: 'name', code: 'REQUIRED' }]);
    await refused('permissionGroupCreate', { input: { name: 'Mine', addPermissions: ['MANAGE_ORDERS', 'MANAGE_PLUGINS'] } }, limited, [
      { field: 'addPermissions', code: 'OUT_OF_SCOPE_PERMISSION', permissions: ['MANAGE_PLUGINS'] },
    ]);
    await refused('permissionGroupCreate', { input: { name: 'Mine', addUsers: [customerId, limitedId] } }, root, [
      { field: 'addUsers', code: 'ASSIGN_NON_STAFF_MEMBER', users: [customerId] },
    ]);
    await refused('permissionGroupUpdate', { id: groups['Plugins'], input: { name: 'Mine' } }, limited, [{ field: null, code: 'OUT_OF_SCOPE_PERMISSION' }]);
    await refused('permissionGroupDelete', { id: groups['Plugins'] }, limited, [{ field: null, code: 'OUT_OF_SCOPE_PERMISSION' }]);
    await refused('permissionGroupUpdate', { id: groups['Orders'], input: { removeUsers: [rootId] } }, limited, [{ field: 'removeUsers', code: 'OUT_OF_SCOPE_USER', users: [rootId] }]);
    await refused(
      'permissionGroupUpdate',
      { id: groups['Orders'], input: { name: 'Renamed', addPermissions: ['MANAGE_STAFF'], removePermissions: ['MANAGE_STAFF'], addUsers: [rootId], removeUsers: [rootId] } },
      root,
      [
        { field: 'permissions', code: 'DUPLICATED_INPUT_ITEM', permissions: ['MANAGE_STAFF'] },
        { field: 'users', code: 'DUPLICATED_INPUT_ITEM', users: [rootId] },
      ],
    );
    // An unknown id: PermissionGroupErrorCode has no NOT_FOUND; a top-level error, as Saleor.
    const r = await s.gql(DOCS.permissionGroupUpdate, { id: toGlobalId('Group', 999), input: {} }, { token: root });
    expect(r.body.data.permissionGroupUpdate).toBeNull();
    expect(topCode(r)).toBe('NOT_FOUND');
  });

  it('answers who can manage which group', async () => {
    const read = async (id: string, token: string) =>
      (await s.gql(`query($id: ID!) { permissionGroup(id: $id) { name userCanManage } }`, { id }, { token })).body.data.permissionGroup;
    expect(await read(groups['Plugins']!, limited)).toEqual({ name: 'Plugins', userCanManage: false });
    expect(await read(groups['Plugins']!, root)).toEqual({ name: 'Plugins', userCanManage: true });
    expect(await read(toGlobalId('Group', 999), root)).toBeNull();
    const editable = async (token: string) => (await s.gql(`{ me { editableGroups { name } } }`, {}, { token })).body.data.me.editableGroups;
    expect(await editable(limited)).toEqual([{ name: 'Orders' }]);
    expect(await editable(root)).toEqual([{ name: 'Orders' }, { name: 'Plugins' }]);
    const sources = `query($u: ID!) { me { userPermissions { code sourcePermissionGroups(userId: $u) { name } } } }`;
    const mine = (await s.gql(sources, { u: limitedId }, { token: limited })).body.data.me.userPermissions;
    expect(mine).toEqual([
      { code: 'MANAGE_STAFF', sourcePermissionGroups: [] },
      { code: 'MANAGE_ORDERS', sourcePermissionGroups: [{ name: 'Orders' }] },
    ]);
    // About someone else: MANAGE_STAFF only.
    const ordersOnly = await tokenFor('orders-only@example.com');
    expect(topCode(await s.gql(sources, { u: limitedId }, { token: ordersOnly }))).toBe('PermissionDenied');
    // editableGroups: MANAGE_STAFF only, even of oneself (the field null, the rest answered).
    for (const token of [ordersOnly, await tokenFor('customer@example.com')]) {
      const r = await s.gql(`{ me { email editableGroups { name } } }`, {}, { token });
      expect(topCode(r)).toBe('PermissionDenied');
      expect(r.body.errors?.[0]?.path).toEqual(['me', 'editableGroups']);
      expect(r.body.data.me).toEqual({ email: expect.any(String), editableGroups: null });
    }
  });
});

describe('staff', () => {
  it('creates staff with groups and direct permissions, and promotes an existing customer', async () => {
    const created = await succeed('staffCreate', {
      input: { email: 'New.Staff@Example.com', addGroups: [groups['Orders']], addPermissions: ['MANAGE_PAGES'], redirectUrl: 'https://dash.example.com/new-password/' },
    });
    expect(created).toMatchObject({ email: 'new.staff@example.com', isStaff: true, isActive: true, permissionGroups: [{ name: 'Orders' }] });
    expect(created.userPermissions).toEqual([{ code: 'MANAGE_ORDERS' }, { code: 'MANAGE_PAGES' }]);
    const promoted = await succeed('staffCreate', { input: { email: 'customer@example.com' } });
    expect(promoted).toMatchObject({ id: customerId, isStaff: true });
    await succeed('staffUpdate', { id: customerId, input: { isActive: false } });
  });

  it('refuses with Saleor codes, writing nothing', async () => {
    const newStaff = uid((await prisma.user.findUnique({ where: { email: 'new.staff@example.com' } }))!.id);
    const unknownGroup = toGlobalId('Group', 999);
    await refused('staffCreate', { input: { email: 'LIMITED@example.com' } }, root, [{ field: 'email', code: 'UNIQUE' }]);
    await refused('staffCreate', { input: { firstName: 'No email' } }, root, [{ field: 'email', code: 'REQUIRED' }]);
    await refused('staffCreate', { input: { email: 'n@example.com', addGroups: [groups['Plugins']], addPermissions: ['MANAGE_PLUGINS'] } }, limited, [
      { field: 'addGroups', code: 'OUT_OF_SCOPE_GROUP', groups: [groups['Plugins']] },
      { field: 'addPermissions', code: 'OUT_OF_SCOPE_PERMISSION', permissions: ['MANAGE_PLUGINS'] },
    ]);
    await refused('staffUpdate', { id: rootId, input: { firstName: 'x' } }, limited, [{ field: 'id', code: 'OUT_OF_SCOPE_USER' }]);
    await refused('staffUpdate', { id: limitedId, input: { isActive: false } }, limited, [{ field: 'isActive', code: 'DEACTIVATE_OWN_ACCOUNT' }]);
    await refused('staffUpdate', { id: customerId, input: { removePermissions: ['MANAGE_PLUGINS'] } }, limited, [
      { field: 'removePermissions', code: 'OUT_OF_SCOPE_PERMISSION', permissions: ['MANAGE_PLUGINS'] },
    ]);
    await refused('staffUpdate', { id: newStaff, input: { addGroups: [groups['Orders']], removeGroups: [groups['Orders']], addPermissions: ['MANAGE_PAGES'], removePermissions: ['MANAGE_PAGES'] } }, root, [
      { field: 'groups', code: 'DUPLICATED_INPUT_ITEM', groups: [groups['Orders']] },
      { field: 'permissions', code: 'DUPLICATED_INPUT_ITEM', permissions: ['MANAGE_PAGES'] },
    ]);
    await refused('staffUpdate', { id: newStaff, input: { email: 'limited@example.com' } }, root, [{ field: 'email', code: 'UNIQUE' }]);
    // Valid parts are not written when another part is refused.
    await refused('staffUpdate', { id: newStaff, input: { email: 'changed@example.com', firstName: 'Changed', addGroups: [unknownGroup] } }, root, [
      { field: 'addGroups', code: 'NOT_FOUND', groups: [unknownGroup] },
    ]);
    await refused('staffUpdate', { id: uid(999), input: {} }, root, [{ field: 'id', code: 'NOT_FOUND' }]);
    await refused('staffUpdate', { id: 'junk', input: {} }, root, [{ field: 'id', code: 'NOT_FOUND' }]);
    await refused('staffDelete', { id: limitedId }, limited, [{ field: 'id', code: 'DELETE_OWN_ACCOUNT' }]);
    const other = uid((await prisma.user.create({ data: { email: 'other-customer@example.com', tokenKey: 'k' } })).id);
    await refused('staffDelete', { id: other }, root, [{ field: 'id', code: 'DELETE_NON_STAFF_USER', users: [other] }]);
    await refused('staffDelete', { id: rootId }, limited, [
      { field: 'id', code: 'OUT_OF_SCOPE_USER', users: [rootId] },
      { field: 'id', code: 'LEFT_NOT_MANAGEABLE_PERMISSION', permissions: ROOT_PERMISSIONS.filter((p) => p !== 'MANAGE_STAFF' && p !== 'MANAGE_ORDERS') },
    ]);
  });

  it('never leaves a permission nobody can manage', async () => {
    // Root giving up MANAGE_STAFF: only the limited admin would still manage staff (and orders).
    await refused('staffUpdate', { id: rootId, input: { removePermissions: ['MANAGE_STAFF'] } }, root, [
      { field: 'removePermissions', code: 'LEFT_NOT_MANAGEABLE_PERMISSION', permissions: ROOT_PERMISSIONS.filter((p) => p !== 'MANAGE_STAFF' && p !== 'MANAGE_ORDERS') },
    ]);
    // A translators' group beyond root, managed only by its one member.
    const t = await upsertStaffUser(prisma, { email: 'translator@example.com', permissions: [] });
    const g = await prisma.permissionGroup.create({ data: { name: 'Translators', permissions: ['MANAGE_STAFF', 'MANAGE_TRANSLATIONS'], members: { create: { userId: t.id } } } });
    const [tid, gid, translator] = [uid(t.id), toGlobalId('Group', g.id), await tokenFor('translator@example.com')];
    const lost = { code: 'LEFT_NOT_MANAGEABLE_PERMISSION', permissions: ['MANAGE_TRANSLATIONS'] };
    const lastGroup = { code: 'CANNOT_REMOVE_FROM_LAST_GROUP' };
    await refused('staffUpdate', { id: tid, input: { isActive: false } }, root, [{ field: 'id', code: 'OUT_OF_SCOPE_USER' }]);
    await refused('permissionGroupUpdate', { id: gid, input: { name: 'x' } }, root, [{ field: null, code: 'OUT_OF_SCOPE_PERMISSION' }]);
    await refused('permissionGroupUpdate', { id: gid, input: { removePermissions: ['MANAGE_STAFF'] } }, translator, [{ field: 'removePermissions', ...lost }]);
    await refused('permissionGroupUpdate', { id: gid, input: { removeUsers: [tid] } }, translator, [
      { field: 'removeUsers', ...lastGroup, users: [tid] },
      { field: 'removeUsers', ...lost },
    ]);
    await refused('permissionGroupDelete', { id: gid }, translator, [{ field: 'id', ...lost }, { field: 'id', ...lastGroup }]);
    await refused('staffUpdate', { id: tid, input: { removeGroups: [gid] } }, translator, [{ field: 'removeGroups', ...lost }]);
  });

  it('two concurrent changes cannot together leave a permission unmanageable', async () => {
    // Nobody else manages translations (the translator of the test above leaves).
    await prisma.user.deleteMany({ where: { email: 'translator@example.com' } });
    for (let round = 0; round < 5; round++) {
      // Two managers of translations, beyond root; each deactivates the other at the same moment.
      const a = await staffWithToken(`a${round}@example.com`, ['MANAGE_STAFF', 'MANAGE_TRANSLATIONS']);
      const b = await staffWithToken(`b${round}@example.com`, ['MANAGE_STAFF', 'MANAGE_TRANSLATIONS']);
      const [byA, byB] = await Promise.all([
        s.gql(DOCS.staffUpdate, { id: b.id, input: { isActive: false } }, { token: a.token }),
        s.gql(DOCS.staffUpdate, { id: a.id, input: { isActive: false } }, { token: b.token }),
      ]);
      const outcomes = [byA, byB].map((r) => r.body.data.staffUpdate?.errors.map((e: { code: string }) => e.code).join() ?? topCode(r));
      // One wins; the other is refused (or, arriving after the winner, no longer authenticated).
      expect(outcomes.filter((o) => o === '')).toHaveLength(1);
      expect(outcomes.filter((o) => o === 'LEFT_NOT_MANAGEABLE_PERMISSION' || o === 'PermissionDenied')).toHaveLength(1);
      const pair = { email: { in: [`a${round}@example.com`, `b${round}@example.com`] } };
      expect(await prisma.user.count({ where: { ...pair, isActive: true } })).toBe(1);
      // The next round starts again with nobody managing translations.
      await prisma.user.updateMany({ where: pair, data: { isActive: false } });
    }
  });

  it('deletes a staff user with their sessions, identities and memberships', async () => {
    const x = await succeed('staffCreate', { input: { email: 'leaving@example.com', addGroups: [groups['Orders']] } });
    const id = Number(Buffer.from(x.id, 'base64').toString().split(':')[1]);
    await prisma.externalIdentity.create({ data: { userId: id, pluginId: 'p', issuer: 'https://idp.example.com', subject: 'leaving' } });
    await prisma.session.create({ data: { id: randomUUID(), userId: id, pluginId: 'p', issuer: 'https://idp.example.com', subject: 'leaving', refreshTokenId: 'r', expiresAt: new Date(Date.now() + 3600_000) } });
    expect(await succeed('staffDelete', { id: x.id }, limited)).toEqual({ id: x.id, email: 'leaving@example.com' });
    expect(await prisma.user.count({ where: { id } })).toBe(0);
    expect(await prisma.externalIdentity.count({ where: { userId: id } })).toBe(0);
    expect(await prisma.session.count({ where: { userId: id } })).toBe(0);
    expect(await prisma.groupMember.count({ where: { userId: id } })).toBe(0);
  });
});

describe('revocation', () => {
  it('a demoted user loses the permission on their next request (direct permission)', async () => {
    const { id, token } = await staffWithToken('demoted@example.com', ['MANAGE_STAFF', 'MANAGE_ORDERS']);
    expect(await me(token)).toMatchObject({ me: { isStaff: true, userPermissions: [{ code: 'MANAGE_STAFF' }, { code: 'MANAGE_ORDERS' }] }, denied: null });
    await succeed('staffUpdate', { id, input: { removePermissions: ['MANAGE_STAFF'] } });
    expect(await me(token)).toEqual({ me: { isStaff: true, userPermissions: [{ code: 'MANAGE_ORDERS' }] }, staffUsers: null, denied: 'PermissionDenied' });
  });

  it('a demoted user loses the permission on their next request (group permission or membership)', async () => {
    const managers = (await succeed('permissionGroupCreate', { input: { name: 'Managers', addPermissions: ['MANAGE_STAFF'] } })).id;
    const { id } = await staffWithToken('member@example.com', []);
    await succeed('staffUpdate', { id, input: { addGroups: [managers] } });
    const token = await tokenFor('member@example.com');
    expect((await me(token)).denied).toBeNull();
    await succeed('permissionGroupUpdate', { id: managers, input: { removePermissions: ['MANAGE_STAFF'] } });
    expect(await me(token)).toMatchObject({ me: { userPermissions: [] }, denied: 'PermissionDenied' });
    await succeed('permissionGroupUpdate', { id: managers, input: { addPermissions: ['MANAGE_STAFF'] } });
    expect((await me(token)).denied).toBeNull();
    await succeed('staffUpdate', { id, input: { removeGroups: [managers] } });
    expect(await me(token)).toMatchObject({ me: { userPermissions: [] }, denied: 'PermissionDenied' });
  });

  it('a deactivated user loses access at once, their sessions end, and reactivation does not revive old tokens', async () => {
    const { id, token } = await staffWithToken('deactivated@example.com', ['MANAGE_STAFF']);
    const userId = Number(Buffer.from(id, 'base64').toString().split(':')[1]);
    const session = await prisma.session.create({ data: { id: randomUUID(), userId, pluginId: 'p', issuer: 'https://idp.example.com', subject: 'd', refreshTokenId: 'r', expiresAt: new Date(Date.now() + 3600_000) } });
    expect((await me(token)).me).not.toBeNull();
    await succeed('staffUpdate', { id, input: { isActive: false } });
    expect(await me(token)).toEqual({ me: null, staffUsers: null, denied: 'PermissionDenied' });
    expect(await prisma.session.findUnique({ where: { id: session.id } })).toMatchObject({ revokedAt: expect.any(Date), revokedReason: 'user-deactivated' });
    await succeed('staffUpdate', { id, input: { isActive: true } });
    expect((await me(token)).me).toBeNull();
  });

  it('a `me` answered from the principal alone (remembered per principal) is each token’s own, and changes on the next request after a demotion, a metadata change and a deactivation', async () => {
    const { id, token } = await staffWithToken('remembered@example.com', ['MANAGE_STAFF', 'MANAGE_ORDERS']);
    // A second token of the same user granting less (a token carries its own grant).
    const user = (await prisma.user.findUnique({ where: { email: 'remembered@example.com' } }))!;
    const narrow = await s.running.app.tokens.mintAccessToken(user, ['MANAGE_ORDERS'], CORE_TOKEN_OWNER);
    const pureMe = async (t = token) => {
      const r = await s.gql('query PureMe { me { email isStaff userPermissions { code } metadata { key value } } }', {}, { token: t });
      expect(r.status).toBe(200);
      return r.body.data.me;
    };
    // Answered by Apollo, then as a known operation (computed, then remembered), then remembered.
    for (let i = 0; i < 4; i++) {
      expect(await pureMe()).toEqual({ email: 'remembered@example.com', isStaff: true, userPermissions: [{ code: 'MANAGE_STAFF' }, { code: 'MANAGE_ORDERS' }], metadata: [] });
      expect((await pureMe(narrow)).userPermissions).toEqual([{ code: 'MANAGE_ORDERS' }]);
    }
    await succeed('staffUpdate', { id, input: { removePermissions: ['MANAGE_STAFF'] } });
    expect((await pureMe()).userPermissions).toEqual([{ code: 'MANAGE_ORDERS' }]);
    expect((await pureMe()).userPermissions).toEqual([{ code: 'MANAGE_ORDERS' }]);
    const meta = await s.gql('mutation($id: ID!) { updateMetadata(id: $id, input: [{ key: "k", value: "v" }]) { errors { code } } }', { id }, { token: root });
    expect(meta.body.data.updateMetadata.errors).toEqual([]);
    for (const t of [token, narrow, token, narrow]) expect((await pureMe(t)).metadata).toEqual([{ key: 'k', value: 'v' }]);
    await succeed('staffUpdate', { id, input: { isActive: false } });
    for (const t of [token, narrow, token, narrow]) expect(await pureMe(t)).toBeNull();
  });

  /** Refused with a top-level PermissionDenied, as without MANAGE_STAFF, writing nothing. */
  async function denied(mutation: Mutation, variables: Record<string, unknown>, token: string) {
    const before = await dbState();
    const r = await s.gql(DOCS[mutation], variables, { token });
    expect(r.body.data[mutation]).toBeNull();
    expect(topCode(r)).toBe('PermissionDenied');
    expect(r.body.errors?.[0]?.message).toBe('You need one of the following permissions: MANAGE_STAFF');
    expect(await dbState()).toEqual(before);
  }

  it('a demoted manager cannot restore their rights while their principal is still cached', async () => {
    const { id, token } = await staffWithToken('stale@example.com', ['MANAGE_STAFF', 'MANAGE_ORDERS']);
    const userId = Number(Buffer.from(id, 'base64').toString().split(':')[1]);
    expect((await me(token)).denied).toBeNull();
    // Demoted by another instance: this one's cached principal still has both permissions.
    await prisma.user.update({ where: { id: userId }, data: { permissions: [] } });
    expect(await me(token)).toMatchObject({ me: { userPermissions: [{ code: 'MANAGE_STAFF' }, { code: 'MANAGE_ORDERS' }] }, denied: null });
    await denied('staffUpdate', { id, input: { addPermissions: ['MANAGE_STAFF', 'MANAGE_ORDERS'] } }, token);
    expect((await prisma.user.findUnique({ where: { id: userId } }))!.permissions).toEqual([]);
    const refusals = await prisma.auditEvent.findMany({ where: { actorUserId: userId } });
    expect(refusals.map((e) => [e.type, e.outcome, e.detail])).toEqual([['staff.update', 'failure', { id, errors: ['-:PermissionDenied'] }]]);
    // The stale principal is forgotten: the next request sees the demotion.
    expect(await me(token)).toMatchObject({ me: { userPermissions: [] }, denied: 'PermissionDenied' });
    await denied('staffUpdate', { id, input: { addPermissions: ['MANAGE_STAFF'] } }, token);
  });

  it('a manager whose group lost MANAGE_STAFF cannot give it back while their principal is still cached', async () => {
    const { id } = await staffWithToken('stale-member@example.com', []);
    const userId = Number(Buffer.from(id, 'base64').toString().split(':')[1]);
    const g = await prisma.permissionGroup.create({ data: { name: 'Stale managers', permissions: ['MANAGE_STAFF'], members: { create: { userId } } } });
    const member = await tokenFor('stale-member@example.com');
    expect((await me(member)).denied).toBeNull();
    await prisma.permissionGroup.update({ where: { id: g.id }, data: { permissions: [] } });
    await denied('permissionGroupUpdate', { id: toGlobalId('Group', g.id), input: { addPermissions: ['MANAGE_STAFF'] } }, member);
  });

  it('a deactivated manager can change nothing while their principal is still cached', async () => {
    const attempts: Array<[Mutation, (self: string) => Record<string, unknown>]> = [
      ['staffUpdate', (self) => ({ id: self, input: { isActive: true } })],
      ['staffCreate', () => ({ input: { email: 'accomplice@example.com', addPermissions: ['MANAGE_STAFF'] } })],
      ['staffDelete', () => ({ id: limitedId })],
      ['permissionGroupCreate', (self) => ({ input: { name: 'Comeback', addPermissions: ['MANAGE_STAFF'], addUsers: [self] } })],
      ['permissionGroupUpdate', () => ({ id: groups['Orders'], input: { removeUsers: [limitedId] } })],
      ['permissionGroupDelete', () => ({ id: groups['Orders'] })],
    ];
    for (const [mutation, variables] of attempts) {
      const { id, token } = await staffWithToken(`stale-${mutation.toLowerCase()}@example.com`, ['MANAGE_STAFF', 'MANAGE_ORDERS']);
      expect((await me(token)).denied).toBeNull();
      await prisma.user.update({ where: { id: Number(Buffer.from(id, 'base64').toString().split(':')[1]) }, data: { isActive: false } });
      expect((await me(token)).me).not.toBeNull();
      await denied(mutation, variables(id), token);
      expect((await me(token)).me).toBeNull();
    }
  });

  it('audits every change and every refusal', async () => {
    const events = await prisma.auditEvent.findMany({ where: { type: { in: ['staff.create', 'staff.update', 'staff.delete', 'group.create', 'group.update', 'group.delete'] } } });
    const seen = new Set(events.map((e) => `${e.type}:${e.outcome}`));
    for (const t of ['staff.create', 'staff.update', 'staff.delete', 'group.create', 'group.update']) expect(seen).toContain(`${t}:success`);
    for (const t of ['staff.create', 'staff.update', 'staff.delete', 'group.create', 'group.update', 'group.delete']) expect(seen).toContain(`${t}:failure`);
    expect(events.every((e) => e.actorUserId !== null)).toBe(true);
  });
});
