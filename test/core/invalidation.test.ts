/**
 * The invalidation bus on its own (src/core/invalidation.ts): local delivery, what crosses the
 * transport, strict parsing of what comes back, chunking, resets. The transport here is an
 * in-memory pair of queues (the real ones are exercised in test/e2e/invalidation-channel.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { InvalidationBus, parseInvalidation, type Invalidation, type InvalidationTransport } from '../../src/core/invalidation.ts';
import { createLogger } from '../../src/log.ts';

/** Every bus on one wire hears every payload (its own included, as PostgreSQL NOTIFY does). */
class Wire {
  readonly listeners: Array<(payload: string) => void> = [];
  readonly resets: Array<() => void> = [];
  readonly sent: string[] = [];
  failing = false;
  transport(): InvalidationTransport {
    return {
      name: 'wire',
      start: async (deliver, reset) => {
        this.listeners.push(deliver);
        this.resets.push(reset);
      },
      send: async (payload) => {
        if (this.failing) throw new Error('wire down');
        this.sent.push(payload);
        for (const l of this.listeners) l(payload);
      },
      close: async () => {},
    };
  }
  inject(payload: string): void {
    for (const l of this.listeners) l(payload);
  }
}

function recorder() {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger('debug', {}, (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
  return { log, lines };
}

async function pair() {
  const wire = new Wire();
  const a = new InvalidationBus(wire.transport(), recorder().log);
  const bLog = recorder();
  const b = new InvalidationBus(wire.transport(), bLog.log);
  const seenA: Array<[Invalidation, string]> = [];
  const seenB: Array<[Invalidation, string]> = [];
  a.subscribe((m, o) => seenA.push([m, o]));
  b.subscribe((m, o) => seenB.push([m, o]));
  await a.start();
  await b.start();
  return { wire, a, b, seenA, seenB, bLines: bLog.lines };
}

describe('InvalidationBus', () => {
  it('applies a message locally once and remotely once (its own echo is skipped)', async () => {
    const { a, seenA, seenB, wire } = await pair();
    await a.publish({ topic: 'users', ids: [7, 8] });
    expect(seenA).toEqual([[{ topic: 'users', ids: [7, 8] }, 'local']]);
    expect(seenB).toEqual([[{ topic: 'users', ids: [7, 8] }, 'remote']]);
    expect(wire.sent).toHaveLength(1);
  });

  it('sends nothing for an empty id list', async () => {
    const { a, seenA, wire } = await pair();
    await a.publish({ topic: 'sessions', ids: [] });
    expect(seenA).toEqual([]);
    expect(wire.sent).toEqual([]);
  });

  it('splits long id lists into payloads under the NOTIFY limit, losing none', async () => {
    const { a, seenB, wire } = await pair();
    const ids = Array.from({ length: 1050 }, (_, i) => `0f8b5a3e-0000-4000-8000-${String(i).padStart(12, '0')}`);
    await a.publish({ topic: 'sessions', ids });
    expect(wire.sent.length).toBe(11);
    for (const p of wire.sent) expect(Buffer.byteLength(p)).toBeLessThan(7000);
    expect(seenB.flatMap(([m]) => (m.topic === 'sessions' ? m.ids : []))).toEqual(ids);
  });

  it('a send that fails is logged, the local change still applies, publish does not throw', async () => {
    const { a, seenA, seenB, wire } = await pair();
    wire.failing = true;
    await expect(a.publish({ topic: 'keys' })).resolves.toBeUndefined();
    expect(seenA).toEqual([[{ topic: 'keys' }, 'local']]);
    expect(seenB).toEqual([]);
  });

  it('ignores junk from the channel: not JSON, unknown topics, bad ids, oversized lists', async () => {
    const { wire, seenB, bLines } = await pair();
    const junk = [
      'not json',
      'null',
      '42',
      JSON.stringify({ o: 'x', m: { topic: 'everything' } }),
      JSON.stringify({ o: 'x', m: { topic: 'users', ids: ['1'] } }),
      JSON.stringify({ o: 'x', m: { topic: 'users', ids: [1.5] } }),
      JSON.stringify({ o: 'x', m: { topic: 'users', ids: [-1] } }),
      JSON.stringify({ o: 'x', m: { topic: 'users', ids: 3 } }),
      JSON.stringify({ o: 'x', m: { topic: 'sessions', ids: [''] } }),
      JSON.stringify({ o: 'x', m: { topic: 'sessions', ids: ['x'.repeat(65)] } }),
      JSON.stringify({ o: 'x', m: { topic: 'sessions', ids: Array.from({ length: 10_001 }, () => 'a') } }),
      JSON.stringify({ o: 'x' }),
    ];
    for (const j of junk) wire.inject(j);
    expect(seenB).toEqual([]);
    expect(bLines.filter((l) => l['message'] === 'malformed invalidation message ignored').length).toBe(junk.length - 2);
    // A well-formed message from another sender is applied.
    wire.inject(JSON.stringify({ o: 'other', m: { topic: 'users', ids: [3] } }));
    expect(seenB).toEqual([[{ topic: 'users', ids: [3] }, 'remote']]);
  });

  it('a reset reaches every reset listener; a throwing handler does not stop the others', async () => {
    const { wire, b } = await pair();
    const calls: string[] = [];
    b.onReset(() => {
      throw new Error('boom');
    });
    b.onReset(() => calls.push('second'));
    wire.resets[1]!();
    expect(calls).toEqual(['second']);
  });

  it('without a transport: local delivery only', async () => {
    const bus = new InvalidationBus(undefined, recorder().log);
    const seen: Invalidation[] = [];
    bus.subscribe((m) => seen.push(m));
    await bus.start();
    await bus.publish({ topic: 'plugins' });
    expect(seen).toEqual([{ topic: 'plugins' }]);
    expect(bus.channel).toBe('local');
  });

  it('parseInvalidation keeps only known fields', () => {
    expect(parseInvalidation({ topic: 'plugins', extra: 1 })).toEqual({ topic: 'plugins' });
    expect(parseInvalidation({ topic: 'users', ids: [1, 2], extra: 1 })).toEqual({ topic: 'users', ids: [1, 2] });
    expect(parseInvalidation(undefined)).toBeUndefined();
  });
});
