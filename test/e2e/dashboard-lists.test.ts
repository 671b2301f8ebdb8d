/**
 * The Saleor Dashboard's list pages over HTTP (issue 12 items 4 and 5): staffUsers,
 * permissionGroups and plugins with `filter`, `sortBy` and paging in both directions, through
 * documents of our own that make the same selections as the Dashboard's StaffList,
 * PermissionGroupList and Plugins queries.
 *
 * One server (its own database); the data is made in beforeAll and never changed, and the staff and
 * group assertions are scoped with a search on the `dlq` prefix (the root admin is staff too).
 * Names and emails differ at their first varying letter, so PostgreSQL's C and en_US collations
 * order them alike.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upsertStaffUser } from '../../src/accounts/users.ts';
import { CORE_TOKEN_OWNER } from '../../src/tokens/jwt.ts';
import { toGlobalId } from '../../src/core/ids.ts';
import type { Prisma } from '../../src/db/database.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { startFakeProvider, type FakeProvider } from '../helpers/fake-provider.ts';
import { adminToken, configure, DEFAULT_PLUGIN, REDIRECT_URI } from '../helpers/oidc-flow.ts';

const PAGE_INFO = 'pageInfo { hasPreviousPage hasNextPage startCursor endCursor }';
const STAFF_LIST = `query StaffList($first: Int, $after: String, $last: Int, $before: String, $filter: StaffUserInput, $sort: UserSortingInput) {
  staffUsers(before: $before, after: $after, first: $first, last: $last, filter: $filter, sortBy: $sort) {
    edges { cursor node { id email firstName lastName isActive avatar(size: 48) { url alt } } }
    ${PAGE_INFO}
  }
}`;
const GROUP_LIST = `query PermissionGroupList($first: Int, $after: String, $last: Int, $before: String, $filter: PermissionGroupFilterInput, $sort: PermissionGroupSortingInput) {
  permissionGroups(before: $before, after: $after, first: $first, last: $last, filter: $filter, sortBy: $sort) {
    edges { node { id name userCanManage users { id firstName lastName } } }
    ${PAGE_INFO}
  }
}`;
const PLUGIN_LIST = `query Plugins($first: Int, $after: String, $last: Int, $before: String, $filter: PluginFilterInput, $sort: PluginSortingInput) {
  plugins(before: $before, after: $after, first: $first, last: $last, filter: $filter, sortBy: $sort) {
    edges { node { id name description channelConfigurations { active channel { id name slug } } globalConfiguration { active channel { id name slug } } } }
    ${PAGE_INFO}
    totalCount
  }
}`;

type Field = 'staffUsers' | 'permissionGroups' | 'plugins';
const DOCS: Record<Field, string> = { staffUsers: STAFF_LIST, permissionGroups: GROUP_LIST, plugins: PLUGIN_LIST };

interface PageInfo {
  hasPreviousPage: boolean;
  hasNextPage: boolean;
  startCursor: string | null;
  endCursor: string | null;
}
interface Conn {
  edges: Array<{ cursor?: string; node: any }>;
  pageInfo: PageInfo;
  totalCount?: number;
}

const DOMAIN = '@lists.example.com';
const email = (name: string) => `dlq-${name}${DOMAIN}`;
/** The staff users: [name, firstName, lastName, active, dateJoined (day), updatedAt (day)]. */
const STAFF: Array<[string, string, string, boolean, number, number]> = [
  ['alpha', 'Greta', 'Moss', true, 5, 2],
  ['bravo', 'Carl', 'Zeller', true, 3, 6],
  ['charlie', 'Ivy', 'Brook', true, 7, 1],
  ['delta', 'Ada', 'Quinn', true, 1, 5],
  ['echo', 'Ned', 'Hale', true, 6, 3],
  ['foxtrot', 'Carl', 'Abbot', true, 2, 7],
  ['golf', 'Olga', 'Ford', false, 4, 4],
];
const ALL = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf'];
const MINE = { search: 'dlq-' };
const GROUPS = ['Dlq Auditors', 'Dlq Buyers', 'Dlq Curators', 'Dlq Dispatch', 'Dlq Editors'];
/** A group whose name holds LIKE's wildcards and escape character. */
const WILD = 'Pct 50%_off\\zz';

