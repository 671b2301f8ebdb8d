/**
 * The GraphQL engine: schema.graphql + resolvers in Apollo Server (no HTTP of its own; the
 * HTTP layer hands requests to executeHTTPGraphQLRequest). One plugin of ours (requestPlugin):
 * the operation name for the request log, the rate limit, and with metrics every operation
 * counted by name and outcome and every rate-limit rejection by scope.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ApolloServer, HeaderMap, type ApolloServerPlugin, type GraphQLRequestContextDidResolveOperation, type GraphQLRequestListener } from '@apollo/server';
import { ApolloServerPluginCacheControlDisabled, ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { GraphQLError, Kind, type FragmentDefinitionNode, type GraphQLFormattedError, type OperationDefinitionNode } from 'graphql';
import type { Logger } from '../log.ts';
import type { Config } from '../config.ts';
import type { RequestRateLimiter } from '../core/rate-limit.ts';
import type { GraphQLMetrics, GraphQLOutcome } from '../metrics/metrics.ts';
import { operationLimitRules, rootFieldNames } from './operation-limits.ts';
import type { AnsweredWithoutHooks, GraphQLContext } from './context.ts';
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

/** Documents of at most this many characters are remembered as known operations, ... */
const MAX_KNOWN_QUERY_LENGTH = 4096;
/** ... and at most this many of them. */
const MAX_KNOWN_OPERATIONS = 1000;

/**
 * How an operation is counted: `rate_limited` for a 429, `invalid` when the document never
 * resolved to an operation, `error` when the response has top-level errors, else `success`.
 */
function graphqlOutcome(status: number | undefined, resolved: boolean, topLevelErrors: boolean): GraphQLOutcome {
  return status === 429 ? 'rate_limited' : !resolved ? 'invalid' : topLevelErrors ? 'error' : 'success';
}

/**
 * A query (or subscription) operation that Apollo resolved before: a document that parsed and
 * validated, and the operation a request's operationName picks in it. Its later requests run
 * without our hooks (see requestPlugin); the HTTP layer reports their response here.
 */
class KnownOperation implements AnsweredWithoutHooks {
  constructor(
    /** Apollo's operationName: the operation's name, null when it has none. */
    readonly name: string | null,
    /** What the request log shows: the name, else the operation type. */
    readonly logName: string,
    private readonly metrics: GraphQLMetrics | undefined,
  ) {}

  /**
   * Counts the operation as the willSendResponse hook would have: `error` when the response has
   * top-level errors (Apollo writes them first: `{"errors":[…`), else `success`.
   */
  answered(status: number, body: string | undefined): void {
    this.metrics?.graphqlOperation(this.name, graphqlOutcome(status, true, body?.startsWith('{"errors":[{') ?? false));
  }
}

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
 * A request for an operation already seen (KnownOperation: same document text and
 * operationName, not a mutation) gets no hooks at all, which spares it Apollo's dispatch of
 * every hook stage (measured: about 8% of an anonymous `me`): its operation name is known
 * before it runs, nothing of it is rate-limited (only mutations are), and the HTTP layer
 * reports its outcome through `meta.answered`. Mutations always run with the hooks.
 */
function requestPlugin(limiter: RequestRateLimiter, maxFields: number, metrics: GraphQLMetrics | undefined): ApolloServerPlugin<GraphQLContext> {
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
  // By operationName (none: ''), then by document text: no key string built per request.
  const known = new Map<string, Map<string, KnownOperation>>();
  let knownCount = 0;
  const knownIn = (query: unknown, operationName: string | undefined): Map<string, KnownOperation> | undefined =>
    typeof query === 'string' && query.length <= MAX_KNOWN_QUERY_LENGTH ? known.get(operationName ?? '') : undefined;
  const remember = (query: unknown, operationName: string | undefined, operation: KnownOperation): void => {
    if (typeof query !== 'string' || query.length > MAX_KNOWN_QUERY_LENGTH || knownCount >= MAX_KNOWN_OPERATIONS) return;
    let byQuery = known.get(operationName ?? '');
    if (!byQuery) known.set(operationName ?? '', (byQuery = new Map()));
    if (!byQuery.has(query)) knownCount++;
    byQuery.set(query, operation);
  };
  const hooks: GraphQLRequestListener<GraphQLContext> = {
    didResolveOperation(requestContext) {
      const { contextValue, operationName, operation, request } = requestContext;
      const logName = operationName ?? operation?.operation;
      contextValue.meta.operationName = logName;
      if (operation?.operation === 'mutation') return limiter.enabled ? chargeMutation(requestContext, operation) : DONE;
      if (logName !== undefined) remember(request.query, request.operationName, new KnownOperation(operationName ?? null, logName, metrics));
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
      const operation = knownIn(request.query, request.operationName)?.get(request.query!);
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

export function createGraphQLServer(log: Logger, config: Config, limiter: RequestRateLimiter, metrics?: GraphQLMetrics): ApolloServer<GraphQLContext> {
  return new ApolloServer<GraphQLContext>({
    typeDefs: readFileSync(SCHEMA_PATH, 'utf8'),
    resolvers,
    // Cache-control hints are of no use to an auth API, and its per-field hook costs on every
    // request.
    plugins: [
      ApolloServerPluginLandingPageDisabled(),
      ApolloServerPluginCacheControlDisabled(),
      requestPlugin(limiter, config.graphqlLimits.maxMutationFields, metrics),
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
