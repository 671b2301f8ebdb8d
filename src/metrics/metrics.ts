/**
 * Prometheus metrics (prom-client). One Metrics object per server, with a Registry of its own:
 * never prom-client's global default registry, since tests run several servers in one process.
 *
 * Every label is bounded, so a client cannot grow the series count:
 * - routes, methods, outcomes, provider endpoints, revocation reasons and token kinds come from
 *   fixed vocabularies (anything else is counted as `other`);
 * - the open-ended ones (GraphQL operation names, connection ids, invalidation kinds) are
 *   sanitised, truncated, and capped at a number of distinct values, after which `(other)` is
 *   counted.
 * A label never carries a token, a secret, a user, an address or text a provider wrote.
 *
 * Modules receive it as an optional dependency (`metrics?: …`, usually one of the narrow Pick
 * types below): without it they record nothing and work the same.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { AppError } from '../core/errors.ts';
import { FieldError } from '../errors.ts';
import type { OutboundOutcome } from '../net/guarded-fetch.ts';

export type { OutboundOutcome };

const PREFIX = 'saleor_auth_';
const OTHER = 'other';
/** Stand-ins for operation names that are not names (parentheses: no GraphQL name has them). */
export const OPERATION_ANONYMOUS = '(anonymous)';
export const OPERATION_UNPARSED = '(invalid)';
/** What an open-ended label counts once its cap of distinct values is reached. */
export const CAPPED = '(other)';

export const HTTP_ROUTES = ['/graphql/', '/healthz', '/readyz', '/.well-known/jwks.json', '/oidc/backchannel-logout', '/oidc/jwks', '/metrics', OTHER] as const;
export type HttpRoute = (typeof HTTP_ROUTES)[number];
const HTTP_ROUTE_SET: ReadonlySet<string> = new Set(HTTP_ROUTES);
const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** `success`: answered without a top-level error; `invalid`: not parsed or not valid. */
export type GraphQLOutcome = 'success' | 'error' | 'invalid' | 'rate_limited';
const GRAPHQL_OUTCOMES: ReadonlySet<string> = new Set<GraphQLOutcome>(['success', 'error', 'invalid', 'rate_limited']);

/** How a login, refresh or logout ended (failureOutcome() maps an error onto one). */
export const AUTH_OUTCOMES = [
  'success', 'invalid_request', 'invalid_state', 'invalid_token', 'disabled', 'session_ended', 'identity_refused',
  'provider_unavailable', 'provider_refused', 'provider_client_rejected', 'provider_token_invalid', 'error',
] as const;
export type AuthOutcome = (typeof AUTH_OUTCOMES)[number];
/** Logout only: nothing to end (no token, not ours, or already ended); a replayed logout token. */
export type LogoutOutcome = AuthOutcome | 'no_session' | 'replayed';
/** `user`: externalLogout; `backchannel`: a provider's logout token (OIDC Back-Channel Logout). */
export type LogoutChannel = 'user' | 'backchannel';
const OUTCOME_SET: ReadonlySet<string> = new Set<LogoutOutcome>([...AUTH_OUTCOMES, 'no_session', 'replayed']);

/** Revocation reasons as labels (the stored reason, lower-cased, non-alphanumerics as `_`). */
export const REVOCATION_REASONS = [
  'logout', 'backchannel_logout', 'tokens_deactivated', 'user_deactivated', 'user_deleted', 'connection_reconfigured',
  'connection_deleted', 'refresh_token_reuse', 'owner_mismatch', 'provider_changed', 'user_inactive', 'grant_ended',
  'no_provider_refresh_token', 'identity_changed', 'identity_refused', OTHER,
] as const;
export type RevocationReason = (typeof REVOCATION_REASONS)[number];
const REVOCATION_REASON_SET: ReadonlySet<string> = new Set(REVOCATION_REASONS);