let s: TestServer;
let prisma: Prisma;
let idp: FakeProvider;
let root: string;
/** A staff user with MANAGE_USERS only. */
let weak: string;
const userIds: Record<string, number> = {};
const groupIds: Record<string, number> = {};

beforeAll(async () => {
  idp = await startFakeProvider();
  s = await startTestServer({ OUTBOUND_ALLOW_PRIVATE_ADDRESSES: 'true' });
  prisma = s.running.app.db.prisma;
  root = await adminToken(s);
  const weakUser = await upsertStaffUser(prisma, { email: 'weak-admin@example.com', permissions: ['MANAGE_USERS'] });
  weak = await s.running.app.tokens.mintAccessToken(weakUser, ['MANAGE_USERS'], CORE_TOKEN_OWNER);

  for (const [name, firstName, lastName, isActive, joined, updated] of STAFF) {
    const user = await upsertStaffUser(prisma, { email: email(name), permissions: [] });
    await prisma.user.update({
      where: { id: user.id },
      data: { firstName, lastName, isActive, dateJoined: new Date(Date.UTC(2020, 0, joined)), updatedAt: new Date(Date.UTC(2021, 2, updated)) },
    });
    userIds[name] = user.id;
  }
  // A customer matching every search below: never listed.
  const customer = await prisma.user.create({
    data: { email: email('hotel'), firstName: 'Carl', lastName: 'Moss', isStaff: false, tokenKey: randomUUID() },
  });
  userIds['hotel'] = customer.id;

  const members: Record<string, string[]> = { 'Dlq Auditors': ['bravo', 'alpha'], 'Dlq Curators': ['charlie'] };
  for (const name of [...GROUPS].reverse()) {
    const group = await prisma.permissionGroup.create({
      data: {
        name,
        // Root holds MANAGE_STAFF but not MANAGE_ORDERS.
        permissions: name === 'Dlq Buyers' ? ['MANAGE_ORDERS'] : ['MANAGE_STAFF'],
        members: { create: (members[name] ?? []).map((m) => ({ userId: userIds[m]! })) },
      },
    });
    groupIds[name] = group.id;
  }
  await prisma.permissionGroup.create({ data: { name: 'Other Team' } });
  await prisma.permissionGroup.create({ data: { name: WILD } });

  for (const [id, name] of [
    ['dlq.zeta', 'Acme Login'],
    ['dlq.alpha', 'Zebra SSO'],
    ['dlq.mid', 'Midway Okta'],
    ['dlq.kilo', 'Keycloak Staff'],
  ]) {
    const r = await s.gql(
      `mutation($input: OpenIdConnectConnectionCreateInput!) { openIdConnectConnectionCreate(input: $input) { plugin { id } errors { field code message } } }`,
      { input: { id, name } },
      { token: root },
    );
    expect(r.body.data?.openIdConnectConnectionCreate?.errors, JSON.stringify(r.body)).toEqual([]);
  }
  for (const id of ['dlq.zeta', 'dlq.mid']) {
    await configure(s, root, id, {
      issuer_url: idp.issuer,
      client_id: `client-${id}`,
      client_secret: 'list-test-secret',
      allowed_redirect_uris: REDIRECT_URI,
    });
  }
});
afterAll(async () => {
  await s?.close();
  await idp?.close();
});

/** `token` null: anonymous. */
async function query(field: Field, variables: Record<string, unknown>, token: string | null = root) {
  const r = await s.gql(DOCS[field], variables, token ? { token } : {});
  expect(r.status).toBe(200);
  return r;
}

async function list(field: Field, variables: Record<string, unknown>, token: string = root): Promise<Conn> {
  const r = await query(field, variables, token);
  expect(r.body.errors, JSON.stringify(r.body.errors)).toBeUndefined();
  return r.body.data[field] as Conn;
}

