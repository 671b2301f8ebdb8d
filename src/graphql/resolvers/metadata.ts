/**
 * Metadata of Users and the Shop: updateMetadata, deleteMetadata, updatePrivateMetadata,
 * deletePrivateMetadata, accountUpdate, shopSettingsUpdate, and the ObjectWithMetadata fields
 * (User.metadata and User.privateMetadata are in ./users.ts). Limits and storage: see
 * src/accounts/metadata.ts.
 *
 * Who may write (Saleor's rules):
 * - public metadata of a User: the user themself, or MANAGE_USERS for a customer / MANAGE_STAFF
 *   for a staff user; private metadata of a User: MANAGE_USERS / MANAGE_STAFF likewise, also for
 *   oneself;
 * - the Shop (public and private): MANAGE_SETTINGS. Apps follow the same rules.
 * A refusal is Saleor's top-level PermissionDenied and writes nothing.
 *
 * Ids: a malformed id, an id of a type without metadata here (Group, ...) or of another shop is
 * NOT_FOUND on `id`. A well-formed User id is looked up only for a caller holding MANAGE_USERS or
 * MANAGE_STAFF (or for oneself): anyone else gets PermissionDenied whether or not the user exists,
 * so the mutations are no oracle for user ids (Saleor answers NOT_FOUND first).
 *
 * After a change to a user, every instance forgets the user's cached principals (they carry the
 * User row: `me { metadata }`). Every allowed attempt is audited with the keys, never the values.
 */
import type { GraphQLResolveInfo } from 'graphql';
import { FieldError, FieldErrors } from '../../errors.ts';
import type { User } from '../../generated/prisma/client.ts';
import type { Principal } from '../../accounts/principal.ts';
import type { PermissionCode } from '../../accounts/permissions.ts';
import {
  SHOP_METADATA_PERMISSION,
  deleteShopMetadata,
  deleteUserMetadata,
  mergeShopMetadata,
  mergeUserMetadata,
  metadataOf,
  metafieldOf,
  nameError,
  parseDeleteKeys,
  parseMetadataInput,
  pickMetadata,
  readShopMetadata,
  userMetadataPermission,
  type MetadataEntry,
  type MetadataKind,
  type MetadataMap,
  type ShopMetadata,
  type UserWriteOutcome,
} from '../../accounts/metadata.ts';
import { fromGlobalId, parseGlobalIdOf } from '../global-id.ts';
import { permissionDenied, requirePermission, requireUser, type GraphQLContext } from '../context.ts';
import { accountErrors, toErrorItems, type ErrorItem } from '../results.ts';
import { SHOP_ID } from './shop.ts';
import type { UserNode } from './users.ts';

const USER_ADMIN: readonly PermissionCode[] = ['MANAGE_USERS', 'MANAGE_STAFF'];

// --- The Shop's row: at most one read per request -----------------------------------------

/** A Shop object that carries its metadata (a mutation's result: what it wrote). */
const SHOP_ROW = Symbol('shop metadata');
interface ShopParent {
  __typename?: 'Shop';
  [SHOP_ROW]?: Promise<ShopMetadata>;
}

/** The shop's metadata read for a request, keyed by the request's `meta` object (one per request). */
const shopReads = new WeakMap<object, Promise<ShopMetadata>>();

function shopMetadata(shop: ShopParent | null | undefined, ctx: GraphQLContext): Promise<ShopMetadata> {
  const carried = shop?.[SHOP_ROW];
  if (carried) return carried;
  let read = shopReads.get(ctx.meta);
  if (!read) {
    read = readShopMetadata(ctx.app.db.prisma);
    shopReads.set(ctx.meta, read);
  }
  return read;
}

/** After a write: the request's later reads see it, and the payload's Shop carries it. */
function shopItem(ctx: GraphQLContext, written: ShopMetadata): ShopParent {
  const row = Promise.resolve(written);
  shopReads.set(ctx.meta, row);
  return { __typename: 'Shop', [SHOP_ROW]: row };
}

// --- Targets and permissions ----------------------------------------------------------------

type Target = { type: 'User'; id: number } | { type: 'Shop' };

function notFound(id: string): FieldError {
  return new FieldError('id', 'NOT_FOUND', id.length <= 200 ? `Couldn't resolve to a node: ${id}` : "Couldn't resolve to a node.");
}

