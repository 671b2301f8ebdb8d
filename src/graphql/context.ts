/**
 * What every resolver gets: the application's services, the request, and the request's
 * principal (resolved lazily, once, only when a resolver asks).
 */
import { GraphQLError } from 'graphql';
import type { Config } from '../config.ts';
import type { Database } from '../db/database.ts';
import type { Logger } from '../log.ts';
import type { TokenService } from '../tokens/jwt.ts';
import type { Keyring } from '../tokens/keyring.ts';
import type { PluginManager } from '../plugins/manager.ts';
import type { RequestInfo } from '../plugins/contract.ts';
import { EXPIRED, type Authenticator, type Verdict } from '../auth/authenticate.ts';
import type { AuditLog } from '../accounts/audit.ts';
import type { Principal } from '../accounts/principal.ts';
import type { PermissionCode } from '../accounts/permissions.ts';
import type { SecretBox } from '../crypto/secret-box.ts';
import type { SessionService } from '../sessions/service.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { InvalidationBus } from '../core/invalidation.ts';
import type { ConnectionKeyStore } from '../plugins/openid-connect/client-keys.ts';

export interface AppServices {
  config: Config;
  db: Database;
  log: Logger;
  keyring: Keyring;
  tokens: TokenService;
  plugins: PluginManager<unknown>;
  authenticator: Authenticator;
  audit: AuditLog;
  box: SecretBox;
  sessions: SessionService;
  metrics: Metrics;
  /** Announces changes to every instance's caches (this one's included). */
  bus: InvalidationBus;
  /** OIDC connections' own key pairs (private_key_jwt), served at /oidc/jwks/<pluginId>. */
  connectionKeys: ConnectionKeyStore;
}

/** An operation that ran without our Apollo hooks: the HTTP layer reports its response. */
export interface AnsweredWithoutHooks {
  answered(status: number, body: string | undefined): void;
}

/** What the GraphQL layer learns of a request, for the HTTP layer (log line, metrics). */
export interface RequestMeta {
  operationName?: string;
  /** Set when the operation ran without our hooks (graphql/server.ts requestPlugin). */
  answered?: AnsweredWithoutHooks;
}

export interface GraphQLContext {
  app: AppServices;
  req: RequestInfo;
  /** The bearer token of the request, if any (never logged). */
  token: string | undefined;
  /**
   * The request's principal, or null (anonymous, or a token nobody vouches for). Rejects with
   * an `ExpiredSignatureError` when the token is one of ours that expired (as Saleor does when
   * a resolver needs the user), so that clients know to refresh.
   */
  principal(): Promise<Principal | null>;
  /**
   * The principal when it is known without waiting (anonymous, or a token answered from the
   * cache), else undefined. Lets hot resolvers stay synchronous. Throws like principal().
   */
  principalNow(): Principal | null | undefined;
  /** For the request log: the principal if known without validating (cache), never throwing. */
  principalSeen(): Principal | null | undefined;
  /**
   * The principal when known without waiting (as principalNow), but undefined rather than
   * throwing for an expired token of ours: what answers may be remembered by (answer-memo.ts).
   */
  principalSettled(): Principal | null | undefined;
  /**
   * Filled in once the operation is known, for the request log line. An object, because
   * Apollo hands resolvers a shallow copy of the context.
   */
  meta: RequestMeta;
}

/**
 * The context of one request. A class rather than an object of closures: nothing to allocate
 * per method per request, and Apollo's per-operation shallow copy has little to copy. What
 * changes during the request (the verdict, the operation name) lives in objects that the copy
 * shares with the original, so the HTTP layer's log line sees what the resolvers learnt.
 * (No #private fields: a shallow copy would not carry them.)
 */
class RequestContext implements GraphQLContext {
  readonly meta: RequestMeta = {};
  /** known: the verdict once known (null without a token); pending: the validation in flight. */
  private readonly auth: { known: Verdict | undefined; pending: Promise<Verdict> | undefined };

  constructor(
    readonly app: AppServices,
    readonly req: RequestInfo,
    readonly token: string | undefined,
    /** hashToken(token), when the HTTP layer had it already (http/bearer.ts). */
    private readonly tokenKey: string | undefined,
  ) {
    this.auth = { known: token ? undefined : null, pending: undefined };
  }

  private verdictNow(): Verdict | undefined {
    const auth = this.auth;
    if (auth.known !== undefined || !this.token) return auth.known;
    return (auth.known = this.app.authenticator.cached(this.token, this.tokenKey));
  }

  principalNow(): Principal | null | undefined {
    const now = this.verdictNow();
    return now === undefined ? undefined : principalOf(now);
  }

  principalSeen(): Principal | null | undefined {
    const now = this.verdictNow();
    return now === EXPIRED ? null : now;
  }

  principalSettled(): Principal | null | undefined {
    const now = this.verdictNow();
    return now === EXPIRED ? undefined : now;
  }

  principal(): Promise<Principal | null> {
    const now = this.verdictNow();
    if (now !== undefined) return now === EXPIRED ? Promise.reject(expiredSignature()) : Promise.resolve(now);
    const auth = this.auth;
    auth.pending ??= this.app.authenticator.authenticate(this.token!, this.req, this.tokenKey).then((v) => (auth.known = v));
    return auth.pending.then(principalOf);
  }
}

function principalOf(verdict: Verdict): Principal | null {
  if (verdict === EXPIRED) throw expiredSignature();
  return verdict;
}

/** `tokenKey`: hashToken(token) when the caller has it already (else computed when needed). */
export function createContext(app: AppServices, req: RequestInfo, token: string | undefined, tokenKey?: string): GraphQLContext {
  return new RequestContext(app, req, token, tokenKey);
}

/**
 * Saleor's answer to an expired access token in the request's header, where a resolver needs
 * the user: the Saleor Dashboard refreshes its tokens on `extensions.exception.code`
 * ExpiredSignatureError.
 */
export function expiredSignature(): GraphQLError {
  return new GraphQLError('Signature has expired', {
    extensions: { exception: { code: 'ExpiredSignatureError' }, code: 'ExpiredSignatureError' },
  });
}

/** Saleor's permission-denied error (a top-level GraphQL error; the field resolves to null). */
export function permissionDenied(permissions?: readonly PermissionCode[]): GraphQLError {
  const message = permissions?.length
    ? `You need one of the following permissions: ${permissions.join(', ')}`
    : 'You do not have permission to perform this action';
  return new GraphQLError(message, { extensions: { exception: { code: 'PermissionDenied' }, code: 'PermissionDenied' } });
}

/** Requires an authenticated principal holding at least one of `anyOf`. */
export async function requirePermission(ctx: GraphQLContext, anyOf: readonly PermissionCode[]): Promise<Principal> {
  const principal = await ctx.principal();
  if (!principal || !anyOf.some((p) => principal.permissions.includes(p))) throw permissionDenied(anyOf);
  return principal;
}

/** Requires an authenticated user (not an app). */
export async function requireUser(ctx: GraphQLContext): Promise<Extract<Principal, { kind: 'user' }>> {
  const principal = await ctx.principal();
  if (!principal || principal.kind !== 'user') throw permissionDenied();
  return principal;
}

/** Requires a staff user or an app (Saleor's AUTHENTICATED_STAFF_USER / AUTHENTICATED_APP). */
export async function requireStaffOrApp(ctx: GraphQLContext): Promise<Principal> {
  const principal = await ctx.principal();
  if (!principal || (principal.kind === 'user' && !principal.isStaff)) throw permissionDenied();
  return principal;
}
