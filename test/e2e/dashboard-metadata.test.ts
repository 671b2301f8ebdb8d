/**
 * Metadata over HTTP (issue 12): what the Saleor Dashboard writes (its onboarding state through
 * updateMetadata, its metadata forms through updateMetadata + deleteMetadata and the private
 * variant, accountUpdate, shopSettingsUpdate) and reads back (`me { metadata }`, `shop { metadata }`),
 * with documents of our own making the Dashboard's selections. Covers the merge by key, deletion,
 * every limit (refused with nothing written), NOT_FOUND ids, who may write what (each rule with a
 * refusal), atomic merges under real parallel requests, and an audit trail of keys, not values.
 *
 * One server; tests that need a clean object use a user of their own.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upsertStaffUser, newTokenKey } from '../../src/accounts/users.ts';
import type { PermissionCode } from '../../src/accounts/permissions.ts';
import { CORE_TOKEN_OWNER } from '../../src/tokens/jwt.ts';
import { toGlobalId } from '../../src/core/ids.ts';
import { SHOP_ID } from '../../src/graphql/resolvers/shop.ts';
import type { Prisma } from '../../src/db/database.ts';
import type { User } from '../../src/generated/prisma/client.ts';
import { startTestServer, type GqlResponse, type TestServer } from '../helpers/server.ts';
import { adminToken } from '../helpers/oidc-flow.ts';

const ERR = 'errors { code field message }';
const DOCS = {
  saveOnboarding: `mutation SaveOnBoardingState($id: ID!, $input: [MetadataInput!]!) { updateMetadata(id: $id, input: $input) { ${ERR} } }`,
  updateMetadata: `mutation UpdateMetadata($id: ID!, $input: [MetadataInput!]!, $keysToDelete: [String!]!) {
    updateMetadata(id: $id, input: $input) { ${ERR} }
    deleteMetadata(id: $id, keys: $keysToDelete) { ${ERR} item { metadata { key value } ... on User { id } } } }`,
  updatePrivateMetadata: `mutation UpdatePrivateMetadata($id: ID!, $input: [MetadataInput!]!, $keysToDelete: [String!]!) {
    updatePrivateMetadata(id: $id, input: $input) { ${ERR} }
    deletePrivateMetadata(id: $id, keys: $keysToDelete) { ${ERR} item { privateMetadata { key value } ... on User { id } } } }`,
  accountMetadata: `mutation($input: AccountInput!) { accountUpdate(input: $input) { user { id metadata { key value } } errors { code field addressType message } } }`,
  accountNames: `mutation($firstName: String, $lastName: String) { accountUpdate(input: { firstName: $firstName, lastName: $lastName }) {
    user { id firstName lastName } errors { code field addressType message } accountErrors { code field message } } }`,
  shopSettings: `mutation($input: ShopSettingsInput!) { shopSettingsUpdate(input: $input) { ${ERR} shop { id metadata { key value } } } }`,
  shop: `{ shop { id metadata { key value } } }`,
  me: `{ me { id metadata { key value } } }`,
  /** Each mutation alone, with its whole payload. */
  update: `mutation($id: ID!, $input: [MetadataInput!]!) { updateMetadata(id: $id, input: $input) {
    ${ERR} metadataErrors { code field message } item { __typename metadata { key value } metafield(key: "a") metafields ... on User { id } ... on Shop { id } } } }`,
  delete: `mutation($id: ID!, $keys: [String!]!) { deleteMetadata(id: $id, keys: $keys) { ${ERR} metadataErrors { code field message } item { __typename metadata { key value } } } }`,
  updatePrivate: `mutation($id: ID!, $input: [MetadataInput!]!) { updatePrivateMetadata(id: $id, input: $input) {
    ${ERR} metadataErrors { code field message } item { __typename privateMetadata { key value } ... on User { id } } } }`,
  deletePrivate: `mutation($id: ID!, $keys: [String!]!) { deletePrivateMetadata(id: $id, keys: $keys) { ${ERR} item { __typename privateMetadata { key value } } } }`,
};

let s: TestServer;
let prisma: Prisma;
/** MANAGE_USERS, MANAGE_STAFF, MANAGE_SETTINGS. */
let root: string;
let rootUser: User;

interface Actor {
  user: User;
  id: string;
  token: string;
}

const uid = (id: number) => toGlobalId('User', id);
const entries = (m: Record<string, string>) => Object.entries(m).map(([key, value]) => ({ key, value }));
const asMap = (list: Array<{ key: string; value: string }>) => Object.fromEntries(list.map((i) => [i.key, i.value]));
const topCode = (r: GqlResponse): unknown => r.body.errors?.[0]?.extensions?.['code'];

async function staff(email: string, permissions: PermissionCode[]): Promise<Actor> {
  const user = await upsertStaffUser(prisma, { email, permissions });
  return { user, id: uid(user.id), token: await s.running.app.tokens.mintAccessToken(user, permissions, CORE_TOKEN_OWNER) };
}

async function customer(email: string): Promise<Actor> {
  const user = await prisma.user.create({ data: { email, tokenKey: newTokenKey() } });
  return { user, id: uid(user.id), token: await s.running.app.tokens.mintAccessToken(user, [], CORE_TOKEN_OWNER) };
}

/** A fresh customer of its own, for tests that need clean metadata. */
const freshCustomer = (label: string) => customer(`${label}-${randomUUID().slice(0, 8)}@example.com`);