/** The object an id names, among those with metadata here (a User, the Shop). */
function parseTarget(id: string): Target {
  const parsed = fromGlobalId(id);
  if (parsed?.type === 'User') {
    const userId = parseGlobalIdOf('User', id);
    if (userId !== null) return { type: 'User', id: userId };
  }
  if (parsed?.type === 'Shop' && id === SHOP_ID) return { type: 'Shop' };
  throw notFound(id);
}

const isSelf = (principal: Principal | null, userId: number) => principal?.kind === 'user' && principal.user.id === userId;

/**
 * May `principal` write `kind` metadata of user `userId`? Throws PermissionDenied (or NOT_FOUND
 * for a caller who could write some user's). Returns the target's `is_staff` when the decision
 * relied on it (the write then requires it unchanged), undefined for one's own public metadata.
 */
async function authorizeUserWrite(ctx: GraphQLContext, principal: Principal | null, kind: MetadataKind, userId: number, globalId: string): Promise<boolean | undefined> {
  if (kind === 'public' && isSelf(principal, userId)) return undefined;
  if (!principal || !USER_ADMIN.some((p) => principal.permissions.includes(p))) throw permissionDenied(USER_ADMIN);
  const target = await ctx.app.db.prisma.user.findUnique({ where: { id: userId }, select: { isStaff: true } });
  if (!target) throw notFound(globalId);
  const needed = userMetadataPermission(target.isStaff);
  if (!principal.permissions.includes(needed)) throw permissionDenied([needed]);
  return target.isStaff;
}

/** The User for a payload: the stored row; for oneself, with the permissions of the request (as `me`). */
async function userItem(ctx: GraphQLContext, principal: Principal | null, userId: number): Promise<(UserNode & { __typename: 'User' }) | null> {
  const row: User | null = await ctx.app.db.prisma.user.findUnique({ where: { id: userId } });
  if (!row) return null;
  const granted = principal?.kind === 'user' && principal.user.id === userId ? { granted: { permissions: principal.permissions, isStaff: principal.isStaff } } : {};
  return { ...row, ...granted, __typename: 'User' };
}

// --- Audit ----------------------------------------------------------------------------------

/** Keys as audited: names only, never values, at most 100 of them. */
function auditedKeys(keys: readonly string[]) {
  return { keys: keys.slice(0, 100), keyCount: keys.length };
}

function auditBase(ctx: GraphQLContext, principal: Principal | null, type: string) {
  return {
    type,
    actorUserId: principal?.kind === 'user' ? principal.user.id : null,
    ip: ctx.req.ip,
    userAgent: ctx.req.userAgent,
    requestId: ctx.req.requestId,
  };
}

const errorCodes = (items: ErrorItem[]) => items.map((i) => `${i.field ?? '-'}:${i.code}`);

// --- The four metadata mutations ------------------------------------------------------------

type Change = { op: 'update'; entries: readonly MetadataEntry[] } | { op: 'delete'; keys: readonly string[] };

const metadataPayload = (items: ErrorItem[], item: unknown) => ({ errors: items, metadataErrors: items, item });

async function changeMetadata(ctx: GraphQLContext, kind: MetadataKind, id: string, change: Change, where: string) {
  const principal = await ctx.principal();
  const type = `${kind === 'private' ? 'private_metadata' : 'metadata'}.${change.op === 'update' ? 'updated' : 'deleted'}`;
  const audit = auditBase(ctx, principal, type);
  let allowed = false;
  let auditTarget: { userId?: number; detail: Record<string, unknown> } = { detail: { id } };
  try {
    const target = parseTarget(id);
    const prisma = ctx.app.db.prisma;
    if (target.type === 'Shop') {
      await requirePermission(ctx, [SHOP_METADATA_PERMISSION]);
      allowed = true;
      auditTarget = { detail: { object: 'Shop', id } };
      let written: ShopMetadata;
      if (change.op === 'update') {
        const patch = parseMetadataInput(change.entries, 'input');
        auditTarget.detail = { ...auditTarget.detail, ...auditedKeys(Object.keys(patch)) };
        written = await mergeShopMetadata(prisma, kind, patch, 'input');
      } else {
        const keys = parseDeleteKeys(change.keys, 'keys');
        auditTarget.detail = { ...auditTarget.detail, ...auditedKeys(keys) };
        written = await deleteShopMetadata(prisma, kind, keys);
      }
      await ctx.app.audit.record({ ...audit, ...auditTarget, outcome: 'success' });
      return metadataPayload([], shopItem(ctx, written));
    }

    let patch: MetadataMap | undefined;
    let keys: string[] | undefined;
    let outcome: UserWriteOutcome = 'staff-changed';
    // The target's staff flag decides the permission; a change of it in between is seen by the
    // write (which then changes nothing), and the decision is made again.
    for (let attempt = 0; attempt < 3 && outcome === 'staff-changed'; attempt++) {
      const isStaff = await authorizeUserWrite(ctx, principal, kind, target.id, id);
      allowed = true;
      auditTarget = { userId: target.id, detail: { object: 'User', id } };
      if (change.op === 'update') {
        patch ??= parseMetadataInput(change.entries, 'input');
        auditTarget.detail = { ...auditTarget.detail, ...auditedKeys(Object.keys(patch)) };
        outcome = await mergeUserMetadata(prisma, target.id, kind, patch, { isStaff, field: 'input' });
      } else {
        keys ??= parseDeleteKeys(change.keys, 'keys');
        auditTarget.detail = { ...auditTarget.detail, ...auditedKeys(keys) };
        outcome = await deleteUserMetadata(prisma, target.id, kind, keys, { isStaff });
      }
    }
    if (outcome === 'not-found') throw notFound(id);
    if (outcome === 'staff-changed') throw permissionDenied(USER_ADMIN);
    await ctx.app.bus.publish({ topic: 'users', ids: [target.id] });
    await ctx.app.audit.record({ ...audit, ...auditTarget, outcome: 'success' });
    return metadataPayload([], await userItem(ctx, principal, target.id));
  } catch (e) {
    const items = toErrorItems(ctx, e, where);
    if (allowed) await ctx.app.audit.record({ ...audit, ...auditTarget, outcome: 'failure', detail: { ...auditTarget.detail, errors: errorCodes(items) } });
    return metadataPayload(items, null);
  }
}

