/**
 * Request authentication: which token a request carries, and who it belongs to.
 *
 * Header precedence (Saleor's): `Authorization-Bearer: <token>` wins; otherwise
 * `Authorization: Bearer <token>` or `Authorization: JWT <token>` (prefix case-insensitive).
 * Tried in order: our own tokens; then each active plugin's `authenticateRequest` (provider
 * JWTs, opaque tokens). A token nobody vouches for leaves the request anonymous.
 *
 * The hot path does no I/O when nothing changed: answers are cached by a hash of the token
 * (never the token itself), until the token's expiry (our tokens: at most OUR_TOKEN_CACHE_MS,
 * so changes made by another process are seen soon); concurrent requests with the same new
 * token share one validation.
 *
 * Two bounded LRUs, so junk can never evict a validated token: `accepted` (principals,
 * `maxEntries`) and `refused` (`maxRefusals`). A refusal is remembered REFUSAL_CACHE_MS so junk
 * tokens cannot make us hammer a provider, but no longer than the plugin's `retryAt` when it
 * says the verdict may change then (an unknown signing key whose JWKS may be refetched).
 * Nothing is remembered when the token could not be checked: a plugin's error `code`
 * PROVIDER_UNAVAILABLE or VALIDATION_RATE_LIMITED (classified by code: plugins share no
 * classes with us).
 *
 * One of our access tokens that is genuine but expired gets the verdict EXPIRED rather than
 * "anonymous": Saleor answers it with an `ExpiredSignatureError`, and the Saleor Dashboard
 * refreshes its tokens when it sees one.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Prisma } from '../db/database.ts';
import type { Principal } from '../accounts/principal.ts';
import { principalFromAccessClaims } from './our-tokens.ts';
import { CORE_TOKEN_OWNER, type TokenService, type AccessTokenClaims } from '../tokens/jwt.ts';
import type { Keyring } from '../tokens/keyring.ts';
import type { RequestInfo } from '../core/request.ts';
import { fingerprint } from '../log.ts';
import { hashToken } from '../crypto/secret-box.ts';
import { TtlLru } from '../cache/ttl-lru.ts';
import type { Metrics } from '../metrics/metrics.ts';

const OUR_TOKEN_CACHE_MS = 30_000;
const REFUSAL_CACHE_MS = 15_000;
/** Plugin error codes meaning "not checked now" (not the token's fault): no refusal is remembered. */
const NOT_CHECKED: ReadonlyMap<unknown, string> = new Map([
  ['PROVIDER_UNAVAILABLE', 'provider unavailable'],
  ['VALIDATION_RATE_LIMITED', 'rate-limited'],
]);

/**
 * Something that may vouch for a bearer token that is not ours (a plugin instance: an OIDC
 * connection accepting its provider's access tokens). Null: not its token. Throws for a refused
 * token; an error whose `code` is in NOT_CHECKED means it could not be checked now.
 */
export interface BearerVoucher {
  readonly id: string;
  authenticateRequest?(token: string, req: RequestInfo): Promise<{ principal: Principal; expiresAt: number } | null>;
}

/** Where the vouchers come from (the plugin manager implements this). */
export interface BearerVouchers {
  /** The active voucher with this id (our tokens minted by a plugin die with it), or null. */
  active(id: string): Promise<unknown>;
  activeInstances(): Promise<readonly BearerVoucher[]>;
}

export function tokenFromHeaders(headers: IncomingHttpHeaders): string | undefined {
  const direct = headers['authorization-bearer'];
  const directValue = Array.isArray(direct) ? direct[0] : direct;
  if (directValue && directValue.trim()) return directValue.trim();
  const auth = headers['authorization'];
  if (!auth) return undefined;
  // /^\s*(bearer|jwt)\s+(\S+)\s*$/i, without running a regular expression over the whole
  // header (a token is a kilobyte): trim() drops exactly what \s matches.
  const value = auth.trim();
  const schemeLength = value.slice(0, 6).toLowerCase() === 'bearer' ? 6 : value.slice(0, 3).toLowerCase() === 'jwt' ? 3 : 0;
  if (schemeLength === 0 || !WHITESPACE.test(value.charAt(schemeLength))) return undefined;
  const token = value.slice(schemeLength).trimStart();
  return WHITESPACE.test(token) ? undefined : token;
}
const WHITESPACE = /\s/;

