/**
 * A bounded in-memory cache: least-recently-used eviction (approximated: see below), a per-entry
 * expiry, and coalescing of concurrent misses (many callers asking for one missing key share
 * one load).
 *
 * Recency is a flag set by `get` rather than a move to the end of the map (a delete and an
 * insert on every hit: the hot path of every authenticated request). When the map is over its
 * bound, entries are taken oldest first: one used since it was last looked at gets a second
 * chance (flag cleared, moved to the end), the first one not used is evicted. The entry just
 * set is never the one evicted.
 */
export class TtlLru<V> {
  private readonly entries = new Map<string, { value: V; expiresAt: number; used: boolean }>();
  private readonly inflight = new Map<string, Promise<V>>();

  constructor(private readonly maxEntries: number) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string, now = Date.now()): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= now) {
      this.entries.delete(key);
      return undefined;
    }
    entry.used = true;
    return entry.value;
  }

  /** Whether `key` has an entry that has not expired (without counting as a use). */
  has(key: string, now = Date.now()): boolean {
    const entry = this.entries.get(key);
    return entry !== undefined && entry.expiresAt > now;
  }

  set(key: string, value: V, expiresAt: number): void {
    if (expiresAt <= Date.now()) return;
    this.entries.delete(key);
    this.entries.set(key, { value, expiresAt, used: false });
    while (this.entries.size > this.maxEntries) this.evictOne(key);
  }

  /** Evicts the oldest entry not used since it was last looked at (`keep` only when it is the only one). */
  private evictOne(keep: string): void {
    let keepSeen = false;
    for (const [key, entry] of this.entries) {
      if ((key !== keep && !entry.used) || (key === keep && keepSeen)) {
        this.entries.delete(key);
        return;
      }
      if (key === keep) keepSeen = true;
      // A second chance: to the end, as if just set (this loop meets it again after the others).
      entry.used = false;
      this.entries.delete(key);
      this.entries.set(key, entry);
    }
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  /** Drops every entry whose value matches. */
  deleteWhere(match: (value: V) => boolean): void {
    for (const [key, entry] of this.entries) if (match(entry.value)) this.entries.delete(key);
  }

  /**
   * The cached value, or the result of `load` (shared by concurrent callers of the same key).
   * `load` returns the value and until when it may be cached.
   */
  async getOrLoad(key: string, load: () => Promise<{ value: V; expiresAt: number }>): Promise<V> {
    const hit = this.get(key);
    if (hit !== undefined) return hit;
    const pending = this.inflight.get(key);
    if (pending) return pending;
    const promise = load()
      .then(({ value, expiresAt }) => {
        this.set(key, value, expiresAt);
        return value;
      })
      .finally(() => this.inflight.delete(key));
    this.inflight.set(key, promise);
    return promise;
  }
}