async function gql(doc: string, variables: Record<string, unknown>, token?: string) {
  const r = await s.gql(doc, variables, token ? { token } : {});
  expect(r.status).toBe(200);
  return r;
}

/** The mutation's payload, which must carry no top-level error; `errors` and the deprecated duplicate agree. */
async function payload(doc: string, field: string, variables: Record<string, unknown>, token?: string) {
  const r = await gql(doc, variables, token);
  expect(r.body.errors).toBeUndefined();
  const out = r.body.data[field];
  const duplicate = out.metadataErrors ?? out.accountErrors ?? out.shopErrors;
  const plain = (list: Array<{ code: string; field: string | null; message: string }>) => list.map(({ code, field, message }) => ({ code, field, message }));
  if (duplicate !== undefined) expect(plain(duplicate)).toEqual(plain(out.errors));
  return out;
}

async function stored(userId: number) {
  const u = await prisma.user.findUniqueOrThrow({ where: { id: userId } });
  return { metadata: u.metadata, privateMetadata: u.privateMetadata, firstName: u.firstName, lastName: u.lastName, updatedAt: u.updatedAt };
}

async function shopRow() {
  return prisma.shopSettings.findUnique({ where: { id: 1 } });
}

/** Every write the refusal could have made: users and the shop row. */
async function everything() {
  return {
    users: await prisma.user.findMany({ orderBy: { id: 'asc' } }),
    shop: await shopRow(),
  };
}

/** Sets public metadata, expecting success. */
async function setMetadata(id: string, values: Record<string, string>, token = root) {
  const out = await payload(DOCS.update, 'updateMetadata', { id, input: entries(values) }, token);
  expect(out.errors).toEqual([]);
  return out.item;
}

/** The request is refused with a top-level PermissionDenied, `field` null, and nothing written. */
async function denied(doc: string, field: string, variables: Record<string, unknown>, token: string | undefined) {
  const before = await everything();
  const r = await gql(doc, variables, token);
  expect(topCode(r)).toBe('PermissionDenied');
  expect(r.body.errors?.[0]?.extensions?.['exception']?.code).toBe('PermissionDenied');
  expect(r.body.data?.[field] ?? null).toBeNull();
  expect(await everything()).toEqual(before);
}

/** The mutation answers exactly `error` in its typed list, a null object, and writes nothing. */
async function refused(doc: string, field: string, variables: Record<string, unknown>, token: string | undefined, error: { code: string; field: string | null }) {
  const before = await everything();
  const out = await payload(doc, field, variables, token);
  // (AccountError's addressType, when selected, is null: no addresses here.)
  expect(out.errors.map(({ addressType, ...rest }: { addressType?: unknown }) => (expect(addressType ?? null).toBeNull(), rest))).toEqual([
    { ...error, message: expect.any(String) },
  ]);
  expect(out.item ?? out.user ?? out.shop ?? null).toBeNull();
  expect(await everything()).toEqual(before);
  return out.errors[0].message as string;
}

beforeAll(async () => {
  s = await startTestServer();
  prisma = s.running.app.db.prisma;
  root = await adminToken(s, ['MANAGE_USERS', 'MANAGE_STAFF', 'MANAGE_SETTINGS']);
  rootUser = (await prisma.user.findUnique({ where: { email: 'root-admin@example.com' } }))!;
});
afterAll(async () => {
  await s?.close();
});

