/**
 * Shared pieces of resolver output: Saleor's error lists and Relay connections.
 */
import { GraphQLError } from 'graphql';
import { FieldError, FieldErrors } from '../errors.ts';
import type { GraphQLContext } from './context.ts';
import { describeError } from '../log.ts';

export interface ErrorItem {
  field: string | null;
  message: string;
  code: string;
}

/** Saleor returns mutation errors twice: `errors` and the deprecated duplicate. */
export function accountErrors(items: ErrorItem[]) {
  return { errors: items, accountErrors: items };
}

export function pluginErrors(items: ErrorItem[]) {
  return { errors: items, pluginsErrors: items };
}

const GENERIC_MESSAGE = 'Something went wrong on our side. Please try again later.';

/**
 * Turns what a mutation threw into Saleor's error list. FieldError(s) are expected failures;
 * anything else is unexpected: logged with context, answered with a generic typed error.
 * GraphQLErrors (permission denied) are re-thrown to become top-level errors.
 */
export function toErrorItems(ctx: GraphQLContext, error: unknown, where: string): ErrorItem[] {
  if (error instanceof FieldError) return [{ field: error.field, message: error.message, code: error.code }];
  if (error instanceof FieldErrors) return error.errors.map((e) => ({ field: e.field, message: e.message, code: e.code }));
  if (error instanceof GraphQLError) throw error;
  ctx.req.log.error('unexpected error', { where, ...describeError(error) });
  return [{ field: null, message: GENERIC_MESSAGE, code: 'INVALID' }];
}

const MAX_PAGE = 100;

export interface PageArgs {
  first?: number | null;
  after?: string | null;
}

function decodeCursor(cursor: string): number {
  const text = Buffer.from(cursor, 'base64').toString('utf8');
  const m = /^arrayconnection:(\d+)$/.exec(text);
  if (!m) throw new GraphQLError(`Invalid cursor: ${cursor}`, { extensions: { code: 'BAD_USER_INPUT' } });
  return Number(m[1]);
}

const encodeCursor = (offset: number) => Buffer.from(`arrayconnection:${offset}`).toString('base64');

/** skip/take for a page; `first` defaults to, and is capped at, 100. */
export function pageWindow(args: PageArgs): { skip: number; take: number } {
  const first = args.first ?? MAX_PAGE;
  if (first < 0 || first > MAX_PAGE) {
    throw new GraphQLError(`The value of "first" must be between 0 and ${MAX_PAGE}.`, {
      extensions: { code: 'BAD_USER_INPUT' },
    });
  }
  const skip = args.after ? decodeCursor(args.after) + 1 : 0;
  return { skip, take: first };
}

export function connection<T>(nodes: T[], window: { skip: number; take: number }, totalCount: number) {
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
