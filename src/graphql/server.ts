/**
 * The GraphQL engine: schema.graphql + resolvers in Apollo Server (no HTTP of its own; the
 * HTTP layer hands requests to executeHTTPGraphQLRequest).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginCacheControlDisabled, ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { GraphQLError, type ASTVisitor, type GraphQLFormattedError, type ValidationContext } from 'graphql';
import type { Logger } from '../log.ts';
import type { GraphQLContext } from './context.ts';
import { DateTime, GenericScalar, JSONString } from './scalars.ts';
import { userResolvers } from './resolvers/users.ts';
import { pluginResolvers } from './resolvers/plugins.ts';
import { tokenResolvers } from './resolvers/tokens.ts';
import { externalResolvers } from './resolvers/external.ts';

export const SCHEMA_PATH = fileURLToPath(new URL('../../schema.graphql', import.meta.url));

export const resolvers = {
  JSONString,
  DateTime,
  GenericScalar,
  Query: { ...userResolvers.Query, ...pluginResolvers.Query },
  Mutation: { ...pluginResolvers.Mutation, ...tokenResolvers.Mutation, ...externalResolvers.Mutation },
  User: userResolvers.User,
  Group: userResolvers.Group,
  Shop: pluginResolvers.Shop,
  Plugin: pluginResolvers.Plugin,
  Node: { __resolveType: () => null },
};

/** Records the operation name and outcome on the context, for the request log line. */
const operationNamePlugin: ApolloServerPlugin<GraphQLContext> = {
  async requestDidStart() {
    return {
      async didResolveOperation({ contextValue, operationName, operation }) {
        contextValue.meta.operationName = operationName ?? operation?.operation;
      },
    };
  },
};

/**
 * At most MAX_MUTATION_FIELDS root fields (aliases included) in one mutation: the external-auth
 * mutations are anonymous and each may write, so one request must not fan out into thousands.
 */
const MAX_MUTATION_FIELDS = 10;

const limitMutationFields = (context: ValidationContext): ASTVisitor => ({
  OperationDefinition(node) {
    if (node.operation !== 'mutation') return;
    if (node.selectionSet.selections.length > MAX_MUTATION_FIELDS) {
      context.reportError(new GraphQLError(`A mutation may select at most ${MAX_MUTATION_FIELDS} fields.`, { nodes: [node] }));
    }
  },
});

export function createGraphQLServer(log: Logger): ApolloServer<GraphQLContext> {
  return new ApolloServer<GraphQLContext>({
    typeDefs: readFileSync(SCHEMA_PATH, 'utf8'),
    resolvers,
    // Cache-control hints are of no use to an auth API, and its per-field hook costs on every
    // request.
    plugins: [ApolloServerPluginLandingPageDisabled(), ApolloServerPluginCacheControlDisabled(), operationNamePlugin],
    includeStacktraceInErrorResponses: false,
    validationRules: [limitMutationFields],
    introspection: true,
    formatError: (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
      const original = error instanceof GraphQLError ? error.originalError : error;
      // Errors we raise on purpose (permission denied, bad input) and GraphQL's own
      // syntax/validation errors pass through; anything else is a bug: log it, say little.
      if (original === undefined || original instanceof GraphQLError) return formatted;
      log.error('unexpected resolver error', {
        path: formatted.path,
        errorName: (original as Error).name,
        errorMessage: (original as Error).message,
        stack: (original as Error).stack,
      });
      return {
        message: 'Internal Server Error',
        ...(formatted.path ? { path: formatted.path } : {}),
        extensions: { exception: { code: 'INTERNAL_ERROR' } },
      };
    },
  });
}