describe('the shop', () => {
  it('answers an empty metadata before anything is stored, with no row created by reading', async () => {
    expect(await shopRow()).toBeNull();
    for (const token of [undefined, root]) {
      const r = await gql(DOCS.shop, {}, token);
      expect(r.body).toEqual({ data: { shop: { id: SHOP_ID, metadata: [] } } });
    }
    expect(await shopRow()).toBeNull();
  });

  it('creates its row on the first writes: 20 parallel first writes of distinct keys all survive', async () => {
    const settings = await staff('settings@example.com', ['MANAGE_SETTINGS']);
    const keys = Array.from({ length: 20 }, (_, i) => `first-${i}`);
    const results = await Promise.all(keys.map((key) => payload(DOCS.saveOnboarding, 'updateMetadata', { id: SHOP_ID, input: [{ key, value: key }] }, settings.token)));
    expect(results.map((r) => r.errors)).toEqual(keys.map(() => []));
    const row = await shopRow();
    expect(row!.metadata).toEqual(Object.fromEntries(keys.map((k) => [k, k])));
    expect(row!.privateMetadata).toEqual({});
    expect(await prisma.shopSettings.count()).toBe(1);
    // Clean up for the next tests (deleting keys through the API).
    const out = await payload(DOCS.delete, 'deleteMetadata', { id: SHOP_ID, keys }, settings.token);
    expect(out).toMatchObject({ errors: [], item: { __typename: 'Shop', metadata: [] } });
  });

  it('stores onboarding state through updateMetadata (MANAGE_SETTINGS), read back by `shop`', async () => {
    const out = await payload(DOCS.update, 'updateMetadata', { id: SHOP_ID, input: entries({ a: '1', onboarding: '{"step":2}' }) }, root);
    expect(out).toEqual({
      errors: [],
      metadataErrors: [],
      item: { __typename: 'Shop', id: SHOP_ID, metadata: entries({ a: '1', onboarding: '{"step":2}' }), metafield: '1', metafields: { a: '1', onboarding: '{"step":2}' } },
    });
    const r = await gql(DOCS.shop, {});
    expect(asMap(r.body.data.shop.metadata)).toEqual({ a: '1', onboarding: '{"step":2}' });
  });

  it('merges shopSettingsUpdate by key and keeps the other keys', async () => {
    const out = await payload(DOCS.shopSettings, 'shopSettingsUpdate', { input: { metadata: entries({ a: '2', b: 'x' }) } }, root);
    expect(out.errors).toEqual([]);
    expect(out.shop.id).toBe(SHOP_ID);
    expect(asMap(out.shop.metadata)).toEqual({ a: '2', b: 'x', onboarding: '{"step":2}' });
    expect((await shopRow())!.metadata).toEqual({ a: '2', b: 'x', onboarding: '{"step":2}' });
    // With no metadata: nothing changes, the shop is answered.
    const none = await payload(DOCS.shopSettings, 'shopSettingsUpdate', { input: {} }, root);
    expect(asMap(none.shop.metadata)).toEqual({ a: '2', b: 'x', onboarding: '{"step":2}' });
  });

  it('deletes keys through the UpdateMetadata document', async () => {
    const out = await payload(DOCS.updateMetadata, 'deleteMetadata', { id: SHOP_ID, input: entries({ c: '3' }), keysToDelete: ['b', 'never-there'] }, root);
    expect(out).toEqual({ errors: [], item: { metadata: entries({ a: '2', c: '3', onboarding: '{"step":2}' }) } });
    expect((await shopRow())!.metadata).toEqual({ a: '2', c: '3', onboarding: '{"step":2}' });
  });

  it('keeps private metadata apart, readable and writable with MANAGE_SETTINGS only', async () => {
    const out = await payload(DOCS.updatePrivateMetadata, 'deletePrivateMetadata', { id: SHOP_ID, input: entries({ p: 'secret', q: 'x' }), keysToDelete: ['q'] }, root);
    expect(out).toEqual({ errors: [], item: { privateMetadata: entries({ p: 'secret' }) } });
    expect(await shopRow()).toMatchObject({ privateMetadata: { p: 'secret' }, metadata: { a: '2', c: '3', onboarding: '{"step":2}' } });
    const read = `{ shop { privateMetadata { key value } privateMetafield(key: "p") privateMetafields(keys: ["p", "nope"]) } }`;
    expect((await gql(read, {}, root)).body.data.shop).toEqual({ privateMetadata: entries({ p: 'secret' }), privateMetafield: 'secret', privateMetafields: { p: 'secret' } });
    const usersAdmin = await staff('users-admin-shop@example.com', ['MANAGE_USERS', 'MANAGE_STAFF']);
    for (const token of [undefined, usersAdmin.token]) {
      for (const field of ['privateMetadata { key }', 'privateMetafield(key: "p")', 'privateMetafields']) {
        const r = await gql(`{ shop { id ${field} } }`, {}, token);
        expect(topCode(r)).toBe('PermissionDenied');
        expect(JSON.stringify(r.body.data)).not.toContain('secret');
      }
    }
    // Public reads need nothing.
    const pub = await gql(`{ shop { metafield(key: "c") metafields(keys: ["a", "p"]) } }`, {});
    expect(pub.body).toEqual({ data: { shop: { metafield: '3', metafields: { a: '2' } } } });
  });

  it('refuses every write without MANAGE_SETTINGS, writing nothing', async () => {
    const others = [
      undefined,
      (await customer('shop-customer@example.com')).token,
      (await staff('shop-users-staff@example.com', ['MANAGE_USERS', 'MANAGE_STAFF', 'MANAGE_PLUGINS'])).token,
    ];
    for (const token of others) {
      await denied(DOCS.saveOnboarding, 'updateMetadata', { id: SHOP_ID, input: entries({ onboarding: 'x' }) }, token);
      await denied(DOCS.delete, 'deleteMetadata', { id: SHOP_ID, keys: ['a'] }, token);
      await denied(DOCS.updatePrivate, 'updatePrivateMetadata', { id: SHOP_ID, input: entries({ p: 'x' }) }, token);
      await denied(DOCS.deletePrivate, 'deletePrivateMetadata', { id: SHOP_ID, keys: ['p'] }, token);
      await denied(DOCS.shopSettings, 'shopSettingsUpdate', { input: { metadata: entries({ a: 'x' }) } }, token);
    }
  });
});

