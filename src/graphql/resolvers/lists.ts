/**
 * The admin lists the Saleor Dashboard pages through: staffUsers and permissionGroups (MANAGE_STAFF)
 * and plugins (MANAGE_PLUGINS), with Saleor's `filter` and `sortBy`, paged forwards or backwards
 * (../pagination.ts: the arguments are checked before any I/O; a database list is counted with the
 * same `where`, then the window is read in the same order).
 *
 * Rules:
 * - `filter.search`: trimmed; empty means no filter; longer than 256 characters is refused
 *   (BAD_USER_INPUT). Case-insensitive substring of email, first or last name (staff), of the name
 *   (groups), of the id or name (plugins).
 * - `filter.ids`: global ids of the list's type, at most 100; one that is not such an id is refused
 *   (BAD_USER_INPUT); an empty list is no filter (django-filter skips an empty value, as Saleor).
 * - staffUsers: only `isStaff` users; `status` ACTIVE / DEACTIVATED is `isActive`. Sort keys in
 *   ../../accounts/list-queries.ts; default email ascending.
 * - permissionGroups: sort NAME (then id); default name ascending.
 * - plugins: in memory (every plugin here is global). `type` GLOBAL matches all, PER_CHANNEL none.
 *   Sort NAME: by name, then id, code-point order (as Python's `sorted` in Saleor). IS_ACTIVE:
 *   inactive first when ascending, then name and id ascending in both directions (Saleor's key).
 *   Default: the plugin manager's order (by id).
 *
 * Where we differ from Saleor:
 * - `statusInChannels`: Saleor matches a global plugin on its global `active` whatever channels are
 *   named (and fails on an unknown channel id). This server has no channels: a non-empty channel
 *   list names channels that do not exist, so it matches nothing (as schema.graphql documents); an
 *   empty one matches the plugins whose `active` equals the filter's.
 * - Saleor refuses a list query with neither `first` nor `last`; we page forwards by 100.
 * - A User/Group id beyond our integer keys names nobody: it matches nothing rather than failing.
 */
import { GraphQLError } from 'graphql';
import type { PluginView } from '../../plugins/manager.ts';
import {
  groupOrder,
  groupWhere,
  staffOrder,
  staffWhere,
  type SortDirection,
  type StaffSortField,
} from '../../accounts/list-queries.ts';
import { parseGlobalIdOf } from '../global-id.ts';
import { requirePermission, type GraphQLContext } from '../context.ts';
import { checkPageArgs, connection, pageOf, pageWindow, type PageArgs, type PageWindow } from '../pagination.ts';

export const MAX_SEARCH_LENGTH = 256;
export const MAX_FILTER_IDS = 100;
/** Primary keys are PostgreSQL `integer`s: a larger id names no row (and Prisma would refuse it). */
const MAX_KEY = 2_147_483_647;

type Direction = 'ASC' | 'DESC';
interface StaffUsersArgs extends PageArgs {
  filter?: { search?: string | null; status?: 'ACTIVE' | 'DEACTIVATED' | null; ids?: string[] | null } | null;
  sortBy?: { field: StaffSortField; direction: Direction } | null;
}
interface PermissionGroupsArgs extends PageArgs {
  filter?: { search?: string | null; ids?: string[] | null } | null;
  sortBy?: { field: 'NAME'; direction: Direction } | null;
}
interface PluginsArgs extends PageArgs {
  filter?: {
    search?: string | null;
    type?: 'GLOBAL' | 'PER_CHANNEL' | null;
    statusInChannels?: { active: boolean; channels: string[] } | null;
  } | null;
  sortBy?: { field: 'NAME' | 'IS_ACTIVE'; direction: Direction } | null;
}

const badInput = (message: string) => new GraphQLError(message, { extensions: { code: 'BAD_USER_INPUT' } });

/** The search text, trimmed; undefined when there is none. */
function searchOf(value: string | null | undefined): string | undefined {
  const search = value?.trim();
  if (search && search.length > MAX_SEARCH_LENGTH) {
    throw badInput(`The search text must be at most ${MAX_SEARCH_LENGTH} characters.`);
  }
  return search || undefined;
}

