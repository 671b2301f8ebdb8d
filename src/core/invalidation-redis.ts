/**
 * Invalidation transport over Redis pub/sub (REDIS_URL). A subscriber connection (ioredis
 * re-subscribes by itself after a reconnect, which is reported as a reset: messages published
 * meanwhile were lost) and a publishing connection. The channel name is derived from the
 * deployment's secret, so deployments sharing one Redis do not hear each other.
 */
import { Redis } from 'ioredis';
import type { Logger } from '../log.ts';
import type { InvalidationTransport } from './invalidation.ts';

const SEND_TIMEOUT_MS = 2000;
const SUBSCRIBE_WAIT_MS = 2000;

export class RedisPubSubTransport implements InvalidationTransport {
  readonly name = 'redis';
  private subscriber: Redis | undefined;
  private publisher: Redis | undefined;

  constructor(
    private readonly url: string,
    /** Channel name (deployment-scoped). */
    private readonly channel: string,
    private readonly log: Logger,
    /** How the subscriber names itself (CLIENT LIST), for operators. */
    private readonly connectionName = 'saleor-auth-invalidation',
  ) {}

  /**
   * Waits for the subscription (at most SUBSCRIBE_WAIT_MS): a Redis that is down at start (like
   * one that goes down later) is retried by ioredis, and its coming back is a reset, so the
   * server starts either way.
   */
  async start(deliver: (payload: string) => void, reset: () => void): Promise<void> {
    const subscriber = new Redis(this.url, { maxRetriesPerRequest: null, connectionName: this.connectionName });
    this.subscriber = subscriber;
    let down = false;
    let everReady = false;
    subscriber.on('error', (e: Error) => {
      if (!down) this.log.warn('invalidation subscriber: Redis unavailable', { channel: this.name, errorMessage: e.message });
      down = true;
    });
    subscriber.on('close', () => {
      if (everReady) down = true;
    });
    // ioredis re-subscribes on reconnect and emits 'ready' again.
    subscriber.on('ready', () => {
      const wasDown = down;
      down = false;
      everReady = true;
      if (wasDown) reset();
    });
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.channel) deliver(message);
    });
    // Queued until connected (maxRetriesPerRequest: null: never given up). Waited for, so that
    // nothing is cached before we hear changes; but at most SUBSCRIBE_WAIT_MS: a Redis that is
    // down must not hold the start (its coming back is a reset).
    const subscribed = subscriber.subscribe(this.channel).then(
      () => true,
      (e: unknown) => {
        this.log.warn('invalidation subscriber: cannot subscribe', { channel: this.name, errorMessage: (e as Error).message });
        return false;
      },
    );
    let timer: NodeJS.Timeout | undefined;
    const ok = await Promise.race([subscribed, new Promise<boolean>((r) => (timer = setTimeout(() => r(false), SUBSCRIBE_WAIT_MS)))]);
    clearTimeout(timer);
    if (!ok) this.log.warn('invalidation subscriber: not subscribed yet; starting anyway', { channel: this.name });
  }

  private pub(): Redis {
    if (!this.publisher) {
      this.publisher = new Redis(this.url, { maxRetriesPerRequest: 1 });
      this.publisher.on('error', () => {}); // reported by send()
    }
    return this.publisher;
  }

  /** Fails after SEND_TIMEOUT_MS rather than holding the request that made the change. */
  async send(payload: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.pub().publish(this.channel, payload),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('Redis publish timed out')), SEND_TIMEOUT_MS);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Nothing to flush: disconnect at once (a QUIT would wait for a Redis that may be down). */
  async close(): Promise<void> {
    this.subscriber?.disconnect();
    this.publisher?.disconnect();
  }
}