describe("a user's own metadata", () => {
  it('saves the onboarding state and `me` shows it at once, and on later requests', async () => {
    const me = await freshCustomer('onboarding');
    // The principal is cached by the first request.
    expect((await gql(DOCS.me, {}, me.token)).body.data.me).toEqual({ id: me.id, metadata: [] });
    const first = await payload(DOCS.saveOnboarding, 'updateMetadata', { id: me.id, input: [{ key: 'onboarding', value: '{"v":1}' }] }, me.token);
    expect(first).toEqual({ errors: [] });
    for (let i = 0; i < 2; i++) {
      expect((await gql(DOCS.me, {}, me.token)).body.data.me).toEqual({ id: me.id, metadata: entries({ onboarding: '{"v":1}' }) });
    }
    // The Dashboard sends all current metadata plus its key.
    await setMetadata(me.id, { theme: 'dark' }, me.token);
    const all = asMap((await gql(DOCS.me, {}, me.token)).body.data.me.metadata);
    await payload(DOCS.saveOnboarding, 'updateMetadata', { id: me.id, input: entries({ ...all, onboarding: '{"v":2}' }) }, me.token);
    for (let i = 0; i < 2; i++) {
      expect(asMap((await gql(DOCS.me, {}, me.token)).body.data.me.metadata)).toEqual({ onboarding: '{"v":2}', theme: 'dark' });
    }
    expect((await stored(me.user.id)).metadata).toEqual({ onboarding: '{"v":2}', theme: 'dark' });
  });

  it('works the same for a staff user without permissions', async () => {
    const plain = await staff('plain-staff@example.com', []);
    await gql(DOCS.me, {}, plain.token);
    await payload(DOCS.saveOnboarding, 'updateMetadata', { id: plain.id, input: entries({ onboarding: 'done' }) }, plain.token);
    expect((await gql(DOCS.me, {}, plain.token)).body.data.me.metadata).toEqual(entries({ onboarding: 'done' }));
  });

  it('merges by key, deletes only the named keys, and answers the item', async () => {
    const me = await freshCustomer('merge');
    const item = await setMetadata(me.id, { a: '1', b: '2' }, me.token);
    expect(item).toEqual({ __typename: 'User', id: me.id, metadata: entries({ a: '1', b: '2' }), metafield: '1', metafields: { a: '1', b: '2' } });
    await setMetadata(me.id, { b: '3', c: '4' }, me.token);
    expect((await stored(me.user.id)).metadata).toEqual({ a: '1', b: '3', c: '4' });
    const out = await payload(DOCS.updateMetadata, 'deleteMetadata', { id: me.id, input: entries({ d: '5' }), keysToDelete: ['a', 'missing'] }, me.token);
    expect(out).toEqual({ errors: [], item: { id: me.id, metadata: entries({ b: '3', c: '4', d: '5' }) } });
    expect((await stored(me.user.id)).metadata).toEqual({ b: '3', c: '4', d: '5' });
    // Deleting nothing, or keys that are not there: no error.
    expect(await payload(DOCS.delete, 'deleteMetadata', { id: me.id, keys: [] }, me.token)).toMatchObject({ errors: [] });
    expect(await payload(DOCS.delete, 'deleteMetadata', { id: me.id, keys: ['zzz'] }, me.token)).toMatchObject({ errors: [] });
    expect((await stored(me.user.id)).metadata).toEqual({ b: '3', c: '4', d: '5' });
    // Keys that look like object internals are plain keys.
    await setMetadata(me.id, JSON.parse('{"__proto__": "p", "constructor": "c"}'), me.token);
    const read = await gql(`{ me { metafield(key: "constructor") proto: metafield(key: "__proto__") none: metafield(key: "toString") metafields(keys: ["__proto__", "hasOwnProperty"]) } }`, {}, me.token);
    expect(read.body.data.me).toEqual({ metafield: 'c', proto: 'p', none: null, metafields: JSON.parse('{"__proto__":"p"}') });
  });

  it('takes the last value of a key given twice', async () => {
    const me = await freshCustomer('dup');
    await payload(DOCS.update, 'updateMetadata', { id: me.id, input: [{ key: 'k', value: 'first' }, { key: 'x', value: '1' }, { key: 'k', value: 'last' }] }, me.token);
    expect((await stored(me.user.id)).metadata).toEqual({ k: 'last', x: '1' });
  });

  it('updates names and metadata through accountUpdate, seen by `me`', async () => {
    const me = await freshCustomer('account');
    await gql(DOCS.me, {}, me.token);
    await setMetadata(me.id, { kept: 'yes' }, me.token);
    const out = await payload(DOCS.accountMetadata, 'accountUpdate', { input: { metadata: entries({ onboarding: 'x' }) } }, me.token);
    expect(out).toEqual({ errors: [], user: { id: me.id, metadata: entries({ kept: 'yes', onboarding: 'x' }) } });
    const names = await payload(DOCS.accountNames, 'accountUpdate', { firstName: 'Ada', lastName: 'Lovelace' }, me.token);
    expect(names).toEqual({ errors: [], accountErrors: [], user: { id: me.id, firstName: 'Ada', lastName: 'Lovelace' } });
    // A name left out stays.
    await payload(DOCS.accountNames, 'accountUpdate', { lastName: 'Byron' }, me.token);
    expect(await stored(me.user.id)).toMatchObject({ firstName: 'Ada', lastName: 'Byron', metadata: { kept: 'yes', onboarding: 'x' } });
    const r = await gql(`{ me { firstName lastName metadata { key value } } }`, {}, me.token);
    expect(r.body.data.me).toEqual({ firstName: 'Ada', lastName: 'Byron', metadata: entries({ kept: 'yes', onboarding: 'x' }) });
    // Exactly 256 characters (code points) is allowed.
    const name = '😀'.repeat(256);
    expect((await payload(DOCS.accountNames, 'accountUpdate', { firstName: name }, me.token)).errors).toEqual([]);
    expect((await stored(me.user.id)).firstName).toBe(name);
  });

  it('requires a user for accountUpdate', async () => {
    await denied(DOCS.accountNames, 'accountUpdate', { firstName: 'x' }, undefined);
    await denied(DOCS.accountMetadata, 'accountUpdate', { input: { metadata: entries({ a: 'b' }) } }, undefined);
  });
});