/** The request is refused with BAD_USER_INPUT, the list null, and nothing of ours in the answer. */
async function refused(field: Field, variables: Record<string, unknown>, message?: RegExp) {
  const r = await query(field, variables);
  expect(r.body.errors).toHaveLength(1);
  expect(r.body.errors![0]!.extensions?.['code']).toBe('BAD_USER_INPUT');
  if (message) expect(r.body.errors![0]!.message).toMatch(message);
  expect(r.body.data).toEqual({ [field]: null });
  expect(JSON.stringify(r.body)).not.toMatch(/dlq-|Dlq |dlq\./);
}

const emails = (c: Conn) => c.edges.map((e) => e.node.email as string);
const names = (c: Conn) => c.edges.map((e) => e.node.name as string);
const ids = (c: Conn) => c.edges.map((e) => e.node.id as string);
const staffEmails = (...n: string[]) => n.map(email);
const uid = (name: string) => toGlobalId('User', userIds[name]!);
const gid = (name: string) => toGlobalId('Group', groupIds[name]!);

/**
 * Pages through a whole list, `size` at a time: forwards (first/after) or backwards (last/before).
 * Returns the pages in the order they were fetched.
 */
async function walk(field: Field, variables: Record<string, unknown>, size: number, direction: 'forward' | 'backward') {
  const pages: Conn[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < 20; i++) {
    const page = await list(
      field,
      direction === 'forward' ? { ...variables, first: size, after: cursor } : { ...variables, last: size, before: cursor },
    );
    pages.push(page);
    const more = direction === 'forward' ? page.pageInfo.hasNextPage : page.pageInfo.hasPreviousPage;
    if (!more) break;
    cursor = direction === 'forward' ? page.pageInfo.endCursor : page.pageInfo.startCursor;
  }
  return pages;
}

/**
 * Forward and backward paging give exactly `expected` (by `key`), in the same order, with the
 * page flags and cursors Relay asks for.
 */
async function expectBothWays(field: Field, variables: Record<string, unknown>, size: number, key: (c: Conn) => string[], expected: string[]) {
  const count = Math.ceil(expected.length / size);
  const forward = await walk(field, variables, size, 'forward');
  expect(forward).toHaveLength(count);
  expect(forward.flatMap(key)).toEqual(expected);
  forward.forEach((page, i) => {
    expect(page.edges).toHaveLength(i < count - 1 ? size : expected.length - size * (count - 1));
    expect(page.pageInfo.hasPreviousPage).toBe(i > 0);
    expect(page.pageInfo.hasNextPage).toBe(i < count - 1);
  });

  const backward = await walk(field, variables, size, 'backward');
  expect(backward).toHaveLength(count);
  expect([...backward].reverse().flatMap(key)).toEqual(expected);
  backward.forEach((page, i) => {
    expect(page.edges).toHaveLength(i < count - 1 ? size : expected.length - size * (count - 1));
    expect(page.pageInfo.hasNextPage).toBe(i > 0);
    expect(page.pageInfo.hasPreviousPage).toBe(i < count - 1);
  });

  for (const page of [...forward, ...backward]) {
    expect(typeof page.pageInfo.startCursor).toBe('string');
    expect(typeof page.pageInfo.endCursor).toBe('string');
  }
  // The same item has the same cursor whichever way it was reached (the StaffList selects them).
  if (field === 'staffUsers') {
    const edgeCursors = (pages: Conn[]) => pages.flatMap((p) => p.edges.map((e) => e.cursor));
    expect(edgeCursors([...backward].reverse())).toEqual(edgeCursors(forward));
    for (const page of [...forward, ...backward]) {
      expect(page.pageInfo.startCursor).toBe(page.edges[0]!.cursor);
      expect(page.pageInfo.endCursor).toBe(page.edges.at(-1)!.cursor);
    }
  }
}

