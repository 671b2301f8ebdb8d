/**
 * Invalidation transport over PostgreSQL LISTEN/NOTIFY: no service beyond the database every
 * instance already shares. One dedicated connection listens (a pooled one could not: LISTEN
 * belongs to a session); NOTIFY goes through the pool. A lost listening connection is
 * re-established with backoff, and then reported as a reset (notifications sent meanwhile
 * were lost).
 */
import pg from 'pg';
import type { Logger } from '../log.ts';
import type { InvalidationTransport } from './invalidation.ts';

export const PG_CHANNEL = 'saleor_auth_invalidation';

export class PgNotifyTransport implements InvalidationTransport {
  readonly name = 'postgresql';
  private client: pg.Client | undefined;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly connectionString: string,
    private readonly pool: pg.Pool,
    private readonly log: Logger,
  ) {}

  async start(deliver: (payload: string) => void, reset: () => void): Promise<void> {
    await this.connect(deliver);
    const reconnect = (delay: number) => {
      if (this.closed) return;
      this.retryTimer = setTimeout(() => {
        this.connect(deliver).then(
          () => {
            this.log.info('invalidation listener reconnected', { channel: this.name });
            reset();
            this.watch(reconnect);
          },
          (e: unknown) => {
            this.log.warn('invalidation listener cannot reconnect yet', { channel: this.name, retryInMs: delay, errorMessage: (e as Error).message });
            reconnect(Math.min(delay * 2, 5000));
          },
        );
      }, delay);
      this.retryTimer.unref();
    };
    this.watch(reconnect);
  }

  /** Calls `reconnect` once when the current listening connection fails. */
  private watch(reconnect: (delay: number) => void): void {
    const client = this.client!;
    let lost = false;
    const onLost = (e?: Error) => {
      if (lost || this.closed) return;
      lost = true;
      this.log.warn('invalidation listener lost its connection', { channel: this.name, errorMessage: e?.message });
      client.end().catch(() => {});
      reconnect(250);
    };
    client.on('error', onLost);
    client.on('end', () => onLost());
  }

  private async connect(deliver: (payload: string) => void): Promise<void> {
    const client = new pg.Client({ connectionString: this.connectionString, connectionTimeoutMillis: 10_000, keepAlive: true });
    // Until watch() attaches its handler: an error must not crash the process.
    client.on('error', () => {});
    client.on('notification', (n) => {
      if (n.channel === PG_CHANNEL && n.payload !== undefined) deliver(n.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${PG_CHANNEL}`);
    } catch (e) {
      await client.end().catch(() => {});
      throw e;
    }
    if (this.closed) {
      await client.end().catch(() => {});
      return;
    }
    this.client = client;
  }

  async send(payload: string): Promise<void> {
    await this.pool.query('SELECT pg_notify($1, $2)', [PG_CHANNEL, payload]);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    await this.client?.end().catch(() => {});
  }
}
