/**
 * Cross-instance cache invalidation. A change made by any instance (or the CLI) is announced
 * here; every instance, this one included, applies it to its caches. The message says what
 * changed, never the new state: receivers re-read the database.
 *
 * Delivery to this process is synchronous (a write's own caches are right before its response
 * goes out); delivery to the others goes through a transport, best effort: PostgreSQL
 * LISTEN/NOTIFY (invalidation-pg.ts) or Redis pub/sub (invalidation-redis.ts). When the
 * transport's connection drops and comes back, messages may have been missed: `onReset` listeners then drop everything they cached.
 * Without a transport (the embedded database: one instance) only local delivery happens.
 *
 * Incoming payloads are parsed strictly (anyone able to publish on the channel could send
 * junk): a malformed message is logged and ignored, never trusted into a cache operation.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../log.ts';

export type Invalidation =
  /** Plugin configuration: created, updated (activation, secret, issuer...), deleted. */
  | { topic: 'plugins' }
  /** Sessions that ended (logout, revocation, expiry of a grant). */
  | { topic: 'sessions'; ids: string[] }
  /** Users whose state changed (deactivation, tokensDeactivateAll, permissions, groups). */
  | { topic: 'users'; ids: number[] }
  /** Signing keys (rotation). */
  | { topic: 'keys' };

export type InvalidationHandler = (message: Invalidation, origin: 'local' | 'remote') => void;

/** Moves opaque payloads between instances. */
export interface InvalidationTransport {
  readonly name: string;
  /**
   * Starts receiving (when `listen`): `deliver` for every payload, `reset` after the
   * connection came back (messages may have been missed).
   */
  start(deliver: (payload: string) => void, reset: () => void): Promise<void>;
  send(payload: string): Promise<void>;
  close(): Promise<void>;
}

/** NOTIFY payloads must stay under 8000 bytes; Redis has no such limit, but one rule for both. */
const MAX_PAYLOAD_BYTES = 7000;
const MAX_IDS = 10_000;

interface Envelope {
  /** Sender instance: its own messages coming back are skipped (already applied locally). */
  o: string;
  m: Invalidation;
}

export function parseInvalidation(raw: unknown): Invalidation | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const m = raw as Record<string, unknown>;
  switch (m['topic']) {
    case 'plugins':
      return { topic: 'plugins' };
    case 'keys':
      return { topic: 'keys' };
    case 'sessions': {
      const ids = m['ids'];
      if (!Array.isArray(ids) || ids.length > MAX_IDS || !ids.every((i) => typeof i === 'string' && i.length > 0 && i.length <= 64)) return undefined;
      return { topic: 'sessions', ids: ids as string[] };
    }
    case 'users': {
      const ids = m['ids'];
      if (!Array.isArray(ids) || ids.length > MAX_IDS || !ids.every((i) => Number.isSafeInteger(i) && (i as number) > 0)) return undefined;
      return { topic: 'users', ids: ids as number[] };
    }
    default:
      return undefined;
  }
}

/** Splits a message whose id list would not fit one payload. */
function chunks(message: Invalidation): Invalidation[] {
  if (message.topic !== 'sessions' && message.topic !== 'users') return [message];
  const out: Invalidation[] = [];
  // Session ids are UUIDs (~40 bytes quoted), user ids shorter: 100 per chunk stays far below the limit.
  for (let i = 0; i < message.ids.length; i += 100) {
    out.push({ ...message, ids: message.ids.slice(i, i + 100) } as Invalidation);
  }
  return out;
}

export interface InvalidationCounters {
  invalidation(direction: 'sent' | 'received', topic: string): void;
}

export class InvalidationBus {
  private readonly instanceId = randomUUID();
  private readonly handlers: InvalidationHandler[] = [];
  private readonly resetHandlers: Array<() => void> = [];
  private started = false;

  constructor(
    private readonly transport: InvalidationTransport | undefined,
    private readonly log: Logger,
    private readonly counters?: InvalidationCounters,
  ) {}

  /** Where messages travel to other instances ('local' when nowhere). */
  get channel(): string {
    return this.transport?.name ?? 'local';
  }

  subscribe(handler: InvalidationHandler): void {
    this.handlers.push(handler);
  }

  onReset(handler: () => void): void {
    this.resetHandlers.push(handler);
  }

  /** Starts receiving from other instances (a CLI only sends: it does not call this). */
  async start(): Promise<void> {
    if (!this.transport || this.started) return;
    this.started = true;
    await this.transport.start(
      (payload) => this.receive(payload),
      () => {
        this.log.warn('invalidation channel reconnected: dropping every cache', { channel: this.channel });
        for (const h of this.resetHandlers) this.safely(() => h());
      },
    );
  }

  /**
   * Applies `message` to this process's caches now (unless `remoteOnly`: the caller applied it
   * its own way), and sends it to the other instances (resolves when sent; a failure to send is
   * logged, not thrown: the change itself is done).
   */
  async publish(message: Invalidation, options: { remoteOnly?: boolean } = {}): Promise<void> {
    if ((message.topic === 'sessions' || message.topic === 'users') && message.ids.length === 0) return;
    if (!options.remoteOnly) this.dispatch(message, 'local');
    if (!this.transport) return;
    for (const part of chunks(message)) {
      const payload = JSON.stringify({ o: this.instanceId, m: part } satisfies Envelope);
      if (Buffer.byteLength(payload) > MAX_PAYLOAD_BYTES) {
        this.log.error('invalidation message too large; not sent', { topic: part.topic });
        continue;
      }
      try {
        await this.transport.send(payload);
        this.counters?.invalidation('sent', part.topic);
      } catch (e) {
        this.log.warn('invalidation message not sent', { channel: this.channel, topic: part.topic, errorMessage: (e as Error).message });
      }
    }
  }

  private receive(payload: string): void {
    let envelope: Partial<Envelope>;
    try {
      envelope = JSON.parse(payload) as Partial<Envelope>;
    } catch {
      this.log.warn('malformed invalidation message ignored', { channel: this.channel });
      return;
    }
    if (typeof envelope !== 'object' || envelope === null) return;
    if (envelope.o === this.instanceId) return;
    const message = parseInvalidation(envelope.m);
    if (!message) {
      this.log.warn('malformed invalidation message ignored', { channel: this.channel });
      return;
    }
    this.counters?.invalidation('received', message.topic);
    this.dispatch(message, 'remote');
  }

  private dispatch(message: Invalidation, origin: 'local' | 'remote'): void {
    for (const h of this.handlers) this.safely(() => h(message, origin));
  }

  private safely(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.log.error('invalidation handler failed', { errorMessage: (e as Error).message });
    }
  }

  async close(): Promise<void> {
    await this.transport?.close();
  }
}