describe('staffUsers', () => {
  it('answers the Dashboard StaffList selection, staff only, by email by default', async () => {
    const c = await list('staffUsers', { first: 100, filter: MINE });
    expect(emails(c)).toEqual(staffEmails(...ALL));
    expect(c.edges[0]!.node).toEqual({ id: uid('alpha'), email: email('alpha'), firstName: 'Greta', lastName: 'Moss', isActive: true, avatar: null });
    expect(c.edges.at(-1)!.node.isActive).toBe(false);
    expect(c.pageInfo).toEqual({ hasPreviousPage: false, hasNextPage: false, startCursor: c.edges[0]!.cursor, endCursor: c.edges.at(-1)!.cursor });

    // Unfiltered: every staff user (the two admins and ours), never the customer.
    const all = await list('staffUsers', { first: 100 });
    expect(emails(all)).toEqual([...staffEmails(...ALL), 'root-admin@example.com', 'weak-admin@example.com']);
    // Neither first nor last: forwards by 100 (ours; Saleor refuses).
    expect(emails(await list('staffUsers', {}))).toEqual(emails(all));
  });

  it('pages forwards and backwards through the same items', async () => {
    await expectBothWays('staffUsers', { filter: MINE }, 3, emails, staffEmails(...ALL));
    await expectBothWays('staffUsers', { filter: MINE }, 1, emails, staffEmails(...ALL));
    await expectBothWays('staffUsers', { filter: MINE }, 7, emails, staffEmails(...ALL));
    await expectBothWays(
      'staffUsers',
      { filter: MINE, sort: { field: 'LAST_NAME', direction: 'DESC' } },
      2,
      emails,
      staffEmails('bravo', 'delta', 'alpha', 'echo', 'golf', 'charlie', 'foxtrot'),
    );
  });

  it('pages from a cursor in the middle, and past the ends', async () => {
    const full = await list('staffUsers', { first: 100, filter: MINE });
    const cursor = (name: string) => full.edges[ALL.indexOf(name)]!.cursor;
    let c = await list('staffUsers', { filter: MINE, first: 2, after: cursor('charlie') });
    expect(emails(c)).toEqual(staffEmails('delta', 'echo'));
    expect(c.pageInfo).toMatchObject({ hasPreviousPage: true, hasNextPage: true, startCursor: cursor('delta'), endCursor: cursor('echo') });
    c = await list('staffUsers', { filter: MINE, last: 2, before: cursor('charlie') });
    expect(emails(c)).toEqual(staffEmails('alpha', 'bravo'));
    expect(c.pageInfo).toMatchObject({ hasPreviousPage: false, hasNextPage: true });
    c = await list('staffUsers', { filter: MINE, after: cursor('bravo'), before: cursor('foxtrot') });
    expect(emails(c)).toEqual(staffEmails('charlie', 'delta', 'echo'));
    c = await list('staffUsers', { filter: MINE, first: 5, after: cursor('golf') });
    expect(c.edges).toEqual([]);
    expect(c.pageInfo).toEqual({ hasPreviousPage: true, hasNextPage: false, startCursor: null, endCursor: null });
    c = await list('staffUsers', { filter: MINE, last: 5, before: cursor('alpha') });
    expect(c.edges).toEqual([]);
    expect(c.pageInfo).toEqual({ hasPreviousPage: false, hasNextPage: true, startCursor: null, endCursor: null });
    c = await list('staffUsers', { filter: MINE, first: 0 });
    expect(c.edges).toEqual([]);
  });

  it('refuses first with last, more than 100, and garbage cursors, before reading anything', async () => {
    await refused('staffUsers', { filter: MINE, first: 2, last: 2 }, /cannot be combined/);
    await refused('staffUsers', { filter: MINE, first: 101 }, /between 0 and 100/);
    await refused('staffUsers', { filter: MINE, last: 101 }, /between 0 and 100/);
    await refused('staffUsers', { filter: MINE, first: -1 });
    for (const cursor of ['garbage', Buffer.from('arrayconnection:-1').toString('base64'), Buffer.from('arrayconnection:x').toString('base64'), "' OR 1=1 --"]) {
      await refused('staffUsers', { filter: MINE, first: 2, after: cursor }, /Invalid cursor/);
      await refused('staffUsers', { filter: MINE, last: 2, before: cursor }, /Invalid cursor/);
    }
    // Exactly 100 is allowed.
    expect(emails(await list('staffUsers', { filter: MINE, last: 100 }))).toEqual(staffEmails(...ALL));
  });

  it('searches email, first and last name, case-insensitively', async () => {
    const search = async (text: string) => emails(await list('staffUsers', { first: 100, filter: { search: text } }));
    expect(await search('DLQ-ECHO')).toEqual(staffEmails('echo'));
    expect(await search('  lists.EXAMPLE  ')).toEqual(staffEmails(...ALL));
    expect(await search('carl')).toEqual(staffEmails('bravo', 'foxtrot'));
    expect(await search('mOsS')).toEqual(staffEmails('alpha'));
    expect(await search('ZELL')).toEqual(staffEmails('bravo'));
    expect(await search('olg')).toEqual(staffEmails('golf'));
    expect(await search('nobody-like-this')).toEqual([]);
    // LIKE wildcards are plain characters.
    expect(await search('%')).toEqual([]);
    expect(await search('_')).toEqual([]);
    // Blank: no filter.
    expect(await search('   ')).toHaveLength(ALL.length + 2);
    expect(await search('')).toHaveLength(ALL.length + 2);
    expect(await search('x'.repeat(256))).toEqual([]);
    await refused('staffUsers', { first: 10, filter: { search: 'x'.repeat(257) } }, /at most 256/);
  });

  it('filters by status', async () => {
    const active = await list('staffUsers', { first: 100, filter: { ...MINE, status: 'ACTIVE' } });
    expect(emails(active)).toEqual(staffEmails('alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot'));
    const deactivated = await list('staffUsers', { first: 100, filter: { ...MINE, status: 'DEACTIVATED' } });
    expect(emails(deactivated)).toEqual(staffEmails('golf'));
    expect(deactivated.edges[0]!.node.isActive).toBe(false);
    // Paged backwards within the filter.
    await expectBothWays('staffUsers', { filter: { ...MINE, status: 'ACTIVE' } }, 4, emails, emails(active));
  });

  it('filters by ids', async () => {
    const byIds = async (globalIds: string[], filter = {}) => emails(await list('staffUsers', { first: 100, filter: { ids: globalIds, ...filter } }));
    expect(await byIds([uid('charlie'), uid('alpha')])).toEqual(staffEmails('alpha', 'charlie'));
    expect(await byIds([uid('charlie'), uid('alpha'), uid('golf')], { status: 'ACTIVE' })).toEqual(staffEmails('alpha', 'charlie'));
    expect(await byIds([uid('charlie'), uid('alpha')], { search: 'IVY' })).toEqual(staffEmails('charlie'));
    // A customer is not staff; an id beyond any key names nobody.
    expect(await byIds([uid('hotel')])).toEqual([]);
    expect(await byIds([toGlobalId('User', 99_999_999_999)])).toEqual([]);
    expect(await byIds([toGlobalId('User', 2_147_483_647)])).toEqual([]);
    // An empty list is no filter.
    expect(await byIds([], MINE)).toEqual(staffEmails(...ALL));
    // Not a User id.
    await refused('staffUsers', { first: 10, filter: { ids: ['garbage'] } }, /Couldn't resolve id/);
    await refused('staffUsers', { first: 10, filter: { ids: [uid('alpha'), gid('Dlq Auditors')] } }, /Couldn't resolve id/);
    await refused('staffUsers', { first: 10, filter: { ids: [Buffer.from('User:abc').toString('base64')] } }, /Couldn't resolve id/);
    await refused('staffUsers', { first: 10, filter: { ids: Array.from({ length: 101 }, (_, i) => toGlobalId('User', i + 1)) } }, /At most 100/);
    expect(await byIds(Array.from({ length: 100 }, (_, i) => toGlobalId('User', i + 1)), MINE)).toEqual(staffEmails(...ALL));
  });

  it('sorts by every field, both directions', async () => {
    const sorted = async (field: string, direction: string) =>
      emails(await list('staffUsers', { first: 100, filter: MINE, sort: { field, direction } })).map((e) => e.slice(4, -DOMAIN.length));
    const cases: Record<string, string[]> = {
      // Ties (two Carls) are broken by last name, then id.
      FIRST_NAME: ['delta', 'foxtrot', 'bravo', 'alpha', 'charlie', 'echo', 'golf'],
      LAST_NAME: ['foxtrot', 'charlie', 'golf', 'echo', 'alpha', 'delta', 'bravo'],
      EMAIL: ALL,
      ORDER_COUNT: ALL,
      RANK: ALL,
      CREATED_AT: ['delta', 'foxtrot', 'bravo', 'golf', 'alpha', 'echo', 'charlie'],
      LAST_MODIFIED_AT: ['charlie', 'alpha', 'echo', 'golf', 'delta', 'bravo', 'foxtrot'],
    };
    for (const [field, ascending] of Object.entries(cases)) {
      expect(await sorted(field, 'ASC'), field).toEqual(ascending);
      expect(await sorted(field, 'DESC'), field).toEqual([...ascending].reverse());
    }
    // Paged backwards in a sort with ties.
    await expectBothWays('staffUsers', { filter: MINE, sort: { field: 'FIRST_NAME', direction: 'ASC' } }, 2, emails, staffEmails(...cases['FIRST_NAME']!));
  });

  it('requires MANAGE_STAFF, checked before the arguments', async () => {
    for (const token of [weak, null]) {
      for (const variables of [{ first: 10, filter: MINE }, { first: 10, after: 'garbage' }, { first: 1, last: 1 }]) {
        const r = await query('staffUsers', variables, token);
        expect(r.body.errors, JSON.stringify(r.body)).toHaveLength(1);
        expect(r.body.errors![0]!.extensions?.['exception']?.code).toBe('PermissionDenied');
        expect(r.body.data).toEqual({ staffUsers: null });
        expect(JSON.stringify(r.body)).not.toContain('dlq-');
      }
    }
  });
});

describe('permissionGroups', () => {
  it('answers the Dashboard PermissionGroupList selection, by name by default', async () => {
    const c = await list('permissionGroups', { first: 100, filter: { search: 'dlq' } });
    expect(names(c)).toEqual(GROUPS);
    expect(c.edges.map((e) => e.node)).toEqual([
      {
        id: gid('Dlq Auditors'),
        name: 'Dlq Auditors',
        userCanManage: true,
        users: [
          { id: uid('alpha'), firstName: 'Greta', lastName: 'Moss' },
          { id: uid('bravo'), firstName: 'Carl', lastName: 'Zeller' },
        ],
      },
      { id: gid('Dlq Buyers'), name: 'Dlq Buyers', userCanManage: false, users: [] },
      { id: gid('Dlq Curators'), name: 'Dlq Curators', userCanManage: true, users: [{ id: uid('charlie'), firstName: 'Ivy', lastName: 'Brook' }] },
      { id: gid('Dlq Dispatch'), name: 'Dlq Dispatch', userCanManage: true, users: [] },
      { id: gid('Dlq Editors'), name: 'Dlq Editors', userCanManage: true, users: [] },
    ]);
    expect(c.pageInfo).toMatchObject({ hasPreviousPage: false, hasNextPage: false });
    expect(names(await list('permissionGroups', { first: 100 }))).toEqual([...GROUPS, 'Other Team', WILD]);
  });

  it('pages forwards and backwards through the same items', async () => {
    await expectBothWays('permissionGroups', { filter: { search: 'dlq' } }, 2, names, GROUPS);
    await expectBothWays('permissionGroups', { filter: { search: 'dlq' } }, 5, names, GROUPS);
    await expectBothWays('permissionGroups', { sort: { field: 'NAME', direction: 'DESC' } }, 4, names, [WILD, 'Other Team', ...[...GROUPS].reverse()]);
  });

  it('filters by search and ids, sorts by name both ways', async () => {
    const groups = async (variables: Record<string, unknown>) => names(await list('permissionGroups', { first: 100, ...variables }));
    expect(await groups({ filter: { search: '  EDIT ' } })).toEqual(['Dlq Editors']);
    expect(await groups({ filter: { search: 'rs' } })).toEqual(['Dlq Auditors', 'Dlq Buyers', 'Dlq Curators', 'Dlq Editors']);
    // LIKE wildcards and the escape character are plain characters.
    for (const search of ['%', '_', '\\', '50%_O', '%_off\\z']) expect(await groups({ filter: { search } }), search).toEqual([WILD]);
    for (const search of ['5_%', 'x%', 'P_t', 'f\\\\z']) expect(await groups({ filter: { search } }), search).toEqual([]);
    expect(await groups({ filter: { ids: [gid('Dlq Curators'), gid('Dlq Auditors')] } })).toEqual(['Dlq Auditors', 'Dlq Curators']);
    expect(await groups({ filter: { ids: [gid('Dlq Curators'), gid('Dlq Auditors')], search: 'cur' } })).toEqual(['Dlq Curators']);
    expect(await groups({ filter: { ids: [toGlobalId('Group', 99_999_999_999)] } })).toEqual([]);
    expect(await groups({ filter: { search: 'dlq' }, sort: { field: 'NAME', direction: 'ASC' } })).toEqual(GROUPS);
    expect(await groups({ filter: { search: 'dlq' }, sort: { field: 'NAME', direction: 'DESC' } })).toEqual([...GROUPS].reverse());
    await refused('permissionGroups', { first: 10, filter: { ids: [uid('alpha')] } }, /Couldn't resolve id/);
    await refused('permissionGroups', { first: 10, filter: { search: 'y'.repeat(257) } }, /at most 256/);
    await refused('permissionGroups', { first: 1, last: 1 });
    await refused('permissionGroups', { first: 101 });
    await refused('permissionGroups', { last: 2, before: 'not-a-cursor' }, /Invalid cursor/);
  });

  it('requires MANAGE_STAFF', async () => {
    for (const token of [weak, null]) {
      const r = await query('permissionGroups', { first: 10 }, token);
      expect(r.body.errors).toHaveLength(1);
      expect(r.body.errors![0]!.extensions?.['exception']?.code).toBe('PermissionDenied');
      expect(r.body.data).toEqual({ permissionGroups: null });
      expect(JSON.stringify(r.body)).not.toContain('Dlq');
    }
  });
});

describe('plugins', () => {
  const BY_ID = ['dlq.alpha', 'dlq.kilo', 'dlq.mid', 'dlq.zeta', DEFAULT_PLUGIN];
  /** By name: Acme Login, Keycloak Staff, Midway Okta, OpenID Connect, Zebra SSO. */
  const BY_NAME = ['dlq.zeta', 'dlq.kilo', 'dlq.mid', DEFAULT_PLUGIN, 'dlq.alpha'];
  const plugins = async (variables: Record<string, unknown>) => {
    const c = await list('plugins', { first: 100, ...variables });
    expect(c.totalCount).toBe(c.edges.length);
    return ids(c);
  };

  it('answers the Dashboard Plugins selection, in the default order', async () => {
    const c = await list('plugins', {});
    expect(ids(c)).toEqual(BY_ID);
    expect(c.totalCount).toBe(5);
    const zeta = c.edges.find((e) => e.node.id === 'dlq.zeta')!.node;
    expect(zeta).toMatchObject({ name: 'Acme Login', channelConfigurations: [], globalConfiguration: { active: true, channel: null } });
    expect(typeof zeta.description).toBe('string');
    expect(c.edges.find((e) => e.node.id === 'dlq.alpha')!.node.globalConfiguration).toEqual({ active: false, channel: null });
  });

  it('pages forwards and backwards through the same items', async () => {
    await expectBothWays('plugins', {}, 2, ids, BY_ID);
    await expectBothWays('plugins', { sort: { field: 'NAME', direction: 'ASC' } }, 2, ids, BY_NAME);
    await expectBothWays('plugins', { sort: { field: 'IS_ACTIVE', direction: 'DESC' } }, 3, ids, ['dlq.zeta', 'dlq.mid', 'dlq.kilo', DEFAULT_PLUGIN, 'dlq.alpha']);
    const page = await list('plugins', { last: 2 });
    expect(page.totalCount).toBe(5);
    expect(ids(page)).toEqual(['dlq.zeta', DEFAULT_PLUGIN]);
    await refused('plugins', { first: 1, last: 1 });
    await refused('plugins', { first: 101 });
    await refused('plugins', { first: 2, after: 'bm9wZQ==' }, /Invalid cursor/);
  });

  it('filters by search, type and status', async () => {
    expect(await plugins({ filter: { search: 'DLQ.' } })).toEqual(['dlq.alpha', 'dlq.kilo', 'dlq.mid', 'dlq.zeta']);
    expect(await plugins({ filter: { search: ' okta ' } })).toEqual(['dlq.mid']);
    expect(await plugins({ filter: { search: 'openid' } })).toEqual([DEFAULT_PLUGIN]);
    expect(await plugins({ filter: { search: 'zz-none' } })).toEqual([]);
    expect(await plugins({ filter: { search: '  ' } })).toEqual(BY_ID);
    await refused('plugins', { first: 10, filter: { search: 'z'.repeat(257) } }, /at most 256/);

    expect(await plugins({ filter: { type: 'GLOBAL' } })).toEqual(BY_ID);
    expect(await plugins({ filter: { type: 'PER_CHANNEL' } })).toEqual([]);

    expect(await plugins({ filter: { statusInChannels: { active: true, channels: [] } } })).toEqual(['dlq.mid', 'dlq.zeta']);
    expect(await plugins({ filter: { statusInChannels: { active: false, channels: [] } } })).toEqual(['dlq.alpha', 'dlq.kilo', DEFAULT_PLUGIN]);
    // No channels here: a channel list names none, so nothing matches.
    expect(await plugins({ filter: { statusInChannels: { active: true, channels: [toGlobalId('Channel', 1)] } } })).toEqual([]);
    expect(await plugins({ filter: { statusInChannels: { active: false, channels: [toGlobalId('Channel', 1)] } } })).toEqual([]);

    expect(await plugins({ filter: { search: 'dlq', type: 'GLOBAL', statusInChannels: { active: false, channels: [] } } })).toEqual(['dlq.alpha', 'dlq.kilo']);
    const empty = await list('plugins', { first: 10, filter: { type: 'PER_CHANNEL' } });
    expect(empty).toEqual({ edges: [], totalCount: 0, pageInfo: { hasPreviousPage: false, hasNextPage: false, startCursor: null, endCursor: null } });
  });

  it('sorts by name and by active, both directions', async () => {
    expect(await plugins({ sort: { field: 'NAME', direction: 'ASC' } })).toEqual(BY_NAME);
    expect(await plugins({ sort: { field: 'NAME', direction: 'DESC' } })).toEqual([...BY_NAME].reverse());
    // Inactive first when ascending; within each, by name ascending either way (Saleor's key).
    expect(await plugins({ sort: { field: 'IS_ACTIVE', direction: 'ASC' } })).toEqual(['dlq.kilo', DEFAULT_PLUGIN, 'dlq.alpha', 'dlq.zeta', 'dlq.mid']);
    expect(await plugins({ sort: { field: 'IS_ACTIVE', direction: 'DESC' } })).toEqual(['dlq.zeta', 'dlq.mid', 'dlq.kilo', DEFAULT_PLUGIN, 'dlq.alpha']);
    expect(await plugins({ filter: { search: 'dlq' }, sort: { field: 'NAME', direction: 'DESC' } })).toEqual(['dlq.alpha', 'dlq.mid', 'dlq.kilo', 'dlq.zeta']);
  });

  it('requires MANAGE_PLUGINS', async () => {
    for (const token of [weak, null]) {
      for (const variables of [{ first: 10 }, { first: 10, after: 'garbage' }]) {
        const r = await query('plugins', variables, token);
        expect(r.body.errors).toHaveLength(1);
        expect(r.body.errors![0]!.extensions?.['exception']?.code).toBe('PermissionDenied');
        expect(r.body.data).toEqual({ plugins: null });
      }
    }
  });
});
