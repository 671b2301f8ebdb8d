/**
 * The GraphQL engine: schema.graphql + resolvers in Apollo Server (no HTTP of its own; the
 * HTTP layer hands requests to executeHTTPGraphQLRequest). With metrics, every operation is
 * counted by name and outcome, and every rate-limit rejection by scope.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ApolloServer, HeaderMap, type ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginCacheControlDisabled, ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { GraphQLError, Kind, type FragmentDefinitionNode, type GraphQLFormattedError } from 'graphql';
import type { Logger } from '../log.ts';
import type { Config } from '../config.ts';
import type { RequestRateLimiter } from '../core/rate-limit.ts';
import type { GraphQLMetrics, GraphQLOutcome } from '../metrics/metrics.ts';
import { operationLimitRules, rootFieldNames } from './operation-limits.ts';
import type { GraphQLContext } from './context.ts';
import { DateTime, GenericScalar, JSONScalar, JSONString, Metadata, PositiveInt } from './scalars.ts';
import { userResolvers } from './resolvers/users.ts';
import { pluginResolvers } from './resolvers/plugins.ts';
import { tokenResolvers } from './resolvers/tokens.ts';
import { externalResolvers } from './resolvers/external.ts';
import { staffResolvers } from './resolvers/staff.ts';
import { groupResolvers } from './resolvers/groups.ts';
import { shopResolvers } from './resolvers/shop.ts';
import { metadataResolvers } from './resolvers/metadata.ts';
import { listResolvers } from './resolvers/lists.ts';

export const SCHEMA_PATH = fileURLToPath(new URL('../../schema.graphql', import.meta.url));

export const resolvers = {
  JSONString,
  DateTime,
  GenericScalar,
  JSON: JSONScalar,
  Metadata,
  PositiveInt,
  Query: {
    ...userResolvers.Query,
    ...pluginResolvers.Query,
    ...groupResolvers.Query,
    ...shopResolvers.Query,
    ...metadataResolvers.Query,
    ...listResolvers.Query,
  },
  Mutation: {
    ...pluginResolvers.Mutation,
    ...tokenResolvers.Mutation,
    ...externalResolvers.Mutation,
    ...staffResolvers.Mutation,
    ...groupResolvers.Mutation,
    ...metadataResolvers.Mutation,
  },
  User: { ...userResolvers.User, ...groupResolvers.User, ...shopResolvers.User, ...metadataResolvers.User },
  Group: { ...userResolvers.Group, ...groupResolvers.Group, ...shopResolvers.Group },
  UserPermission: groupResolvers.UserPermission,
  Shop: { ...pluginResolvers.Shop, ...shopResolvers.Shop, ...metadataResolvers.Shop },
  Plugin: pluginResolvers.Plugin,
  PluginConfiguration: shopResolvers.PluginConfiguration,
  AccountError: shopResolvers.AccountError,
  ObjectWithMetadata: metadataResolvers.ObjectWithMetadata,
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
 * Counts each operation by name and outcome once its response is ready: `invalid` when the
 * document never resolved to an operation (syntax, validation, unknown operationName),
 * `rate_limited` for a 429, `error` when the response has top-level errors, else `success`
 * (Saleor's typed `errors` lists in a payload are a success here).
 */
function metricsPlugin(metrics: GraphQLMetrics): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart() {
      return {
        async willSendResponse({ operation, operationName, response }) {
          const errors = response.body.kind === 'single' ? response.body.singleResult.errors : undefined;
          const outcome: GraphQLOutcome =
            response.http.status === 429 ? 'rate_limited' : !operation ? 'invalid' : errors?.length ? 'error' : 'success';
          metrics.graphqlOperation(operation ? operationName ?? null : undefined, outcome);
        },
      };
    },
  };
}

/**
 * Mutations an anonymous caller can use to make us work (write a state row, call the provider,
 * check a signature): each occurrence spends one point of the client's rate limit.
 */
export const RATE_LIMITED_FIELDS: ReadonlySet<string> = new Set([
  'externalAuthenticationUrl',
  'externalObtainAccessTokens',
  'externalRefresh',
  'externalLogout',
  'externalVerify',
  'tokenRefresh',
  'tokenVerify',
]);

/** Over the limit: HTTP 429 with Retry-After, before anything of the operation runs. */
function rateLimitPlugin(limiter: RequestRateLimiter, maxFields: number, metrics: GraphQLMetrics | undefined): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart() {
      if (!limiter.enabled) return;
      return {
        async didResolveOperation({ contextValue, operation, document }) {
          if (operation?.operation !== 'mutation') return;
          const fragments = new Map<string, FragmentDefinitionNode>();
          for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
          const points = rootFieldNames(operation.selectionSet, (n) => fragments.get(n), maxFields).filter((f) => RATE_LIMITED_FIELDS.has(f)).length;
          const decision = await limiter.consume(contextValue.req.ip ?? 'unknown', points);
          if (decision.allowed) return;
          metrics?.rateLimitRejected('graphql');
          contextValue.req.log.info('rate limit exceeded', { client: contextValue.req.ip });
          throw new GraphQLError('Too many requests. Please try again later.', {
            extensions: {
              code: 'TOO_MANY_REQUESTS',
              retryAfterSeconds: decision.retryAfterSeconds,
              http: { status: 429, headers: new HeaderMap([['retry-after', String(decision.retryAfterSeconds)]]) },
            },
          });
        },
      };
    },
  };
}

/**
 * Every error with extensions carries `extensions.exception.code`, as Saleor's do: the Saleor
 * Dashboard (3.21's SDK) reads `extensions.exception.code` without checking that it exists.
 */
function withException(formatted: GraphQLFormattedError): GraphQLFormattedError {
  const extensions = formatted.extensions;
  if (!extensions || (typeof extensions['exception'] === 'object' && extensions['exception'] !== null)) return formatted;
  return { ...formatted, extensions: { ...extensions, exception: { code: String(extensions['code'] ?? 'GraphQLError') } } };
}

export function createGraphQLServer(log: Logger, config: Config, limiter: RequestRateLimiter, metrics?: GraphQLMetrics): ApolloServer<GraphQLContext> {
  return new ApolloServer<GraphQLContext>({
    typeDefs: readFileSync(SCHEMA_PATH, 'utf8'),
    resolvers,
    // Cache-control hints are of no use to an auth API, and its per-field hook costs on every
    // request.
    plugins: [
      ApolloServerPluginLandingPageDisabled(),
      ApolloServerPluginCacheControlDisabled(),
      operationNamePlugin,
      rateLimitPlugin(limiter, config.graphqlLimits.maxMutationFields, metrics),
      ...(metrics ? [metricsPlugin(metrics)] : []),
    ],
    includeStacktraceInErrorResponses: false,
    // Shutdown is ours (main.ts): Apollo's own SIGTERM handler would re-raise the signal and
    // kill the process before the database is closed.
    stopOnTerminationSignals: false,
    parseOptions: { maxTokens: config.graphqlLimits.maxTokens },
    validationRules: operationLimitRules(config.graphqlLimits),
    introspection: config.graphqlIntrospection,
    formatError: (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
      const original = error instanceof GraphQLError ? error.originalError : error;
      // Errors we raise on purpose (permission denied, bad input) and GraphQL's own
      // syntax/validation errors pass through; anything else is a bug: log it, say little.
      if (original === undefined || original instanceof GraphQLError) return withException(formatted);
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