export type ProviderEndpoint = 'discovery' | 'jwks' | 'token' | 'userinfo' | 'introspection' | 'revocation' | 'other';
const PROVIDER_ENDPOINTS: ReadonlySet<string> = new Set<ProviderEndpoint>(['discovery', 'jwks', 'token', 'userinfo', 'introspection', 'revocation', 'other']);
const OUTBOUND_OUTCOMES: ReadonlySet<string> = new Set<OutboundOutcome>(['ok', 'http_4xx', 'http_5xx', 'timeout', 'network_error', 'blocked', 'invalid_response']);

/** Whose token a bearer-cache lookup was about: ours, a provider's, or nobody's (refused). */
export type TokenKind = 'ours' | 'provider' | 'unrecognised';
const TOKEN_KINDS: ReadonlySet<string> = new Set<TokenKind>(['ours', 'provider', 'unrecognised']);

/** Where a request was refused for its client's rate limit. */
export type RateLimitScope = 'graphql' | 'backchannel_logout';
const RATE_LIMIT_SCOPES: ReadonlySet<string> = new Set<RateLimitScope>(['graphql', 'backchannel_logout']);

export type InvalidationDirection = 'sent' | 'received';

const oneOf = (value: string, allowed: ReadonlySet<string>): string => (allowed.has(value) ? value : OTHER);

/** An open-ended label: sanitised, truncated, and capped at `max` distinct values (then `(other)`). */
class BoundedLabel {
  private readonly seen = new Set<string>();
  constructor(
    private readonly max: number,
    private readonly maxLength: number,
  ) {}

  /** Answers already given, by raw value (an answer never changes: `seen` only grows); bounded. */
  private readonly answers = new Map<string, string>();

  of(raw: string): string {
    const known = this.answers.get(raw);
    if (known !== undefined) return known;
    const value = this.label(raw);
    if (raw.length <= 256 && this.answers.size < this.max * 4) this.answers.set(raw, value);
    return value;
  }

  private label(raw: string): string {
    const value = raw.replace(/[^\w.:/-]/g, '_').slice(0, this.maxLength);
    if (value === '') return CAPPED;
    if (this.seen.has(value)) return value;
    if (this.seen.size >= this.max) return CAPPED;
    this.seen.add(value);
    return value;
  }
}

/**
 * The outcome of a failed login/refresh/logout, by error class and code (never by message):
 * a FieldError is the client's input; AppError codes map onto their family.
 */
export function failureOutcome(e: unknown): AuthOutcome {
  if (e instanceof FieldError) return 'invalid_request';
  if (!(e instanceof AppError)) return 'error';
  switch (e.code) {
    case 'session_ended':
    case 'grant_ended':
      return 'session_ended';
    case 'provider_unavailable':
    case 'provider_refused':
    case 'provider_client_rejected':
    case 'provider_token_invalid':
      return e.code;
    case 'logout_token_invalid':
      return 'invalid_token';
    default:
      return e.code.startsWith('identity_') ? 'identity_refused' : 'error';
  }
}

/** A revocation reason as stored on the session ('refresh token reuse') → its label. */
export function revocationReason(reason: string): RevocationReason {
  const slug = reason.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_|_$/g, '');
  return (REVOCATION_REASON_SET.has(slug) ? slug : OTHER) as RevocationReason;
}

/**
 * A counter's label set and the increments not handed to prom-client yet. The hot paths (every
 * request) only add to `n`; the counter takes the sum when it is read (its `collect`), so a
 * request costs an addition, not prom-client's label hashing and checks.
 */
interface PendingCount<L> {
  labels: L;
  n: number;
}

/** The label sets of one HTTP request's two series. */
interface HttpSeries {
  count: PendingCount<{ route: string; method: string; status: string }>;
  duration: { route: string; method: string };
  /** Kept in httpSeriesByKey (its count is flushed from there); else counted at once. */
  cached: boolean;
}