/** Our access token, genuine (signature, issuer, type) but past its `exp`. */
export const EXPIRED = 'expired' as const;
/** What a token stands for: a principal, nobody (refused or unrecognised), or EXPIRED. */
export type Verdict = Principal | null | typeof EXPIRED;

/** A validated principal. `kid`: our signing key that vouched for it; `sid`: our session it belongs to. */
interface Accepted {
  principal: Principal;
  kid?: string;
  sid?: string;
}

/** What a validation concluded: a principal, a refusal (null), or nothing to remember. */
interface Outcome {
  principal: Principal | null;
  /** With a null principal: the refusal is an expired token of ours. */
  expired?: boolean;
  kid?: string;
  sid?: string;
  /** Until when the outcome may be cached (ms since epoch); in the past: not cached. */
  expiresAt: number;
}

export class Authenticator {
  private readonly accepted: TtlLru<Accepted>;
  private readonly refused: TtlLru<'refused' | typeof EXPIRED>;
  /** Validations in flight, by token hash: concurrent requests with one new token share one. */
  private readonly inflight = new Map<string, Promise<Verdict>>();
  /** Validations that reached past the cache (for tests and the benchmark). */
  misses = 0;
  /**
   * Bumped by every forget: a validation that started before a forget may have read what the
   * forget was about (a session just ended), so its answer is not cached.
   */
  private generation = 0;

  constructor(
    private readonly prisma: Prisma,
    private readonly tokens: TokenService,
    private readonly keyring: Keyring,
    private readonly plugins: BearerVouchers,
    maxEntries: number,
    maxRefusals: number = maxEntries,
    private readonly metrics?: Pick<Metrics, 'tokenCache'>,
  ) {
    this.accepted = new TtlLru<Accepted>(Math.max(1, maxEntries));
    this.refused = new TtlLru<'refused' | typeof EXPIRED>(Math.max(1, maxRefusals));
  }

  /**
   * The cached answer for `token`, without any I/O; undefined when it must be validated.
   * `key`: hashToken(token), when the caller has it already (http/bearer.ts).
   */
  cached(token: string, key: string = hashToken(token)): Verdict | undefined {
    return this.lookup(key);
  }

  private lookup(key: string): Verdict | undefined {
    const hit = this.accepted.get(key);
    if (hit) {
      // A retired key whose verification window closed stops vouching at once.
      if (hit.kid === undefined || this.keyring.canVerify(hit.kid)) {
        this.metrics?.tokenCache(hit.kid !== undefined ? 'ours' : 'provider', true);
        return hit.principal;
      }
      this.accepted.delete(key);
      return undefined;
    }
    const refusal = this.refused.get(key);
    if (!refusal) return undefined;
    this.metrics?.tokenCache('unrecognised', true);
    return refusal === EXPIRED ? EXPIRED : null;
  }

