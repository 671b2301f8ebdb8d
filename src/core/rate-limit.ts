/**
 * Per-client rate limits on the work an anonymous caller can make us do (login starts, code
 * exchanges, refreshes, verifies, back-channel logout): RATE_LIMIT_PER_IP_PER_MINUTE points per
 * client address per minute, counted by rate-limiter-flexible. Counters live in memory, or in
 * Redis when REDIS_URL is set so that every instance counts the same client together; when
 * Redis cannot answer, an in-memory limiter of the same size stands in (never "unlimited").
 */
import { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Logger } from '../log.ts';

export type RateDecision = { allowed: true } | { allowed: false; retryAfterSeconds: number };

export interface RateLimiterOptions {
  /** Points per client per minute; 0 turns limiting off. */
  perMinute: number;
  redisUrl: string | undefined;
}

const WINDOW_SECONDS = 60;
const KEY_PREFIX = 'sat:rl';

export class RequestRateLimiter {
  private constructor(
    private readonly limiter: RateLimiterAbstract | undefined,
    private readonly redis: Redis | undefined,
  ) {}

  static create(options: RateLimiterOptions, log: Logger): RequestRateLimiter {
    if (options.perMinute === 0) return new RequestRateLimiter(undefined, undefined);
    const memory = new RateLimiterMemory({ points: options.perMinute, duration: WINDOW_SECONDS, keyPrefix: KEY_PREFIX });
    if (!options.redisUrl) return new RequestRateLimiter(memory, undefined);
    // No offline queue: while Redis is away a command fails at once and the in-memory
    // insurance limiter answers, instead of requests waiting on a reconnect.
    const redis = new Redis(options.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: false });
    let down = false;
    redis.on('error', (e: Error) => {
      if (!down) log.warn('rate limiter: Redis unavailable, counting in memory', { errorMessage: e.message });
      down = true;
    });
    redis.on('ready', () => {
      if (down) log.info('rate limiter: Redis available again');
      down = false;
    });
    const limiter = new RateLimiterRedis({
      storeClient: redis,
      points: options.perMinute,
      duration: WINDOW_SECONDS,
      keyPrefix: KEY_PREFIX,
      insuranceLimiter: memory,
    });
    return new RequestRateLimiter(limiter, redis);
  }

  get enabled(): boolean {
    return this.limiter !== undefined;
  }

  /** Spends `points` of `client`'s allowance. */
  async consume(client: string, points = 1): Promise<RateDecision> {
    if (!this.limiter || points <= 0) return { allowed: true };
    try {
      await this.limiter.consume(client, points);
      return { allowed: true };
    } catch (e) {
      if (e instanceof RateLimiterRes) return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(e.msBeforeNext / 1000)) };
      throw e;
    }
  }

  async close(): Promise<void> {
    if (this.redis) await this.redis.quit().catch(() => this.redis?.disconnect());
  }
}