/** Hands the pending increments of `entries` to `counter`. */
function flushPending<L extends string>(counter: Counter<L>, entries: Iterable<PendingCount<Partial<Record<L, string>>>>): void {
  for (const e of entries) {
    if (e.n === 0) continue;
    const n = e.n;
    e.n = 0;
    counter.inc(e.labels, n);
  }
}
/** Label sets kept per metric, at most (they are few; this only guards the cache). */
const MAX_CACHED_SERIES = 2048;

const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const PROVIDER_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface MetricsOptions {
  /** prom-client's process and Node.js metrics (CPU, memory, event loop, GC). Default true. */
  defaultMetrics?: boolean;
  /** Distinct GraphQL operation names before `(other)`. Default 200. */
  maxOperationNames?: number;
  /** Distinct connection ids before `(other)`. Default 50. */
  maxConnections?: number;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly operationNames: BoundedLabel;
  private readonly connections: BoundedLabel;
  private readonly invalidationKinds = new BoundedLabel(50, 64);

  private readonly httpRequests: Counter<'route' | 'method' | 'status'>;
  private readonly httpDuration: Histogram<'route' | 'method'>;
  private readonly graphqlOperations: Counter<'operation' | 'outcome'>;
  private readonly logins: Counter<'outcome'>;
  private readonly refreshes: Counter<'outcome'>;
  private readonly logouts: Counter<'channel' | 'outcome'>;
  private readonly revocations: Counter<'reason'>;
  private readonly providerCalls: Counter<'connection' | 'endpoint' | 'outcome'>;
  private readonly providerDuration: Histogram<'connection' | 'endpoint'>;
  private readonly tokenCacheLookups: Counter<'kind' | 'result'>;
  private readonly rateLimitRejections: Counter<'scope'>;
  private readonly invalidations: Counter<'direction' | 'kind'>;
  private readonly httpSeriesByKey = new Map<string, HttpSeries>();
  private readonly operationCounts = new Map<string, PendingCount<{ operation: string; outcome: string }>>();
  private readonly tokenCacheHits = new Map([...TOKEN_KINDS, OTHER].map((k) => [k, { labels: { kind: k, result: 'hit' }, n: 0 }]));
  private readonly tokenCacheMisses = new Map([...TOKEN_KINDS, OTHER].map((k) => [k, { labels: { kind: k, result: 'miss' }, n: 0 }]));
  private poolInUse: (() => number) | undefined;
  private poolWaiting: (() => number) | undefined;

  constructor(options: MetricsOptions = {}) {
    this.operationNames = new BoundedLabel(options.maxOperationNames ?? 200, 100);
    this.connections = new BoundedLabel(options.maxConnections ?? 50, 100);
    const registers = [this.registry];
    this.httpRequests = new Counter({
      name: `${PREFIX}http_requests_total`,
      help: 'HTTP requests answered, by route, method and status.',
      labelNames: ['route', 'method', 'status'],
      registers,
      collect: () => flushPending(this.httpRequests, [...this.httpSeriesByKey.values()].map((x) => x.count)),
    });
    this.httpDuration = new Histogram({
      name: `${PREFIX}http_request_duration_seconds`,
      help: 'Time to answer an HTTP request, by route and method.',
      labelNames: ['route', 'method'],
      buckets: HTTP_BUCKETS,
      registers,
    });
    this.graphqlOperations = new Counter({
      name: `${PREFIX}graphql_operations_total`,
      help: 'GraphQL operations, by operation name and outcome (success, error, invalid, rate_limited).',
      labelNames: ['operation', 'outcome'],
      registers,
      collect: () => flushPending(this.graphqlOperations, this.operationCounts.values()),
    });
    this.logins = new Counter({ name: `${PREFIX}logins_total`, help: 'Logins (code exchanges), by outcome.', labelNames: ['outcome'], registers });
    this.refreshes = new Counter({ name: `${PREFIX}refreshes_total`, help: 'Session refreshes, by outcome.', labelNames: ['outcome'], registers });
    this.logouts = new Counter({
      name: `${PREFIX}logouts_total`,
      help: 'Logouts, by channel (user: externalLogout, backchannel: provider logout token) and outcome.',
      labelNames: ['channel', 'outcome'],
      registers,
    });
    this.revocations = new Counter({ name: `${PREFIX}sessions_revoked_total`, help: 'Sessions revoked, by reason.', labelNames: ['reason'], registers });
    this.providerCalls = new Counter({
      name: `${PREFIX}provider_calls_total`,
      help: 'Outbound calls to identity providers, by connection, endpoint and outcome.',
      labelNames: ['connection', 'endpoint', 'outcome'],
      registers,
    });
    this.providerDuration = new Histogram({
      name: `${PREFIX}provider_call_duration_seconds`,
      help: 'Duration of outbound calls to identity providers (body included), by connection and endpoint.',
      labelNames: ['connection', 'endpoint'],
      buckets: PROVIDER_BUCKETS,
      registers,
    });
    this.tokenCacheLookups = new Counter({
      name: `${PREFIX}token_cache_lookups_total`,
      help: 'Bearer-token cache lookups, by token kind and result (hit, miss).',
      labelNames: ['kind', 'result'],
      registers,
      collect: () => {
        flushPending(this.tokenCacheLookups, this.tokenCacheHits.values());
        flushPending(this.tokenCacheLookups, this.tokenCacheMisses.values());
      },
    });
    this.rateLimitRejections = new Counter({
      name: `${PREFIX}rate_limit_rejections_total`,
      help: 'Requests refused for their client rate limit (HTTP 429), by scope.',
      labelNames: ['scope'],
      registers,
    });
    this.invalidations = new Counter({
      name: `${PREFIX}invalidation_messages_total`,
      help: 'Cache invalidation messages, by direction (sent, received) and kind.',
      labelNames: ['direction', 'kind'],
      registers,
    });
    this.poolGauge(`${PREFIX}db_pool_connections_in_use`, 'Database pool connections checked out.', () => this.poolInUse);
    this.poolGauge(`${PREFIX}db_pool_waiting_requests`, 'Queries waiting for a database pool connection.', () => this.poolWaiting);
    // Known series start at zero, so a rate() exists before the first event.
    for (const scope of RATE_LIMIT_SCOPES) this.rateLimitRejections.labels(scope).inc(0);
    this.logins.labels('success').inc(0);
    this.refreshes.labels('success').inc(0);
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** A gauge read at each scrape; a reader that throws must not fail the whole scrape. */
  private poolGauge(name: string, help: string, reader: () => (() => number) | undefined): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        let value: number | undefined;
        try {
          value = reader()?.();
        } catch {
          value = undefined;
        }
        if (value !== undefined && Number.isFinite(value)) this.set(value);
      },
    });
  }

  /** One answered HTTP request (route: see HTTP_ROUTES; routeLabel() in http.ts maps a path). */
  httpRequest(route: HttpRoute, method: string | undefined, status: number, seconds: number): void {
    const series = this.httpSeries(route, method, status);
    if (series.cached) series.count.n++;
    else this.httpRequests.inc(series.count.labels);
    if (Number.isFinite(seconds) && seconds >= 0) this.httpDuration.observe(series.duration, seconds);
  }

  /**
   * The label sets of an HTTP request's series, built once per (route, method, status): every
   * request would otherwise check and copy its labels anew (prom-client's labels() allocates).
   */
  private httpSeries(route: HttpRoute, method: string | undefined, status: number): HttpSeries {
    const key = `${route} ${method} ${status}`;
    let series = this.httpSeriesByKey.get(key);
    if (!series) {
      const r = oneOf(route, HTTP_ROUTE_SET);
      const m = method && HTTP_METHODS.has(method) ? method : OTHER;
      const s = Number.isInteger(status) && status >= 100 && status <= 599 ? String(status) : OTHER;
      // Bounded by what a key can be (routes and methods are few, statuses 100-599), and capped:
      // beyond the cap, counted at once.
      const cached = this.httpSeriesByKey.size < MAX_CACHED_SERIES;
      series = { count: { labels: { route: r, method: m, status: s }, n: 0 }, duration: { route: r, method: m }, cached };
      if (cached) this.httpSeriesByKey.set(key, series);
    }
    return series;
  }

  /**
   * One GraphQL operation. `name`: its operationName (undefined: not resolved, i.e. the
   * document did not parse or validate; null: an anonymous operation).
   */
  graphqlOperation(name: string | null | undefined, outcome: GraphQLOutcome): void {
    const label = name === undefined ? OPERATION_UNPARSED : name === null ? OPERATION_ANONYMOUS : this.operationNames.of(name);
    const o = oneOf(outcome, GRAPHQL_OUTCOMES);
    const key = `${o} ${label}`;
    const pending = this.operationCounts.get(key);
    if (pending) {
      pending.n++;
      return;
    }
    const labels = { operation: label, outcome: o };
    // At most (maxOperationNames + 3) names x 4 outcomes; beyond the cap, counted at once.
    if (this.operationCounts.size < MAX_CACHED_SERIES) this.operationCounts.set(key, { labels, n: 1 });
    else this.graphqlOperations.inc(labels);
  }

  login(outcome: AuthOutcome): void {
    this.logins.labels(oneOf(outcome, OUTCOME_SET)).inc();
  }

  refresh(outcome: AuthOutcome): void {
    this.refreshes.labels(oneOf(outcome, OUTCOME_SET)).inc();
  }

  logout(outcome: LogoutOutcome, channel: LogoutChannel = 'user'): void {
    this.logouts.labels(channel === 'backchannel' ? 'backchannel' : 'user', oneOf(outcome, OUTCOME_SET)).inc();
  }

  /** `count` sessions ended; `reason` as stored on the session, or a RevocationReason. */
  sessionsRevoked(reason: string, count = 1): void {
    if (count > 0) this.revocations.labels(revocationReason(reason)).inc(count);
  }

  /** One outbound call to a provider; `connection`: the plugin id. */
  providerCall(connection: string, endpoint: ProviderEndpoint, outcome: OutboundOutcome, seconds: number): void {
    const c = this.connections.of(connection);
    const e = oneOf(endpoint, PROVIDER_ENDPOINTS);
    this.providerCalls.labels(c, e, oneOf(outcome, OUTBOUND_OUTCOMES)).inc();
    if (Number.isFinite(seconds) && seconds >= 0) this.providerDuration.labels(c, e).observe(seconds);
  }

  tokenCache(kind: TokenKind, hit: boolean): void {
    (hit ? this.tokenCacheHits : this.tokenCacheMisses).get(oneOf(kind, TOKEN_KINDS))!.n++;
  }

  rateLimitRejected(scope: RateLimitScope): void {
    this.rateLimitRejections.labels(oneOf(scope, RATE_LIMIT_SCOPES)).inc();
  }

  /** One invalidation message; `kind`: the cache or event name (a short fixed word). */
  invalidation(direction: InvalidationDirection, kind: string): void {
    this.invalidations.labels(direction === 'sent' ? 'sent' : 'received', this.invalidationKinds.of(kind)).inc();
  }

  /**
   * Reads the database pool at each scrape: connections in use (e.g. pg's totalCount −
   * idleCount) and, optionally, queries waiting for one (waitingCount). Replaces earlier readers.
   */
  observeDatabasePool(inUse: () => number, waiting?: () => number): void {
    this.poolInUse = inUse;
    this.poolWaiting = waiting;
  }

  /** The exposition text (Prometheus text format 0.0.4) and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/** What each kind of module records (narrow dependencies, easy to fake in tests). */
export type GraphQLMetrics = Pick<Metrics, 'graphqlOperation' | 'rateLimitRejected'>;
export type SessionMetrics = Pick<Metrics, 'refresh' | 'sessionsRevoked'>;
export type ConnectionMetrics = Pick<Metrics, 'login' | 'refresh' | 'logout' | 'providerCall'>;
