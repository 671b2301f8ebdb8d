/**
 * staffCreate, staffUpdate, staffDelete (rules in src/accounts/staff-admin.ts). Each requires
 * MANAGE_STAFF and a user: as in Saleor, apps are not allowed. The request's principal is checked
 * first; since it may be cached (stale), the change itself checks again against the database under
 * the admin lock, and a requester who lost MANAGE_STAFF, or was deactivated, gets the same
 * PermissionDenied (audited as a failure) and changes nothing. After a change the affected users'
 * cached principals are forgotten, so their next request sees their new permissions, groups or
 * active flag; every attempt is audited (`staff.create`, `staff.update`, `staff.delete`).
 */
import { GraphQLError } from 'graphql';
import { FieldError, FieldErrors } from '../../errors.ts';
import { RuleError, StaffManagerRequired, type Requester } from '../../accounts/manageable.ts';
import { createStaff, deleteStaff, updateStaff, type EndedSessions, type StaffChange, type StaffCreateInput, type StaffUpdateInput } from '../../accounts/staff-admin.ts';
import { permissionDenied, requirePermission, type GraphQLContext } from '../context.ts';
import { toErrorItems } from '../results.ts';

/**
 * The requester of a staff or group mutation: MANAGE_STAFF, and a user (Saleor refuses apps). From
 * the request's principal, which may be stale: the admin transaction judges them again
 * (loadWorld in staff-admin.ts).
 */
export async function requireStaffManager(ctx: GraphQLContext): Promise<Requester> {
  const principal = await requirePermission(ctx, ['MANAGE_STAFF']);
  if (principal.kind !== 'user') throw permissionDenied();
  return { userId: principal.user.id, isStaff: principal.isStaff, permissions: principal.permissions };
}

export interface AdminErrorItem {
  field: string | null;
  message: string;
  code: string;
  permissions: string[] | null;
  groups: string[] | null;
  users: string[] | null;
}

/**
 * Saleor's typed error list (StaffError / PermissionGroupError) for what a mutation threw. A code
 * the error type does not have (NOT_FOUND for groups) becomes a top-level error, as in Saleor.
 */
export function adminErrorItems(ctx: GraphQLContext, error: unknown, where: string, codes: ReadonlySet<string>): AdminErrorItem[] {
  const list = error instanceof FieldErrors ? error.errors : error instanceof FieldError ? [error] : null;
  if (!list) {
    const items = toErrorItems(ctx, error, where);
    if (items.every((i) => codes.has(i.code))) return items.map((i) => ({ ...i, permissions: null, groups: null, users: null }));
    throw new GraphQLError(items[0]?.message ?? 'Internal error', { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
  }
  const foreign = list.find((e) => !codes.has(e.code));
  if (foreign) throw new GraphQLError(foreign.message, { extensions: { code: foreign.code } });
  return list.map((e) => {
    const params = e instanceof RuleError ? e.params : {};
    return { field: e.field, message: e.message, code: e.code, permissions: params.permissions ?? null, groups: params.groups ?? null, users: params.users ?? null };
  });
}

/** AccountErrorCode values staff mutations return. */
const STAFF_CODES: ReadonlySet<string> = new Set([
  'DUPLICATED_INPUT_ITEM',
  'DEACTIVATE_OWN_ACCOUNT',
  'DELETE_NON_STAFF_USER',
  'DELETE_OWN_ACCOUNT',
  'INVALID',
  'LEFT_NOT_MANAGEABLE_PERMISSION',
  'NOT_FOUND',
  'OUT_OF_SCOPE_USER',
  'OUT_OF_SCOPE_GROUP',
  'OUT_OF_SCOPE_PERMISSION',
  'REQUIRED',
  'UNIQUE',
]);

const staffErrors = (items: AdminErrorItem[]) => ({ errors: items, staffErrors: items });

/** What one admin mutation says about itself: its audit type, its error list's names and codes. */
export interface AdminMutation<C> {
  type: string;
  where: string;
  /** The id the mutation is about (audited on failure). */
  target: string | null;
  codes: ReadonlySet<string>;
  /** `errors` plus the deprecated duplicate (staffErrors / permissionGroupErrors). */
  errorLists: (items: AdminErrorItem[]) => Record<string, AdminErrorItem[]>;
  /** The payload's object field on success, and what the success audit row adds. */
  success: (change: C) => { payload: Record<string, unknown>; audit: { userId?: number; detail: Record<string, unknown> } };
  /** The payload's object field on failure (null). */
  failure: Record<string, null>;
}

/** Runs one staff or group mutation: the change, then forget + audit; or the typed errors, audited. */
export async function runAdminMutation<C extends { affectedUserIds: number[]; endedSessions?: EndedSessions }>(ctx: GraphQLContext, m: AdminMutation<C>, change: (requester: Requester) => Promise<C>) {
  const requester = await requireStaffManager(ctx);
  const audit = { type: m.type, actorUserId: requester.userId, ip: ctx.req.ip, userAgent: ctx.req.userAgent, requestId: ctx.req.requestId };
  try {
    const result = await change(requester);
    if (result.endedSessions) ctx.app.sessions.announceRevoked(result.endedSessions.ids, result.endedSessions.reason);
    await ctx.app.bus.publish({ topic: 'users', ids: result.affectedUserIds });
    const { payload, audit: extra } = m.success(result);
    await ctx.app.audit.record({ ...audit, outcome: 'success', ...extra });
    return { ...payload, ...m.errorLists([]) };
  } catch (e) {
    if (e instanceof StaffManagerRequired) {
      // Their cached principal is stale: forget it, so their next request sees the truth.
      await ctx.app.bus.publish({ topic: 'users', ids: [requester.userId] });
      await ctx.app.audit.record({ ...audit, outcome: 'failure', detail: { id: m.target, errors: ['-:PermissionDenied'] } });
      throw permissionDenied(['MANAGE_STAFF']);
    }
    const items = adminErrorItems(ctx, e, m.where, m.codes);
    await ctx.app.audit.record({ ...audit, outcome: 'failure', detail: { id: m.target, errors: items.map((i) => `${i.field ?? '-'}:${i.code}`) } });
    return { ...m.failure, ...m.errorLists(items) };
  }
}

/** How staff mutations report (the rest of AdminMutation is per call). */
const STAFF: Omit<AdminMutation<StaffChange>, 'type' | 'where' | 'target'> = {
  codes: STAFF_CODES,
  errorLists: staffErrors,
  success: (r) => ({ payload: { user: r.user }, audit: { userId: r.user.id, detail: r.detail } }),
  failure: { user: null },
};

const run = (ctx: GraphQLContext, type: string, where: string, target: string | null, change: (requester: Requester) => Promise<StaffChange>) =>
  runAdminMutation(ctx, { ...STAFF, type, where, target }, change);

export const staffResolvers = {
  Mutation: {
    staffCreate: (_: unknown, args: { input: StaffCreateInput }, ctx: GraphQLContext) =>
      run(ctx, 'staff.create', 'staffCreate', null, (r) => createStaff(ctx.app.db.prisma, r, args.input)),
    staffUpdate: (_: unknown, args: { id: string; input: StaffUpdateInput }, ctx: GraphQLContext) =>
      run(ctx, 'staff.update', 'staffUpdate', args.id, (r) => updateStaff(ctx.app.db.prisma, r, args.id, args.input)),
    staffDelete: (_: unknown, args: { id: string }, ctx: GraphQLContext) =>
      run(ctx, 'staff.delete', 'staffDelete', args.id, (r) => deleteStaff(ctx.app.db.prisma, r, args.id)),
  },
};