describe('limits: refused with nothing written', () => {
  let me: Actor;
  beforeAll(async () => {
    me = await freshCustomer('limits');
    await setMetadata(me.id, { existing: 'v' }, me.token);
  });

  const k = (n: number, prefix = 'k') => Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${i}`, 'v']));

  it('an empty key is REQUIRED, on every mutation', async () => {
    for (const key of ['', '   ']) {
      const input = [{ key: 'ok', value: '1' }, { key, value: 'x' }];
      const message = await refused(DOCS.update, 'updateMetadata', { id: me.id, input }, me.token, { code: 'REQUIRED', field: 'input' });
      expect(message).toBe('Metadata key cannot be empty.');
      await refused(DOCS.updatePrivate, 'updatePrivateMetadata', { id: me.id, input }, root, { code: 'REQUIRED', field: 'input' });
      await refused(DOCS.update, 'updateMetadata', { id: SHOP_ID, input }, root, { code: 'REQUIRED', field: 'input' });
      await refused(DOCS.delete, 'deleteMetadata', { id: me.id, keys: ['existing', key] }, me.token, { code: 'REQUIRED', field: 'keys' });
      await refused(DOCS.accountMetadata, 'accountUpdate', { input: { metadata: input } }, me.token, { code: 'REQUIRED', field: 'metadata' });
      await refused(DOCS.shopSettings, 'shopSettingsUpdate', { input: { metadata: input } }, root, { code: 'REQUIRED', field: 'metadata' });
    }
  });

  it('keys of 1 to 256 characters, values of at most 10,000', async () => {
    const tooLong = [
      [{ key: 'x'.repeat(257), value: 'v' }],
      [{ key: '😀'.repeat(257), value: 'v' }],
      [{ key: 'ok', value: 'x'.repeat(10_001) }],
      [{ key: 'ok', value: 'é'.repeat(10_001) }],
    ];
    for (const input of tooLong) {
      await refused(DOCS.update, 'updateMetadata', { id: me.id, input }, me.token, { code: 'INVALID', field: 'input' });
      await refused(DOCS.updatePrivate, 'updatePrivateMetadata', { id: me.id, input }, root, { code: 'INVALID', field: 'input' });
      await refused(DOCS.update, 'updateMetadata', { id: SHOP_ID, input }, root, { code: 'INVALID', field: 'input' });
      await refused(DOCS.accountMetadata, 'accountUpdate', { input: { metadata: input } }, me.token, { code: 'INVALID', field: 'metadata' });
      await refused(DOCS.shopSettings, 'shopSettingsUpdate', { input: { metadata: input } }, root, { code: 'INVALID', field: 'metadata' });
    }
    // At the limits (counted in code points, as Saleor counts characters): stored.
    await setMetadata(me.id, { ['😀'.repeat(256)]: '😀'.repeat(10_000), a: '' }, me.token);
    expect((await stored(me.user.id)).metadata).toMatchObject({ ['😀'.repeat(256)]: '😀'.repeat(10_000), a: '' });
    await payload(DOCS.delete, 'deleteMetadata', { id: me.id, keys: ['😀'.repeat(256), 'a'] }, me.token);
  });

  it('characters PostgreSQL cannot store are INVALID, not a server error', async () => {
    for (const input of [[{ key: 'nul', value: 'a\u0000b' }], [{ key: 'k\u0000', value: 'v' }], [{ key: 'lone', value: '\ud800' }], [{ key: '\udc00', value: 'v' }]]) {
      await refused(DOCS.update, 'updateMetadata', { id: me.id, input }, me.token, { code: 'INVALID', field: 'input' });
      await refused(DOCS.update, 'updateMetadata', { id: SHOP_ID, input }, root, { code: 'INVALID', field: 'input' });
    }
    for (const name of ['a\u0000', '\ud800']) {
      await refused(DOCS.accountNames, 'accountUpdate', { firstName: name }, me.token, { code: 'INVALID', field: 'firstName' });
    }
    // Deleting such a key: it cannot be there; no error.
    expect(await payload(DOCS.delete, 'deleteMetadata', { id: me.id, keys: ['a\u0000', '\ud800'] }, me.token)).toMatchObject({ errors: [] });
  });

  it('at most 100 keys per object, counted after the merge', async () => {
    await refused(DOCS.update, 'updateMetadata', { id: me.id, input: entries(k(101)) }, me.token, { code: 'INVALID', field: 'input' });
    // 1 existing + 99 = 100: stored; then one more new key is refused, an existing one is not.
    await setMetadata(me.id, k(99), me.token);
    expect(Object.keys((await stored(me.user.id)).metadata as object)).toHaveLength(100);
    await refused(DOCS.update, 'updateMetadata', { id: me.id, input: entries({ new: 'x' }) }, me.token, { code: 'INVALID', field: 'input' });
    await refused(DOCS.accountMetadata, 'accountUpdate', { input: { metadata: entries({ new: 'x' }) } }, me.token, { code: 'INVALID', field: 'metadata' });
    await setMetadata(me.id, { k0: 'changed' }, me.token);
    // Private metadata is counted apart.
    const priv = await payload(DOCS.updatePrivate, 'updatePrivateMetadata', { id: me.id, input: entries({ p: '1' }) }, root);
    expect(priv.errors).toEqual([]);
    await payload(DOCS.delete, 'deleteMetadata', { id: me.id, keys: Object.keys(k(99)) }, me.token);
    expect((await stored(me.user.id)).metadata).toEqual({ existing: 'v' });
    // The shop too.
    const shopKeys = Object.keys(asMap((await gql(DOCS.shop, {})).body.data.shop.metadata)).length;
    await refused(DOCS.shopSettings, 'shopSettingsUpdate', { input: { metadata: entries(k(101 - shopKeys, 's')) } }, root, { code: 'INVALID', field: 'metadata' });
    await refused(DOCS.update, 'updateMetadata', { id: SHOP_ID, input: entries(k(101 - shopKeys, 's')) }, root, { code: 'INVALID', field: 'input' });
  });

  it('at most 64 KB of compact JSON per object, measured alike by the server and the database', async () => {
    const own = await freshCustomer('size');
    // Escapes (", \n, \u0001) and multi-byte characters in keys and values, padded to exactly 65,536 bytes.
    const m: Record<string, string> = { 'k"é\t': 'é€😀"\n\u0001\\/', ...Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`key${i}`, 'x'.repeat(10_000)])) };
    m['pad'] = '';
    const missing = 65_536 - Buffer.byteLength(JSON.stringify(m));
    expect(missing).toBeGreaterThan(0);
    m['pad'] = 'p'.repeat(missing);
    expect(Buffer.byteLength(JSON.stringify(m))).toBe(65_536);
    // Over by one byte in one input: refused before the database.
    await refused(DOCS.update, 'updateMetadata', { id: own.id, input: entries({ ...m, pad: m['pad'] + 'p' }) }, own.token, { code: 'INVALID', field: 'input' });
    // Exactly at the limit: stored.
    await setMetadata(own.id, m, own.token);
    expect((await stored(own.user.id)).metadata).toEqual(m);
    // One more byte through a merge: measured by the database, refused.
    await refused(DOCS.update, 'updateMetadata', { id: own.id, input: entries({ pad: m['pad'] + 'p' }) }, own.token, { code: 'INVALID', field: 'input' });
    await refused(DOCS.update, 'updateMetadata', { id: own.id, input: entries({ z: '' }) }, own.token, { code: 'INVALID', field: 'input' });
    await refused(DOCS.accountMetadata, 'accountUpdate', { input: { metadata: entries({ z: '' }) } }, own.token, { code: 'INVALID', field: 'metadata' });
    // Replacing a value by a shorter one fits.
    await setMetadata(own.id, { pad: '' }, own.token);
    // The shop: a merge beyond 64 KB is refused.
    const big = Object.fromEntries(Array.from({ length: 7 }, (_, i) => [`big${i}`, 'x'.repeat(10_000)]));
    await refused(DOCS.shopSettings, 'shopSettingsUpdate', { input: { metadata: entries(big) } }, root, { code: 'INVALID', field: 'metadata' });
    const half = Object.fromEntries(Object.entries(big).slice(0, 4));
    await payload(DOCS.shopSettings, 'shopSettingsUpdate', { input: { metadata: entries(half) } }, root);
    await refused(DOCS.update, 'updateMetadata', { id: SHOP_ID, input: entries(Object.fromEntries(Object.entries(big).slice(4))) }, root, { code: 'INVALID', field: 'input' });
    await payload(DOCS.delete, 'deleteMetadata', { id: SHOP_ID, keys: Object.keys(half) }, root);
  });

  it('names of at most 256 characters, each reported on its field', async () => {
    const before = await stored(me.user.id);
    const out = await payload(DOCS.accountNames, 'accountUpdate', { firstName: 'x'.repeat(257), lastName: '😀'.repeat(257) }, me.token);
    expect(out.user).toBeNull();
    expect(out.errors).toEqual([
      { code: 'INVALID', field: 'firstName', addressType: null, message: expect.any(String) },
      { code: 'INVALID', field: 'lastName', addressType: null, message: expect.any(String) },
    ]);
    // A valid name with an invalid one: nothing is written.
    await refused(DOCS.accountNames, 'accountUpdate', { firstName: 'Fine', lastName: 'x'.repeat(257) }, me.token, { code: 'INVALID', field: 'lastName' });
    expect(await stored(me.user.id)).toEqual(before);
  });
});

describe('ids', () => {
  it('answers NOT_FOUND on `id` for malformed ids, other types and unknown users', async () => {
    const ids = ['nope', '', toGlobalId('User', 'abc'), toGlobalId('User', 0), toGlobalId('User', 999_999), toGlobalId('Group', 1), toGlobalId('Shop', 2), toGlobalId('Plugin', 1), 'VXNlcjox=='];
    for (const id of ids) {
      for (const token of [root, undefined]) {
        // Anonymous callers get NOT_FOUND only for ids that name no user (no existence oracle).
        if (!token && id === toGlobalId('User', 999_999)) continue;
        await refused(DOCS.update, 'updateMetadata', { id, input: entries({ a: 'b' }) }, token, { code: 'NOT_FOUND', field: 'id' });
        await refused(DOCS.delete, 'deleteMetadata', { id, keys: ['a'] }, token, { code: 'NOT_FOUND', field: 'id' });
        await refused(DOCS.updatePrivate, 'updatePrivateMetadata', { id, input: entries({ a: 'b' }) }, token, { code: 'NOT_FOUND', field: 'id' });
        await refused(DOCS.deletePrivate, 'deletePrivateMetadata', { id, keys: ['a'] }, token, { code: 'NOT_FOUND', field: 'id' });
      }
    }
  });

  it('does not tell a caller without user permissions whether a user exists', async () => {
    const someone = await freshCustomer('oracle');
    for (const id of [toGlobalId('User', 999_999), uid(rootUser.id)]) {
      await denied(DOCS.update, 'updateMetadata', { id, input: entries({ a: 'b' }) }, someone.token);
      await denied(DOCS.update, 'updateMetadata', { id, input: entries({ a: 'b' }) }, undefined);
    }
  });
});

describe('permissions', () => {
  let customerA: Actor;
  let customerB: Actor;
  let usersAdmin: Actor;
  let staffAdmin: Actor;
  let plainStaff: Actor;
  beforeAll(async () => {
    customerA = await freshCustomer('perm-a');
    customerB = await freshCustomer('perm-b');
    usersAdmin = await staff('users-admin@example.com', ['MANAGE_USERS']);
    staffAdmin = await staff('staff-admin@example.com', ['MANAGE_STAFF']);
    plainStaff = await staff('perm-plain-staff@example.com', ['MANAGE_SETTINGS', 'MANAGE_PLUGINS']);
  });

  const pub = (id: string, key: string) => ({ doc: DOCS.update, field: 'updateMetadata', variables: { id, input: entries({ [key]: 'v' }) } });
  const pubDel = (id: string) => ({ doc: DOCS.delete, field: 'deleteMetadata', variables: { id, keys: ['x'] } });
  const priv = (id: string, key: string) => ({ doc: DOCS.updatePrivate, field: 'updatePrivateMetadata', variables: { id, input: entries({ [key]: 'v' }) } });
  const privDel = (id: string) => ({ doc: DOCS.deletePrivate, field: 'deletePrivateMetadata', variables: { id, keys: ['x'] } });
  type Call = { doc: string; field: string; variables: Record<string, unknown> };

  async function allowed(call: Call, token: string) {
    const out = await payload(call.doc, call.field, call.variables, token);
    expect(out.errors).toEqual([]);
    expect(out.item.__typename).toBe('User');
  }
  const refusedCall = (call: Call, token: string | undefined) => denied(call.doc, call.field, call.variables, token);

  it("a customer's public metadata: themself, or MANAGE_USERS", async () => {
    await allowed(pub(customerA.id, 'self'), customerA.token);
    await allowed(pubDel(customerA.id), customerA.token);
    await allowed(pub(customerA.id, 'by-users-admin'), usersAdmin.token);
    await allowed(pubDel(customerA.id), usersAdmin.token);
    for (const token of [undefined, customerB.token, staffAdmin.token, plainStaff.token]) {
      await refusedCall(pub(customerA.id, 'no'), token);
      await refusedCall(pubDel(customerA.id), token);
    }
    expect((await stored(customerA.user.id)).metadata).toEqual({ self: 'v', 'by-users-admin': 'v' });
  });

  it("a staff user's public metadata: themself, or MANAGE_STAFF", async () => {
    await allowed(pub(plainStaff.id, 'self'), plainStaff.token);
    await allowed(pub(plainStaff.id, 'by-staff-admin'), staffAdmin.token);
    await allowed(pubDel(plainStaff.id), staffAdmin.token);
    for (const token of [undefined, customerA.token, usersAdmin.token]) {
      await refusedCall(pub(plainStaff.id, 'no'), token);
      await refusedCall(pubDel(plainStaff.id), token);
    }
    expect((await stored(plainStaff.user.id)).metadata).toEqual({ self: 'v', 'by-staff-admin': 'v' });
  });

  it("a customer's private metadata: MANAGE_USERS, even for themself", async () => {
    await allowed(priv(customerA.id, 'by-users-admin'), usersAdmin.token);
    await allowed(privDel(customerA.id), usersAdmin.token);
    for (const token of [undefined, customerA.token, customerB.token, staffAdmin.token, plainStaff.token]) {
      await refusedCall(priv(customerA.id, 'no'), token);
      await refusedCall(privDel(customerA.id), token);
    }
    expect((await stored(customerA.user.id)).privateMetadata).toEqual({ 'by-users-admin': 'v' });
  });

  it("a staff user's private metadata: MANAGE_STAFF, even for themself", async () => {
    await allowed(priv(plainStaff.id, 'by-staff-admin'), staffAdmin.token);
    await allowed(priv(staffAdmin.id, 'self-with-manage-staff'), staffAdmin.token);
    for (const token of [undefined, plainStaff.token, customerA.token, usersAdmin.token]) {
      await refusedCall(priv(plainStaff.id, 'no'), token);
      await refusedCall(privDel(plainStaff.id), token);
    }
    // MANAGE_USERS is not enough for oneself as a staff user.
    await refusedCall(priv(usersAdmin.id, 'no'), usersAdmin.token);
    expect((await stored(plainStaff.user.id)).privateMetadata).toEqual({ 'by-staff-admin': 'v' });
  });

  it('reads private metafields with MANAGE_USERS or MANAGE_STAFF only, public ones freely', async () => {
    const doc = `query($id: ID!) { user(id: $id) { metafield(key: "self") metafields privateMetafield(key: "by-users-admin") privateMetafields(keys: ["by-users-admin", "x"]) } }`;
    for (const token of [usersAdmin.token, staffAdmin.token]) {
      expect((await gql(doc, { id: customerA.id }, token)).body.data.user).toEqual({
        metafield: 'v',
        metafields: { self: 'v', 'by-users-admin': 'v' },
        privateMetafield: 'v',
        privateMetafields: { 'by-users-admin': 'v' },
      });
    }
    const mine = await gql(`{ me { metafield(key: "self") metafields(keys: ["self"]) privateMetafield(key: "by-users-admin") } }`, {}, customerA.token);
    expect(topCode(mine)).toBe('PermissionDenied');
    expect(mine.body.data.me).toEqual({ metafield: 'v', metafields: { self: 'v' }, privateMetafield: null });
  });

  it("judges a user by their current staff flag: once promoted, MANAGE_USERS no longer suffices", async () => {
    const promoted = await freshCustomer('promoted');
    await allowed(pub(promoted.id, 'before'), usersAdmin.token);
    await prisma.user.update({ where: { id: promoted.user.id }, data: { isStaff: true } });
    await refusedCall(pub(promoted.id, 'after'), usersAdmin.token);
    await allowed(pub(promoted.id, 'after'), staffAdmin.token);
  });
});

describe('concurrency', () => {
  it('20 parallel updates of distinct keys on one user all survive', async () => {
    const me = await freshCustomer('parallel');
    const keys = Array.from({ length: 20 }, (_, i) => `key-${i}`);
    const results = await Promise.all(keys.map((key) => payload(DOCS.saveOnboarding, 'updateMetadata', { id: me.id, input: [{ key, value: `v-${key}` }] }, me.token)));
    expect(results).toEqual(keys.map(() => ({ errors: [] })));
    expect((await stored(me.user.id)).metadata).toEqual(Object.fromEntries(keys.map((k) => [k, `v-${k}`])));
    // Deletions and updates in parallel: each applies to the latest state.
    const newKeys = Array.from({ length: 10 }, (_, i) => `new-${i}`);
    await Promise.all([
      ...keys.slice(0, 10).map((key) => payload(DOCS.delete, 'deleteMetadata', { id: me.id, keys: [key] }, me.token)),
      ...newKeys.map((key) => payload(DOCS.saveOnboarding, 'updateMetadata', { id: me.id, input: [{ key, value: key }] }, root)),
    ]);
    expect((await stored(me.user.id)).metadata).toEqual(Object.fromEntries([...keys.slice(10).map((k) => [k, `v-${k}`]), ...newKeys.map((k) => [k, k])]));
    const me2 = await gql(DOCS.me, {}, me.token);
    expect(me2.body.data.me.metadata).toHaveLength(20);
  });

  it('checks the key limit atomically: of two parallel merges that each fit alone, one is refused', async () => {
    const me = await freshCustomer('race');
    await setMetadata(me.id, Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`base-${i}`, 'v'])), me.token);
    const batch = (p: string) => entries(Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`${p}-${i}`, 'v'])));
    const [a, b] = await Promise.all([
      payload(DOCS.saveOnboarding, 'updateMetadata', { id: me.id, input: batch('a') }, me.token),
      payload(DOCS.saveOnboarding, 'updateMetadata', { id: me.id, input: batch('b') }, me.token),
    ]);
    expect([a.errors.length, b.errors.length].sort()).toEqual([0, 1]);
    expect([...a.errors, ...b.errors]).toEqual([{ code: 'INVALID', field: 'input', message: expect.any(String) }]);
    expect(Object.keys((await stored(me.user.id)).metadata as object)).toHaveLength(80);
  });
});

describe('audit', () => {
  it('records who changed which keys, never the values', async () => {
    const me = await freshCustomer('audit');
    const secret = `value-${randomUUID()}`;
    await setMetadata(me.id, { 'audited-key': secret }, me.token);
    await payload(DOCS.updatePrivate, 'updatePrivateMetadata', { id: me.id, input: entries({ 'private-key': secret }) }, root);
    await payload(DOCS.delete, 'deleteMetadata', { id: me.id, keys: ['audited-key'] }, me.token);
    await payload(DOCS.accountMetadata, 'accountUpdate', { input: { metadata: entries({ 'account-key': secret }) } }, me.token);
    await payload(DOCS.accountNames, 'accountUpdate', { firstName: secret.slice(0, 40) }, me.token);
    await payload(DOCS.shopSettings, 'shopSettingsUpdate', { input: { metadata: entries({ 'shop-key': secret }) } }, root);
    await refused(DOCS.update, 'updateMetadata', { id: me.id, input: entries({ 'refused-key': secret + 'x'.repeat(10_000) }) }, me.token, { code: 'INVALID', field: 'input' });
    const events = await prisma.auditEvent.findMany({ where: { OR: [{ userId: me.user.id }, { type: 'shop_settings.updated' }] }, orderBy: { id: 'asc' } });
    const summary = events.map((e) => ({ type: e.type, outcome: e.outcome, actor: e.actorUserId, userId: e.userId, keys: (e.detail as { keys?: string[] }).keys }));
    expect(summary).toEqual(
      expect.arrayContaining([
        { type: 'metadata.updated', outcome: 'success', actor: me.user.id, userId: me.user.id, keys: ['audited-key'] },
        { type: 'private_metadata.updated', outcome: 'success', actor: rootUser.id, userId: me.user.id, keys: ['private-key'] },
        { type: 'metadata.deleted', outcome: 'success', actor: me.user.id, userId: me.user.id, keys: ['audited-key'] },
        { type: 'account.updated', outcome: 'success', actor: me.user.id, userId: me.user.id, keys: ['account-key'] },
        { type: 'account.updated', outcome: 'success', actor: me.user.id, userId: me.user.id, keys: [] },
        { type: 'shop_settings.updated', outcome: 'success', actor: rootUser.id, userId: null, keys: ['shop-key'] },
        { type: 'metadata.updated', outcome: 'failure', actor: me.user.id, userId: me.user.id, keys: undefined },
      ]),
    );
    const failure = events.find((e) => e.outcome === 'failure' && e.userId === me.user.id)!;
    expect(failure.detail).toMatchObject({ errors: ['input:INVALID'] });
    expect(JSON.stringify(events.map((e) => e.detail))).not.toContain(secret);
    expect(JSON.stringify(events.map((e) => e.detail))).not.toContain(secret.slice(0, 40));
    expect(s.logs.join('\n')).not.toContain(secret);
  });
});