/** The primary keys named by `ids` (global ids of `type`); undefined when no ids are given. */
function keysOf(type: 'User' | 'Group', ids: readonly string[] | null | undefined): number[] | undefined {
  if (!ids?.length) return undefined;
  if (ids.length > MAX_FILTER_IDS) throw badInput(`At most ${MAX_FILTER_IDS} ids can be given.`);
  const keys = ids.map((globalId) => {
    const key = parseGlobalIdOf(type, globalId);
    if (key === null) throw badInput(`Couldn't resolve id to a ${type}: ${globalId.slice(0, 100)}.`);
    return key;
  });
  return keys.filter((key) => key <= MAX_KEY);
}

const directionOf = (sortBy: { direction: Direction } | null | undefined): SortDirection =>
  sortBy?.direction === 'DESC' ? 'desc' : 'asc';

/** A page of a database list: count, then read the window (nothing when it is empty). */
async function databasePage<T>(
  args: PageArgs,
  count: () => Promise<number>,
  read: (window: PageWindow) => Promise<T[]>,
) {
  const total = await count();
  const window = pageWindow(args, total);
  return connection(window.take > 0 ? await read(window) : [], window, total);
}

function pluginMatcher(filter: PluginsArgs['filter']): (p: PluginView) => boolean {
  const search = searchOf(filter?.search)?.toLowerCase();
  const status = filter?.statusInChannels;
  if (filter?.type === 'PER_CHANNEL' || (status && status.channels.length > 0)) return () => false;
  return (p) =>
    (!search || p.id.toLowerCase().includes(search) || p.name.toLowerCase().includes(search)) &&
    (!status || p.active === status.active);
}

const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function pluginComparator(sortBy: PluginsArgs['sortBy']): ((a: PluginView, b: PluginView) => number) | undefined {
  if (!sortBy) return undefined;
  const sign = sortBy.direction === 'DESC' ? -1 : 1;
  if (sortBy.field === 'NAME') return (a, b) => sign * (byCodePoint(a.name, b.name) || byCodePoint(a.id, b.id));
  return (a, b) => sign * (Number(a.active) - Number(b.active)) || byCodePoint(a.name, b.name) || byCodePoint(a.id, b.id);
}

export const listResolvers = {
  Query: {
    staffUsers: async (_: unknown, args: StaffUsersArgs, ctx: GraphQLContext) => {
      await requirePermission(ctx, ['MANAGE_STAFF']);
      checkPageArgs(args);
      const status = args.filter?.status;
      const where = staffWhere({
        search: searchOf(args.filter?.search),
        active: status ? status === 'ACTIVE' : undefined,
        ids: keysOf('User', args.filter?.ids),
      });
      const orderBy = staffOrder(args.sortBy?.field, directionOf(args.sortBy));
      const prisma = ctx.app.db.prisma;
      return databasePage(
        args,
        () => prisma.user.count({ where }),
        (window) => prisma.user.findMany({ where, orderBy, ...window }),
      );
    },
    permissionGroups: async (_: unknown, args: PermissionGroupsArgs, ctx: GraphQLContext) => {
      await requirePermission(ctx, ['MANAGE_STAFF']);
      checkPageArgs(args);
      const where = groupWhere({ search: searchOf(args.filter?.search), ids: keysOf('Group', args.filter?.ids) });
      const orderBy = groupOrder(directionOf(args.sortBy));
      const prisma = ctx.app.db.prisma;
      return databasePage(
        args,
        () => prisma.permissionGroup.count({ where }),
        (window) => prisma.permissionGroup.findMany({ where, orderBy, ...window }),
      );
    },
    plugins: async (_: unknown, args: PluginsArgs, ctx: GraphQLContext) => {
      await requirePermission(ctx, ['MANAGE_PLUGINS']);
      checkPageArgs(args);
      const matches = pluginMatcher(args.filter);
      const compare = pluginComparator(args.sortBy);
      const list = (await ctx.app.plugins.list()).filter(matches);
      return pageOf(compare ? list.sort(compare) : list, args);
    },
  },
};