  async authenticate(token: string, req: RequestInfo, key: string = hashToken(token)): Promise<Verdict> {
    // A hit answers without waiting; only a miss goes through the (coalescing) validation.
    const hit = this.lookup(key);
    if (hit !== undefined) return hit;
    let pending = this.inflight.get(key);
    if (!pending) {
      const started = this.generation;
      pending = this.validate(token, req)
        .then((outcome) => {
          this.metrics?.tokenCache(outcome.kid !== undefined ? 'ours' : outcome.principal ? 'provider' : 'unrecognised', false);
          if (started === this.generation) this.remember(key, outcome);
          return outcome.expired ? EXPIRED : outcome.principal;
        })
        .finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return pending;
  }

  private remember(key: string, outcome: Outcome): void {
    if (outcome.principal) {
      const { principal, kid, sid } = outcome;
      this.accepted.set(key, { principal, ...(kid !== undefined ? { kid } : {}), ...(sid !== undefined ? { sid } : {}) }, outcome.expiresAt);
    }
    else this.refused.set(key, outcome.expired ? EXPIRED : 'refused', outcome.expiresAt);
  }

  /**
   * The user behind verified claims of one of our access tokens: a plugin-minted token dies
   * with its plugin (deleted or deactivated connection), then the user checks of
   * principalFromAccessClaims. Null when it no longer speaks for anyone.
   */
  async principalForClaims(claims: AccessTokenClaims): Promise<Extract<Principal, { kind: 'user' }> | null> {
    if (claims.owner !== CORE_TOKEN_OWNER && !(await this.plugins.active(claims.owner))) return null;
    return principalFromAccessClaims(this.prisma, claims);
  }

  /** Forget cached principals of a user (after tokensDeactivateAll, deactivation, ...). */
  forgetUser(userId: number, options: { keepValidationsInFlight?: boolean } = {}): void {
    // A change made by a validation in flight (a provider token's claims updating the user):
    // that validation read the new state; its answer may be cached.
    if (!options.keepValidationsInFlight) this.generation++;
    this.accepted.deleteWhere((c) => c.principal.kind === 'user' && c.principal.user.id === userId);
  }

  /** Forget cached principals of tokens minted for these sessions (they ended). */
  forgetSessions(sessionIds: readonly string[]): void {
    const ended = new Set(sessionIds);
    this.generation++;
    this.accepted.deleteWhere((c) => c.sid !== undefined && ended.has(c.sid));
  }

  /** Forget everything (configuration changed). */
  clear(): void {
    this.generation++;
    this.accepted.deleteWhere(() => true);
    this.refused.deleteWhere(() => true);
  }

  private async validate(token: string, req: RequestInfo): Promise<Outcome> {
    this.misses++;
    const now = Date.now();
    const refused: Outcome = { principal: null, expiresAt: now + REFUSAL_CACHE_MS };
    const result = await this.tokens.verify(token, 'access');
    if (result.ok) {
      const claims = result.claims as AccessTokenClaims;
      const principal = await this.principalForClaims(claims);
      if (!principal) return refused;
      return { principal, kid: result.kid, ...(claims.sid ? { sid: claims.sid } : {}), expiresAt: Math.min(claims.exp * 1000, now + OUR_TOKEN_CACHE_MS) };
    }
    if (result.ours) {
      req.log.info('bearer token refused', { reason: result.code, token: fingerprint(token) });
      return result.code === 'JWT_SIGNATURE_EXPIRED' ? { ...refused, expired: true } : refused;
    }
    // A JWT goes only to the connection of its issuer; an opaque token to every connection
    // that accepts opaque tokens, in turn, until one vouches for it.
    let unchecked = false;
    for (const plugin of await this.plugins.activeInstances()) {
      if (!plugin.authenticateRequest) continue;
      try {
        const answer = await plugin.authenticateRequest(token, req);
        if (answer) return { principal: answer.principal, expiresAt: answer.expiresAt };
      } catch (e) {
        const err = e as { code?: unknown; message?: unknown; retryAt?: unknown };
        const notChecked = NOT_CHECKED.get(err.code);
        if (notChecked) {
          unchecked = true;
          const fields = { pluginId: plugin.id, token: fingerprint(token), reason: notChecked };
          if (err.code === 'PROVIDER_UNAVAILABLE') req.log.warn('bearer token not validated: provider unavailable', { ...fields, errorMessage: String(err.message) });
          else req.log.info('bearer token not validated: rate-limited', fields);
        } else {
          req.log.info('bearer token refused', { pluginId: plugin.id, token: fingerprint(token), reason: String(err.message) });
          // The verdict may change at retryAt (e.g. keys refetchable): remember it no longer.
          if (typeof err.retryAt === 'number') refused.expiresAt = Math.min(refused.expiresAt, err.retryAt);
        }
      }
    }
    // Not the token's fault when a provider could not be asked: remember no refusal then.
    if (unchecked) return { principal: null, expiresAt: 0 };
    req.log.info('bearer token not recognised', { token: fingerprint(token) });
    return refused;
  }
}
