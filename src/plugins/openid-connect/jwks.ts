/**
 * The provider's signing keys, fetched through the guarded fetch and cached. A token whose
 * kid is not in the cached set triggers one refetch, at most once per `cooldownMs`, and
 * concurrent callers share that single fetch (so a burst of requests with a new kid, or of
 * junk tokens, costs the provider one request).
 */
import { createLocalJWKSet, errors as joseErrors, type CryptoKey, type FlattenedJWSInput, type JSONWebKeySet, type JWSHeaderParameters, type LocalJWKSet } from 'jose';

/** Asymmetric algorithms only: never `none`, never HS* (a JWKS holds public keys). */
export const ALLOWED_JWS_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

export class JwksError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'JwksError';
  }
}

export interface JwksCacheOptions {
  /** Minimum time between two refetches triggered by an unknown kid. */
  cooldownMs: number;
  /** The cached set is refreshed when older than this. */
  maxAgeMs?: number;
}

export class JwksCache {
  private keys: LocalJWKSet | undefined;
  private fetchedAt = 0;
  private inflight: Promise<void> | undefined;
  /** Number of fetches made (for tests and metrics). */
  fetches = 0;

  constructor(
    private readonly url: string,
    private readonly fetchImpl: typeof fetch,
    private readonly options: JwksCacheOptions,
  ) {}

  private load(): Promise<void> {
    this.inflight ??= (async () => {
      this.fetches++;
      try {
        const res = await this.fetchImpl(this.url, { headers: { accept: 'application/json, application/jwk-set+json' } });
        if (!res.ok) throw new JwksError(`JWKS endpoint answered HTTP ${res.status}`);
        const body = (await res.json()) as JSONWebKeySet;
        if (!body || !Array.isArray(body.keys)) throw new JwksError('JWKS response has no "keys" array');
        this.keys = createLocalJWKSet(body);
        this.fetchedAt = Date.now();
      } catch (e) {
        if (e instanceof JwksError) throw e;
        throw new JwksError(`cannot fetch the provider's JWKS: ${(e as Error).message}`, { cause: e });
      }
    })().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  /** A jose key resolver (JWTVerifyGetKey). */
  getKey = async (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> => {
    const maxAge = this.options.maxAgeMs ?? 10 * 60_000;
    if (!this.keys || Date.now() - this.fetchedAt > maxAge) {
      try {
        await this.load();
      } catch (e) {
        // A stale set still beats none while the provider is unreachable.
        if (!this.keys) throw e;
      }
    }
    try {
      return await this.keys!(header, token);
    } catch (e) {
      if (!(e instanceof joseErrors.JWKSNoMatchingKey)) throw e;
      if (Date.now() - this.fetchedAt < this.options.cooldownMs) throw e;
      await this.load();
      return this.keys!(header, token);
    }
  };
}