// --- accountUpdate and shopSettingsUpdate ---------------------------------------------------

interface AccountInput {
  firstName?: string | null;
  lastName?: string | null;
  metadata?: MetadataEntry[] | null;
}

async function accountUpdate(ctx: GraphQLContext, input: AccountInput) {
  const principal = await requireUser(ctx);
  const userId = principal.user.id;
  const audit = { ...auditBase(ctx, principal, 'account.updated'), userId };
  const fields = (['firstName', 'lastName'] as const).filter((f) => input[f] != null);
  let detail: Record<string, unknown> = { fields };
  try {
    const errors = fields.map((f) => nameError(f, input[f]!)).filter((e): e is FieldError => e !== null);
    let patch: MetadataMap = {};
    try {
      patch = parseMetadataInput(input.metadata ?? [], 'metadata');
    } catch (e) {
      if (!(e instanceof FieldError)) throw e;
      errors.push(e);
    }
    if (errors.length) throw new FieldErrors(errors);
    detail = { ...detail, ...auditedKeys(Object.keys(patch)) };
    if (fields.length > 0 || Object.keys(patch).length > 0) {
      const outcome = await mergeUserMetadata(ctx.app.db.prisma, userId, 'public', patch, {
        firstName: input.firstName,
        lastName: input.lastName,
        field: 'metadata',
      });
      if (outcome !== 'written') throw new FieldError(null, 'NOT_FOUND', 'The user no longer exists.');
      await ctx.app.bus.publish({ topic: 'users', ids: [userId] });
    }
    await ctx.app.audit.record({ ...audit, outcome: 'success', detail });
    return { user: await userItem(ctx, principal, userId), ...accountErrors([]) };
  } catch (e) {
    const items = toErrorItems(ctx, e, 'accountUpdate');
    await ctx.app.audit.record({ ...audit, outcome: 'failure', detail: { ...detail, errors: errorCodes(items) } });
    return { user: null, ...accountErrors(items) };
  }
}

async function shopSettingsUpdate(ctx: GraphQLContext, input: { metadata?: MetadataEntry[] | null }) {
  const principal = await requirePermission(ctx, [SHOP_METADATA_PERMISSION]);
  const audit = auditBase(ctx, principal, 'shop_settings.updated');
  let detail: Record<string, unknown> = {};
  try {
    const patch = parseMetadataInput(input.metadata ?? [], 'metadata');
    detail = auditedKeys(Object.keys(patch));
    const prisma = ctx.app.db.prisma;
    const written = Object.keys(patch).length > 0 ? await mergeShopMetadata(prisma, 'public', patch, 'metadata') : await readShopMetadata(prisma);
    await ctx.app.audit.record({ ...audit, outcome: 'success', detail });
    return { shop: shopItem(ctx, written), errors: [], shopErrors: [] };
  } catch (e) {
    const items = toErrorItems(ctx, e, 'shopSettingsUpdate');
    await ctx.app.audit.record({ ...audit, outcome: 'failure', detail: { ...detail, errors: errorCodes(items) } });
    return { shop: null, errors: items, shopErrors: items };
  }
}

