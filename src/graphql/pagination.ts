/**
 * Relay connections over an ordered list (Saleor's list queries: plugins, staffUsers,
 * permissionGroups), paged forwards (`first`, `after`) or backwards (`last`, `before`), as the
 * Saleor Dashboard does in its list pages.
 *
 * A cursor is an offset into the list as ordered and filtered by the same arguments (Relay's
 * "arrayconnection:<n>" form), so a cursor is only meaningful with the filter and sort order it
 * came from; the lists are small admin lists.
 *
 * Rules (Saleor's): `first` and `last` together are refused; each is at most 100. Where Saleor
 * refuses a request with neither, we page forwards by 100 (older clients of ours rely on it).
 */
import { GraphQLError } from 'graphql';

export const MAX_PAGE = 100;

export interface PageArgs {
  first?: number | null;
  after?: string | null;
  last?: number | null;
  before?: string | null;
}

/** The slice of the ordered list a page covers. */
export interface PageWindow {
  skip: number;
  take: number;
}

const badInput = (message: string) => new GraphQLError(message, { extensions: { code: 'BAD_USER_INPUT' } });

function decodeCursor(cursor: string): number {
  const text = Buffer.from(cursor, 'base64').toString('utf8');
  const m = /^arrayconnection:(\d{1,9})$/.exec(text);
  if (!m) throw badInput(`Invalid cursor: ${cursor.slice(0, 100)}`);
  return Number(m[1]);
}

const encodeCursor = (offset: number) => Buffer.from(`arrayconnection:${offset}`).toString('base64');

function checkCount(name: 'first' | 'last', value: number | null | undefined): void {
  if (value === null || value === undefined) return;
  if (value < 0 || value > MAX_PAGE) throw badInput(`The value of "${name}" must be between 0 and ${MAX_PAGE}.`);
}

/** Checks the arguments before any I/O (a bad request costs no query). */
export function checkPageArgs(args: PageArgs): void {
  if (args.first != null && args.last != null) throw badInput('Argument `last` cannot be combined with `first`.');
  checkCount('first', args.first);
  checkCount('last', args.last);
  if (args.after) decodeCursor(args.after);
  if (args.before) decodeCursor(args.before);
}

/** The window of a list of `total` items that the arguments select. */
export function pageWindow(args: PageArgs, total: number): PageWindow {
  checkPageArgs(args);
  let start = args.after ? Math.min(decodeCursor(args.after) + 1, total) : 0;
  let end = args.before ? Math.min(decodeCursor(args.before), total) : total;
  if (end < start) end = start;
  if (args.last != null) start = Math.max(start, end - args.last);
  else end = Math.min(end, start + (args.first ?? MAX_PAGE));
  return { skip: start, take: end - start };
}

/** The connection for `nodes`, the items of `window` in a list of `totalCount`. */
export function connection<T>(nodes: readonly T[], window: PageWindow, totalCount: number) {
  const edges = nodes.map((node, i) => ({ node, cursor: encodeCursor(window.skip + i) }));
  return {
    edges,
    totalCount,
    pageInfo: {
      hasNextPage: window.skip + nodes.length < totalCount,
      hasPreviousPage: window.skip > 0,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null,
    },
  };
}

/** A page of an in-memory list. */
export function pageOf<T>(all: readonly T[], args: PageArgs) {
  const window = pageWindow(args, all.length);
  return connection(all.slice(window.skip, window.skip + window.take), window, all.length);
}
