import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Drain } from '../../src/http/drain.ts';

const response = () => Object.assign(new EventEmitter(), { headersSent: false, headers: {} as Record<string, string>, setHeader(n: string, v: string) { this.headers[n] = v; } });

describe('Drain', () => {
  it('counts responses until they close, and leaves no listener on a keep-alive socket', () => {
    const drain = new Drain();
    const socket = new EventEmitter();
    for (let i = 0; i < 1000; i++) {
      const res = response();
      drain.track(res as unknown as ServerResponse, { socket } as unknown as IncomingMessage);
      expect(drain.pending).toBe(1);
      res.emit('close');
      expect(drain.pending).toBe(0);
    }
    // One socket served 1000 requests: none of them still listens to it (no leak).
    expect(socket.listenerCount('close')).toBe(0);
  });

  it('a socket that closes ends what was queued on it; idle() resolves when the last one ends, or false after the grace', async () => {
    const drain = new Drain();
    const socket = new EventEmitter();
    const a = response();
    const b = response();
    drain.track(a as unknown as ServerResponse, { socket } as unknown as IncomingMessage);
    drain.track(b as unknown as ServerResponse, { socket } as unknown as IncomingMessage);
    drain.begin();
    expect(a.headers['connection']).toBe('close');
    expect(b.headers['connection']).toBe('close');
    const idle = drain.idle(5000);
    socket.emit('close');
    expect(await idle).toBe(true);
    expect(drain.pending).toBe(0);
    const c = response();
    drain.track(c as unknown as ServerResponse, { socket: new EventEmitter() } as unknown as IncomingMessage);
    expect(c.headers['connection']).toBe('close');
    expect(await drain.idle(50)).toBe(false);
  });
  it('property: whatever the order responses start and end in, pending counts exactly those in flight, and begin() marks exactly those not started', () => {
    // Each step: start a response (t), end the k-th in flight (e), or send the k-th's headers (h).
    const step = fc.oneof(fc.constant({ op: 't' as const, k: 0 }), fc.record({ op: fc.constantFrom('e' as const, 'h' as const), k: fc.nat(40) }));
    fc.assert(
      fc.property(fc.array(step, { maxLength: 120 }), fc.nat(120), (steps, beginAt) => {
        const drain = new Drain();
        const socket = new EventEmitter();
        type R = ReturnType<typeof response>;
        const inFlight: R[] = [];
        const ended: R[] = [];
        /** Told to close: started once draining, or not started when begin() came. */
        const marked = new Set<R>();
        steps.forEach((s, i) => {
          if (i === beginAt) {
            drain.begin();
            for (const res of inFlight) if (!res.headersSent) marked.add(res);
          }
          if (s.op === 't') {
            const res = response();
            drain.track(res as unknown as ServerResponse, { socket } as unknown as IncomingMessage);
            if (drain.draining) marked.add(res);
            inFlight.push(res);
          } else if (inFlight.length) {
            const res = inFlight[s.k % inFlight.length]!;
            if (s.op === 'h') res.headersSent = true;
            else {
              inFlight.splice(inFlight.indexOf(res), 1);
              ended.push(res);
              res.emit('close');
              res.emit('close'); // a second close changes nothing
            }
          }
          expect(drain.pending).toBe(inFlight.length);
        });
        for (const res of ended) delete res.headers['connection'];
        drain.begin();
        for (const res of inFlight) expect(res.headers['connection']).toBe(res.headersSent && !marked.has(res) ? undefined : 'close');
        // Ended responses are no longer in the list: begin() does not reach them.
        for (const res of ended) expect(res.headers['connection']).toBeUndefined();
        for (const res of [...inFlight]) res.emit('close');
        expect(drain.pending).toBe(0);
      }),
      { numRuns: 500 },
    );
  });
});
