/**
 * The database side of the admin lists (staffUsers, permissionGroups): a filter becomes a Prisma
 * `where`, a sort field an `orderBy` that always ends on a unique column, so that offset pages
 * (src/graphql/pagination.ts) are stable and paging backwards gives the same items as forwards.
 *
 * Sort keys follow Saleor's (UserSortField, PermissionGroupSortField), the direction applying to
 * every key. Saleor's ORDER_COUNT and RANK have nothing to sort on here (no orders, no search
 * rank): they sort by email, as schema.graphql says.
 *
 * Text order is the database collation's (PostgreSQL's `ORDER BY`), as in Saleor. A search is a
 * plain substring: LIKE wildcards in it match themselves.
 */
import type { Prisma } from '../generated/prisma/client.ts';

export type SortDirection = 'asc' | 'desc';

export type StaffSortField = 'FIRST_NAME' | 'LAST_NAME' | 'EMAIL' | 'ORDER_COUNT' | 'CREATED_AT' | 'LAST_MODIFIED_AT' | 'RANK';

export interface StaffFilter {
  /** Case-insensitive substring of email, first name or last name; already trimmed, non-empty. */
  search?: string;
  /** Only active (true) or deactivated (false) users. */
  active?: boolean;
  /** Only these user primary keys (an empty list matches nothing). */
  ids?: number[];
}

export interface GroupFilter {
  /** Case-insensitive substring of the name; already trimmed, non-empty. */
  search?: string;
  /** Only these group primary keys (an empty list matches nothing). */
  ids?: number[];
}

/**
 * A case-insensitive substring match (ILIKE). Prisma passes `contains` into the LIKE pattern
 * as is, so `%`, `_` and the escape character `\` are escaped to match themselves.
 */
const insensitive = (search: string) => ({ contains: search.replace(/[\\%_]/g, '\\$&'), mode: 'insensitive' as const });

/** Staff users only, narrowed by `filter`. */
export function staffWhere(filter: StaffFilter): Prisma.UserWhereInput {
  const where: Prisma.UserWhereInput = { isStaff: true };
  if (filter.active !== undefined) where.isActive = filter.active;
  if (filter.ids) where.id = { in: filter.ids };
  if (filter.search) {
    const s = insensitive(filter.search);
    where.OR = [{ email: s }, { firstName: s }, { lastName: s }];
  }
  return where;
}

/** Saleor's sort keys per field; email and id are unique, so each list ends on a unique key. */
const STAFF_SORT_KEYS: Record<StaffSortField, Array<'firstName' | 'lastName' | 'email' | 'dateJoined' | 'updatedAt' | 'id'>> = {
  FIRST_NAME: ['firstName', 'lastName', 'id'],
  LAST_NAME: ['lastName', 'firstName', 'id'],
  EMAIL: ['email'],
  ORDER_COUNT: ['email'],
  RANK: ['email'],
  CREATED_AT: ['dateJoined', 'id'],
  LAST_MODIFIED_AT: ['updatedAt', 'id'],
};

/** The order of a staff list; by default email ascending. */
export function staffOrder(field: StaffSortField = 'EMAIL', direction: SortDirection = 'asc'): Prisma.UserOrderByWithRelationInput[] {
  return STAFF_SORT_KEYS[field].map((key) => ({ [key]: direction }));
}

export function groupWhere(filter: GroupFilter): Prisma.PermissionGroupWhereInput {
  const where: Prisma.PermissionGroupWhereInput = {};
  if (filter.ids) where.id = { in: filter.ids };
  if (filter.search) where.name = insensitive(filter.search);
  return where;
}

/** The order of a group list (names are unique; id keeps the order total regardless). */
export function groupOrder(direction: SortDirection = 'asc'): Prisma.PermissionGroupOrderByWithRelationInput[] {
  return [{ name: direction }, { id: direction }];
}
