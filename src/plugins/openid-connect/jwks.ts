/**
 * The provider's signing keys, fetched through the guarded fetch and cached.
 *
 * Rules:
 * - Every fetch counts, failed or not: the JWKS endpoint is asked again on behalf of bearer
 *   tokens (or because the set is old) at most once per `cooldownMs` after the last fetch
 *   ended, and concurrent callers share the one fetch in flight. A failing endpoint is
 *   therefore asked once per cooldown under a burst; its failure is answered meanwhile.
 * - A failed fetch keeps the previous set (a stale set beats none while the provider is down).
 * - Two key resolvers for jose, by how far the token's sender is trusted:
 *   - {@link JwksCache.getKey}: tokens anyone can send (bearer tokens, back-channel logout
 *     tokens). An unknown kid refetches only when the cooldown allows; otherwise, or when the
 *     refetched set still lacks it, {@link UnknownSigningKeyError} says when the next refetch
 *     is allowed (`retryAt`): a refusal must not be remembered past that.
 *   - {@link JwksCache.getKeyForTrustedToken}: the id_token of a token-endpoint response (the
 *     direct, client-authenticated channel, OpenID Connect Core 3.1.3.7). An unknown kid always
 *     gets one refetch, shared with a fetch already in flight, whatever the cooldown says: junk
 *     bearer tokens can never keep a login from seeing the provider's rotated key (OpenID
 *     Connect Core 10.1.1: a new kid means "fetch the keys again").
 */
import { createLocalJWKSet, errors as joseErrors, type CryptoKey, type FlattenedJWSInput, type JSONWebKeySet, type JWSHeaderParameters, type LocalJWKSet } from 'jose';

/** Asymmetric algorithms only: never `none`, never HS* (a JWKS holds public keys). */
export const ALLOWED_JWS_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

/** The key set could not be had (network, HTTP error, not a JWKS). */
export class JwksError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'JwksError';
  }
}

/**
 * No key of the provider's current set matches the token (jose's ERR_JWKS_NO_MATCHING_KEY),
 * and the set may be refetched at `retryAt`: a verdict that may change then.
 */
export class UnknownSigningKeyError extends joseErrors.JWKSNoMatchingKey {
  constructor(
    /** When a refetch is next allowed (ms since epoch). */
    readonly retryAt: number,
  ) {
    super('no key of the provider matches the token\'s kid');
    this.name = 'UnknownSigningKeyError';
  }
}

export interface JwksCacheOptions {
  /** Minimum time between the end of one fetch and the next fetch, except for trusted tokens. */
  cooldownMs: number;
  /** The cached set is refreshed when older than this. */
  maxAgeMs?: number;
}

const DEFAULT_MAX_AGE_MS = 10 * 60_000;

export class JwksCache {
  private keys: LocalJWKSet | undefined;
  /** End of the last successful fetch. */
  private loadedAt = 0;
  /** End of the last fetch, successful or not (the cooldown runs from here). */
  private attemptedAt = 0;
  /** Why the last fetch failed (cleared by a success); answered while the cooldown runs. */
  private failure: JwksError | undefined;
  private inflight: Promise<void> | undefined;
  /** Number of fetches made (for tests and metrics). */
  fetches = 0;

  constructor(
    private readonly url: string,
    private readonly fetchImpl: typeof fetch,
    private readonly options: JwksCacheOptions,
  ) {}

  /** When a fetch is next allowed for untrusted tokens. */
  private get nextFetchAt(): number {
    return this.attemptedAt === 0 ? 0 : this.attemptedAt + this.options.cooldownMs;
  }

  /** One fetch, shared by every concurrent caller. */
  private load(): Promise<void> {
    this.inflight ??= this.fetchSet().finally(() => {
      this.attemptedAt = Date.now();
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async fetchSet(): Promise<void> {
    this.fetches++;
    try {
      const res = await this.fetchImpl(this.url, { headers: { accept: 'application/json, application/jwk-set+json' } });
      if (!res.ok) {
        await res.body?.cancel().catch(() => {});
        throw new JwksError(`JWKS endpoint answered HTTP ${res.status}`);
      }
      const body = (await res.json()) as JSONWebKeySet;
      if (!body || !Array.isArray(body.keys)) throw new JwksError('JWKS response has no "keys" array');
      this.keys = createLocalJWKSet(body);
      this.loadedAt = Date.now();
      this.failure = undefined;
    } catch (e) {
      this.failure = e instanceof JwksError ? e : new JwksError(`cannot fetch the provider's JWKS: ${(e as Error).message}`, { cause: e });
      throw this.failure;
    }
  }

  /**
   * The cached set; fetched first when there is none or it is older than maxAge, and a fetch
   * is in flight or allowed (`trusted`: allowed whenever there is no set at all).
   */
  private async current(trusted: boolean): Promise<LocalJWKSet> {
    const now = Date.now();
    if (!this.keys || now - this.loadedAt > (this.options.maxAgeMs ?? DEFAULT_MAX_AGE_MS)) {
      if (this.inflight || now >= this.nextFetchAt || (trusted && !this.keys)) {
        try {
          await this.load();
        } catch (e) {
          if (!this.keys) throw e;
        }
      }
    }
    if (!this.keys) throw this.failure ?? new JwksError('the provider\'s JWKS has not been fetched');
    return this.keys;
  }

  /** The matching key, or undefined when no key of `keys` has the token's kid. */
  private static async match(keys: LocalJWKSet, header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey | undefined> {
    try {
      return await keys(header, token);
    } catch (e) {
      if (e instanceof joseErrors.JWKSNoMatchingKey) return undefined;
      throw e;
    }
  }

  /** A jose key resolver (JWTVerifyGetKey) for tokens anyone can send. */
  getKey = async (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> => {
    const seen = this.fetches;
    const found = await JwksCache.match(await this.current(false), header, token);
    if (found) return found;
    if (this.fetches === seen) {
      // Nothing fetched since we looked: join the fetch in flight, or start one if allowed.
      if (!this.inflight && Date.now() < this.nextFetchAt) throw new UnknownSigningKeyError(this.nextFetchAt);
      await this.load();
    } else if (this.inflight) await this.inflight;
    return this.matchOrRefuse(header, token);
  };

  /** A jose key resolver for an id_token received from the token endpoint. */
  getKeyForTrustedToken = async (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> => {
    const seen = this.fetches;
    const found = await JwksCache.match(await this.current(true), header, token);
    if (found) return found;
    if (this.fetches === seen) {
      // A fetch in flight started before we looked, so maybe before the provider rotated its
      // key: let it end, then fetch (or join a fetch started since).
      await this.inflight?.catch(() => {});
      await this.load();
    } else if (this.inflight) await this.inflight;
    return this.matchOrRefuse(header, token);
  };

  private async matchOrRefuse(header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> {
    const key = this.keys && (await JwksCache.match(this.keys, header, token));
    if (key) return key;
    throw new UnknownSigningKeyError(this.nextFetchAt);
  }
}
