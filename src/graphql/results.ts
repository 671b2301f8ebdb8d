/**
 * Shared pieces of resolver output: Saleor's error lists (connections: ./pagination.ts).
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