// --- Field resolvers ------------------------------------------------------------------------

const metadataList = (m: MetadataMap) => Object.entries(m).map(([key, value]) => ({ key, value }));

type KeyArgs = { key: string };
type KeysArgs = { keys?: readonly string[] | null };

export const metadataResolvers = {
  Query: {},
  Mutation: {
    updateMetadata: (_: unknown, args: { id: string; input: MetadataEntry[] }, ctx: GraphQLContext) =>
      changeMetadata(ctx, 'public', args.id, { op: 'update', entries: args.input }, 'updateMetadata'),
    deleteMetadata: (_: unknown, args: { id: string; keys: string[] }, ctx: GraphQLContext) =>
      changeMetadata(ctx, 'public', args.id, { op: 'delete', keys: args.keys }, 'deleteMetadata'),
    updatePrivateMetadata: (_: unknown, args: { id: string; input: MetadataEntry[] }, ctx: GraphQLContext) =>
      changeMetadata(ctx, 'private', args.id, { op: 'update', entries: args.input }, 'updatePrivateMetadata'),
    deletePrivateMetadata: (_: unknown, args: { id: string; keys: string[] }, ctx: GraphQLContext) =>
      changeMetadata(ctx, 'private', args.id, { op: 'delete', keys: args.keys }, 'deletePrivateMetadata'),
    accountUpdate: (_: unknown, args: { input: AccountInput }, ctx: GraphQLContext) => accountUpdate(ctx, args.input),
    shopSettingsUpdate: (_: unknown, args: { input: { metadata?: MetadataEntry[] | null } }, ctx: GraphQLContext) =>
      shopSettingsUpdate(ctx, args.input),
  },
  User: {
    metafield: (u: UserNode, args: KeyArgs) => metafieldOf(metadataOf(u.metadata), args.key),
    metafields: (u: UserNode, args: KeysArgs) => pickMetadata(metadataOf(u.metadata), args.keys),
    privateMetafield: async (u: UserNode, args: KeyArgs, ctx: GraphQLContext) => {
      await requirePermission(ctx, USER_ADMIN);
      return metafieldOf(metadataOf(u.privateMetadata), args.key);
    },
    privateMetafields: async (u: UserNode, args: KeysArgs, ctx: GraphQLContext) => {
      await requirePermission(ctx, USER_ADMIN);
      return pickMetadata(metadataOf(u.privateMetadata), args.keys);
    },
  },
  Shop: {
    metadata: async (shop: ShopParent, _: unknown, ctx: GraphQLContext) => metadataList((await shopMetadata(shop, ctx)).metadata),
    metafield: async (shop: ShopParent, args: KeyArgs, ctx: GraphQLContext) => metafieldOf((await shopMetadata(shop, ctx)).metadata, args.key),
    metafields: async (shop: ShopParent, args: KeysArgs, ctx: GraphQLContext) => pickMetadata((await shopMetadata(shop, ctx)).metadata, args.keys),
    privateMetadata: async (shop: ShopParent, _: unknown, ctx: GraphQLContext) => {
      await requirePermission(ctx, [SHOP_METADATA_PERMISSION]);
      return metadataList((await shopMetadata(shop, ctx)).privateMetadata);
    },
    privateMetafield: async (shop: ShopParent, args: KeyArgs, ctx: GraphQLContext) => {
      await requirePermission(ctx, [SHOP_METADATA_PERMISSION]);
      return metafieldOf((await shopMetadata(shop, ctx)).privateMetadata, args.key);
    },
    privateMetafields: async (shop: ShopParent, args: KeysArgs, ctx: GraphQLContext) => {
      await requirePermission(ctx, [SHOP_METADATA_PERMISSION]);
      return pickMetadata((await shopMetadata(shop, ctx)).privateMetadata, args.keys);
    },
  },
  ObjectWithMetadata: {
    /** Our payloads name their type; a bare User row (id and email) is a User; anything else is refused. */
    __resolveType: (o: { __typename?: unknown; id?: unknown; email?: unknown }, _ctx: unknown, _info: GraphQLResolveInfo): 'User' | 'Shop' | null => {
      if (o.__typename === 'User' || o.__typename === 'Shop') return o.__typename;
      if (typeof o.id === 'number' && typeof o.email === 'string') return 'User';
      return null;
    },
  },
};
