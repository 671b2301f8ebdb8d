import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
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
});
