/**
 * The GraphQL engine: schema.graphql + resolvers in Apollo Server (no HTTP of its own; the
 * HTTP layer hands requests to executeHTTPGraphQLRequest, or answers a query Apollo resolved
 * before without it: known-operations.ts). One plugin of ours (requestPlugin): the operation
 * name for the request log, the rate limit, the queries to remember, and with metrics every
 * operation counted by name and outcome and every rate-limit rejection by scope.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ApolloServer, HeaderMap, type ApolloServerPlugin, type GraphQLRequestContextDidResolveOperation, type GraphQLRequestListener } from '@apollo/server';
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginInlineTraceDisabled,
  ApolloServerPluginLandingPageDisabled,
  ApolloServerPluginSchemaReportingDisabled,
  ApolloServerPluginUsageReportingDisabled,
} from '@apollo/server/plugin/disabled';
import { GraphQLError, Kind, type FragmentDefinitionNode, type GraphQLFormattedError, type OperationDefinitionNode } from 'graphql';
import type { Logger } from '../log.ts';
import type { Config } from '../config.ts';
import type { RequestRateLimiter } from '../core/rate-limit.ts';
import type { GraphQLMetrics } from '../metrics/metrics.ts';
import { operationLimitRules, rootFieldNames } from './operation-limits.ts';
import type { GraphQLContext } from './context.ts';
import { KnownOperations, graphqlOutcome } from './known-operations.ts';
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

/** An already settled promise: hooks with nothing to wait for return it (no allocation). */
const DONE: Promise<void> = Promise.resolve();
const NO_LISTENER: Promise<undefined> = Promise.resolve(undefined);

/**
 * Our one Apollo plugin, its hooks shared by every request (their state lives on the context):
 * - the operation name, recorded on the context for the request log line;
 * - the rate limit: over it, HTTP 429 with Retry-After, before anything of the operation runs;
 * - with metrics, each operation counted by name and outcome once its response is ready:
 *   `invalid` when the document never resolved to an operation (syntax, validation, unknown
 *   operationName), `rate_limited` for a 429, `error` when the response has top-level errors,
 *   else `success` (Saleor's typed `errors` lists in a payload are a success here).
 * One plugin, not three, and hooks that return a settled promise rather than being `async`:
 * Apollo calls every hook of every plugin on every request.
 *
 * A request for an operation already seen (known-operations.ts: same document text and
 * operationName, not a mutation) gets no hooks at all, which spares it Apollo's dispatch of
 * every hook stage (measured: about 8% of an anonymous `me`): its operation name is known
 * before it runs, nothing of it is rate-limited (only mutations are), and the HTTP layer
 * reports its outcome through `meta.answered`. Mutations always run with the hooks.
 */
function requestPlugin(limiter: RequestRateLimiter, maxFields: number, metrics: GraphQLMetrics | undefined, known: KnownOperations): ApolloServerPlugin<GraphQLContext> {
  const chargeMutation = async ({ contextValue, document }: GraphQLRequestContextDidResolveOperation<GraphQLContext>, operation: OperationDefinitionNode): Promise<void> => {
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
  };
  const hooks: GraphQLRequestListener<GraphQLContext> = {
    didResolveOperation(requestContext) {
      const { contextValue, operationName, operation, request } = requestContext;
      const logName = operationName ?? operation?.operation;
      contextValue.meta.operationName = logName;
      if (operation?.operation === 'mutation') return limiter.enabled ? chargeMutation(requestContext, operation) : DONE;
      if (logName !== undefined && requestContext.document) known.remember(request.query, request.operationName, { name: operationName ?? null, logName, document: requestContext.document, schema: requestContext.schema });
      return DONE;
    },
  };
  if (metrics) {
    hooks.willSendResponse = ({ operation, operationName, response }) => {
      try {
        const errors = response.body.kind === 'single' ? response.body.singleResult.errors : undefined;
        metrics.graphqlOperation(operation ? operationName ?? null : undefined, graphqlOutcome(response.http.status, Boolean(operation), Boolean(errors?.length)));
        return DONE;
      } catch (e) {
        return Promise.reject(e);
      }
    };
  }
  const started = Promise.resolve(hooks);
  return {
    requestDidStart: ({ request, contextValue }) => {
      const operation = known.find(request.query, request.operationName);
      if (!operation) return started;
      contextValue.meta.operationName = operation.logName;
      contextValue.meta.answered = operation;
      return NO_LISTENER;
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

/**
 * The GraphQL engine: Apollo Server, and the query operations it resolved before, which the
 * HTTP layer answers without it when it can (known-operations.ts).
 */
export interface GraphQLEngine {
  apollo: ApolloServer<GraphQLContext>;
  known: KnownOperations;
}

export function createGraphQLServer(log: Logger, config: Config, limiter: RequestRateLimiter, metrics?: GraphQLMetrics): GraphQLEngine {
  const known = new KnownOperations(metrics);
  const apollo = new ApolloServer<GraphQLContext>({
    typeDefs: readFileSync(SCHEMA_PATH, 'utf8'),
    resolvers,
    // Cache-control hints are of no use to an auth API, and its per-field hook costs on every
    // request.
    plugins: [
      ApolloServerPluginLandingPageDisabled(),
      ApolloServerPluginCacheControlDisabled(),
      // Nothing leaves the server for Apollo's cloud, whatever APOLLO_KEY the environment
      // holds; and no plugin but ours sees requests (known-operations.ts answers without them).
      ApolloServerPluginUsageReportingDisabled(),
      ApolloServerPluginSchemaReportingDisabled(),
      ApolloServerPluginInlineTraceDisabled(),
      requestPlugin(limiter, config.graphqlLimits.maxMutationFields, metrics, known),
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
  return { apollo, known };
}
