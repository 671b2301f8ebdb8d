import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TtlLru } from '../../src/cache/ttl-lru.ts';

describe('TtlLru', () => {
  it('evicts the least recently used entry beyond its bound', () => {
    const c = new TtlLru<number>(2);
    const later = Date.now() + 60_000;
    c.set('a', 1, later);
    c.set('b', 2, later);
    expect(c.get('a')).toBe(1); // a is now the most recent
    c.set('c', 3, later);
    expect(c.get('b')).toBeUndefined();
    expect(c.get('a')).toBe(1);
    expect(c.get('c')).toBe(3);
    expect(c.size).toBe(2);
  });

  it('property: bounded; the entry just set stays; an entry read after every set outlives entries never read', () => {
    // Recency is approximate (a flag and one second chance per read, not a move per read), but
    // these hold: after set(k), k is there, size <= bound, at most one entry goes; and a hot
    // entry (k0, read after every set) is evicted only when no other entry but k went unread.
    const op = fc.oneof(fc.record({ set: fc.integer({ min: 1, max: 12 }) }), fc.record({ get: fc.integer({ min: 1, max: 12 }) }));
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 6 }), fc.array(op, { maxLength: 80 }), (bound, ops) => {
        const c = new TtlLru<number>(bound);
        const later = Date.now() + 60_000;
        const everRead = new Set<string>();
        const keys = Array.from({ length: 13 }, (_, i) => `k${i}`);
        const present = () => new Set(keys.filter((x) => c.has(x)));
        c.set('k0', 0, later);
        for (const o of ops) {
          if ('get' in o) {
            const k = `k${o.get}`;
            if (c.get(k) !== undefined) everRead.add(k);
            continue;
          }
          const k = `k${o.set}`;
          const before = present();
          c.set(k, o.set, later);
          everRead.delete(k);
          const after = present();
          expect(c.size).toBeLessThanOrEqual(bound);
          expect(after.has(k)).toBe(true);
          const evicted = [...before].filter((x) => !after.has(x));
          expect(evicted.length).toBeLessThanOrEqual(1);
          if (evicted.includes('k0')) expect([...before].filter((x) => x !== 'k0' && !everRead.has(x))).toEqual([]);
          for (const e of evicted) everRead.delete(e);
          if (c.get('k0') !== undefined) everRead.add('k0');
        }
      }),
      { numRuns: 400 },
    );
  });

  it('expires entries and never stores already-expired ones', () => {
    const c = new TtlLru<string>(10);
    c.set('x', 'v', Date.now() + 1000);
    expect(c.get('x', Date.now() + 2000)).toBeUndefined();
    expect(c.size).toBe(0);
    c.set('y', 'v', Date.now() - 1);
    expect(c.size).toBe(0);
  });

  it('coalesces concurrent loads of one key', async () => {
    const c = new TtlLru<number>(10);
    let loads = 0;
    const load = async () => {
      loads++;
      await new Promise((r) => setTimeout(r, 20));
      return { value: 42, expiresAt: Date.now() + 60_000 };
    };
    const values = await Promise.all(Array.from({ length: 100 }, () => c.getOrLoad('k', load)));
    expect(values.every((v) => v === 42)).toBe(true);
    expect(loads).toBe(1);
    expect(await c.getOrLoad('k', load)).toBe(42);
    expect(loads).toBe(1);
  });

  it('does not cache a failed load, and lets the next caller retry', async () => {
    const c = new TtlLru<number>(10);
    await expect(c.getOrLoad('k', async () => Promise.reject(new Error('down')))).rejects.toThrow('down');
    expect(await c.getOrLoad('k', async () => ({ value: 7, expiresAt: Date.now() + 1000 }))).toBe(7);
  });

  it('drops entries by predicate', () => {
    const c = new TtlLru<{ user: number }>(10);
    const later = Date.now() + 60_000;
    c.set('a', { user: 1 }, later);
    c.set('b', { user: 2 }, later);
    c.deleteWhere((v) => v.user === 1);
    expect(c.get('a')).toBeUndefined();
    expect(c.get('b')).toEqual({ user: 2 });
  });
});
