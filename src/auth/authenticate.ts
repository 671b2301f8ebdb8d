/**
 * Request authentication: which token a request carries, and who it belongs to.
 *
 * Header precedence (Saleor's): `Authorization-Bearer: <token>` wins; otherwise
 * `Authorization: Bearer <token>` or `Authorization: JWT <token>` (prefix case-insensitive).
 * Tried in order: our own tokens; then each active plugin's `authenticateRequest` (provider
 * JWTs, opaque tokens). A token nobody vouches for leaves the request anonymous.
 *
 * The hot path does no I/O when nothing changed: answers are cached by a hash of the token
 * (never the token itself) in a bounded LRU, until the token's expiry (our tokens: at most
 * OUR_TOKEN_CACHE_MS, so changes made by another process are seen soon); refusals are cached
 * for REFUSAL_CACHE_MS so junk tokens cannot make us hammer a provider; concurrent requests
 * with the same new token share one validation.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Prisma } from '../db/database.ts';
import type { Principal } from '../accounts/principal.ts';
import { principalFromAccessClaims } from './our-tokens.ts';
import { CORE_TOKEN_OWNER, type TokenService, type AccessTokenClaims } from '../tokens/jwt.ts';
import type { Keyring } from '../tokens/keyring.ts';
import type { PluginManager } from '../plugins/manager.ts';
import type { RequestInfo } from '../plugins/contract.ts';
import { fingerprint } from '../log.ts';
import { hashToken } from '../crypto/secret-box.ts';
import { TtlLru } from '../cache/ttl-lru.ts';

const OUR_TOKEN_CACHE_MS = 30_000;
const REFUSAL_CACHE_MS = 15_000;

export function tokenFromHeaders(headers: IncomingHttpHeaders): string | undefined {
  const direct = headers['authorization-bearer'];
  const directValue = Array.isArray(direct) ? direct[0] : direct;
  if (directValue && directValue.trim()) return directValue.trim();
  const auth = headers['authorization'];
  if (!auth) return undefined;
  const match = /^\s*(bearer|jwt)\s+(\S+)\s*$/i.exec(auth);
  return match?.[2];
}

/** principal null: anonymous. `kid`: our signing key that vouched for it. */
interface Cached {
  principal: Principal | null;
  kid?: string;
}

export class Authenticator {
  private readonly cache: TtlLru<Cached>;
  /** Validations that reached past the cache (for tests and the benchmark). */
  misses = 0;

  constructor(
    private readonly prisma: Prisma,
    private readonly tokens: TokenService,
    private readonly keyring: Keyring,
    private readonly plugins: PluginManager<unknown>,
    maxEntries: number,
  ) {
    this.cache = new TtlLru<Cached>(Math.max(1, maxEntries));
  }

  /** The cached answer for `token`, without any I/O; undefined when it must be validated. */
  cached(token: string): Principal | null | undefined {
    const key = hashToken(token);
    const hit = this.cache.get(key);
    if (!hit) return undefined;
    // A retired key whose verification window closed stops vouching at once.
    if (hit.kid !== undefined && !this.keyring.canVerify(hit.kid)) {
      this.cache.delete(key);
      return undefined;
    }
    return hit.principal;
  }

  async authenticate(token: string, req: RequestInfo): Promise<Principal | null> {
    // A hit answers without waiting; only a miss goes through the (coalescing) load.
    const hit = this.cached(token);
    if (hit !== undefined) return hit;
    return (await this.cache.getOrLoad(hashToken(token), () => this.validate(token, req))).principal;
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
  forgetUser(userId: number): void {
    this.cache.deleteWhere((c) => c.principal?.kind === 'user' && c.principal.user.id === userId);
  }

  /** Forget everything (configuration changed). */
  clear(): void {
    this.cache.deleteWhere(() => true);
  }

  private async validate(token: string, req: RequestInfo): Promise<{ value: Cached; expiresAt: number }> {
    this.misses++;
    const now = Date.now();
    const refused = { value: { principal: null }, expiresAt: now + REFUSAL_CACHE_MS };
    const result = await this.tokens.verify(token, 'access');
    if (result.ok) {
      const claims = result.claims as AccessTokenClaims;
      const principal = await this.principalForClaims(claims);
      if (!principal) return refused;
      return { value: { principal, kid: result.kid }, expiresAt: Math.min(claims.exp * 1000, now + OUR_TOKEN_CACHE_MS) };
    }
    if (result.ours) {
      req.log.info('bearer token refused', { reason: result.code, token: fingerprint(token) });
      return refused;
    }
    // A JWT goes only to the connection of its issuer; an opaque token to every connection
    // that accepts opaque tokens, in turn, until one vouches for it.
    let unavailable = false;
    for (const plugin of await this.plugins.activeInstances()) {
      if (!plugin.authenticateRequest) continue;
      try {
        const answer = await plugin.authenticateRequest(token, req);
        if (answer) return { value: { principal: answer.principal }, expiresAt: answer.expiresAt };
      } catch (e) {
        if ((e as Error).name === 'ProviderUnavailableError') {
          unavailable = true;
          req.log.warn('bearer token not validated: provider unavailable', { pluginId: plugin.id, token: fingerprint(token), errorMessage: (e as Error).message });
        } else {
          req.log.info('bearer token refused', { pluginId: plugin.id, token: fingerprint(token), reason: (e as Error).message });
        }
      }
    }
    // Not the token's fault when a provider could not be asked: remember no refusal then.
    if (unavailable) return { value: { principal: null }, expiresAt: 0 };
    req.log.info('bearer token not recognised', { token: fingerprint(token) });
    return refused;
  }
}
